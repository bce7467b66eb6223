package regulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
)

// Governor is what applying orders needs from a company engine;
// consent.Ledger is one.
type Governor interface {
	Suspend(ctx context.Context, caller policy.Caller, s policy.Suspension) error
	Lift(ctx context.Context, caller policy.Caller, kind, id string) error
}

// Takeover is what a receivership needs from a company engine.
type Takeover interface {
	// Receive registers the receiver's key of order o (a receivership)
	// as an admin key; it may run on several nodes for one order.
	Receive(ctx context.Context, o Order) error
	// Set puts the engine under the receivership of o, or (nil) ends it.
	Set(o *Order)
}

// EngineStore is what the enforcer needs from a company engine's store.
type EngineStore interface {
	audit.Reader
	LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error)
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
}

// Countersigning is what the regulator's countersignature of high-tier
// changes needs from a company engine (SG-7).
type Countersigning interface {
	// Awaiting lists the change requests approved at the company whose
	// high-tier use-cases await the regulator, as asks.
	Awaiting(ctx context.Context) ([]CountersignRequest, error)
	// Receive verifies a decision document with the regulator's key and
	// records it; a decision already recorded is not an error.
	Receive(ctx context.Context, doc []byte) error
}

// Enforcer polls the regulator for orders, applies each once (across all
// nodes sharing the store), records it in the company's log and
// acknowledges it with that record's index. With Changes set, the same
// poll asks for the countersignature of approved high-tier changes and
// records the regulator's decisions.
type Enforcer struct {
	Client  *Client
	Gov     Governor
	Take    Takeover
	Log     *audit.Log
	Store   EngineStore
	Logger  *slog.Logger
	Changes Countersigning

	mu      sync.Mutex
	scanned int64            // log prefix scanned for applied orders
	applied map[string]int64 // order id → index of its "apply" record
	// receiver is the receivership in force, as the log records it.
	receiver *Order
	// maxSilence is the dead-man switch in force (SG-5), in nanoseconds,
	// as the log records the last max_silence order; 0 is off.
	maxSilence atomic.Int64
	// started is when Run began: before any contact, silence counts
	// from it.
	started atomic.Int64
	// rejoin, while set, is what an engine that started without reaching
	// the regulator still owes it (filing, catching up); until it has
	// run, the high tier is stopped.
	rejoin atomic.Pointer[func(context.Context) error]
	// packChanged, once set, says the regulator published a rule pack
	// other than the one the engine checked its catalog against: the
	// high tier stays stopped until a restart applies it.
	packChanged atomic.Pointer[string]
}

// PackChanged stops the high tier until the engine restarts (SG-5, SG-6):
// the regulator's rule pack in force is no longer the one the running
// catalog was checked against, for the reason why.
func (e *Enforcer) PackChanged(why string) { e.packChanged.Store(&why) }

// Restart returns why the engine must restart, or "".
func (e *Enforcer) Restart() string {
	if w := e.packChanged.Load(); w != nil {
		return *w
	}
	return ""
}

// Offline tells the enforcer that the engine started without reaching
// the regulator. Until the first poll that reaches it and runs rejoin
// (the filing and the catch-up the engine could not do at start) without
// error, the high tier is stopped however short the silence (SG-5): the
// engine cannot know which orders, erasures or limits it missed.
func (e *Enforcer) Offline(rejoin func(context.Context) error) { e.rejoin.Store(&rejoin) }

// Rejoining reports whether the engine started offline and has not yet
// rejoined; until it has, checkpoints are not submitted (the catch-up
// decides first whether the log extends what the regulator witnessed).
func (e *Enforcer) Rejoining() bool { return e.rejoin.Load() != nil }

// Silence reports how long the engine has gone without an answer from
// the regulator and the longest the regulator allows for high-tier
// use-cases (0: no limit). The high tier stops while silent > max > 0
// (SG-5, a weak precaution: lower tiers go on).
//
// An engine that started offline and has not yet rejoined, or that runs
// under a rule pack the regulator has replaced, reports the silence since
// it started against a limit of 1 ns: stopped.
func (e *Enforcer) Silence() (silent, max time.Duration) {
	s := time.Unix(0, e.started.Load())
	if e.rejoin.Load() != nil || e.packChanged.Load() != nil {
		return time.Since(s), time.Nanosecond
	}
	last := e.Client.Contact()
	if last.Before(s) {
		last = s
	}
	return time.Since(last), time.Duration(e.maxSilence.Load())
}

