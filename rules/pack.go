package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Format is the value of a pack's "format" key this package reads.
const Format = "portrait-rulepack/1"

// Entry actions.
const (
	// Refuse: a declaration whose names, descriptions, ids or rule literals
	// contain the term is refused.
	Refuse = "refuse"
	// Signal: the term alone refuses nothing; inferences, tier floors,
	// decision rules and minors rules combine signals.
	Signal = "signal"
)

// Tiers in rising order (RO-9).
var Tiers = []string{"minimal", "limited", "high", "prohibited"}

// TierRank orders tiers; an unknown tier ranks -1.
func TierRank(tier string) int { return slices.Index(Tiers, tier) }

// Pack is a verified rule pack: the standards a catalog is checked against.
// A *Pack only comes from Open (or Default), so it has always been verified
// against a trusted key; its fields must not be changed.
type Pack struct {
	Format  string `json:"format"`
	ID      string `json:"id"`
	Version int    `json:"version"`
	Issued  string `json:"issued"`
	Issuer  string `json:"issuer"`
	// Lexicon holds the words of protected characteristics, sensitive
	// inferences and practices, in every spelling the pack knows.
	Lexicon []Entry `json:"lexicon"`
	// Allow lists phrases removed before matching, to avoid false positives
	// on ordinary terms (民族风 is a clothing style).
	Allow      []string          `json:"allow,omitempty"`
	Inferences []Inference       `json:"inferences,omitempty"`
	Prohibited []Practice        `json:"prohibited,omitempty"`
	Floors     Floors            `json:"tier_floors"`
	Decisions  []EligibilityRule `json:"decisions,omitempty"`
	Retention  []Cap             `json:"retention"`
	Minors     Minors            `json:"minors"`
	Assess     []Assessment      `json:"assessments,omitempty"`
	Juris      []Jurisdiction    `json:"jurisdictions"`
	Alerts     Alerts            `json:"alerts"`

	signers []string
	digest  string
	entries map[string]*Entry
	terms   []term
	allow   []string // folded and compact forms
	// The automata finding the terms (match.go): anywhere over compact
	// text (Chinese, pinyin), words over whole words (English); their
	// term i is terms[anywhereTerm[i]] and terms[wordTerm[i]].
	anywhere, words        *automaton
	anywhereTerm, wordTerm []int32
}

// Entry is one lexicon entry: a thing that may not be named (or is a
// signal), in simplified and traditional Chinese, English and pinyin.
type Entry struct {
	ID          string `json:"id"`
	Category    string `json:"category"`
	Action      string `json:"action"`
	Requirement string `json:"requirement,omitempty"`
	Means       string `json:"means"`
	Fix         string `json:"fix,omitempty"`
	// DataCategory, when set, is the fideslang category that a field named
	// with these words must be declared under (health data declared as
	// browsing, SM-1).
	DataCategory string   `json:"data_category,omitempty"`
	ZH           []string `json:"zh,omitempty"`
	ZHHant       []string `json:"zh_hant,omitempty"`
	EN           []string `json:"en,omitempty"`
	Pinyin       []string `json:"pinyin,omitempty"`
}

// Inference is a sensitive inference caught by what a label reads and
// matches: every group of AllOf must hit (any lexicon id of the group), and
// if Reads is set the label must read a field under that fideslang category.
type Inference struct {
	ID          string     `json:"id"`
	Infers      string     `json:"infers"`
	Requirement string     `json:"requirement"`
	AllOf       [][]string `json:"all_of"`
	Reads       string     `json:"reads,omitempty"`
	Fix         string     `json:"fix"`
}

// Practice is a prohibited practice, refused when a use-case is tagged with it.
type Practice struct {
	ID          string `json:"id"`
	Tag         string `json:"tag"`
	Clause      string `json:"clause"`
	Requirement string `json:"requirement"`
}

// Floors are the minimum tiers of use-cases.
type Floors struct {
	DataUse []Floor `json:"data_use"`
	Kind    []Floor `json:"kind"`
	Tags    []Floor `json:"tags"`
	// Terms floors apply when a use-case's description or id hits Lexicon;
	// Tag, when set, must then also be among the use-case's tags, so that
	// the checks that follow a tag (FP-1 for pricing) cannot be dodged by
	// leaving the tag off.
	Terms []Floor `json:"terms"`
}

