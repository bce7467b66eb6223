package rules

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func newKey(t *testing.T, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// The embedded default pack verifies with the embedded key and is whole.
func TestDefault(t *testing.T) {
	p := Default()
	if p.ID != "portrait-default" || p.Version < 1 || len(p.Lexicon) == 0 || p.Minors.Age != 14 {
		t.Fatalf("default pack incomplete: %s", p)
	}
	if got := p.Signers(); len(got) != 1 || got[0] != "portrait-rules-default" {
		t.Errorf("signers = %v", got)
	}
	if len(p.Digest()) != 64 {
		t.Errorf("digest %q", p.Digest())
	}
	if f := p.Alerts.Fairness; f.PValue != 0.01 || f.ImpactRatio != 0.8 || f.ConsecutiveRuns != 3 {
		t.Errorf("alerts = %+v", f)
	}
}

// Nothing unverified is trusted: an edited default pack, a pack signed by a
// key that is not trusted (the company's own), and an unsigned pack are all
// refused; a pack signed by the regulator's key verifies once that key is
// trusted (SG-6: the company cannot edit the rules it is judged by).
func TestOpenRefusesUntrusted(t *testing.T) {
	trusted, err := Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(defaultPack, []byte(`"max_days": 1095`), []byte(`"max_days": 36500`), 1)
	if bytes.Equal(edited, defaultPack) {
		t.Fatal("edit did not apply")
	}
	if _, err := Open(edited, trusted); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Errorf("edited default pack: err = %v, want altered", err)
	}
	text := defaultPack[:bytes.LastIndex(defaultPack, []byte("\n\n"))+1]
	company, _ := newKey(t, "company")
	signed, err := Sign(text, company)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(signed, trusted); err == nil || !strings.Contains(err.Error(), "trusted key") {
		t.Errorf("company-signed pack: err = %v, want not trusted", err)
	}
	if _, err := Open(text, trusted); err == nil {
		t.Error("unsigned pack accepted")
	}
	regulator, rkey := newKey(t, "regulator.example")
	signed, err = Sign(signed, regulator) // old signature dropped
	if err != nil {
		t.Fatal(err)
	}
	withReg, err := Verifiers(rkey)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(signed, withReg)
	if err != nil {
		t.Fatalf("regulator-signed pack: %v", err)
	}
	if got := p.Signers(); len(got) != 1 || got[0] != "regulator.example" {
		t.Errorf("signers = %v, want only the regulator (the old signature dropped)", got)
	}
	if _, err := Verifiers("not a key"); err == nil {
		t.Error("bad verifier key accepted")
	}
}

