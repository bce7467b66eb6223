package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rights"
)

// Audience membership event types.
const (
	Joined = "audience.joined"
	Left   = "audience.left"
)

// Audience is an audience whose membership changes a destination
// receives. Its output is pseudonymous by default; identified output is
// sent only when the decision point allows it (a purpose declared
// identified_output with its signed assessment, CM-6), and then the
// events carry the subject's id as well.
type Audience struct {
	Name    string        `json:"name"`
	Request apply.Request `json:"request"`
}

// Materializer materialises an audience; apply.Audiences is one.
type Materializer interface {
	Materialize(ctx context.Context, caller policy.Caller, r apply.Request) (apply.Result, error)
}

// caller is who materialises the destinations' audiences.
var caller = policy.Caller{Role: policy.System, ID: "delivery"}

// fold applies one of the dispatcher's own records to its view of who is
// in which audience of which destination, and of which destinations
// received which subject's data. It is idempotent: a record folded when
// appended and again when the log is tailed leaves the same state.
func (d *Dispatcher) fold(r audit.Record) {
	if r.Kind != kind || (r.Action != "joined" && r.Action != "left") || r.Pseudonym == "" {
		return
	}
	dst, _ := r.Detail["destination"].(string)
	au, _ := r.Detail["audience"].(string)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.members == nil {
		d.members, d.recipients = map[string]map[portrait.Pseudonym]bool{}, map[portrait.Pseudonym]map[string]bool{}
	}
	key := dst + "\x00" + au
	if d.members[key] == nil {
		d.members[key] = map[portrait.Pseudonym]bool{}
	}
	if r.Action == "joined" {
		d.members[key][r.Pseudonym] = true
		if d.recipients[r.Pseudonym] == nil {
			d.recipients[r.Pseudonym] = map[string]bool{}
		}
		d.recipients[r.Pseudonym][dst] = true
	} else {
		delete(d.members[key], r.Pseudonym)
	}
}

