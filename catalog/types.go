package catalog

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/rules"
)

// Basis is the legal basis a purpose is processed under (PIPL Art. 13, GDPR Art. 6).
type Basis string

// Legal bases. Only BasisConsent depends on the consent ledger; the others
// are active as long as the purpose is declared and not suspended.
const (
	BasisConsent             Basis = "consent"
	BasisContract            Basis = "contract"
	BasisLegalObligation     Basis = "legal_obligation"
	BasisVitalInterests      Basis = "vital_interests"
	BasisPublicTask          Basis = "public_task"
	BasisLegitimateInterests Basis = "legitimate_interests"
	BasisEmployment          Basis = "employment"
)

// Bases lists every basis the catalog accepts.
var Bases = []Basis{BasisConsent, BasisContract, BasisLegalObligation, BasisVitalInterests,
	BasisPublicTask, BasisLegitimateInterests, BasisEmployment}

// Text is a short text in several languages, keyed by BCP 47 tag ("zh-CN", "en").
type Text map[string]string

// In returns the text in lang, falling back to zh-CN, then en.
func (t Text) In(lang string) string {
	if s, ok := t[lang]; ok && s != "" {
		return s
	}
	if s := t["zh-CN"]; s != "" {
		return s
	}
	return t["en"]
}

// Duration is a retention or window length written as "30d", "12h", "90m" or "1y".
type Duration time.Duration

// MaxDuration is the longest duration the catalog can hold (about 292
// years); longer ones are refused, never wrapped.
const MaxDuration = Duration(math.MaxInt64)

// ParseDuration parses the catalog's duration syntax: a positive integer
// followed by y (365 days), d, h, m or s, or anything time.ParseDuration takes.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 {
		unit := s[len(s)-1]
		if unit == 'd' || unit == 'y' {
			n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) || n <= 0 {
				return 0, fmt.Errorf("duration %q: want a positive whole number before %q, e.g. \"30d\"", s, string(unit))
			}
			per := 24 * time.Hour
			if unit == 'y' {
				per *= 365
			}
			// Checked before multiplying: 300y would overflow int64
			// nanoseconds into a negative duration that passes every cap.
			if err != nil || n > int64(time.Duration(MaxDuration)/per) {
				return 0, fmt.Errorf("duration %q: too long; the longest duration is %dy", s, int64(time.Duration(MaxDuration)/(365*24*time.Hour)))
			}
			return Duration(time.Duration(n) * per), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration %q: want a positive length such as \"365d\", \"72h\" or \"1y\"", s)
	}
	return Duration(d), nil
}

// String formats d in whole days when it is a whole number of days.
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	return td.String()
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Handler names the personal-information handler (PIPL Art. 17, RO-4).
type Handler struct {
	Name    Text   `json:"name" yaml:"name"`
	Contact string `json:"contact" yaml:"contact"`
	// Officer is the personal-information protection officer's contact (RO-4).
	Officer string `json:"officer,omitempty" yaml:"officer,omitempty"`
}

// Purpose is something personal data is used for, with its legal basis.
type Purpose struct {
	ID string `json:"id" yaml:"id"`
	// Title is the purpose's display name, a few words in zh-CN and en
	// ("个性化推荐"); pages show it instead of the id (names.go).
	Title         Text   `json:"title,omitempty" yaml:"title,omitempty"`
	Basis         Basis  `json:"basis" yaml:"basis"`
	Notice        Text   `json:"notice" yaml:"notice"`
	NoticeVersion string `json:"notice_version" yaml:"notice_version"`
	// DataUse is the fideslang data-use key, e.g. "personalize.content.profiling".
	DataUse string `json:"data_use" yaml:"data_use"`
	// Separate marks a purpose that needs its own, separate consent
	// (sensitive data, SM-2; sharing with another handler, CN-8).
	Separate bool `json:"separate_consent,omitempty" yaml:"separate_consent,omitempty"`
	// Required marks a purpose the core service needs; refusing any other
	// purpose must leave the service working (CN-5).
	Required bool `json:"required,omitempty" yaml:"required,omitempty"`
	// Recipients are the other handlers data goes to for this purpose (CN-8).
	Recipients []string `json:"recipients,omitempty" yaml:"recipients,omitempty"`
	// Identified allows audiences for this purpose to output subject ids
	// instead of pseudonyms or counts (CM-6).
	Identified bool `json:"identified_output,omitempty" yaml:"identified_output,omitempty"`
	// Assessment names the impact assessment on record (FA-1).
	Assessment string `json:"assessment,omitempty" yaml:"assessment,omitempty"`
	// TCF and USNat map a CMP's consent string onto this purpose
	// (consent_strings.go); nil when the purpose takes none.
	TCF   *TCFMapping   `json:"tcf,omitempty" yaml:"tcf,omitempty"`
	USNat *USNatMapping `json:"usnat,omitempty" yaml:"usnat,omitempty"`
}