// Floor is one minimum tier; exactly one of DataUse (a fideslang data-use
// key or prefix), Kind, Tag or Lexicon says when it applies.
type Floor struct {
	ID          string `json:"id"`
	DataUse     string `json:"data_use,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Tag         string `json:"tag,omitempty"`
	Lexicon     string `json:"lexicon,omitempty"`
	Tier        string `json:"tier"`
	Requirement string `json:"requirement"`
}

// EligibilityRule says that a use-case whose description, id or purpose notice hits
// Lexicon decides eligibility, price or terms and must be kind decision,
// with explanation and appeal (the 大数据黑名单 effect).
type EligibilityRule struct {
	ID          string   `json:"id"`
	Lexicon     []string `json:"lexicon"`
	Requirement string   `json:"requirement"`
}

// Cap is the longest retention for fields under Category (a fideslang key
// or prefix; "user" covers every field). The most specific cap applies.
type Cap struct {
	ID          string `json:"id"`
	Category    string `json:"category"`
	MaxDays     int    `json:"max_days"`
	Requirement string `json:"requirement"`
}

// Minors are the rules for subjects under Age.
type Minors struct {
	Age int `json:"age"`
	// Terms and Marketing are lexicon ids: a label or use-case naming minors
	// (Terms) for marketing (a MarketingUses purpose, or Marketing words)
	// is refused under TargetRule.
	Terms         string   `json:"terms"`
	Marketing     string   `json:"marketing"`
	MarketingUses []string `json:"marketing_data_uses"`
	TargetRule    string   `json:"target_rule"`
	// AgeRule refuses reading the age field for a marketing purpose.
	AgeRule     string `json:"age_rule"`
	Requirement string `json:"requirement"`
}

// Assessment names what needs a signed impact assessment on record, not a
// flag: When is "identified_output" or "combined_purposes".
type Assessment struct {
	ID          string `json:"id"`
	When        string `json:"when"`
	Requirement string `json:"requirement"`
}

// Jurisdiction is a legal order a catalog may declare: its code (CN, EU),
// the rights vocabulary it maps to and the legal bases it knows.
type Jurisdiction struct {
	Code        string   `json:"code"`
	Law         string   `json:"law"`
	Rights      string   `json:"rights"`
	Bases       []string `json:"bases"`
	ID          string   `json:"rule"`
	Requirement string   `json:"requirement"`
}

// Alerts are the thresholds at which monitors halt a use-case (read by a
// later round: fairness halts).
type Alerts struct {
	Fairness FairnessAlert `json:"fairness"`
}

// FairnessAlert: an alert is significant when its p-value is below PValue
// and its impact ratio below ImpactRatio; ConsecutiveRuns significant runs
// halt a high-tier decision use-case pending review.
type FairnessAlert struct {
	PValue          float64 `json:"p_value"`
	ImpactRatio     float64 `json:"impact_ratio"`
	ConsecutiveRuns int     `json:"consecutive_runs"`
}

// Signers returns the names of the trusted keys that signed the pack.
func (p *Pack) Signers() []string { return slices.Clone(p.signers) }

// Digest is the SHA-256 of the signed pack as read, hex: what a log records
// as the pack in force.
func (p *Pack) Digest() string { return p.digest }

// Entry returns the lexicon entry id, or nil.
func (p *Pack) Entry(id string) *Entry { return p.entries[id] }

// String names the pack: "portrait-default v1".
func (p *Pack) String() string { return fmt.Sprintf("%s v%d", p.ID, p.Version) }

// Open verifies a signed pack against the trusted verifiers and returns it.
// Nothing in an unverified pack is read: a pack signed by no trusted key,
// or altered after signing, is an error.
func Open(msg []byte, trusted note.Verifiers) (*Pack, error) {
	n, err := note.Open(msg, trusted)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return nil, fmt.Errorf("rule pack: not signed by a trusted key (want a pack signed by the regulator in force or the default pack key)")
		}
		var invalid *note.InvalidSignatureError
		if errors.As(err, &invalid) {
			return nil, fmt.Errorf("rule pack: signature does not verify: the pack was altered after signing")
		}
		return nil, fmt.Errorf("rule pack: %w", err)
	}
	p, err := parse([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	for _, s := range n.Sigs {
		p.signers = append(p.signers, s.Name)
	}
	sum := sha256.Sum256(msg)
	p.digest = hex.EncodeToString(sum[:])
	return p, nil
}

// Sign checks that text is a well-formed pack and signs it. Text may be a
// signed pack already; its old signatures are dropped.
func Sign(text []byte, signers ...note.Signer) ([]byte, error) {
	if i := bytes.LastIndex(text, []byte("\n\n")); i >= 0 && !json.Valid(text) {
		text = text[:i+1]
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		text = append(text, '\n')
	}
	if _, err := parse(text); err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(text)}, signers...)
}

var idRE = regexp.MustCompile(`^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$`)

// parse decodes and checks a pack's text: unknown keys, missing ids,
// references to lexicon entries that do not exist and bad tiers are errors,
// so a pack cannot quietly mean less than it says.
func parse(text []byte) (*Pack, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	p := &Pack{}
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("rule pack: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("rule pack: text after the JSON object")
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if p.Format != Format {
		bad("format %q: want %q", p.Format, Format)
	}
	if p.ID == "" || p.Version < 1 || p.Issuer == "" {
		bad("id, version (1 or more) and issuer are required")
	}
	ids := map[string]bool{}
	rule := func(id, what string) {
		switch {
		case !idRE.MatchString(id):
			bad("%s: rule id %q: want upper-case words joined by -, e.g. LEX-RELIGION", what, id)
		case ids[id]:
			bad("%s: rule id %q used twice", what, id)
		}
		ids[id] = true
	}
	p.entries = map[string]*Entry{}
	for i := range p.Lexicon {
		e := &p.Lexicon[i]
		rule(e.ID, "lexicon entry")
		p.entries[e.ID] = e
		if e.Action != Refuse && e.Action != Signal {
			bad("lexicon %s: action %q: want refuse or signal", e.ID, e.Action)
		}
		if e.Action == Refuse && e.Requirement == "" {
			bad("lexicon %s: a refusing entry needs a requirement", e.ID)
		}
		if len(e.ZH)+len(e.EN)+len(e.Pinyin)+len(e.ZHHant) == 0 || e.Means == "" {
			bad("lexicon %s: needs terms and means", e.ID)
		}
	}
	lex := func(id, what string) {
		if p.entries[id] == nil {
			bad("%s: lexicon entry %q is not declared", what, id)
		}
	}
	tier := func(t, what string) {
		if TierRank(t) < 0 {
			bad("%s: tier %q: want one of %s", what, t, strings.Join(Tiers, ", "))
		}
	}
	for _, in := range p.Inferences {
		rule(in.ID, "inference")
		if len(in.AllOf) == 0 || in.Requirement == "" {
			bad("inference %s: needs all_of and a requirement", in.ID)
		}
		for _, g := range in.AllOf {
			for _, id := range g {
				lex(id, "inference "+in.ID)
			}
		}
	}
	for _, pr := range p.Prohibited {
		rule(pr.ID, "prohibited practice")
		if pr.Tag == "" || pr.Clause == "" {
			bad("prohibited %s: needs tag and clause", pr.ID)
		}
	}
	for _, group := range [][]Floor{p.Floors.DataUse, p.Floors.Kind, p.Floors.Tags, p.Floors.Terms} {
		for _, f := range group {
			rule(f.ID, "tier floor")
			tier(f.Tier, "tier floor "+f.ID)
			if f.Lexicon != "" {
				lex(f.Lexicon, "tier floor "+f.ID)
			}
		}
	}
	for _, d := range p.Decisions {
		rule(d.ID, "decision rule")
		for _, id := range d.Lexicon {
			lex(id, "decision rule "+d.ID)
		}
	}
	for _, c := range p.Retention {
		rule(c.ID, "retention cap")
		if c.MaxDays < 1 || c.Category == "" {
			bad("retention cap %s: needs category and max_days of 1 or more", c.ID)
		}
	}
	if m := p.Minors; m.Age < 13 || m.Age > 16 {
		// GDPR Art. 8 lets states set 13 to 16; PIPL Art. 31 says 14.
		bad("minors.age %d: want 13 to 16", m.Age)
	} else {
		rule(m.TargetRule, "minors target_rule")
		rule(m.AgeRule, "minors age_rule")
		lex(m.Terms, "minors terms")
		lex(m.Marketing, "minors marketing")
	}
	for _, a := range p.Assess {
		rule(a.ID, "assessment rule")
		if a.When != "identified_output" && a.When != "combined_purposes" {
			bad("assessment rule %s: when %q: want identified_output or combined_purposes", a.ID, a.When)
		}
	}
	for _, j := range p.Juris {
		rule(j.ID, "jurisdiction "+j.Code)
		if j.Code == "" || len(j.Bases) == 0 {
			bad("jurisdiction %q: needs code and bases", j.Code)
		}
	}
	if f := p.Alerts.Fairness; f.PValue <= 0 || f.PValue >= 1 || f.ImpactRatio <= 0 || f.ImpactRatio > 1 || f.ConsecutiveRuns < 1 {
		bad("alerts.fairness: want 0 < p_value < 1, 0 < impact_ratio <= 1, consecutive_runs >= 1")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("rule pack %s v%d: %s", p.ID, p.Version, strings.Join(errs, "; "))
	}
	p.compile()
	return p, nil
}

// Jurisdiction returns the declared jurisdiction code, or nil.
func (p *Pack) Jurisdiction(code string) *Jurisdiction {
	for i := range p.Juris {
		if p.Juris[i].Code == code {
			return &p.Juris[i]
		}
	}
	return nil
}

// RetentionCap returns the most specific cap for a fideslang category.
func (p *Pack) RetentionCap(category string) (Cap, bool) {
	var best Cap
	found := false
	for _, c := range p.Retention {
		if under(category, c.Category) && (!found || len(c.Category) > len(best.Category)) {
			best, found = c, true
		}
	}
	return best, found
}

// under reports whether key is prefix or a key below it.
func under(key, prefix string) bool {
	// key == prefix, or key starts with prefix + "." (without building it).
	return strings.HasPrefix(key, prefix) && (len(key) == len(prefix) || key[len(prefix)] == '.')
}

// Under is the fideslang key test the pack's prefixes use.
func Under(key, prefix string) bool { return under(key, prefix) }

// Explain says what rule id of the pack stands for, in one line, or "" if
// the pack has no such rule.
func (p *Pack) Explain(id string) string {
	if e := p.entries[id]; e != nil {
		return fmt.Sprintf("lexicon %s (%s): %s", e.ID, e.Action, e.Means)
	}
	for _, in := range p.Inferences {
		if in.ID == id {
			return fmt.Sprintf("inference %s: infers %s; %s", in.ID, in.Infers, in.Fix)
		}
	}
	for _, pr := range p.Prohibited {
		if pr.ID == id {
			return fmt.Sprintf("prohibited practice %s (tag %s): %s", pr.ID, pr.Tag, pr.Clause)
		}
	}
	fl := p.Floors
	for _, group := range [][]Floor{fl.DataUse, fl.Kind, fl.Tags, fl.Terms} {
		for _, f := range group {
			if f.ID != id {
				continue
			}
			when := ""
			switch {
			case f.DataUse != "":
				when = "data use " + f.DataUse
			case f.Kind != "":
				when = "kind " + f.Kind
			case f.Lexicon != "":
				when = "words of " + f.Lexicon
				if f.Tag != "" {
					when += ", which also require tag " + f.Tag
				}
			default:
				when = "tag " + f.Tag
			}
			return fmt.Sprintf("tier floor %s: %s needs tier %s or above", f.ID, when, f.Tier)
		}
	}
	for _, d := range p.Decisions {
		if d.ID == id {
			return fmt.Sprintf("decision rule %s: a use-case described with %s decides and must be kind decision", d.ID, strings.Join(d.Lexicon, ", "))
		}
	}
	for _, c := range p.Retention {
		if c.ID == id {
			return fmt.Sprintf("retention cap %s: fields under %s are kept at most %d days", c.ID, c.Category, c.MaxDays)
		}
	}
	if m := p.Minors; id == m.TargetRule {
		return fmt.Sprintf("minors rule %s: no label or use-case may target under-%ds for marketing", id, m.Age)
	} else if id == m.AgeRule {
		return fmt.Sprintf("minors rule %s: the age field may not be read for marketing", id)
	}
	for _, a := range p.Assess {
		if a.ID == id {
			return fmt.Sprintf("assessment rule %s: %s needs a signed impact assessment on record", a.ID, strings.ReplaceAll(a.When, "_", " "))
		}
	}
	for _, j := range p.Juris {
		if j.ID == id {
			return fmt.Sprintf("jurisdiction %s (%s): legal bases %s", j.Code, j.Law, strings.Join(j.Bases, ", "))
		}
	}
	return ""
}
