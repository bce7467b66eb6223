package rights

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Removal is what an erasure removes: counts and declaration names,
// nothing personal, so the audit log and the receipt may carry it.
type Removal struct {
	Events          int      `json:"events"`
	ProfileFields   []string `json:"profile_fields"`
	Labels          []string `json:"labels"`
	ConsentRecords  int      `json:"consent_records"`
	Decisions       int      `json:"decisions"`
	Suppressions    int      `json:"suppressions"`
	SubjectKey      bool     `json:"subject_key"` // the wrapped data key: every sealed copy becomes unreadable
	Recommendations bool     `json:"cached_recommendations"`
}

// Summary is the removal as one line, for the case outcome.
func (r Removal) Summary() string {
	return fmt.Sprintf("erased: data key, %d events, %d profile fields (%s), %d labels (%s), %d consent records, %d decisions, %d label choices",
		r.Events, len(r.ProfileFields), strings.Join(r.ProfileFields, ","), len(r.Labels), strings.Join(r.Labels, ","),
		r.ConsentRecords, r.Decisions, r.Suppressions)
}

// Preview says exactly what an erasure of the subject would remove now,
// for the confirmation page. It records nothing.
func (s *Service) Preview(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) (Removal, error) {
	if err := authorize(caller, pseudonym); err != nil {
		return Removal{}, err
	}
	if _, err := s.subject(ctx, pseudonym); err != nil {
		return Removal{}, err
	}
	g, st, err := s.grant(ctx, caller, pseudonym, policy.Access, nil)
	if err != nil {
		return Removal{}, err
	}
	return s.removal(ctx, g, st)
}

func (s *Service) removal(ctx context.Context, g policy.Grant, st *policy.State) (Removal, error) {
	r := Removal{SubjectKey: true, Recommendations: true, ProfileFields: []string{}, Labels: []string{}, Suppressions: len(st.Suppressed)}
	evs, err := s.store.Events(ctx, g, time.Time{})
	if err != nil {
		return r, fmt.Errorf("count events of %s: %w", g.Pseudonym(), err)
	}
	r.Events = len(evs)
	prof, err := s.store.Profile(ctx, g)
	if err != nil {
		return r, fmt.Errorf("read profile of %s: %w", g.Pseudonym(), err)
	}
	for _, p := range prof {
		r.ProfileFields = append(r.ProfileFields, p.Field)
	}
	lbs, err := s.store.Labels(ctx, g)
	if err != nil {
		return r, fmt.Errorf("read labels of %s: %w", g.Pseudonym(), err)
	}
	for _, l := range lbs {
		r.Labels = append(r.Labels, l.Label)
	}
	hist, err := s.ledger.History(ctx, g)
	if err != nil {
		return r, err
	}
	r.ConsentRecords = len(hist)
	decs, err := s.store.Determinations(ctx, g)
	if err != nil {
		return r, fmt.Errorf("read decisions of %s: %w", g.Pseudonym(), err)
	}
	r.Decisions = len(decs)
	return r, nil
}

// ReceiptVersion is the version of the erasure receipt format.
const ReceiptVersion = 1

// sessionSkew is how far another node's clock may run ahead of this one's
// when an erasure ends the subject's sessions: a token that node stamped
// up to this long after the erasure is ended too (the subject signs in
// again, if they still exist), rather than one issued before it living on.
const sessionSkew = time.Minute

// endOfTime keeps the record that ends an erased subject's sessions for
// as long as any token could claim to be older than it; it holds only a
// hash of the pseudonym, which the audit log keeps anyway.
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Receipt is the signed proof of an erasure (SR-3): which subject, when,
// what was removed, and the audit-log entry that records it. It is built
// only from the erasure's case, so asking again yields the same receipt.
type Receipt struct {
	Version   int                `json:"version"`
	Case      string             `json:"case"`
	Issuer    string             `json:"issuer"`
	Contact   string             `json:"contact,omitempty"`
	Pseudonym portrait.Pseudonym `json:"subject"`
	Time      time.Time          `json:"time"`
	LogIndex  int64              `json:"log_index"`
	Outcome   string             `json:"outcome"`
	Key       string             `json:"key"`
	Signature string             `json:"signature,omitempty"`
}

// Erasure is the answer to an erasure request.
type Erasure struct {
	Receipt Receipt `json:"receipt"`
	Removed Removal `json:"removed"`
	// AlreadyErased is true when the subject had been erased before: the
	// receipt is the one of that erasure.
	AlreadyErased bool `json:"already_erased"`
}

func (s *Service) receipt(c portrait.Case) (Receipt, error) {
	cat := s.point.Catalog()
	key := s.keys.ReceiptKey()
	r := Receipt{Version: ReceiptVersion, Case: c.ID, Issuer: cat.Handler.Name.In("en"), Contact: cat.Handler.Contact,
		Pseudonym: c.Pseudonym, Time: c.Closed.UTC(), LogIndex: c.LogIndex, Outcome: c.Outcome, Key: keyID(key.Public().(ed25519.PublicKey))}
	b, err := json.Marshal(r)
	if err != nil {
		return Receipt{}, fmt.Errorf("encode erasure receipt: %w", err)
	}
	// Ed25519 is deterministic: the same case always gives the same receipt.
	r.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, b))
	return r, nil
}

