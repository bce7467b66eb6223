package keys_test

import (
	"bytes"
	"testing"

	"github.com/portrait-dev/portrait/keys"
)

// CM-5: a value sealed for one subject and place does not open in another.
func TestAdditionalData(t *testing.T) {
	ads := map[string][]byte{
		"event":        keys.EventAD("p1"),
		"event other":  keys.EventAD("p2"),
		"profile city": keys.ProfileAD("p1", "city"),
		"profile age":  keys.ProfileAD("p1", "age"),
		"label":        keys.LabelAD("p1", "city"),
		"decision":     keys.DecisionAD("p1", "city"),
		"statement":    keys.StatementAD("p1", "city"),
		"protected":    keys.ProtectedAD("p1", "city"),
		"consent":      keys.ConsentAD("p1", "city"),
	}
	master := bytes.Repeat([]byte{7}, keys.MasterSize)
	kr, err := keys.New(master)
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := kr.NewSubject("s1")
	if err != nil {
		t.Fatal(err)
	}
	for name, ad := range ads {
		sealed := c.Seal([]byte("value"), ad)
		for other, ad2 := range ads {
			_, err := c.Open(sealed, ad2)
			if (name == other) != (err == nil) {
				t.Errorf("sealed as %s, opened as %s: err = %v", name, other, err)
			}
		}
	}
}
