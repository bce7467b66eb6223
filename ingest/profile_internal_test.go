package ingest

import (
	"slices"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
)

// lastWrites keeps only the last value of each subject's field, under the
// grant of the event that brought it, in request order: the profile a
// chunk leaves is the one its writes one by one would.
func TestLastWrites(t *testing.T) {
	g := func(p string) policy.Grant {
		return storetest.Grant(t, portrait.Pseudonym(p), policy.Collect, "city", "age")
	}
	ga1, ga2, gb := g("a"), g("a"), g("b")
	v := func(field, sealed string) portrait.ProfileValue {
		return portrait.ProfileValue{Field: field, Sealed: []byte(sealed)}
	}
	type out struct {
		subject string
		values  []string // field=sealed
	}
	for _, tc := range []struct {
		name string
		in   []profileWrite
		want []out
	}{
		{"none", nil, nil},
		{"one write", []profileWrite{{ga1, []portrait.ProfileValue{v("city", "x")}}}, []out{{"a", []string{"city=x"}}}},
		{"later value wins, earlier write keeps its other field",
			[]profileWrite{{ga1, []portrait.ProfileValue{v("city", "x"), v("age", "1")}}, {ga2, []portrait.ProfileValue{v("city", "y")}}},
			[]out{{"a", []string{"age=1"}}, {"a", []string{"city=y"}}}},
		{"subjects apart",
			[]profileWrite{{ga1, []portrait.ProfileValue{v("city", "x")}}, {gb, []portrait.ProfileValue{v("city", "z")}}, {ga2, []portrait.ProfileValue{v("age", "2")}}},
			[]out{{"a", []string{"city=x"}}, {"b", []string{"city=z"}}, {"a", []string{"age=2"}}}},
		{"a write wholly replaced goes",
			[]profileWrite{{ga1, []portrait.ProfileValue{v("city", "x")}}, {ga2, []portrait.ProfileValue{v("city", "y"), v("age", "3")}}},
			[]out{{"a", []string{"city=y", "age=3"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []out
			for _, w := range lastWrites(tc.in) {
				o := out{subject: string(w.grant.Pseudonym())}
				for _, x := range w.values {
					o.values = append(o.values, x.Field+"="+string(x.Sealed))
				}
				got = append(got, o)
			}
			if !slices.EqualFunc(got, tc.want, func(a, b out) bool { return a.subject == b.subject && slices.Equal(a.values, b.values) }) {
				t.Errorf("lastWrites = %v, want %v", got, tc.want)
			}
		})
	}
}
