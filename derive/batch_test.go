package derive_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
)

// A batch run on a node whose lease the fence no longer allows (another
// node took it) is refused at its first write, and nothing is stored: no
// label, no audit record, no population model. Allowed again, the run
// stores every subject's labels. Incremental work's own fence (in the
// context) takes precedence over the batch fence.
func TestBatchFenced(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
		for _, who := range []string{"erin", "finn", "gus", "hal", "ida"} {
			e.consent(t, who, "personalization", policy.Granted)
			e.ingest(t, fiveSportsViews(who, e.now)...)
			e.ingest(t, purchase(who, 40, e.now.Add(-time.Hour)))
		}
		size, err := e.store.LogSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		refused := fmt.Errorf("bucket 0: %w", errFencedForTest)
		calls := 0
		e.eng.FenceBatch(fenceFunc(func([]portrait.Pseudonym) error { calls++; return refused }))
		if _, err := e.eng.All(ctx, nil); !errors.Is(err, errFencedForTest) {
			t.Fatalf("fenced batch run: %v, want the fence's refusal", err)
		}
		if calls == 0 {
			t.Fatal("the batch run never asked its fence")
		}
		for _, who := range []string{"erin", "finn", "gus", "hal", "ida"} {
			if got := e.stored(t, who); len(got) != 0 {
				t.Errorf("%s: labels %v stored though the fence refused", who, got)
			}
		}
		if after, _ := e.store.LogSize(ctx); after != size {
			t.Errorf("audit log grew from %d to %d entries under a refused batch run", size, after)
		}
		if st := e.eng.Status(); st.BatchRuns != 0 || !st.PopulationAt.IsZero() {
			t.Errorf("status after a refused run = %+v, want no run and no population model", st)
		}
		// A fence in the context (a bucket's incremental work) is the one asked.
		own := 0
		if _, err := e.eng.All(derive.WithFence(ctx, fenceFunc(func([]portrait.Pseudonym) error { own++; return nil })), nil); err != nil || own == 0 {
			t.Errorf("run under the context's fence: %v, asked %d times", err, own)
		}
		e.eng.FenceBatch(fenceFunc(func([]portrait.Pseudonym) error { return nil }))
		if _, err := e.eng.All(ctx, nil); err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{"erin", "finn", "gus", "hal", "ida"} {
			if got := e.stored(t, who); len(got) == 0 {
				t.Errorf("%s: no labels after an allowed batch run", who)
			}
		}
	})
}

var errFencedForTest = errors.New("lease held by another node")

// rfmSealedBefore is an RFM value as batch derivation sealed it until
// session 5, with the class's name and sentence in both languages;
// rfmSealedNow is the same value as it is sealed now, without them.
const (
	rfmSealedBefore = `{"label":"rfm","version":1,"kind":"rfm","bool":false,"score":411,"segment":0,"confidence":1,"inputs":["amount","event:purchase"],"event_count":1,"from":"2026-11-01T11:00:00Z","to":"2026-11-01T11:00:00Z","computed":"2026-11-01T12:00:00Z","facts":[{"func":"rfm","equals":"new","value":0,"text":{"en":"is “new customers” (R 4, F 1, M 1 out of 5)","zh-CN":"「新客户」（R 4、F 1、M 1，满分5）"}},{"func":"recency","type":"purchase","value":0.041666666666666664},{"func":"frequency","type":"purchase","window":"365d","value":1},{"func":"monetary","type":"purchase","field":"amount","window":"365d","value":41}],"rfm":{"recency":0.041666666666666664,"frequency":1,"monetary":41,"r":4,"f":1,"m":1,"class":"new","name":{"en":"new customers","zh-CN":"新客户"}},"seen_event":12}`
	rfmSealedNow    = `{"label":"rfm","version":1,"kind":"rfm","bool":false,"score":411,"segment":0,"confidence":1,"inputs":["amount","event:purchase"],"event_count":1,"from":"2026-11-01T11:00:00Z","to":"2026-11-01T11:00:00Z","computed":"2026-11-01T12:00:00Z","facts":[{"func":"rfm","equals":"new","value":0},{"func":"recency","type":"purchase","value":0.041666666666666664},{"func":"frequency","type":"purchase","window":"365d","value":1},{"func":"monetary","type":"purchase","field":"amount","window":"365d","value":41}],"rfm":{"recency":0.041666666666666664,"frequency":1,"monetary":41,"r":4,"f":1,"m":1,"class":"new","name":null},"seen_event":12}`
)

