package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

// Event types.
const (
	Erasure     = "subject.erasure"
	Withdrawal  = "subject.withdrawal"
	Objection   = "subject.objection"
	Restriction = "subject.restriction"
)

// Event is what a destination receives, as the JSON body of a webhook or
// a NATS message.
type Event struct {
	ID        string             `json:"id"`   // log origin and index: stable across retries
	Type      string             `json:"type"` // one of the event types
	Time      time.Time          `json:"time"`
	Pseudonym portrait.Pseudonym `json:"subject"`
	Purpose   string             `json:"purpose,omitempty"`
	LogIndex  int64              `json:"log_index"` // the audit-log entry, for proof
	// Audience names the audience of a joined or left event.
	Audience string `json:"audience,omitempty"`
	// SubjectID is the subject's id, only in the membership events of an
	// audience with identified output (CM-6).
	SubjectID string `json:"subject_id,omitempty"`
}

// Sender delivers one event body; Webhook and stream.Publisher are Senders.
type Sender interface {
	Send(ctx context.Context, id string, body []byte) error
}

// Destination is a configured recipient of events.
type Destination struct {
	Name   string
	Sender Sender
	// Types lists the event types it takes; none means all.
	Types []string
	// Audiences are the audiences whose membership changes it receives.
	// A destination with audiences takes rights events only about the
	// subjects it received; one without takes them about everyone.
	Audiences []Audience
}

// DeadLetter is an event a destination did not take after every attempt.
type DeadLetter struct {
	Destination string    `json:"destination"`
	Event       Event     `json:"event"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error"`
	At          time.Time `json:"at"`
}

// Dispatcher tails the audit log and delivers events to destinations. Its
// own state is kept in the same log, as records of kind "delivery": the
// cursor after each pass that delivered something, every dead letter and
// every replay. Load reads them back, so a restarted node resumes where the
// last pass ended and the dead-letter list survives restarts.
type Dispatcher struct {
	Store        portrait.Store
	Audit        *audit.Log
	Destinations []Destination
	Attempts     int                             // per event and destination (5)
	Backoff      func(attempt int) time.Duration // before retry attempt (1s, 2s, 4s, …)
	Logger       *slog.Logger
	// Audiences materialises the destinations' audiences, every
	// AudienceEvery (each materialisation is itself logged); Pseudonym
	// maps the ids of identified output to pseudonyms, and Identify reads
	// a subject's id when an identified audience's event is sent.
	Audiences     Materializer
	AudienceEvery time.Duration
	Pseudonym     func(id string) portrait.Pseudonym
	Identify      func(ctx context.Context, pseudonym portrait.Pseudonym) (string, error)

	mu         sync.Mutex
	cursor     int64
	dead       []DeadLetter
	refreshed  time.Time
	members    map[string]map[portrait.Pseudonym]bool // destination, audience → pseudonyms in it
	recipients map[portrait.Pseudonym]map[string]bool // pseudonym → destinations that received its data
}

// Load reads the dispatcher's state back from its "delivery" records.
func (d *Dispatcher) Load(ctx context.Context) error {
	size, err := d.Store.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("delivery: log size: %w", err)
	}
	// Checked against the signed tree: where delivery resumes and which
	// letters are dead rest on these records (invariant 8).
	entries, err := d.Audit.ReadVerifiedKinds(ctx, d.Store, []string{kind}, 0, size)
	if err != nil {
		return fmt.Errorf("delivery: read own records: %w", err)
	}
	var cursor int64
	var dead []DeadLetter
	for _, en := range entries {
		var r struct {
			Action string
			Time   time.Time
			Detail struct {
				To          int64  `json:"to"`
				Destination string `json:"destination"`
				Event       Event  `json:"event"`
				Attempts    int    `json:"attempts"`
			}
		}
		r.Action, r.Time = en.Record.Action, en.Record.Time
		raw, err := json.Marshal(en.Record.Detail)
		if err == nil {
			err = json.Unmarshal(raw, &r.Detail)
		}
		if err != nil {
			return fmt.Errorf("delivery: log entry %d: %w", en.Index, err)
		}
		same := func(l DeadLetter) bool {
			return l.Destination == r.Detail.Destination && l.Event.ID == r.Detail.Event.ID
		}
		d.fold(en.Record)
		switch r.Action {
		case "cursor":
			cursor = max(cursor, r.Detail.To)
		case "dead":
			dead = append(dead, DeadLetter{Destination: r.Detail.Destination, Event: r.Detail.Event, Attempts: r.Detail.Attempts, At: r.Time})
		case "replayed":
			dead = slices.DeleteFunc(dead, same)
		}
	}
	d.mu.Lock()
	d.cursor, d.dead = cursor, dead
	d.mu.Unlock()
	return nil
}