// OptOut reports whether the purpose is advertising, sale or sharing, which a
// Global Privacy Control signal opts out of (CN-12).
func (p *Purpose) OptOut() bool {
	for _, prefix := range []string{"marketing.advertising", "third_party_sharing", "marketing"} {
		// DataUse is prefix, or starts with prefix + "." (without building it).
		if strings.HasPrefix(p.DataUse, prefix) && (len(p.DataUse) == len(prefix) || p.DataUse[len(prefix)] == '.') {
			return true
		}
	}
	return false
}

// Field types.
const (
	TypeString = "string"
	TypeNumber = "number"
	TypeBool   = "bool"
	TypeTime   = "time"
)

// Field is one kind of personal value that may be collected.
type Field struct {
	Name string `json:"name" yaml:"name"`
	// Title is the field's display name in zh-CN and en ("城市", "City");
	// pages show it instead of the key (names.go).
	Title Text `json:"title,omitempty" yaml:"title,omitempty"`
	// Type is string (default), number, bool or time.
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// Category is the fideslang data-category key, e.g. "user.contact.email".
	Category  string   `json:"category" yaml:"category"`
	Sensitive bool     `json:"sensitive,omitempty" yaml:"sensitive,omitempty"`
	Purposes  []string `json:"purposes" yaml:"purposes"`
	Retention Duration `json:"retention" yaml:"retention"`
	// Profile keeps the latest value as a subject attribute (age, city),
	// which subjects can read and correct.
	Profile bool `json:"profile,omitempty" yaml:"profile,omitempty"`
	// Age marks the field that states the subject's age in years, used for
	// the minors rules (SM-3).
	Age bool `json:"age,omitempty" yaml:"age,omitempty"`
	// Protected marks an audit-only protected attribute (FP-2): never a
	// feature or label input.
	Protected bool `json:"protected,omitempty" yaml:"protected,omitempty"`
	// Ground records the lawful ground for using a sensitive or protected
	// field as a model feature (SM-5).
	Ground string `json:"ground,omitempty" yaml:"ground,omitempty"`
	// Actionable marks a field a subject can change, so counterfactual
	// explanations may suggest it.
	Actionable bool `json:"actionable,omitempty" yaml:"actionable,omitempty"`
	// Min and Max bound a number field's value in one event (inclusive).
	// Without them a value's magnitude may be at most DefaultMaxMagnitude,
	// so that no sum of values can overflow into a non-finite label.
	Min *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max *float64 `json:"max,omitempty" yaml:"max,omitempty"`
}

// DefaultMaxMagnitude bounds a number field without its own min or max:
// |value| ≤ 10¹⁵, beyond any plausible amount, count or measure, and far
// from where float64 sums lose integers (2⁵³ ≈ 9·10¹⁵) or overflow.
const DefaultMaxMagnitude = 1e15

// Bounds returns the inclusive range a value of number field f must lie in.
func (f *Field) Bounds() (lo, hi float64) {
	lo, hi = -DefaultMaxMagnitude, DefaultMaxMagnitude
	if f.Min != nil {
		lo = *f.Min
	}
	if f.Max != nil {
		hi = *f.Max
	}
	return lo, hi
}

// EventType declares which fields an event of that type may carry.
type EventType struct {
	ID string `json:"id" yaml:"id"`
	// Title is the event type's display name in zh-CN and en ("浏览",
	// "Views"); the monitor and console say which events they read by it.
	Title  Text     `json:"title,omitempty" yaml:"title,omitempty"`
	Fields []string `json:"fields" yaml:"fields"`
}

