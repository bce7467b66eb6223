package oversight

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// EvidenceFormat names the layout of Evidence; a verifier refuses others.
const EvidenceFormat = "portrait-evidence/v1"

// Evidence is what a periodic compliance audit (PIPL Art. 54; FA-2) or an
// inspection (PIPL Art. 63, 64; RO-1) needs in one document.
type Evidence struct {
	Format      string              `json:"format"`
	Generated   time.Time           `json:"generated"`
	Catalog     *catalog.Catalog    `json:"catalog"`
	Processing  Processing          `json:"record_of_processing"`
	Filing      Filing              `json:"filing"`
	Assessments []apply.Assessment  `json:"assessments"`
	Log         LogEvidence         `json:"audit_log"`
	Cases       CaseEvidence        `json:"cases"`
	Reviews     ReviewEvidence      `json:"reviews"`
	Suspensions []policy.Suspension `json:"suspensions"`
}

// LogEvidence is the audit log as an outsider checks it: the signed
// checkpoint, the key that verifies it, statistics of what it holds, and
// the retention statement (RO-2, FA-5).
type LogEvidence struct {
	Origin      string   `json:"origin"`
	VerifierKey string   `json:"verifier_key"`
	Checkpoint  string   `json:"checkpoint"`
	Stats       LogStats `json:"stats"`
	Retention   string   `json:"retention"`
}

// CaseEvidence lists the request, breach and report cases with their
// deadlines, and how many are open and overdue, by type.
type CaseEvidence struct {
	Total   int                   `json:"total"`
	Open    int                   `json:"open"`
	Overdue int                   `json:"overdue"`
	ByType  map[string]*CaseCount `json:"by_type"`
	List    []portrait.Case       `json:"list"`
}

// CaseCount counts the cases of one type.
type CaseCount struct {
	Total   int `json:"total"`
	Open    int `json:"open"`
	Overdue int `json:"overdue"`
}

// ReviewEvidence counts human reviews of automated decisions.
type ReviewEvidence struct {
	Total   int `json:"total"`
	Open    int `json:"open"`
	Overdue int `json:"overdue"`
}

// Bundle is signed evidence: Evidence exactly as signed, and an Ed25519
// signature over those bytes by the handler's receipt key.
type Bundle struct {
	Evidence  json.RawMessage `json:"evidence"`
	Key       string          `json:"key_id"`
	PublicKey string          `json:"public_key"` // base64
	Signature string          `json:"signature"`  // base64 Ed25519 over Evidence
}

// Errors Verify returns, for callers to branch on.
var (
	ErrMalformed = errors.New("malformed evidence bundle")
	ErrSignature = errors.New("evidence signature does not verify: it was altered or signed by another key")
)

// retentionText is the log retention statement. The log is append-only and
// no code path deletes from it, so it outlives the 6 months of ARR Art. 28
// and AI Act Art. 26(6) and the 3 years of PIPL Art. 56.
const retentionText = "The audit log is append-only and never pruned: every record is kept for the lifetime of the system, " +
	"beyond the minimum of 6 months (ARR Art. 28, AI Act Art. 12 and 26(6)) and 3 years (PIPL Art. 56). " +
	"审计日志只追加、从不删除，保存期覆盖系统全生命周期，不少于六个月（算法推荐管理规定第二十八条）及三年（个人信息保护法第五十六条）。"

// Evidence assembles the evidence pack and signs it.
func (s *Service) Evidence(ctx context.Context) (*Bundle, error) {
	filing, err := s.Filing(ctx, "en")
	if err != nil {
		return nil, err
	}
	note, stats, err := s.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	now := s.now()
	e := Evidence{Format: EvidenceFormat, Generated: now, Catalog: s.point.Catalog(), Processing: s.Processing("en"), Filing: filing,
		Assessments: []apply.Assessment{},
		Log: LogEvidence{Origin: s.log.Origin(), VerifierKey: s.log.VerifierKey(), Checkpoint: string(note),
			Stats: stats, Retention: retentionText}}
	if s.apply != nil {
		for _, u := range e.Catalog.UseCases {
			if a, ok := s.apply.Assessment(u.ID); ok {
				e.Assessments = append(e.Assessments, a)
			}
		}
	}
	cases, err := s.store.Cases(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	e.Cases = CaseEvidence{ByType: map[string]*CaseCount{}, List: make([]portrait.Case, 0, len(cases))}
	for _, c := range cases {
		if c.Type == TypeReport {
			c.Reason = "" // the sealed report text stays with the handler
		}
		n := e.Cases.ByType[c.Type]
		if n == nil {
			n = &CaseCount{}
			e.Cases.ByType[c.Type] = n
		}
		n.Total++
		e.Cases.Total++
		if c.Status == statusOpen {
			n.Open++
			e.Cases.Open++
			if c.Deadline.Before(now) {
				n.Overdue++
				e.Cases.Overdue++
			}
		}
		e.Cases.List = append(e.Cases.List, c)
	}
	reviews, err := s.store.Reviews(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	for _, r := range reviews {
		e.Reviews.Total++
		if r.Closed.IsZero() {
			e.Reviews.Open++
			if r.Deadline.Before(now) {
				e.Reviews.Overdue++
			}
		}
	}
	if e.Suspensions, err = s.store.Suspensions(ctx); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if e.Suspensions == nil {
		e.Suspensions = []policy.Suspension{}
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("evidence: encode: %w", err)
	}
	key := s.keys.ReceiptKey()
	pub := key.Public().(ed25519.PublicKey)
	return &Bundle{Evidence: raw, Key: keyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw))}, nil
}

func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Verify checks a bundle offline against the handler's public key (the
// receipt key, obtained independently of the bundle) and returns the
// evidence it carries. It also checks that the embedded checkpoint is
// signed by the embedded log key and that the statistics cover exactly the
// checkpoint's size, so the bundle is consistent with the log it cites.
func Verify(data []byte, pub ed25519.PublicKey) (*Evidence, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify evidence: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("verify evidence: %w: %v", ErrMalformed, err)
	}
	sig, err := base64.StdEncoding.DecodeString(b.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("verify evidence: %w: the signature is not base64 of %d bytes", ErrMalformed, ed25519.SignatureSize)
	}
	if b.Key != keyID(pub) {
		return nil, fmt.Errorf("verify evidence: %w (bundle key %s, verifying with %s)", ErrSignature, b.Key, keyID(pub))
	}
	if !ed25519.Verify(pub, b.Evidence, sig) {
		return nil, fmt.Errorf("verify evidence: %w", ErrSignature)
	}
	var e Evidence
	if err := json.Unmarshal(b.Evidence, &e); err != nil {
		return nil, fmt.Errorf("verify evidence: %w: %v", ErrMalformed, err)
	}
	if e.Format != EvidenceFormat {
		return nil, fmt.Errorf("verify evidence: %w: format %q, this verifier knows %q", ErrMalformed, e.Format, EvidenceFormat)
	}
	cp, err := audit.ParseCheckpoint([]byte(e.Log.Checkpoint), e.Log.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("verify evidence: the checkpoint: %w", err)
	}
	if cp.Size != e.Log.Stats.Size {
		return nil, fmt.Errorf("verify evidence: %w: statistics cover %d records, the checkpoint %d", ErrMalformed, e.Log.Stats.Size, cp.Size)
	}
	var n int64
	for _, k := range e.Log.Stats.Kinds {
		n += k.Count
	}
	if n != cp.Size {
		return nil, fmt.Errorf("verify evidence: %w: the counts by kind add up to %d records, the checkpoint holds %d", ErrMalformed, n, cp.Size)
	}
	return &e, nil
}