// kind is the audit-record kind of the dispatcher's own records.
const kind = "delivery"

// note appends one of the dispatcher's own records; they hold pseudonyms,
// event ids and destination names, nothing personal.
func (d *Dispatcher) note(ctx context.Context, action string, subject portrait.Pseudonym, detail map[string]any) error {
	return d.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		_, err := d.Audit.Append(ctx, tx, audit.Record{Kind: kind, Actor: "system:delivery", Action: action, Pseudonym: subject, Detail: detail})
		return err
	})
}

var kinds = []string{"consent", "erasure", "flags", kind}

// event turns an audit record into an event, or reports that the record
// is not one destinations take.
func event(origin string, index int64, r audit.Record) (Event, bool) {
	e := Event{ID: fmt.Sprintf("%s/%d", origin, index), Time: r.Time, Pseudonym: r.Pseudonym, Purpose: r.Purpose, LogIndex: index}
	switch {
	case r.Kind == "erasure":
		e.Type = Erasure
	case r.Kind == "consent" && r.Action == "withdrawn":
		e.Type = Withdrawal
	case r.Kind == "flags" && r.Action == "objection":
		e.Type = Objection
	case r.Kind == "flags" && r.Action == "restriction":
		e.Type = Restriction
	default:
		return e, false
	}
	return e, r.Pseudonym != ""
}

// Poll delivers the events of log records from the cursor to the end of
// the log and advances the cursor. A destination that fails every attempt
// gets a dead letter; the others are not held up by it.
func (d *Dispatcher) Poll(ctx context.Context) error {
	// An audience that cannot be materialised (a catalog change made it
	// invalid, say) must not hold up rights events: the tail runs anyway.
	rerr := d.refresh(ctx)
	return errors.Join(d.tail(ctx), rerr)
}