// SR-1: an RFM value sealed without its words reads exactly as one sealed
// with them, wherever it is read — as label.Value (the privacy centre,
// the console, exports) and as derive.Stored — and explains itself in the
// same sentences; and batch derivation now seals it without them.
func TestRFMWordedWhenRead(t *testing.T) {
	var before, now label.Value
	if err := json.Unmarshal([]byte(rfmSealedBefore), &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(rfmSealedNow), &now); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, now) {
		t.Errorf("decoded values differ:\nbefore %+v\nnow    %+v", before, now)
	}
	for _, lang := range []string{"zh-CN", "en"} {
		if b, n := before.Explain(lang, nil), now.Explain(lang, nil); b != n || !strings.Contains(n, "R 4") {
			t.Errorf("%s explanation %q, want %q", lang, n, b)
		}
	}
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(now)
	if string(b1) != string(b2) {
		t.Errorf("shown as JSON:\nbefore %s\nnow    %s", b1, b2)
	}
	var sb, sn derive.Stored
	if err := json.Unmarshal([]byte(rfmSealedBefore), &sb); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(rfmSealedNow), &sn); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sb, sn) || sn.Seen != 12 || sn.RFM == nil || sn.RFM.Name.In("en") != "new customers" {
		t.Errorf("decoded stored values differ or lost their own fields:\nbefore %+v %+v\nnow    %+v %+v", sb, sb.RFM, sn, sn.RFM)
	}

	e := newEnv(t)
	for i := range 5 {
		who := fmt.Sprintf("p%d", i)
		e.consent(t, who, "personalization", policy.Granted)
		e.ingest(t, purchase(who, float64(40+i), e.now.Add(-time.Duration(i)*time.Hour)))
	}
	if _, err := e.eng.All(context.Background(), nil); err != nil && !strings.Contains(err.Error(), "shopper_segment") {
		t.Fatal(err)
	}
	ps := e.keys.Pseudonym("p1")
	d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: ps}, Action: policy.Access, Caller: policy.Caller{Role: policy.System}})
	lvs, err := e.store.Labels(context.Background(), d.Grant)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := e.store.Subjects(context.Background(), []portrait.Pseudonym{ps})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.keys.Open(subj[ps])
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, lv := range lvs {
		if lv.Label != "rfm" {
			continue
		}
		found = true
		plain, err := c.Open(lv.Sealed, derive.AD(ps, lv.Label))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(plain), "满分") || strings.Contains(string(plain), `"name":{`) {
			t.Errorf("sealed RFM value carries its words: %s", plain)
		}
		v, err := derive.Open(c, lv)
		if err != nil {
			t.Fatal(err)
		}
		if v.Facts[0].Text.In("zh-CN") == "" || v.RFM.Name.In("zh-CN") == "" {
			t.Errorf("opened RFM value is not worded: %+v %+v", v.Facts, v.RFM)
		}
	}
	if !found {
		t.Fatal("no RFM value stored")
	}
}