// Label kinds.
const (
	KindRule    = "rule"
	KindSegment = "segment"
	KindScore   = "score"
	KindRFM     = "rfm"
	// KindBGNBD forecasts each subject's purchases over a horizon, and the
	// probability they are still an active customer, with the BG/NBD model
	// fitted over the population the label's purposes allow.
	KindBGNBD = "bgnbd"
)

// MaxHorizon bounds a forecast's horizon: BG/NBD is fitted on the past
// and says little about the customer base years ahead.
const MaxHorizon = Duration(3 * 365 * 24 * time.Hour)

// Model is a declared logistic or scorecard model.
type Model struct {
	Kind      string             `json:"kind" yaml:"kind"` // logistic | scorecard
	Weights   map[string]float64 `json:"weights" yaml:"weights"`
	Intercept float64            `json:"intercept" yaml:"intercept"`
	Threshold float64            `json:"threshold" yaml:"threshold"`
}

// Label is a registered derived attribute (LP-1).
type Label struct {
	ID          string   `json:"id" yaml:"id"`
	Name        Text     `json:"name" yaml:"name"`
	Description Text     `json:"description" yaml:"description"`
	Kind        string   `json:"kind" yaml:"kind"`
	Rule        string   `json:"rule,omitempty" yaml:"rule,omitempty"`
	Inputs      []string `json:"inputs" yaml:"inputs"`
	Purposes    []string `json:"purposes" yaml:"purposes"`
	Version     int      `json:"version" yaml:"version"`
	Owner       string   `json:"owner" yaml:"owner"`
	// Features, K and Seed configure a segment label (k-means).
	Features []string `json:"features,omitempty" yaml:"features,omitempty"`
	K        int      `json:"k,omitempty" yaml:"k,omitempty"`
	Seed     int64    `json:"seed,omitempty" yaml:"seed,omitempty"`
	Model    *Model   `json:"model,omitempty" yaml:"model,omitempty"`
	// Window bounds the events a rule reads, e.g. "30d".
	Window Duration `json:"window,omitempty" yaml:"window,omitempty"`
	TTL    Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	// Event and Horizon configure a bgnbd label: the purchase event type it
	// counts (purchases on one day are one transaction) and how far ahead
	// it forecasts.
	Event   string   `json:"event,omitempty" yaml:"event,omitempty"`
	Horizon Duration `json:"horizon,omitempty" yaml:"horizon,omitempty"`
	// Sensitive is inherited from any sensitive input (SM-1); set by the loader.
	Sensitive bool `json:"sensitive,omitempty" yaml:"sensitive,omitempty"`
}

// Risk tiers (RO-9).
const (
	TierProhibited = "prohibited"
	TierHigh       = "high"
	TierLimited    = "limited"
	TierMinimal    = "minimal"
)

// UseCase is a declared application of portraits to people.
type UseCase struct {
	ID string `json:"id" yaml:"id"`
	// Title is the use-case's display name in zh-CN and en; pages show
	// it instead of the id (names.go).
	Title       Text     `json:"title,omitempty" yaml:"title,omitempty"`
	Description Text     `json:"description" yaml:"description"`
	Kind        string   `json:"kind" yaml:"kind"` // recommendation | audience | decision
	Purposes    []string `json:"purposes" yaml:"purposes"`
	Labels      []string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Fields      []string `json:"fields,omitempty" yaml:"fields,omitempty"`
	Tier        string   `json:"tier" yaml:"tier"`
	// Tags name the practice, e.g. credit_scoring, recruitment, pricing,
	// social_scoring; tiers follow from them (AD-6, FP-5).
	Tags   []string `json:"tags,omitempty" yaml:"tags,omitempty"`
	Model  string   `json:"model,omitempty" yaml:"model,omitempty"` // a score label id
	Owner  string   `json:"owner,omitempty" yaml:"owner,omitempty"`
	Live   bool     `json:"live,omitempty" yaml:"live,omitempty"`
	Notice Text     `json:"notice,omitempty" yaml:"notice,omitempty"`
}