// takes reports whether dst takes rights events about pseudonym: a
// destination that receives audiences takes them only about subjects it
// received; one that receives none (a deletion orchestrator, say) takes
// them about everyone (GDPR Art. 19, PIPL Art. 23).
func (d *Dispatcher) takes(dst Destination, pseudonym portrait.Pseudonym) bool {
	if len(dst.Audiences) == 0 {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recipients[pseudonym][dst.Name]
}

// refresh materialises every destination's audiences, at most once per
// AudienceEvery, and records each membership change as a "joined" or
// "left" record naming the destination and the audience; the tail of the
// log then delivers them. The records are the outbox and the account of
// who received whose data.
func (d *Dispatcher) refresh(ctx context.Context) error {
	if d.Audiences == nil || time.Since(d.refreshed) < d.AudienceEvery {
		return nil
	}
	now := map[string][]portrait.Pseudonym{}
	for _, dst := range d.Destinations {
		for _, au := range dst.Audiences {
			members, ok := now[au.Name]
			if !ok {
				res, err := d.Audiences.Materialize(ctx, caller, au.Request)
				if err != nil {
					return fmt.Errorf("delivery: audience %s: %w", au.Name, err)
				}
				members = res.Pseudonyms
				for _, id := range res.Subjects {
					members = append(members, d.Pseudonym(id))
				}
				slices.Sort(members)
				now[au.Name] = members
			}
			d.mu.Lock()
			cur := d.members[dst.Name+"\x00"+au.Name]
			var recs []audit.Record
			detail := map[string]any{"destination": dst.Name, "audience": au.Name, "purpose": au.Request.Purpose, "output": au.Request.Output}
			for _, ps := range members {
				if !cur[ps] {
					recs = append(recs, audit.Record{Kind: kind, Actor: "system:delivery", Action: "joined", Pseudonym: ps, Purpose: au.Request.Purpose, Detail: detail})
				}
			}
			for ps := range cur {
				if _, found := slices.BinarySearch(members, ps); !found {
					recs = append(recs, audit.Record{Kind: kind, Actor: "system:delivery", Action: "left", Pseudonym: ps, Purpose: au.Request.Purpose, Detail: detail})
				}
			}
			d.mu.Unlock()
			if len(recs) == 0 {
				continue
			}
			err := d.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
				for _, r := range recs {
					if _, err := d.Audit.Append(ctx, tx, r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("delivery: record membership of %s for %s: %w", au.Name, dst.Name, err)
			}
			for _, r := range recs {
				d.fold(r)
			}
		}
	}
	d.refreshed = time.Now()
	return nil
}

// membership turns a "joined" or "left" record into its event and the
// destination it is for.
func (d *Dispatcher) membership(ctx context.Context, index int64, r audit.Record) (Event, *Destination, bool) {
	if r.Kind != kind || (r.Action != "joined" && r.Action != "left") || r.Pseudonym == "" {
		return Event{}, nil, false
	}
	name, _ := r.Detail["destination"].(string)
	i := slices.IndexFunc(d.Destinations, func(x Destination) bool { return x.Name == name })
	if i < 0 {
		return Event{}, nil, false // no longer configured
	}
	ev := Event{ID: fmt.Sprintf("%s/%d", d.Audit.Origin(), index), Type: Joined, Time: r.Time, Pseudonym: r.Pseudonym, Purpose: r.Purpose, LogIndex: index}
	if r.Action == "left" {
		ev.Type = Left
	}
	ev.Audience, _ = r.Detail["audience"].(string)
	if out, _ := r.Detail["output"].(string); out == apply.Identified && d.Identify != nil {
		// The id is read at sending, never logged: the output was
		// allowed when the audience was materialised (CM-6).
		if id, err := d.Identify(ctx, r.Pseudonym); err == nil {
			ev.SubjectID = id
		}
	}
	return ev, &d.Destinations[i], true
}

// LogIndex is the store Recipients reads: the audit log, with an index
// of its records by subject that readers fill as the log grows
// (tables.DB.LogSubjectIndex, tables.Tx.IndexLogSubjects).
type LogIndex interface {
	audit.KindReader
	LogSubjectIndex(ctx context.Context, kind string, pseudonym portrait.Pseudonym) (idxs []int64, upto int64, err error)
	LogEntriesAt(ctx context.Context, idxs []int64) ([]portrait.LogEntry, error)
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
}

// logIndexer is the write of the index, in a store transaction.
type logIndexer interface {
	IndexLogSubjects(ctx context.Context, kind string, upto int64, pseudonyms []portrait.Pseudonym, idxs []int64) error
}

// Recipients lists the destinations that received pseudonym's data — the
// first "joined" record per destination and audience — for the subject's
// export (rights.Options.Delivered; PIPL Art. 23, GDPR Art. 19). It reads
// the log, each record checked against the signed tree (invariant 8),
// not a dispatcher's memory, so any node can answer.
//
// It reads only the subject's own records, through the store's index of
// delivery records by subject: first it indexes the delivery records
// appended since the index was last brought up to date (read verified),
// then it reads the subject's entries and checks each against the tree
// and its own record's kind and subject. The index is trusted to be
// complete, as the kind column is: a row deleted from it hides a
// recipient, a row added or changed is caught.
func Recipients(ctx context.Context, store LogIndex, log *audit.Log, pseudonym portrait.Pseudonym) ([]rights.DeliveredEntry, error) {
	size, err := store.LogSize(ctx)
	if err != nil {
		return nil, err
	}
	idxs, upto, err := store.LogSubjectIndex(ctx, kind, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("delivery: recipients: %w", err)
	}
	if upto < size {
		es, err := log.ReadVerifiedKinds(ctx, store, []string{kind}, upto, size)
		if err != nil {
			return nil, fmt.Errorf("delivery: recipients: %w", err)
		}
		var pss []portrait.Pseudonym
		var at []int64
		for _, e := range es {
			if e.Record.Pseudonym == "" {
				continue
			}
			pss, at = append(pss, e.Record.Pseudonym), append(at, e.Index)
			if e.Record.Pseudonym == pseudonym {
				idxs = append(idxs, e.Index)
			}
		}
		err = store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			ix, ok := tx.(logIndexer)
			if !ok {
				return errors.New("the store keeps no index of log records by subject")
			}
			return ix.IndexLogSubjects(ctx, kind, size, pss, at)
		})
		if err != nil {
			return nil, fmt.Errorf("delivery: recipients: %w", err)
		}
	}
	stored, err := store.LogEntriesAt(ctx, idxs)
	if err != nil {
		return nil, fmt.Errorf("delivery: recipients: %w", err)
	}
	es, err := log.CheckEntries(ctx, store, stored)
	if err != nil {
		return nil, fmt.Errorf("delivery: recipients: %w", err)
	}
	out := []rights.DeliveredEntry{}
	seen := map[string]bool{}
	for _, e := range es {
		r := e.Record
		if r.Kind != kind || r.Pseudonym != pseudonym {
			return nil, fmt.Errorf("delivery: recipients: the log index points %s at entry %d, a %s record of another subject", pseudonym, e.Index, r.Kind)
		}
		if r.Action != "joined" {
			continue
		}
		dst, _ := r.Detail["destination"].(string)
		au, _ := r.Detail["audience"].(string)
		if seen[dst+"\x00"+au] {
			continue
		}
		seen[dst+"\x00"+au] = true
		out = append(out, rights.DeliveredEntry{Destination: dst, Audience: au, Purpose: r.Purpose, Since: r.Time, LogIndex: e.Index})
	}
	return out, nil
}