// A batch run of many pages, written by the writer while the next page
// is evaluated, stores what a run of one page stores; a write refused
// half-way stops the run: the pages written before stay, nothing after
// is written, and no population label is.
func TestBatchPagesPipelined(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		who := buyers(t, e, 9)
		opened := func() map[string]string {
			out := map[string]string{}
			for _, w := range who {
				for id, v := range e.decoded(t, w) {
					b, _ := json.Marshal(v)
					out[w+"/"+id] = string(b)
				}
			}
			return out
		}
		if _, err := e.eng.All(ctx, nil); err != nil {
			t.Fatal(err)
		}
		one := opened()
		paged, err := derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock, PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := paged.All(ctx, nil)
		if err != nil || sum.Subjects != len(who) {
			t.Fatalf("paged run: %+v, %v", sum, err)
		}
		if many := opened(); !reflect.DeepEqual(one, many) {
			t.Errorf("a run of pages of 2 stored other values than a run of one page:\none  %v\nmany %v", one, many)
		}

		// Refused half-way, every label deleted first.
		for _, w := range who {
			ps, ids := e.keys.Pseudonym(w), e.stored(t, w)
			if err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
				return tx.DeleteLabels(ctx, ps, ids)
			}); err != nil {
				t.Fatal(err)
			}
		}
		writes := 0
		paged.FenceBatch(fenceFunc(func([]portrait.Pseudonym) error {
			if writes++; writes > 1 {
				return errFencedForTest
			}
			return nil
		}))
		if _, err := paged.All(ctx, nil); !errors.Is(err, errFencedForTest) {
			t.Fatalf("run refused at its second write: %v", err)
		}
		stored := 0
		for _, w := range who {
			got := e.stored(t, w)
			if slices.Contains(got, "rfm") || slices.Contains(got, "shopper_segment") {
				t.Errorf("%s: population labels %v stored after the run was refused", w, got)
			}
			if len(got) > 0 {
				stored++
			}
		}
		if stored != 2 {
			t.Errorf("%d subjects have labels after a run refused at its second page, want the first page's 2", stored)
		}
	})
}

// SR-3: a subject erased while a batch run is under way gets no label
// from it, and its key does not come back into memory from a subject row
// or wrapped key the run read before the erasure — neither when the
// erasure falls between a page's listing (which reads the page's rows,
// Store.SubjectsAfter) and its states, nor between the first pass and
// the population pass (which reuses the first pass's wrapped keys while
// the generation has not moved).
//
// sports_fan is declared for the service purpose too, whose basis is the
// contract: an erased subject's fresh state still grants it, so that a
// key read before the erasure would be opened if the run used it.
func TestBatchErasureDuringRun(t *testing.T) {
	text := strings.Replace(string(demo.Catalog), "purposes: [personalization]\n    window: 30d", "purposes: [service, personalization]\n    window: 30d", 1)
	if text == string(demo.Catalog) {
		t.Fatal("sports_fan's purposes not found in the demo catalog")
	}
	cat, err := catalog.Parse(demo.CatalogName, []byte(text), label.Check)
	if err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"listing", "passes"} {
		t.Run(when, func(t *testing.T) {
			eachStoreCat(t, cat, func(t *testing.T, e *env) {
				ctx := context.Background()
				who := buyers(t, e, 6)
				victim := e.keys.Pseudonym("q3")
				erased := false
				erase := func() {
					if erased {
						return
					}
					erased = true
					if err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
						return tx.Erase(ctx, storetest.Grant(t, victim, policy.Erase))
					}); err != nil {
						t.Error(err)
					}
					e.keys.Forget(victim) // as the rights service does after the erasure commits
					if e.keys.Holds(victim) {
						// Forget reaches the pages' opened keys (keys.Run) too:
						// keys.TestRunForgets proves that; here no page holds the
						// victim's key at this point.
						t.Error("the erased subject's key is in memory after Forget, while the run is open")
					}
				}
				var store derive.Store = e.store
				var progress func(done, total int)
				if when == "listing" {
					store = eraseOnList{e.store, victim, erase}
				} else {
					progress = func(done, total int) {
						if done == total {
							erase() // after the first pass's last page, before the population pass
						}
					}
				}
				eng, err := derive.New(derive.Deps{Store: store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock, PageSize: 2})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := eng.All(ctx, progress); err != nil && !strings.Contains(err.Error(), "shopper_segment") {
					t.Fatal(err)
				}
				if !erased {
					t.Fatal("the subject was not erased during the run")
				}
				if got := e.stored(t, "q3"); len(got) != 0 {
					t.Errorf("labels %v stored for a subject erased during the run", got)
				}
				if e.keys.Holds(victim) {
					t.Error("the erased subject's key is in memory again after the run")
				}
				for _, w := range who {
					if got := e.stored(t, w); w != "q3" && !slices.Contains(got, "rfm") {
						t.Errorf("%s: labels %v, want rfm among them", w, got)
					}
				}
			})
		})
	}
}