// Catalog is the whole declaration: what the company may collect and do.
type Catalog struct {
	Version string  `json:"version" yaml:"version"`
	Handler Handler `json:"handler" yaml:"handler"`
	// Jurisdictions are the legal orders the catalog declares: CN (the
	// default), EU or both; the bases and terms follow them (CN-1).
	Jurisdictions []string `json:"jurisdiction,omitempty" yaml:"jurisdiction,omitempty"`
	// Blocklist adds terms to the rule pack's lexicon (LP-1): a catalog can
	// refuse more than the pack, never less.
	Blocklist  []string    `json:"blocklist,omitempty" yaml:"blocklist,omitempty"`
	Purposes   []Purpose   `json:"purposes" yaml:"purposes"`
	Fields     []Field     `json:"fields" yaml:"fields"`
	EventTypes []EventType `json:"event_types" yaml:"event_types"`
	Labels     []Label     `json:"labels,omitempty" yaml:"labels,omitempty"`
	UseCases   []UseCase   `json:"use_cases,omitempty" yaml:"use_cases,omitempty"`

	pack       *rules.Pack
	warnings   []Problem // missing display names (names.go)
	purposes   map[string]*Purpose
	fields     map[string]*Field
	eventTypes map[string]*EventType
	labels     map[string]*Label
	useCases   map[string]*UseCase
}

// Index builds the lookup tables. Load calls it; code that builds a Catalog
// by hand must call it before use.
func (c *Catalog) Index() {
	c.purposes = make(map[string]*Purpose, len(c.Purposes))
	for i := range c.Purposes {
		c.purposes[c.Purposes[i].ID] = &c.Purposes[i]
	}
	c.fields = make(map[string]*Field, len(c.Fields))
	for i := range c.Fields {
		c.fields[c.Fields[i].Name] = &c.Fields[i]
	}
	c.eventTypes = make(map[string]*EventType, len(c.EventTypes))
	for i := range c.EventTypes {
		c.eventTypes[c.EventTypes[i].ID] = &c.EventTypes[i]
	}
	c.labels = make(map[string]*Label, len(c.Labels))
	for i := range c.Labels {
		c.labels[c.Labels[i].ID] = &c.Labels[i]
	}
	c.useCases = make(map[string]*UseCase, len(c.UseCases))
	for i := range c.UseCases {
		c.useCases[c.UseCases[i].ID] = &c.UseCases[i]
	}
}

// Purpose returns the declared purpose id, or nil.
func (c *Catalog) Purpose(id string) *Purpose { return c.purposes[id] }

// Field returns the declared field name, or nil.
func (c *Catalog) Field(name string) *Field { return c.fields[name] }

// EventType returns the declared event type id, or nil.
func (c *Catalog) EventType(id string) *EventType { return c.eventTypes[id] }

// Label returns the declared label id, or nil.
func (c *Catalog) Label(id string) *Label { return c.labels[id] }

// UseCase returns the declared use-case id, or nil.
func (c *Catalog) UseCase(id string) *UseCase { return c.useCases[id] }

// AgeField returns the field marked as the subject's age, or nil.
func (c *Catalog) AgeField() *Field {
	for i := range c.Fields {
		if c.Fields[i].Age {
			return &c.Fields[i]
		}
	}
	return nil
}

// Fields returns the fields the label reads: its inputs, segment features and
// model weights, each once, in that order.
func (l *Label) Fields() []string {
	var out []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, f := range l.Inputs {
		add(f)
	}
	for _, f := range l.Features {
		add(f)
	}
	if l.Model != nil {
		for _, f := range sortedWeights(l.Model.Weights) {
			add(f)
		}
	}
	return out
}

func sortedWeights(w map[string]float64) []string {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SensitiveFields returns the fields flagged sensitive (SM-1).
func (c *Catalog) SensitiveFields() []*Field {
	var out []*Field
	for i := range c.Fields {
		if c.Fields[i].Sensitive {
			out = append(out, &c.Fields[i])
		}
	}
	return out
}

// SensitivePurpose reports whether any sensitive field or label is declared
// for the purpose, which then needs separate consent (SM-2) and an impact
// assessment (FA-1).
func (c *Catalog) SensitivePurpose(id string) bool {
	for i := range c.Fields {
		if c.Fields[i].Sensitive && contains(c.Fields[i].Purposes, id) {
			return true
		}
	}
	for i := range c.Labels {
		if c.Labels[i].Sensitive && contains(c.Labels[i].Purposes, id) {
			return true
		}
	}
	return false
}