// A pack that does not say what it means is not signed.
func TestSignRefusesMalformed(t *testing.T) {
	s, _ := newKey(t, "k")
	text := string(defaultPack[:bytes.LastIndex(defaultPack, []byte("\n\n"))+1])
	for name, edit := range map[string][2]string{
		"unknown key":      {`"format"`, `"formatt"`},
		"dangling lexicon": {`"lexicon": "LEX-CREDIT"`, `"lexicon": "LEX-NOPE"`},
		"bad tier":         {`"tier": "high"`, `"tier": "severe"`},
		"bad format":       {Format, "portrait-rulepack/9"},
		"duplicate id":     {`"LEX-GAMBLING"`, `"LEX-OBSCENITY"`},
		"bad alerts":       {`"p_value": 0.01`, `"p_value": 2`},
		"not json":         {`{`, `[`},
		"minors age":       {`"age": 14`, `"age": 12`}, // SM-5: the child-consent age is 13 to 16
	} {
		bad := strings.Replace(text, edit[0], edit[1], 1)
		if bad == text {
			t.Errorf("%s: edit did not apply", name)
			continue
		}
		if _, err := Sign([]byte(bad), s); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"少数民 族":          "少数民族",
		"宗.教":            "宗教",
		"同性戀":            "同性恋",
		"農村戶口":           "农村户口",
		"ＲＥＬＩＧＩＯＮ":       "religion",
		"zōng jiào":      "zongjiao",
		"zong1 jiao4":    "zongjiao",
		"Tóng-xìng_liàn": "tongxinglian",
		"14岁以下":          "14岁以下",
		"信\u200b佛":       "信佛",
		"清真·飲食":          "清真饮食",
		"Ｒｅ·ｌｉ－ｇｉｏｎ　ｆａｎｓ": "religionfans",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// Spelling does not dodge the lexicon; ordinary words do not trip it.
func TestMatch(t *testing.T) {
	p := Default()
	for text, want := range map[string]string{
		"低学历人群":                "LEX-EDUCATION-LEVEL",
		"农村户口用户":               "LEX-HUKOU",
		"清真饮食人群":               "LEX-RELIGION",
		"信佛人群":                 "LEX-RELIGION",
		"同性戀":                  "LEX-SEXUAL-ORIENTATION",
		"少数民 族":                "LEX-ETHNICITY",
		"宗.教爱好者":               "LEX-RELIGION",
		"ＲＥＬＩＧＩＯＮ fans":        "LEX-RELIGION",
		"re.li.gion":           "LEX-RELIGION",
		"zong jiao xin tu":     "LEX-RELIGION",
		"tóng xìng liàn":       "LEX-SEXUAL-ORIENTATION",
		"Gay-friendly":         "LEX-SEXUAL-ORIENTATION",
		"Gaylord hotels":       "",
		"archive readers":      "",
		"民族风服饰":                "",
		"ethnic wear":          "",
		"Casinos":              "LEX-GAMBLING",
		"potential   offender": "LEX-CRIMINAL-RISK",
		"面向14岁以下玩家":            "LEX-MINORS",
		"对高消费老用户上浮报价":          "LEX-PRICING",
		"运动爱好者":                "",
		"Sports fan":           "",
	} {
		hits := p.Match(text)
		got := ""
		if len(hits) > 0 {
			got = hits[0].Entry.ID
		}
		if got != want {
			t.Errorf("Match(%q) = %q (%v), want %q", text, got, hits, want)
		}
	}
	if h := p.Match("halal 乌鲁木齐"); !Has(h, "LEX-HALAL") || !Has(h, "LEX-REGION") {
		t.Errorf("halal + region: %v", h)
	}
}

func TestRetentionCap(t *testing.T) {
	p := Default()
	for cat, want := range map[string]string{
		"user.behavior.browsing_history": "RET-BEHAVIOR",
		"user.location.precise":          "RET-PRECISE-LOCATION",
		"user.location.imprecise":        "RET-LOCATION",
		"user.contact.email":             "RET-DEFAULT",
	} {
		if c, ok := p.RetentionCap(cat); !ok || c.ID != want {
			t.Errorf("RetentionCap(%s) = %v, want %s", cat, c, want)
		}
	}
}

// Every rule id the default pack defines is explained.
func TestExplain(t *testing.T) {
	p := Default()
	ids := []string{p.Minors.TargetRule, p.Minors.AgeRule}
	for _, e := range p.Lexicon {
		ids = append(ids, e.ID)
	}
	for _, in := range p.Inferences {
		ids = append(ids, in.ID)
	}
	for _, c := range p.Retention {
		ids = append(ids, c.ID)
	}
	for _, f := range append(append(p.Floors.DataUse, p.Floors.Kind...), append(p.Floors.Tags, p.Floors.Terms...)...) {
		ids = append(ids, f.ID)
	}
	for _, x := range p.Decisions {
		ids = append(ids, x.ID)
	}
	for _, x := range p.Prohibited {
		ids = append(ids, x.ID)
	}
	for _, x := range p.Assess {
		ids = append(ids, x.ID)
	}
	for _, x := range p.Juris {
		ids = append(ids, x.ID)
	}
	for _, id := range ids {
		if p.Explain(id) == "" {
			t.Errorf("rule %s is not explained", id)
		}
	}
	if p.Explain("NO-SUCH") != "" {
		t.Error("unknown rule explained")
	}
}

// Matching any text never panics and normalisation is idempotent.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"少数民 族", "ＲＥＬＩＧＩＯＮ", "zōng1 jiào", "\xff\xfe", "re.li.gion", ""} {
		f.Add(s)
	}
	p := Default()
	f.Fuzz(func(t *testing.T, s string) {
		p.Match(s)
		n := Normalize(s)
		if Normalize(n) != n {
			t.Errorf("Normalize not idempotent: %q → %q → %q", s, n, Normalize(n))
		}
	})
}

// BenchmarkMatch matches one label-sized text against the default pack.
func BenchmarkMatch(b *testing.B) {
	p := Default()
	for range b.N {
		p.Match("近30天浏览運動類商品至少5次 Viewed sports items at least 5 times in the last 30 days")
	}
}

// Under is the fideslang key test: the key itself or a key below it, never
// a key that merely starts with the same letters.
func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		key, prefix string
		want        bool
	}{
		{"user.contact", "user.contact", true},
		{"user.contact.email", "user.contact", true},
		{"user.contacts", "user.contact", false},
		{"user", "user.contact", false},
		{"user.location.imprecise", "user.location", true},
		{"", "user", false},
		{"user", "", false},
		{"", "", true},
	} {
		if got := Under(tc.key, tc.prefix); got != tc.want {
			t.Errorf("Under(%q, %q) = %v, want %v", tc.key, tc.prefix, got, tc.want)
		}
	}
}
