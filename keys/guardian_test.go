package keys

import (
	portrait "github.com/portrait-dev/portrait"
	"strings"
	"testing"
	"time"
)

// SM-3: a guardian token holds only for the subject and purpose it was
// issued for, by this master key, until it expires; a subject token is not
// a guardian token.
func TestGuardianToken(t *testing.T) {
	k := mustNew(t, 1)
	now := time.Now()
	p := k.Pseudonym("kid")
	tok, exp := k.IssueGuardianToken(p, "personalization", time.Hour)
	if err := k.CheckGuardianToken(tok, p, "personalization", now); err != nil {
		t.Fatalf("genuine token: %v", err)
	}
	if exp.Before(now) || exp.After(now.Add(time.Hour+time.Second)) {
		t.Errorf("expiry %v", exp)
	}
	other, _ := mustNew(t, 2).IssueGuardianToken(p, "personalization", time.Hour)
	for name, c := range map[string]struct{ tok, subject, purpose string }{
		"other purpose":   {tok, string(p), "marketing"},
		"other subject":   {tok, string(k.Pseudonym("sibling")), "personalization"},
		"other master":    {other, string(p), "personalization"},
		"altered":         {strings.Replace(tok, "pg1.", "pg1.A", 1), string(p), "personalization"},
		"subject token":   {k.IssueToken(p, time.Hour), string(p), "personalization"},
		"a boolean":       {"true", string(p), "personalization"},
		"empty":           {"", string(p), "personalization"},
		"no signature":    {strings.Split(tok, ".")[0] + "." + strings.Split(tok, ".")[1], string(p), "personalization"},
		"truncated token": {tok[:len(tok)-3], string(p), "personalization"},
	} {
		if err := k.CheckGuardianToken(c.tok, portrait.Pseudonym(c.subject), c.purpose, now); err != ErrGuardianToken {
			t.Errorf("%s: err = %v, want ErrGuardianToken", name, err)
		}
	}
	if err := k.CheckGuardianToken(tok, p, "personalization", now.Add(2*time.Hour)); err != ErrGuardianToken {
		t.Errorf("expired: %v", err)
	}
}