// tail delivers the events of the log from the cursor on.
func (d *Dispatcher) tail(ctx context.Context) error {
	d.mu.Lock()
	from := d.cursor
	d.mu.Unlock()
	size, err := d.Store.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("delivery: log size: %w", err)
	}
	if size <= from {
		return nil
	}
	// Only records that match the signed tree become events: a forged
	// erasure must not reach a destination, nor a deleted one be skipped
	// silently (invariant 8).
	entries, err := d.Audit.ReadVerifiedKinds(ctx, d.Store, kinds, from, size)
	if err != nil {
		return fmt.Errorf("delivery: read log: %w", err)
	}
	sent := 0
	for _, en := range entries {
		d.fold(en.Record)
		if ev, dst, ok := d.membership(ctx, en.Index, en.Record); ok {
			if len(dst.Types) == 0 || slices.Contains(dst.Types, ev.Type) {
				if err := d.deliver(ctx, *dst, ev); err != nil {
					return err
				}
				sent++
			}
			continue
		}
		ev, ok := event(d.Audit.Origin(), en.Index, en.Record)
		if !ok {
			continue
		}
		for _, dst := range d.Destinations {
			if len(dst.Types) > 0 && !slices.Contains(dst.Types, ev.Type) {
				continue
			}
			if !d.takes(dst, ev.Pseudonym) {
				continue // it never received this subject's data
			}
			if err := d.deliver(ctx, dst, ev); err != nil {
				return err
			}
			sent++
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sent > 0 {
		// The cursor is recorded only after passes that delivered, so an
		// idle dispatcher adds nothing to the log; a restart rescans only
		// records that send nothing.
		if err := d.note(ctx, "cursor", "", map[string]any{"to": size, "sent": sent}); err != nil {
			return fmt.Errorf("delivery: record cursor: %w", err)
		}
	}
	d.mu.Lock()
	d.cursor = size
	d.mu.Unlock()
	return nil
}

// deliver sends ev to dst with retries; after the last attempt it records
// a dead letter. Only failing to record that is an error.
func (d *Dispatcher) deliver(ctx context.Context, dst Destination, ev Event) error {
	attempts, backoff := d.Attempts, d.Backoff
	if attempts <= 0 {
		attempts = 5
	}
	if backoff == nil {
		backoff = func(n int) time.Duration { return time.Second << (n - 1) }
	}
	body, _ := json.Marshal(ev)
	var err error
	for n := 1; n <= attempts; n++ {
		if err = dst.Sender.Send(ctx, ev.ID, body); err == nil {
			return nil
		}
		if n < attempts {
			t := time.NewTimer(backoff(n))
			select {
			case <-ctx.Done():
				t.Stop()
				n = attempts
			case <-t.C:
			}
		}
	}
	if d.Logger != nil {
		d.Logger.Warn("delivery failed; kept as a dead letter", "destination", dst.Name, "event", ev.ID, "err", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if nerr := d.note(ctx, "dead", ev.Pseudonym, map[string]any{"destination": dst.Name, "event": ev, "attempts": attempts}); nerr != nil {
		return fmt.Errorf("delivery: record dead letter: %w", nerr)
	}
	d.mu.Lock()
	d.dead = append(d.dead, DeadLetter{Destination: dst.Name, Event: ev, Attempts: attempts, LastError: err.Error(), At: time.Now().UTC()})
	d.mu.Unlock()
	return nil
}

// Dead lists the dead letters, oldest first.
func (d *Dispatcher) Dead() []DeadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dead)
}

// Replay sends the dead letter of event id to its destination once more;
// on success it leaves the list, on failure it stays with the new error.
func (d *Dispatcher) Replay(ctx context.Context, destination, id string) error {
	d.mu.Lock()
	i := slices.IndexFunc(d.dead, func(l DeadLetter) bool { return l.Destination == destination && l.Event.ID == id })
	if i < 0 {
		d.mu.Unlock()
		return portrait.Errorf(portrait.ENOTFOUND, "no dead letter %s for destination %s", id, destination)
	}
	l := d.dead[i]
	d.mu.Unlock()
	j := slices.IndexFunc(d.Destinations, func(x Destination) bool { return x.Name == destination })
	if j < 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "destination %s is no longer configured", destination)
	}
	body, _ := json.Marshal(l.Event)
	err := d.Destinations[j].Sender.Send(ctx, id, body)
	d.mu.Lock()
	defer d.mu.Unlock()
	k := slices.IndexFunc(d.dead, func(x DeadLetter) bool { return x.Destination == destination && x.Event.ID == id })
	if k < 0 {
		return err
	}
	if err != nil {
		d.dead[k].Attempts++
		d.dead[k].LastError = err.Error()
		return fmt.Errorf("replay %s to %s: %w", id, destination, err)
	}
	d.dead = slices.Delete(d.dead, k, k+1)
	return d.note(ctx, "replayed", l.Event.Pseudonym, map[string]any{"destination": destination, "event": l.Event})
}

// Run polls every interval until ctx ends, after loading the state.
func (d *Dispatcher) Run(ctx context.Context, every time.Duration) error {
	if err := d.Load(ctx); err != nil {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := d.Poll(ctx); err != nil && ctx.Err() == nil && d.Logger != nil {
			d.Logger.Error("delivery poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