// orderKind is the kind of the company-log record of an applied order.
const orderKind = "order"

// Run polls every interval until ctx ends; more often when the maximum
// silence is short, so that a poll that succeeds always renews contact
// well before the silence runs out.
func (e *Enforcer) Run(ctx context.Context, every time.Duration) {
	e.started.CompareAndSwap(0, time.Now().UnixNano())
	for {
		if err := e.Poll(ctx); err != nil && ctx.Err() == nil {
			e.Logger.Error("regulator orders", "err", err)
		}
		wait := every
		if m := time.Duration(e.maxSilence.Load()); m > 0 {
			wait = max(min(wait, m/4), 100*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Poll fetches the orders, applies those not yet applied and acknowledges
// those not yet acknowledged.
func (e *Enforcer) Poll(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Scan first: the dead-man switch in force is known from the
	// company's own log even while the regulator cannot be reached.
	if err := e.scan(ctx); err != nil {
		return err
	}
	if rejoin := e.rejoin.Load(); rejoin != nil {
		if err := (*rejoin)(ctx); err != nil {
			return fmt.Errorf("rejoin the regulator: %w", err)
		}
		e.rejoin.Store(nil)
	}
	orders, acked, err := e.Client.Orders(ctx)
	if err != nil {
		return err
	}
	for i, o := range orders {
		idx, done := e.applied[o.ID]
		if done && acked[i] {
			continue
		}
		if !done {
			if idx, err = e.apply(ctx, o); err != nil {
				return fmt.Errorf("order %s (%s %s %s): %w", o.ID, o.Kind, o.Target.Kind, o.Target.ID, err)
			}
			e.applied[o.ID] = idx
		}
		if err := e.Client.Ack(ctx, o.ID, idx); err != nil {
			return err
		}
	}
	return e.countersign(ctx)
}

// countersign asks for the countersignature of every approved change
// request awaiting it and records the regulator's decisions. An ask the
// regulator cannot take yet (its entries are not witnessed yet) is asked
// again on the next poll.
func (e *Enforcer) countersign(ctx context.Context) error {
	if e.Changes == nil {
		return nil
	}
	asks, err := e.Changes.Awaiting(ctx)
	if err != nil || len(asks) == 0 {
		return err
	}
	for _, a := range asks {
		if _, err := e.Client.AskCountersignature(ctx, a); err != nil {
			e.Logger.Info("countersignature asked for, not yet taken", "request", a.Request, "err", err)
		}
	}
	docs, err := e.Client.Countersignatures(ctx)
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := e.Changes.Receive(ctx, d); err != nil {
			return fmt.Errorf("the regulator's countersignature decision: %w", err)
		}
	}
	return nil
}

// Scan reads the orders in force from the company's own log — the
// receivership, the dead-man limit — without calling the regulator. Call
// it before serving: until it has run, a receivership in force is not
// known, so neither is the receiver's key nor the company's lock-out.
func (e *Enforcer) Scan(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.scan(ctx)
}

// scan reads the "order" records appended since the last scan, so that
// an order applied by another node is not applied twice.
func (e *Enforcer) scan(ctx context.Context) error {
	if e.applied == nil {
		e.applied = map[string]int64{}
	}
	size, err := e.Store.LogSize(ctx)
	if err != nil || size <= e.scanned {
		return err
	}
	// Checked against the signed tree: receivership and the dead-man
	// switch rest on these records, and a company must not undo an order
	// by editing its own store (invariants 8 and 9).
	es, err := e.Log.ReadVerifiedKinds(ctx, e.Store, []string{orderKind}, e.scanned, size)
	if err != nil {
		return err
	}
	for _, en := range es {
		if r := en.Record; r.Action == "apply" {
			id, _ := r.Detail["order"].(string)
			if _, seen := e.applied[id]; !seen && id != "" {
				e.applied[id] = en.Index
			}
			switch r.Detail["kind"] {
			case Receivership:
				o := &Order{ID: id, Kind: Receivership}
				o.Reason, _ = r.Detail["reason"].(string)
				o.ReceiverKeyHash, _ = r.Detail["receiver_key_hash"].(string)
				e.receiver = o
			case EndReceivership:
				e.receiver = nil
			case MaxSilence:
				secs, _ := r.Detail["max_silence_seconds"].(float64)
				e.maxSilence.Store(int64(secs * float64(time.Second)))
			}
		}
	}
	e.scanned = size
	if e.Take != nil {
		e.Take.Set(e.receiver)
	}
	return nil
}

// apply carries out one verified order and records it.
func (e *Enforcer) apply(ctx context.Context, o Order) (int64, error) {
	caller := policy.Caller{Role: policy.Regulator, ID: "order:" + o.ID}
	var err error
	switch o.Kind {
	case Suspend:
		err = e.Gov.Suspend(ctx, caller, policy.Suspension{Kind: o.Target.Kind, ID: o.Target.ID, Reason: o.Reason + " (regulator order " + o.ID + ")"})
	case Lift:
		if err = e.Gov.Lift(ctx, caller, o.Target.Kind, o.Target.ID); portrait.ErrorCode(err) == portrait.ENOTFOUND {
			err = nil // lifted already
		}
	case Receivership:
		if e.Take == nil || len(o.ReceiverKeyHash) != 64 {
			return 0, fmt.Errorf("receivership order without a receiver key, or an engine that cannot be taken over")
		}
		err = e.Take.Receive(ctx, o)
	case EndReceivership, MaxSilence:
		// A max_silence order takes effect through its record, which
		// scan reads on every node.
	default:
		return 0, fmt.Errorf("order kind %q is not supported by this engine", o.Kind)
	}
	if err != nil {
		return 0, err
	}
	body, _ := json.Marshal(o)
	sum := sha256.Sum256(body)
	var idx int64
	err = e.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		idx, err = e.Log.Append(ctx, tx, audit.Record{Kind: orderKind, Actor: "regulator:" + o.IssuedBy, Action: "apply", Digest: hex.EncodeToString(sum[:]),
			Codes: []string{"RO-6"}, Detail: map[string]any{"order": o.ID, "kind": o.Kind, "target_kind": o.Target.Kind, "target": o.Target.ID,
				"reason": o.Reason, "receiver_key_hash": o.ReceiverKeyHash, "max_silence_seconds": o.MaxSilenceSeconds}})
		return err
	})
	if err == nil {
		e.scanned = 0 // rescan: the receivership in force may have changed
		e.applied = nil
		err = e.scan(ctx)
	}
	return idx, err
}

// Reapply carries out again an order whose "apply" record r a restore
// fetched back from the regulator's mirror: the restored store lacks the
// order's effects. Suspensions and lifts come back from their own
// records; a receivership's receiver key is registered here again. The
// re-application is recorded ("reapply") and acknowledged to the
// regulator with that record's index, so the regulator sees the order in
// force again after the restore.
func (e *Enforcer) Reapply(ctx context.Context, r audit.Record) error {
	id, _ := r.Detail["order"].(string)
	kind, _ := r.Detail["kind"].(string)
	if id == "" {
		return fmt.Errorf("order record without an order id")
	}
	if kind == Receivership {
		o := Order{ID: id, Kind: Receivership}
		o.Reason, _ = r.Detail["reason"].(string)
		o.ReceiverKeyHash, _ = r.Detail["receiver_key_hash"].(string)
		if e.Take == nil || len(o.ReceiverKeyHash) != 64 {
			return fmt.Errorf("receivership %s: no receiver key to register again", id)
		}
		if err := e.Take.Receive(ctx, o); err != nil {
			return err
		}
	}
	var idx int64
	err := e.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		idx, err = e.Log.Append(ctx, tx, audit.Record{Kind: orderKind, Actor: "system:restore", Action: "reapply", Digest: r.Digest,
			Codes: []string{"RO-6"}, Detail: map[string]any{"order": id, "kind": kind}})
		return err
	})
	if err != nil {
		return fmt.Errorf("record re-applied order %s: %w", id, err)
	}
	if err := e.Client.Ack(ctx, id, idx); err != nil {
		return fmt.Errorf("acknowledge re-applied order %s: %w", id, err)
	}
	return nil
}