// eraseOnList erases victim right after listing the page that holds it,
// before the page's states are read.
type eraseOnList struct {
	derive.Store
	victim portrait.Pseudonym
	erase  func()
}

func (s eraseOnList) SubjectsAfter(ctx context.Context, after portrait.Pseudonym, n int) ([]portrait.SubjectKey, error) {
	subs, err := s.Store.SubjectsAfter(ctx, after, n)
	for _, k := range subs {
		if k.Pseudonym == s.victim {
			s.erase()
		}
	}
	return subs, err
}

// buyers gives n subjects, q0 to q(n-1), consent to personalisation and
// five sports views and a purchase each, at times and amounts that differ
// by subject, through an ingester on e's clock.
func buyers(t *testing.T, e *env, n int) []string {
	t.Helper()
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
	var who []string
	for i := range n {
		w := fmt.Sprintf("q%d", i)
		who = append(who, w)
		e.consent(t, w, "personalization", policy.Granted)
		e.ingest(t, fiveSportsViews(w, e.now.Add(-time.Duration(i)*time.Hour))...)
		e.ingest(t, purchase(w, float64(10+7*i), e.now.Add(-time.Duration(i)*24*time.Hour)))
	}
	return who
}

// CN-4: a consent withdrawn while a batch run is under way binds the
// run's next read: here the withdrawal commits right after the page's
// states were read with its listing (Ledger.StatesRange) and before the
// page is computed, so the page must read its states again (the
// generation moved) and derive nothing for the withdrawn purpose.
// Without that check the page is decided on the states read before the
// withdrawal, and its write's re-check, which compares against the
// generation the page read after it, sees no change.
func TestBatchWithdrawalDuringRun(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		who := buyers(t, e, 6)
		victim := e.keys.Pseudonym("q3")
		withdrawn := false
		withdraw := func() {
			if !withdrawn {
				withdrawn = true
				e.consent(t, "q3", "personalization", policy.Withdrawn)
			}
		}
		ledger, err := consent.New(consent.Deps{Store: withdrawOnStates{e.store, victim, withdraw}, Point: e.point, Log: e.log, Keys: e.keys}, consent.Options{Now: e.clock})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock, PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.All(ctx, nil); err != nil && !strings.Contains(err.Error(), "shopper_segment") {
			t.Fatal(err)
		}
		if !withdrawn {
			t.Fatal("the consent was not withdrawn during the run")
		}
		if got := e.stored(t, "q3"); len(got) != 0 {
			t.Errorf("labels %v stored for a subject whose consent was withdrawn before its page was computed", got)
		}
		for _, w := range who {
			if got := e.stored(t, w); w != "q3" && !slices.Contains(got, "rfm") {
				t.Errorf("%s: labels %v, want rfm among them", w, got)
			}
		}
	})
}

// withdrawOnStates withdraws victim's consent right after a range read
// of states that holds it has read them.
type withdrawOnStates struct {
	consent.Store
	victim   portrait.Pseudonym
	withdraw func()
}

func (s withdrawOnStates) StatesRange(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	states, err := s.Store.StatesRange(ctx, pseudonyms)
	if slices.Contains(pseudonyms, s.victim) {
		s.withdraw()
	}
	return states, err
}
