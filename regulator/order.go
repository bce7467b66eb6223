package regulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/witness"
)

// Order kinds.
const (
	Suspend         = "suspend"
	Lift            = "lift"
	Receivership    = "receivership"
	EndReceivership = "end_receivership"
	// MaxSilence sets the dead-man switch (SG-5): how long the engine may
	// go without reaching the regulator before its high-tier use-cases
	// stop; 0 turns it off.
	MaxSilence = "max_silence"
)

// maxMaxSilence bounds the silence an order may allow.
const maxMaxSilence = 30 * 24 * 3600

// OrderPrefix is the header line of an order's signed message (see
// witness.Signer.SignStatement).
const OrderPrefix = "portrait-order/v1\n"

// Target is what an order is about: for suspend and lift a declared
// purpose, field, label, model or use-case (policy.Target*).
type Target struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Order is a regulator's order to one company, as signed.
type Order struct {
	ID       string    `json:"id"`
	Company  string    `json:"company"`
	Kind     string    `json:"kind"`
	Target   Target    `json:"target"`
	Reason   string    `json:"reason"`
	Issued   time.Time `json:"issued"`
	IssuedBy string    `json:"issued_by"` // staff key name
	// ApprovedBy is the second staff member whose approval a
	// receivership needs (four eyes).
	ApprovedBy string `json:"approved_by,omitempty"`
	// ReceiverKeyHash is, for a receivership, the hex SHA-256 of the
	// receiver's staff key: the engine registers it as an admin key.
	ReceiverKeyHash string `json:"receiver_key_hash,omitempty"`
	// MaxSilenceSeconds is, for a max_silence order, the longest the
	// engine may be out of contact before its high-tier use-cases stop.
	MaxSilenceSeconds int64 `json:"max_silence_seconds,omitempty"`
}

// SignedOrder is an order as an engine receives it: the exact bytes that
// were signed and the regulator's signature over OrderPrefix || Body.
type SignedOrder struct {
	Body      json.RawMessage `json:"order"`
	Signature []byte          `json:"signature"`
}

// OrderRecord is an order as the regulator keeps it.
type OrderRecord struct {
	Order
	// Status is pending (awaiting a second approval) or issued.
	Status string `json:"status"`
	// Signed is set once the order is issued.
	Signed *SignedOrder `json:"signed,omitempty"`
	// LogIndex is the order's record in the regulator's log.
	LogIndex int64 `json:"log_index"`
	// AppliedAt and AckIndex are the engine's acknowledgement: when it
	// applied the order and the index of its record in the company log.
	AppliedAt time.Time `json:"applied_at,omitzero"`
	AckIndex  *int64    `json:"ack_log_index,omitempty"`
	// Reacknowledged lists the acknowledgements after the first: an
	// engine restored from a backup re-applies the order from its
	// re-fetched record and acknowledges it again at its new record.
	Reacknowledged []Reack `json:"reacknowledged,omitempty"`
	// ReceiverKey is the receiver's key, in the answer to the proposal
	// only: it is handed to the appointed operator and never stored.
	ReceiverKey string `json:"receiver_key,omitempty"`
}

// OrderStore is where orders are kept; sqlite and postgres implement it
// beside Store.
type OrderStore interface {
	// PutOrder inserts or replaces an order by ID.
	PutOrder(ctx context.Context, o OrderRecord) error
	Order(ctx context.Context, id string) (OrderRecord, error)
	// Orders lists one company's orders, oldest first.
	Orders(ctx context.Context, company string) ([]OrderRecord, error)
}