// VerifyReceipt checks an erasure receipt's JSON against the receipt
// public key, offline.
func VerifyReceipt(data []byte, pub ed25519.PublicKey) (*Receipt, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify erasure receipt: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Receipt
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("verify erasure receipt: %w: %v", ErrMalformed, err)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize || r.Version != ReceiptVersion {
		return nil, fmt.Errorf("verify erasure receipt: %w: version or signature", ErrMalformed)
	}
	c := r
	c.Signature = ""
	b, _ := json.Marshal(c)
	if r.Key != keyID(pub) || !ed25519.Verify(pub, b, sig) {
		return nil, fmt.Errorf("verify erasure receipt: %w", ErrSignature)
	}
	return &r, nil
}

// WALTruncater is a store that keeps a write-ahead log which may hold old
// page images of erased rows until it is truncated: *sqlite.DB is one, and
// says so at compile time (sqlite/wal_test.go). Erase truncates the WAL of
// a store that implements it.
type WALTruncater interface {
	TruncateWAL(ctx context.Context) error
}

// Erase erases the subject (SR-3): the wrapped data key, events, profile,
// labels, label choices and consents go in one transaction with the audit
// entry and the case; the cached key is forgotten; the WAL is truncated
// so no page image of the values stays behind. A second request for an
// erased subject returns the first receipt.
func (s *Service) Erase(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) (*Erasure, error) {
	if err := authorize(caller, pseudonym); err != nil {
		return nil, err
	}
	s.eraseMu.Lock()
	defer s.eraseMu.Unlock()
	if _, err := s.subject(ctx, pseudonym); portrait.ErrorCode(err) == portrait.ENOTFOUND {
		return s.erasedBefore(ctx, pseudonym, err)
	} else if err != nil {
		return nil, err
	}
	c := s.newCase(pseudonym, TypeErasure)
	acc, st, err := s.grant(ctx, caller, pseudonym, policy.Access, nil)
	if err != nil {
		return nil, s.finish(ctx, c, "", err)
	}
	removed, err := s.removal(ctx, acc, st)
	if err != nil {
		return nil, err
	}
	g, _, err := s.grant(ctx, caller, pseudonym, policy.Erase, nil)
	if err != nil {
		return nil, s.finish(ctx, c, "", err)
	}
	c = fulfil(c, s.now(), removed.Summary(), 0)
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.Erase(ctx, g); err != nil {
			return err
		}
		// Every session of the subject ends with the erasure, on every
		// node: a token issued before it no longer signs anyone in.
		// sessionSkew covers nodes whose clocks run ahead of this one.
		if err := tx.EndSessions(ctx, keys.SubjectSessions(pseudonym), c.Closed.Add(sessionSkew), endOfTime); err != nil {
			return err
		}
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: "erasure", Time: c.Closed, Actor: actor(caller), Pseudonym: pseudonym,
			Action: "erase", Detail: map[string]any{"case": c.ID, "events": removed.Events, "profile_fields": removed.ProfileFields,
				"labels": removed.Labels, "consent_records": removed.ConsentRecords, "decisions": removed.Decisions}})
		if err != nil {
			return err
		}
		c.LogIndex = idx
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return nil, failClosed("erase", err)
	}
	s.keys.Forget(pseudonym)
	if w, ok := s.store.(WALTruncater); ok {
		// A busy WAL is truncated by the next erasure or copied back by
		// SQLite itself; the data key is already gone, so what it holds is
		// unreadable either way.
		if err := w.TruncateWAL(ctx); err != nil {
			s.opts.Logger.Warn("erasure: truncate wal", "subject", pseudonym, "err", err)
		}
	}
	if s.opts.OnErased != nil {
		s.opts.OnErased(ctx, pseudonym)
	}
	rc, err := s.receipt(c)
	if err != nil {
		return nil, err
	}
	return &Erasure{Receipt: rc, Removed: removed}, nil
}

// erasedBefore answers an erasure of a subject the store does not hold:
// the earlier erasure's receipt, or notFound when there was none.
func (s *Service) erasedBefore(ctx context.Context, pseudonym portrait.Pseudonym, notFound error) (*Erasure, error) {
	cs, err := s.Cases(ctx, pseudonym)
	if err != nil {
		return nil, err
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Type == TypeErasure && cs[i].Status == StatusFulfilled {
			rc, err := s.receipt(cs[i])
			if err != nil {
				return nil, err
			}
			return &Erasure{Receipt: rc, AlreadyErased: true, Removed: Removal{ProfileFields: []string{}, Labels: []string{}}}, nil
		}
	}
	return nil, notFound
}
