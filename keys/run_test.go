package keys

import (
	"errors"
	"fmt"
	"testing"

	portrait "github.com/portrait-dev/portrait"
)

// A Run opens each subject's key once and serves it again; it keeps at
// most its bound; what it unwraps it keeps to itself (the Keyring's cache
// is left as it was), and Close destroys that.
func TestRunOpensOnce(t *testing.T) {
	k := mustNew(t, 1)
	fresh := mustNew(t, 1) // the same master: no cache entries
	var subs []portrait.SubjectKey
	for i := range 3 {
		s, _, err := k.NewSubject(fmt.Sprint("s", i))
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	r := fresh.Run(2)
	var got []*Cipher
	for _, s := range subs {
		c, err := r.Open(s)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	if r.Len() != 2 {
		t.Errorf("a Run bounded at 2 keeps %d ciphers", r.Len())
	}
	for i, s := range subs {
		again, err := r.Open(s)
		if err != nil {
			t.Fatal(err)
		}
		if kept := again == got[i]; kept != (i < 2) {
			t.Errorf("subject %d: served the kept cipher %v, want %v", i, kept, i < 2)
		}
		if fresh.cache.get(s.Pseudonym, s.WrappedKey) != nil {
			t.Errorf("subject %d: the Run put its key in the Keyring's cache", i)
		}
	}
	if r.Get(subs[0].Pseudonym) != got[0] || r.Get(subs[2].Pseudonym) != nil {
		t.Error("Get does not answer what the Run keeps")
	}
	// A cached key is taken from the cache, and stays the cache's.
	shared, err := k.Open(subs[0])
	if err != nil {
		t.Fatal(err)
	}
	rk := k.Run(10)
	if c, err := rk.Open(subs[0]); err != nil || c != shared {
		t.Errorf("Run.Open of a cached key = %p, %v; want the cache's %p", c, err, shared)
	}
	rk.Close()
	if shared.Destroyed() {
		t.Error("closing a Run destroyed a cipher the cache still holds")
	}
	r.Close()
	for i, c := range got[:2] {
		if !c.Destroyed() {
			t.Errorf("subject %d: the Run's own cipher outlived Close", i)
		}
	}
	if fresh.Holds(subs[0].Pseudonym) {
		t.Error("a closed Run still holds a key")
	}
	// A wrapped key of another subject, or a forged one, is refused.
	forged := subs[1]
	forged.Pseudonym = subs[0].Pseudonym
	if _, err := fresh.Run(10).Open(forged); err == nil {
		t.Error("a Run opened a wrapped key moved to another subject")
	}
}

// Invariant 4: Forget reaches every open Run. The subject's cipher there
// is destroyed, Holds is false while the Run is still open, and the Run
// opens that subject's key no more — even from a wrapped key read before
// the erasure — while the other subjects' keys are untouched.
func TestRunForgets(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprint("cached=", cached), func(t *testing.T) {
			k := mustNew(t, 1)
			gone, _, _ := k.NewSubject("gone")
			kept, _, _ := k.NewSubject("kept")
			if !cached {
				k = mustNew(t, 1) // nothing in the cache: the Run unwraps
			}
			r1, r2 := k.Run(10), k.Run(10)
			defer r1.Close()
			defer r2.Close()
			c1, err := r1.Open(gone)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r2.Open(gone); err != nil {
				t.Fatal(err)
			}
			ck, err := r1.Open(kept)
			if err != nil {
				t.Fatal(err)
			}
			if !k.Holds(gone.Pseudonym) {
				t.Fatal("Holds is false for a key a Run keeps")
			}
			k.Forget(gone.Pseudonym)
			if !c1.Destroyed() {
				t.Error("Forget left the Run's cipher readable")
			}
			if k.Holds(gone.Pseudonym) {
				t.Error("an erased subject's key is in memory while the Run is open")
			}
			if r1.Get(gone.Pseudonym) != nil || r2.Get(gone.Pseudonym) != nil {
				t.Error("a Run still keeps the erased subject's cipher")
			}
			if c, err := r1.Open(gone); !errors.Is(err, ErrDestroyed) || c != nil {
				t.Errorf("Run.Open of a subject forgotten during the run = %v, %v; want ErrDestroyed", c, err)
			}
			if k.Holds(gone.Pseudonym) {
				t.Error("opening again brought the erased subject's key back")
			}
			if ck.Destroyed() || r1.Get(kept.Pseudonym) != ck {
				t.Error("Forget of one subject touched another's key")
			}
		})
	}
}
