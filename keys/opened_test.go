package keys

import (
	"testing"

	portrait "github.com/portrait-dev/portrait"
)

// Invariants 4 and 5: a key kept at one governance generation is never
// served at another; a caller with an older generation neither gets nor
// brings back keys of a generation that has passed.
func TestOpened(t *testing.T) {
	k := mustNew(t, 1)
	_, c, err := k.NewSubject("ann")
	if err != nil {
		t.Fatal(err)
	}
	p := portrait.Pseudonym("p-ann")
	var o Opened
	steps := []struct {
		name string
		put  bool
		gen  int64
		want bool // Get at gen finds the key
	}{
		{"nothing kept", false, 3, false},
		{"kept at 3", true, 3, true},
		{"another generation drops it", false, 4, false},
		{"back at 3 finds nothing", false, 3, false},
		{"an older caller keeps nothing", true, 3, false},
		{"still nothing at 4", false, 4, false},
		{"kept at 4", true, 4, true},
	}
	for _, s := range steps {
		if s.put {
			o.Put(s.gen, p, c)
		}
		if _, got := o.Get(s.gen, p); got != s.want {
			t.Errorf("%s: found %v, want %v", s.name, got, s.want)
		}
	}
	if o.Len() != 1 {
		t.Errorf("Len = %d, want 1", o.Len())
	}
}
