package storetest

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// carriesGrant reports whether a method parameter of type t is or holds a
// policy.Grant: a grant, a page of grants, or values that carry their own.
func carriesGrant(t reflect.Type) bool {
	grant := reflect.TypeFor[policy.Grant]()
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t == grant {
		return true
	}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			if t.Field(i).Type == grant {
				return true
			}
		}
	}
	return false
}

// grantTaking lists the methods of the interface iface that take a grant.
func grantTaking(iface reflect.Type) []string {
	var out []string
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		for j := range m.Type.NumIn() {
			if carriesGrant(m.Type.In(j)) {
				out = append(out, m.Name)
				break
			}
		}
	}
	return out
}

// Invariant 2, for every method at once: each method of portrait.Store
// and portrait.Tx that takes a grant — found by reflection, so a new one
// cannot be left out — is called with a zero grant and with a grant of
// the wrong subject, and must refuse with EFORBIDDEN wrapping
// policy.ErrNoGrant, return no data and write nothing. The store is
// seeded first, so a read that slipped past its grant would have
// something to return.
func testEveryGrantRefused(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a"), subject("b")})
	})
	insert(t, s, event(t, "a", "seed", 0))
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutProfile(ctx, Grant(t, "a", policy.Collect), []portrait.ProfileValue{{Field: "age", Sealed: []byte("x"), Source: "event", Updated: base}}); err != nil {
			return err
		}
		if err := tx.PutLabels(ctx, []portrait.LabelValue{{Grant: Grant(t, "a", policy.Derive), Pseudonym: "a", Label: "fan", Version: 1, Sealed: []byte("x"), Computed: base}}); err != nil {
			return err
		}
		if err := tx.PutProtected(ctx, Grant(t, "a", policy.Collect), []portrait.ProtectedValue{{Pseudonym: "a", Attribute: "sex", Sealed: []byte("x")}}); err != nil {
			return err
		}
		if err := tx.PutDetermination(ctx, portrait.StoredDetermination{Grant: Grant(t, "a", policy.Use), ID: "seeded", Pseudonym: "a", UseCase: "u", Status: "automated", Created: base, Sealed: []byte("x")}); err != nil {
			return err
		}
		return tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: "a", Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v1", Channel: "app", At: base})
	})
	var zero policy.Grant
	other := func(a policy.Action) policy.Grant { return Grant(t, "b", a) } // a real grant, for subject b

	// Each read returns what it got as a value, to be asserted empty.
	reads := map[string]func(g policy.Grant) (any, error){
		"ConsentHistory": func(g policy.Grant) (any, error) { return s.ConsentHistory(ctx, g) },
		"Events":         func(g policy.Grant) (any, error) { return s.Events(ctx, g, time.Time{}) },
		"Profile":        func(g policy.Grant) (any, error) { return s.Profile(ctx, g) },
		"Labels":         func(g policy.Grant) (any, error) { return s.Labels(ctx, g) },
		"Determinations": func(g policy.Grant) (any, error) { return s.Determinations(ctx, g) },
		"Protected":      func(g policy.Grant) (any, error) { return s.Protected(ctx, g) },
		// A page with one good grant and one bad refuses as a whole.
		"EventsFor": func(g policy.Grant) (any, error) {
			return s.EventsFor(ctx, []policy.Grant{Grant(t, "a", policy.Read), g}, time.Time{})
		},
		// The batch read refuses into a page that held a good read: nothing
		// of it, nor of the good grant, is handed back.
		"ScanEvents": func(g policy.Grant) (any, error) {
			var page portrait.EventPage
			if err := s.ScanEvents(ctx, []policy.Grant{Grant(t, "a", policy.Read)}, time.Time{}, &page); err != nil || page.Len() == 0 {
				t.Fatalf("ScanEvents of subject a with a good grant: %d events, %v", page.Len(), err)
			}
			err := s.ScanEvents(ctx, []policy.Grant{Grant(t, "a", policy.Read), g}, time.Time{}, &page)
			var got []portrait.PageEvent
			for i := range page.Subjects() {
				got = append(got, page.Of(i)...)
			}
			return got, err
		},
		"EventsAfter": func(g policy.Grant) (any, error) {
			got, _, err := s.EventsAfter(ctx, []policy.Grant{Grant(t, "a", policy.Read), g}, nil)
			return got, err
		},
		"ProfilesFor": func(g policy.Grant) (any, error) {
			return s.ProfilesFor(ctx, []policy.Grant{Grant(t, "a", policy.Read), g})
		},
		"LabelsFor": func(g policy.Grant) (any, error) {
			return s.LabelsFor(ctx, []policy.Grant{Grant(t, "a", policy.Read), g})
		},
		"DeterminationsFor": func(g policy.Grant) (any, error) {
			return s.DeterminationsFor(ctx, []policy.Grant{Grant(t, "a", policy.Read), g})
		},
		"ProtectedFor": func(g policy.Grant) (any, error) {
			return s.ProtectedFor(ctx, []policy.Grant{Grant(t, "a", policy.Read), g})
		},
	}
	// A bad grant for subject a: zero, or a real one of subject b used
	// for a's data. Writes target subject a.
	writes := map[string]func(tx portrait.Tx, g policy.Grant) error{
		"InsertEvents": func(tx portrait.Tx, g policy.Grant) error {
			e := event(t, "a", "new", 9)
			e.Grant = g
			_, err := tx.InsertEvents(ctx, []portrait.StoredEvent{e})
			return err
		},
		"PutProfile": func(tx portrait.Tx, g policy.Grant) error {
			return tx.PutProfile(ctx, g, []portrait.ProfileValue{{Field: "city", Sealed: []byte("y"), Source: "event", Updated: base}})
		},
		"RewriteEvent":  func(tx portrait.Tx, g policy.Grant) error { return tx.RewriteEvent(ctx, g, 1, nil, time.Time{}) },
		"DeleteProfile": func(tx portrait.Tx, g policy.Grant) error { return tx.DeleteProfile(ctx, g, []string{"age"}) },
		"PutLabels": func(tx portrait.Tx, g policy.Grant) error {
			return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: g, Pseudonym: "a", Label: "fan", Version: 2, Sealed: []byte("y"), Computed: base}})
		},
		"Erase": func(tx portrait.Tx, g policy.Grant) error { return tx.Erase(ctx, g) },
		"PutDetermination": func(tx portrait.Tx, g policy.Grant) error {
			return tx.PutDetermination(ctx, portrait.StoredDetermination{Grant: g, ID: "refused", Pseudonym: "a", UseCase: "u", Status: "automated", Created: base})
		},
		"PutProtected": func(tx portrait.Tx, g policy.Grant) error {
			return tx.PutProtected(ctx, g, []portrait.ProtectedValue{{Pseudonym: "a", Attribute: "ethnicity", Sealed: []byte("y")}})
		},
	}

	// Every grant-taking method has a case: a method added to the
	// contract must be added here too.
	for _, m := range grantTaking(reflect.TypeFor[portrait.Store]()) {
		if reads[m] == nil {
			t.Errorf("Store.%s takes a grant but has no refusal case here", m)
		}
	}
	for _, m := range grantTaking(reflect.TypeFor[portrait.Tx]()) {
		if writes[m] == nil {
			t.Errorf("Tx.%s takes a grant but has no refusal case here", m)
		}
	}

	// On subject a's data: the zero grant, and real grants of subject b
	// with the action each method otherwise accepts.
	bad := map[string]policy.Grant{"zero grant": zero, "grant of another subject": other(policy.Read)}
	writeBad := map[string]func(m string) policy.Grant{
		"zero grant": func(string) policy.Grant { return zero },
		"grant of another subject": func(m string) policy.Grant {
			switch m {
			case "InsertEvents", "PutProfile", "PutProtected":
				return other(policy.Collect)
			case "RewriteEvent":
				return other(policy.Sweep)
			case "DeleteProfile":
				return other(policy.Correct)
			case "PutLabels":
				return other(policy.Derive)
			case "Erase":
				return other(policy.Erase)
			case "PutDetermination":
				return other(policy.Use)
			}
			return zero
		},
	}
	for name, g := range bad {
		for _, m := range slices.Sorted(mapsKeys(reads)) {
			// A grant of subject b is a valid grant: only the per-subject
			// reads, which read the grant's own subject, cannot be asked
			// for a's data with it; the page reads read b's data then,
			// which is allowed. So they are checked with the zero grant.
			if name != "zero grant" && (m[len(m)-3:] == "For" || m == "EventsAfter" || m == "ScanEvents") {
				continue
			}
			got, err := reads[m](g)
			what := m + " with a " + name
			if name == "zero grant" {
				wantNoGrant(t, what, err)
				wantCode(t, what, err, portrait.EFORBIDDEN)
			}
			if v := reflect.ValueOf(got); v.IsValid() && v.Len() != 0 && (name == "zero grant" || containsSubject(got, "a")) {
				t.Errorf("%s returned %v", what, got)
			}
		}
	}
	for name, pick := range writeBad {
		for _, m := range slices.Sorted(mapsKeys(writes)) {
			var inner error
			if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
				inner = writes[m](tx, pick(m))
				return nil // commit whatever the method wrote despite refusing
			}); err != nil {
				t.Fatalf("%s with a %s: update: %v", m, name, err)
			}
			what := "Tx." + m + " with a " + name
			if m == "PutProfile" || m == "RewriteEvent" || m == "DeleteProfile" || m == "Erase" {
				// These act on the grant's own subject: with b's grant
				// they may touch b, never a; what a holds is checked below.
				if name == "zero grant" {
					wantNoGrant(t, what, inner)
					wantCode(t, what, inner, portrait.EFORBIDDEN)
				}
				continue
			}
			wantNoGrant(t, what, inner)
			wantCode(t, what, inner, portrait.EFORBIDDEN)
		}
	}

	// Nothing of subject a changed.
	read := Grant(t, "a", policy.Read)
	if evs, err := s.Events(ctx, read, time.Time{}); err != nil || len(evs) != 1 {
		t.Errorf("after refused calls subject a has events %v, %v; want the 1 seeded", evs, err)
	}
	if p, err := s.Profile(ctx, Grant(t, "a", policy.Access)); err != nil || len(p) != 1 || string(p[0].Sealed) != "x" {
		t.Errorf("after refused calls profile = %v, %v; want the seeded age", p, err)
	}
	if l, err := s.Labels(ctx, read); err != nil || len(l) != 1 || l[0].Version != 1 {
		t.Errorf("after refused calls labels = %v, %v; want the seeded label", l, err)
	}
	if p, err := s.Protected(ctx, read); err != nil || len(p) != 1 {
		t.Errorf("after refused calls protected = %v, %v; want the seeded attribute", p, err)
	}
	if _, err := s.DeterminationByID(ctx, "refused"); portrait.ErrorCode(err) != portrait.ENOTFOUND {
		t.Errorf("a refused PutDetermination stored a decision: %v", err)
	}
	if subs, err := s.Subjects(ctx, []portrait.Pseudonym{"a"}); err != nil || len(subs) != 1 {
		t.Errorf("after refused erasure subjects = %v, %v; want a still stored", subs, err)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// containsSubject reports whether a read's result holds anything of
// pseudonym p: a slice of values with a Subject field, or a map by subject.
func containsSubject(got any, p string) bool {
	v := reflect.ValueOf(got)
	switch v.Kind() {
	case reflect.Map:
		return v.MapIndex(reflect.ValueOf(p)).IsValid()
	case reflect.Slice:
		for i := range v.Len() {
			if f := v.Index(i).FieldByName("Subject"); f.IsValid() && f.String() == p {
				return true
			}
		}
	}
	return false
}
