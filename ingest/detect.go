package ingest

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/detect"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rules"
)

// Detection outcomes, the second label of the detections counter.
const (
	// Refused: the event was refused with code sensitive_content.
	Refused = "refused"
	// Flagged: counted only, the field's category is made for it (a
	// second mobile number or an e-mail in a location field, say).
	Flagged = "flagged"
)

func newDetections() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portrait_ingest_detections_total",
		Help: "Personal data found in values of fields declared non-sensitive, by kind and outcome (refused, flagged).",
	}, []string{"kind", "outcome"})
	for _, k := range detect.Kinds {
		c.WithLabelValues(k, Refused)
	}
	return c
}

// Detections is the counter of content detections, to be registered with
// the server's /metrics registry.
func (in *Ingester) Detections() *prometheus.CounterVec { return in.detections }

func newLexFlags() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portrait_ingest_fields_flagged_total",
		Help: "Fields held sensitive until a reviewer clears them because a value held a term of the rule pack's lexicon.",
	})
}

// LexiconFlags is the counter of fields flagged sensitive by lexicon
// hits, to be registered with /metrics.
func (in *Ingester) LexiconFlags() prometheus.Counter { return in.lexFlags }

// detect checks a string value of a field declared non-sensitive for
// personal data the declaration hides (SM-1). A resident ID or a bank card
// number (checksums passed) refuses the event anywhere; a mobile number or
// an e-mail address refuses it outside contact fields, precise coordinates
// outside location fields. A term of the pack's lexicon is counted as
// flagged and the event kept: a word such as 清真 in an item name is
// often legitimate business, and refusing it would lose data on a guess;
// instead the field is held sensitive until a reviewer clears it (lex
// collects it for flag). The reason names the field and what was found,
// never the value.
func (in *Ingester) detect(pack *rules.Pack, f *catalog.Field, v any, lex *map[string]string, memo *scanMemo) *Problem {
	s, ok := v.(string)
	if !ok || f.Sensitive || s == "" {
		return nil
	}
	found := memo.scan(pack, s)
	if len(found) == 0 {
		return nil
	}
	contact := rules.Under(f.Category, "user.contact")
	location := rules.Under(f.Category, "user.location")
	var refused []string
	for _, d := range found {
		outcome := Refused
		switch d.Kind {
		case detect.Mobile, detect.Email:
			if contact {
				continue // what the field is for
			}
			if location {
				outcome = Flagged
			}
		case detect.Coordinates:
			if location {
				continue
			}
			if contact {
				outcome = Flagged
			}
		case detect.Lexicon:
			outcome = Flagged
			if lex != nil {
				if *lex == nil {
					*lex = make(map[string]string)
				}
				(*lex)[f.Name] = d.Entry
			}
		}
		in.detections.WithLabelValues(d.Kind, outcome).Inc()
		if outcome == Refused {
			refused = append(refused, d.What())
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return &Problem{Code: "sensitive_content", Requirement: "SM-1",
		Reason: fmt.Sprintf("field %q (declared %s, not sensitive) holds %s; nothing of this event was stored. "+
			"Remove it at the source, or declare a sensitive field with its own purpose and separate consent",
			f.Name, f.Category, strings.Join(refused, ", "))}
}

// scanMemo keeps the content scans of recent values: a request repeats
// many values (categories, cities, item ids), and a scan costs as much as
// the rest of an event's validation. It is direct-mapped, a value's slot
// chosen by its hash, so a miss costs a hash and no allocation, and it
// belongs to one goroutine. The zero value is ready; a nil *scanMemo
// scans every time.
type scanMemo struct {
	seed  maphash.Seed
	slots [256]scanned
	// scanner is the memory a miss scans in, so that a miss allocates
	// only for what it finds.
	scanner detect.Scanner
}

type scanned struct {
	pack  *rules.Pack
	text  string
	found []detect.Finding
	ok    bool
}

// memoPool keeps scan memos between requests, emptied: a memo is 14 KB,
// and one per goroutine per request was check's largest allocation. It
// keeps no value of a request past it: a field value is personal data.
var memoPool = sync.Pool{New: func() any { return new(scanMemo) }}

func getMemo() *scanMemo { return memoPool.Get().(*scanMemo) }

func putMemo(m *scanMemo) {
	m.slots = [len(m.slots)]scanned{}
	m.scanner.Clear()
	memoPool.Put(m)
}

// scan returns detect.Scan(pack, text), from the memo if it holds it.
// The findings are shared: callers must not change them.
func (m *scanMemo) scan(pack *rules.Pack, text string) []detect.Finding {
	if m == nil {
		return detect.Scan(pack, text)
	}
	if m.seed == (maphash.Seed{}) {
		m.seed = maphash.MakeSeed()
	}
	s := &m.slots[maphash.String(m.seed, text)%uint64(len(m.slots))]
	if s.ok && s.pack == pack && s.text == text {
		return s.found
	}
	*s = scanned{pack: pack, text: text, found: m.scanner.Scan(pack, text), ok: true}
	return s.found
}

// flag appends, in the chunk's transaction tx, a flag record for every
// field of a stored event of b that held a lexicon term and is not held
// sensitive already: from the owner's next load on, the field is used
// only for purposes with separate consent until a reviewer clears it, as
// a proxy is (SM-1, FP-6). It returns how many it appended.
func (in *Ingester) flag(ctx context.Context, tx portrait.Tx, caller policy.Caller, now time.Time, b *batch, results []Result) (int, error) {
	if in.opt.Flags == nil {
		return 0, nil
	}
	entries := map[string]string{}
	for _, p := range b.part {
		if results[p.index].Status == Rejected {
			continue
		}
		for field, entry := range p.lexicon {
			if !in.opt.Flags.Flagged(field, "lexicon:"+entry) {
				entries[field] = entry
			}
		}
	}
	if len(entries) == 0 {
		return 0, nil
	}
	recs := make([]audit.Record, 0, len(entries))
	for _, field := range slices.Sorted(maps.Keys(entries)) {
		recs = append(recs, audit.Record{Kind: "proxy_flag", Time: now, Actor: actor(caller), Action: "flag", Codes: []string{"SM-1", "FP-6"},
			Detail: map[string]any{"feature": field, "protected": "lexicon:" + entries[field], "measure": "lexicon", "source": "ingest"}})
	}
	if _, err := in.log.Append(ctx, tx, recs...); err != nil {
		return 0, err
	}
	return len(recs), nil
}

// DetectionCounts returns this node's detections since it started,
// "kind/outcome" → count, read from the /metrics counter: the figures the
// supervision report carries are the ones /metrics shows.
func (in *Ingester) DetectionCounts() map[string]int64 {
	ch := make(chan prometheus.Metric, len(detect.Kinds)*2)
	go func() { in.detections.Collect(ch); close(ch) }()
	out := map[string]int64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		var kind, outcome string
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "kind":
				kind = l.GetValue()
			case "outcome":
				outcome = l.GetValue()
			}
		}
		if v := int64(d.GetCounter().GetValue()); v > 0 {
			out[kind+"/"+outcome] = v
		}
	}
	return out
}