// Issue creates an order. A receivership waits for a second staff
// member's approval (Approve); other kinds are signed and issued at once.
func (n *Node) Issue(ctx context.Context, by policy.Caller, o Order) (OrderRecord, error) {
	if !slices.Contains([]string{Suspend, Lift, Receivership, EndReceivership, MaxSilence}, o.Kind) {
		return OrderRecord{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-6", Message: fmt.Sprintf("order kind %q: want suspend, lift, receivership, end_receivership or max_silence", o.Kind)}
	}
	if o.Kind == MaxSilence {
		if o.MaxSilenceSeconds < 0 || o.MaxSilenceSeconds > maxMaxSilence {
			return OrderRecord{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "SG-5", Message: fmt.Sprintf("max_silence_seconds must be from 0 (off) to %d", maxMaxSilence)}
		}
		o.Target = Target{Kind: "tier", ID: "high"}
	} else if o.MaxSilenceSeconds != 0 {
		return OrderRecord{}, portrait.Errorf(portrait.EINVALID, "max_silence_seconds belongs to a max_silence order only")
	}
	if _, err := n.db.Company(ctx, o.Company); err != nil {
		return OrderRecord{}, err
	}
	if (o.Kind == Suspend || o.Kind == Lift) && (!slices.Contains([]string{policy.TargetPurpose, policy.TargetField, policy.TargetLabel, policy.TargetModel, policy.TargetUseCase}, o.Target.Kind) || o.Target.ID == "") {
		return OrderRecord{}, portrait.Errorf(portrait.EINVALID, "target: want {\"kind\": purpose|field|label|model|usecase, \"id\": …}")
	}
	if o.Reason = strings.TrimSpace(o.Reason); o.Reason == "" || len(o.Reason) > 2000 {
		return OrderRecord{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-6", Message: "an order needs a reason (at most 2000 bytes), which the company and its refusals will quote"}
	}
	o.ID = "ord_" + hex.EncodeToString(hash(token(""))[:8])
	o.Issued, o.IssuedBy, o.ApprovedBy = n.now(), by.ID, ""
	var receiverKey string
	if o.Kind == Receivership {
		receiverKey = token("prr_")
		o.ReceiverKeyHash = hex.EncodeToString(hash(receiverKey))
	}
	rec := OrderRecord{Order: o, Status: "pending"}
	if o.Kind == Receivership {
		idx, err := n.record(ctx, audit.Record{Kind: "order", Actor: actor(by), Action: "propose", Detail: orderDetail(o)}, nil)
		if err != nil {
			return OrderRecord{}, err
		}
		rec.LogIndex = idx
		if err := n.db.PutOrder(ctx, rec); err != nil {
			return OrderRecord{}, err
		}
		rec.ReceiverKey = receiverKey
		return rec, nil
	}
	return n.sign(ctx, by, rec)
}

// Approve is the second staff member's approval of a pending order.
func (n *Node) Approve(ctx context.Context, by policy.Caller, id string) (OrderRecord, error) {
	rec, err := n.db.Order(ctx, id)
	if err != nil {
		return OrderRecord{}, err
	}
	if rec.Status != "pending" {
		return OrderRecord{}, portrait.Errorf(portrait.ECONFLICT, "order %s is already %s", id, rec.Status)
	}
	if by.ID == rec.IssuedBy {
		return OrderRecord{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-6", Message: "a receivership needs the approval of a second member of staff, not its proposer"}
	}
	rec.ApprovedBy = by.ID
	return n.sign(ctx, by, rec)
}

// sign signs, logs and stores an order as issued.
func (n *Node) sign(ctx context.Context, by policy.Caller, rec OrderRecord) (OrderRecord, error) {
	body, err := json.Marshal(rec.Order)
	if err != nil {
		return OrderRecord{}, err
	}
	sig, err := n.cosigner.SignStatement(OrderPrefix, body)
	if err != nil {
		return OrderRecord{}, err
	}
	sum := sha256.Sum256(body)
	idx, err := n.record(ctx, audit.Record{Kind: "order", Actor: actor(by), Action: "issue", Digest: hex.EncodeToString(sum[:]), Detail: orderDetail(rec.Order)}, nil)
	if err != nil {
		return OrderRecord{}, err
	}
	rec.Status, rec.Signed, rec.LogIndex = "issued", &SignedOrder{Body: body, Signature: sig}, idx
	return rec, n.db.PutOrder(ctx, rec)
}

func orderDetail(o Order) map[string]any {
	return map[string]any{"order": o.ID, "company": o.Company, "kind": o.Kind, "target_kind": o.Target.Kind, "target": o.Target.ID, "reason": o.Reason, "receiver_key_hash": o.ReceiverKeyHash, "max_silence_seconds": o.MaxSilenceSeconds}
}

// Orders lists a company's orders.
func (n *Node) Orders(ctx context.Context, company string) ([]OrderRecord, error) {
	if _, err := n.db.Company(ctx, company); err != nil {
		return nil, err
	}
	return n.db.Orders(ctx, company)
}

// Reack is an acknowledgement of an order after the first.
type Reack struct {
	At       time.Time `json:"at"`
	LogIndex int64     `json:"log_index"`
}

// maxReacks bounds the re-acknowledgements kept per order.
const maxReacks = 100

// Ack records a company engine's acknowledgement that it applied an
// order, at index of its own log. The first acknowledgement stands as
// applied_at and ack_log_index; a later one at another index (an engine
// restored from a backup re-applied the order) is kept beside it, so the
// regulator sees every record of the order in the company's log.
func (n *Node) Ack(ctx context.Context, c Company, id string, index int64) error {
	rec, err := n.db.Order(ctx, id)
	if err != nil || rec.Company != c.ID || rec.Status != "issued" {
		return portrait.Errorf(portrait.ENOTFOUND, "no issued order %s for this company", id)
	}
	if index < 0 {
		return portrait.Errorf(portrait.EINVALID, "log_index must be at least 0")
	}
	action := "acknowledge"
	if rec.AckIndex != nil {
		if *rec.AckIndex == index || slices.ContainsFunc(rec.Reacknowledged, func(r Reack) bool { return r.LogIndex == index }) {
			return nil
		}
		if len(rec.Reacknowledged) >= maxReacks {
			return portrait.Errorf(portrait.ECONFLICT, "order %s has been acknowledged %d times: no more", id, maxReacks+1)
		}
		action = "reacknowledge"
		rec.Reacknowledged = append(rec.Reacknowledged, Reack{At: n.now(), LogIndex: index})
	} else {
		rec.AppliedAt, rec.AckIndex = n.now(), &index
	}
	if _, err := n.record(ctx, audit.Record{Kind: "order", Actor: "company:" + c.ID, Action: action,
		Detail: map[string]any{"order": id, "company_log_index": index}}, nil); err != nil {
		return err
	}
	return n.db.PutOrder(ctx, rec)
}

// VerifyOrder checks a signed order against the regulator's key and that
// it is addressed to company; only then is its body parsed.
func VerifyOrder(s SignedOrder, v *witness.Verifier, company string) (Order, error) {
	if !v.VerifyStatement(OrderPrefix, s.Body, s.Signature) {
		return Order{}, fmt.Errorf("order signature does not verify with the regulator's key %s", v.Name())
	}
	var o Order
	d := json.NewDecoder(bytes.NewReader(s.Body))
	d.DisallowUnknownFields()
	if err := d.Decode(&o); err != nil {
		return Order{}, fmt.Errorf("signed order: %w", err)
	}
	if o.Company != company {
		return Order{}, fmt.Errorf("order %s is addressed to company %s, not %s", o.ID, o.Company, company)
	}
	return o, nil
}
