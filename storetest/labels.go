package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// A batch of label values written in one PutLabels stores exactly what
// writing the same values one call each, in the batch's order, stores:
// whatever order the batch is in, with a (subject, label) repeated in it
// (the last value wins), over values stored before, and at sizes that
// cross the engines' statement sizes. The engines write a batch in key
// order through statements of their own (sqlite/labels.go,
// postgres/tx.go); the one-by-one write is the reference.
func testLabelsBulk(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	// value makes the value of label l of subject i under prefix, the
	// k-th time it is written.
	value := func(prefix string, i, l, k int) portrait.LabelValue {
		p := portrait.Pseudonym(fmt.Sprintf("%s%04d", prefix, i))
		v := portrait.LabelValue{Grant: Grant(t, p, policy.Derive), Pseudonym: p, Label: fmt.Sprintf("l%02d", l),
			Version: 1 + k, Sealed: fmt.Appendf(nil, "%d/%d/%d\x00\xff", i, l, k), Computed: at(i + k)}
		if (i+l+k)%3 != 0 {
			v.Expires = at(1000 + i + l + k)
		}
		return v
	}
	type write struct{ i, l, k int }
	cases := []struct {
		name   string
		before []write // stored first, one by one
		batch  []write
	}{
		{name: "one", batch: []write{{0, 0, 0}}},
		{name: "key-order", batch: grid(3, 4, func(i, l int) write { return write{i, l, 0} })},
		{name: "reverse", batch: reversed(grid(40, 5, func(i, l int) write { return write{i, l, 0} }))},
		{name: "shuffled-repeats", batch: shuffled(append(grid(50, 6, func(i, l int) write { return write{i, l, 0} }),
			grid(20, 3, func(i, l int) write { return write{i * 2, l + 1, 1} })...))},
		{name: "over-stored", before: grid(30, 4, func(i, l int) write { return write{i, l, 0} }),
			batch: shuffled(grid(30, 6, func(i, l int) write { return write{i, l + 2, 2} }))},
		{name: "chunk-sizes", batch: shuffled(grid(293, 1, func(i, l int) write { return write{i, l, 0} }))}, // 256 + 32 + 4 + 1
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref, bulk := fmt.Sprintf("r%d-", ci), fmt.Sprintf("b%d-", ci)
			values := func(prefix string, ws []write) []portrait.LabelValue {
				out := make([]portrait.LabelValue, len(ws))
				for n, w := range ws {
					out[n] = value(prefix, w.i, w.l, w.k)
				}
				return out
			}
			for _, prefix := range []string{ref, bulk} {
				if before := values(prefix, c.before); len(before) > 0 {
					update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutLabels(ctx, before) })
				}
			}
			update(t, s, func(ctx context.Context, tx portrait.Tx) error {
				for _, v := range values(ref, c.batch) {
					if err := tx.PutLabels(ctx, []portrait.LabelValue{v}); err != nil {
						return err
					}
				}
				return nil
			})
			batch := values(bulk, c.batch)
			kept := slices.Clone(batch)
			update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutLabels(ctx, batch) })
			for n := range batch {
				if batch[n].Label != kept[n].Label || batch[n].Pseudonym != kept[n].Pseudonym || !bytes.Equal(batch[n].Sealed, kept[n].Sealed) {
					t.Fatalf("PutLabels changed the caller's batch at %d", n)
				}
			}

			subjects := map[int]bool{}
			for _, w := range append(slices.Clone(c.before), c.batch...) {
				subjects[w.i] = true
			}
			var refGrants, bulkGrants []policy.Grant
			for i := range subjects {
				refGrants = append(refGrants, Grant(t, portrait.Pseudonym(fmt.Sprintf("%s%04d", ref, i)), policy.Derive))
				bulkGrants = append(bulkGrants, Grant(t, portrait.Pseudonym(fmt.Sprintf("%s%04d", bulk, i)), policy.Derive))
			}
			want, err := s.LabelsFor(ctx, refGrants)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.LabelsFor(ctx, bulkGrants)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for i := range subjects {
				w, g := want[portrait.Pseudonym(fmt.Sprintf("%s%04d", ref, i))], got[portrait.Pseudonym(fmt.Sprintf("%s%04d", bulk, i))]
				n += len(w)
				if len(g) != len(w) {
					t.Errorf("subject %d: %d labels in bulk, %d one by one", i, len(g), len(w))
					continue
				}
				for k := range w {
					if g[k].Label != w[k].Label || g[k].Version != w[k].Version || !bytes.Equal(g[k].Sealed, w[k].Sealed) ||
						!g[k].Computed.Equal(w[k].Computed) || !g[k].Expires.Equal(w[k].Expires) {
						t.Errorf("subject %d label %s: bulk %+v, one by one %+v", i, w[k].Label, g[k], w[k])
					}
				}
			}
			if n == 0 {
				t.Fatal("nothing stored one by one")
			}
		})
	}
}

// grid lists f(i, l) for subjects i < subjects and labels l < labels,
// subject by subject.
func grid[W any](subjects, labels int, f func(i, l int) W) []W {
	var out []W
	for i := range subjects {
		for l := range labels {
			out = append(out, f(i, l))
		}
	}
	return out
}

func reversed[W any](ws []W) []W {
	slices.Reverse(ws)
	return ws
}

func shuffled[W any](ws []W) []W {
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(ws), func(i, j int) { ws[i], ws[j] = ws[j], ws[i] })
	return ws
}
