package regulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/witness"
)

// DB is what the node needs from its database: the regulator's tables,
// its own audit log and its staff keys. A *sqlite.DB or *postgres.DB is
// one.
type DB interface {
	Store
	OrderStore
	audit.Reader
	APIKey(ctx context.Context, hash []byte) (portrait.APIKey, error)
	// SessionEnded reports console sessions signed out (portrait.Store).
	SessionEnded(ctx context.Context, issued time.Time, ids ...[]byte) (bool, error)
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
}

// Node is a regulator node.
type Node struct {
	db       DB
	log      *audit.Log
	cosigner *witness.Signer
	now      func() time.Time
	// sup is set by Supervise; the pack fields by Consult.
	sup          *supervision
	packSigner   note.Signer
	packKey      string
	catalogCheck CatalogCheck
}

// Deps are what a Node is built from, named as the services' Deps are.
type Deps struct {
	DB       DB              // the regulator's own database
	Log      *audit.Log      // the regulator's own log, where every act is recorded
	Cosigner *witness.Signer // cosigns the companies' checkpoints (C2SP tlog-cosignature)
}

// New returns a node over d.DB, recording in d.Log and cosigning with
// d.Cosigner.
func New(d Deps) *Node {
	return &Node{db: d.DB, log: d.Log, cosigner: d.Cosigner, now: func() time.Time { return time.Now().UTC() }}
}

// WitnessKey returns the cosigner's note verifier key, which companies
// pass to their engines as --regulator-key.
func (n *Node) WitnessKey() string { return n.cosigner.VerifierKey() }

// record appends rec to the node's own log.
func (n *Node) record(ctx context.Context, rec audit.Record, also func(context.Context, portrait.Tx) error) (int64, error) {
	var idx int64
	err := n.db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if also != nil {
			if err := also(ctx, tx); err != nil {
				return err
			}
		}
		var err error
		idx, err = n.log.Append(ctx, tx, rec)
		return err
	})
	return idx, err
}

func token(prefix string) string {
	b := make([]byte, 24)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// actor names a staff caller in the log: role and key id, never a name.
func actor(c policy.Caller) string { return string(c.Role) + ":" + c.ID }

// Enrol registers a company and returns it with its enrolment token,
// which is shown once: only its hash is kept.
func (n *Node) Enrol(ctx context.Context, by policy.Caller, name string) (Company, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 200 || strings.ContainsRune(name, 0) {
		return Company{}, "", portrait.Errorf(portrait.EINVALID, "company name: want 1 to 200 characters")
	}
	tok := token("prt_enrol_")
	c := Company{ID: "co_" + hex.EncodeToString(hash(tok)[:6]), Name: name, TokenHash: hash(tok), Created: n.now()}
	if _, err := n.record(ctx, audit.Record{Kind: "enrolment", Actor: actor(by), Action: "enrol",
		Detail: map[string]any{"company": c.ID, "name": c.Name}}, nil); err != nil {
		return Company{}, "", err
	}
	if err := n.db.PutCompany(ctx, c); err != nil {
		return Company{}, "", err
	}
	return c, tok, nil
}

// AddStaff creates an API key for a named member of the regulator's
// staff with role Admin or Inspector, and returns it (shown once).
func (n *Node) AddStaff(ctx context.Context, by policy.Caller, name string, role policy.Role) (string, error) {
	if role != Admin && role != Inspector {
		return "", portrait.Errorf(portrait.EINVALID, "role %q: want %s or %s", role, Admin, Inspector)
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 || strings.ContainsAny(name, "\x00\n") {
		return "", portrait.Errorf(portrait.EINVALID, "staff name: want 1 to 100 characters naming a person, e.g. supervision/wang.fang")
	}
	key := token("prk_")
	return key, n.putKey(ctx, by, name, role, key)
}

// EnsureAdmin registers key as a regulator-admin key named name, if it is
// not registered yet (serve --admin-key, run again on restart).
func (n *Node) EnsureAdmin(ctx context.Context, name, key string) error {
	if k, err := n.db.APIKey(ctx, hash(key)); err == nil {
		if k.Role != Admin {
			return fmt.Errorf("admin key is already registered with role %s", k.Role)
		}
		return nil
	}
	return n.putKey(ctx, policy.Caller{Role: policy.System, ID: "start-up"}, name, Admin, key)
}

func (n *Node) putKey(ctx context.Context, by policy.Caller, name string, role policy.Role, key string) error {
	_, err := n.record(ctx, audit.Record{Kind: "apikey", Actor: actor(by), Action: "create",
		Detail: map[string]any{"id": name, "role": string(role)}},
		func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutAPIKey(ctx, portrait.APIKey{ID: name, Name: name, Hash: hash(key), Role: role, Created: n.now()})
		})
	if portrait.ErrorCode(err) == portrait.ECONFLICT {
		return portrait.Errorf(portrait.ECONFLICT, "a staff key named %q exists", name)
	}
	return err
}

// Staff authenticates a staff key.
func (n *Node) Staff(ctx context.Context, key string) (policy.Caller, error) {
	return n.staffByHash(ctx, hash(key))
}

// staffByHash authenticates a staff key by its SHA-256, as a console
// session names it.
func (n *Node) staffByHash(ctx context.Context, h []byte) (policy.Caller, error) {
	k, err := n.db.APIKey(ctx, h)
	if err != nil || (k.Role != Admin && k.Role != Inspector) {
		return policy.Caller{}, portrait.Errorf(portrait.EUNAUTHORIZED, "not a regulator staff key")
	}
	if err := k.Check(n.now()); err != nil {
		return policy.Caller{}, err
	}
	return policy.Caller{Role: k.Role, ID: k.ID}, nil
}

// Member authenticates a company's enrolment token.
func (n *Node) Member(ctx context.Context, tok string) (Company, error) {
	c, err := n.db.CompanyBy(ctx, "token", hash(tok))
	if err != nil {
		return Company{}, portrait.Errorf(portrait.EUNAUTHORIZED, "not an enrolment token of a company")
	}
	return c, nil
}

// Companies lists the enrolled companies.
func (n *Node) Companies(ctx context.Context) ([]Company, error) { return n.db.Companies(ctx) }

// Company returns one company.
func (n *Node) Company(ctx context.Context, id string) (Company, error) { return n.db.Company(ctx, id) }

// File records a company's filing. Its log origin and key may change only
// while the regulator has witnessed nothing of the log: afterwards a new
// key would let the company sign a different history.
func (n *Node) File(ctx context.Context, c Company, f Filing) error {
	v, err := note.NewVerifier(strings.TrimSpace(f.LogKey))
	if err != nil {
		return portrait.Errorf(portrait.EINVALID, "log_key: %v (want the key served at /v1/log/key)", err)
	}
	if v.Name() != f.Origin {
		return portrait.Errorf(portrait.EINVALID, "log_key is named %q, not the origin %q", v.Name(), f.Origin)
	}
	if c.Size > 0 && (f.Origin != c.Origin || f.LogKey != c.LogKey) {
		return portrait.Errorf(portrait.ECONFLICT, "the regulator has witnessed %d entries of log %s: its origin and key cannot change", c.Size, c.Origin)
	}
	// The filing is logged first: the regulator's tables are written
	// outside the log's transaction (a SQLite database has one writer),
	// and a filing that fails after being logged is only an attempt on
	// record, while one stored unlogged would break invariant 3.
	sum := sha256.Sum256(f.Algorithms)
	detail := map[string]any{"company": c.ID, "origin": f.Origin, "log_key": f.LogKey, "receipt_key": f.ReceiptKey, "catalog_digest": f.CatalogDigest}
	if c.CatalogDigest != "" && c.CatalogDigest != f.CatalogDigest {
		// A catalog change is filed again and kept with its diff (SG-1).
		changes, total := diffFilings(c.Algorithms, f.Algorithms)
		detail["previous_catalog_digest"], detail["changes"], detail["change_count"] = c.CatalogDigest, changes, total
	}
	if _, err := n.record(ctx, audit.Record{Kind: "filing", Actor: "company:" + c.ID, Action: "file", Digest: hex.EncodeToString(sum[:]),
		Detail: detail}, nil); err != nil {
		return err
	}
	return n.db.FileCompany(ctx, c.ID, f, n.now())
}

// MaxUpload bounds the entries of one mirror upload.
const MaxUpload = 4096

// Mirror stores entries of company c's log from index from on, with
// their Merkle hashes recomputed here. Entries at or beyond the witnessed
// size may be replaced; witnessed ones never.
func (n *Node) Mirror(ctx context.Context, c Company, from int64, datas [][]byte) (int64, error) {
	if len(datas) > MaxUpload {
		return 0, portrait.Errorf(portrait.ETOOLARGE, "mirror upload of %d entries: at most %d at a time", len(datas), MaxUpload)
	}
	if from < 0 {
		return 0, portrait.Errorf(portrait.EINVALID, "mirror upload: from %d is negative", from)
	}
	entries, err := hashEntries(from, datas, func(idx []int64) ([][32]byte, error) { return n.db.MirrorHashes(ctx, c.ID, idx) })
	if err != nil {
		return 0, err
	}
	if err := n.db.PutMirror(ctx, c.ID, from, entries); err != nil {
		return 0, err
	}
	return from + int64(len(datas)), nil
}

// hashEntries computes the stored hashes of records n0, n0+1, … as
// audit.Log.Append does, reading the frontier hashes before n0 through read.
func hashEntries(n0 int64, datas [][]byte, read func([]int64) ([][32]byte, error)) ([]portrait.LogEntry, error) {
	var frontier []tlog.Hash
	if idx := audit.FrontierIndexes(n0); len(idx) > 0 {
		got, err := read(idx)
		if err != nil {
			return nil, fmt.Errorf("mirror entries from %d: %w", n0, err)
		}
		if len(got) != len(idx) {
			return nil, fmt.Errorf("mirror entries from %d: read %d stored hashes, want %d", n0, len(got), len(idx))
		}
		frontier = make([]tlog.Hash, len(got))
		for i := range got {
			frontier[i] = got[i]
		}
	}
	return audit.Entries(n0, frontier, datas), nil
}

// WitnessError is a refusal of add-checkpoint with its tlog-witness
// status: 400, 403, 404, 409 (Size is then the witnessed size) or 422.
type WitnessError struct {
	Status int
	Size   int64
	Msg    string
}

func (e *WitnessError) Error() string { return e.Msg }

func refuse(status int, format string, args ...any) error {
	return &WitnessError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// AddCheckpoint handles a tlog-witness add-checkpoint request body and
// returns the cosignature line. Besides the spec's checks it requires
// that the mirror holds the checkpoint's entries and that they hash to
// its root.
func (n *Node) AddCheckpoint(ctx context.Context, body []byte) ([]byte, error) {
	req, err := witness.ParseRequest(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	origin, _, _ := strings.Cut(string(req.Checkpoint), "\n")
	c, err := n.db.CompanyBy(ctx, "origin", []byte(origin))
	if portrait.ErrorCode(err) == portrait.ENOTFOUND {
		return nil, refuse(http.StatusNotFound, "log origin %q is not filed by any enrolled company", origin)
	} else if err != nil {
		return nil, err
	}
	cp, err := audit.ParseCheckpoint(req.Checkpoint, c.LogKey)
	if errors.Is(err, audit.ErrSignature) {
		return nil, refuse(http.StatusForbidden, "%v", err)
	} else if err != nil {
		return nil, refuse(http.StatusBadRequest, "checkpoint: %v", err)
	}
	if req.OldSize > cp.Size {
		return nil, refuse(http.StatusBadRequest, "old size %d is beyond the checkpoint size %d", req.OldSize, cp.Size)
	}
	if req.OldSize != c.Size {
		return nil, &WitnessError{Status: http.StatusConflict, Size: c.Size, Msg: fmt.Sprintf("the last cosigned size is %d", c.Size)}
	}
	switch {
	case cp.Size == 0:
		if cp.Hash != tlog.Hash(sha256.Sum256(nil)) {
			return nil, refuse(http.StatusUnprocessableEntity, "a checkpoint of size 0 must have the empty tree's root hash")
		}
	case req.OldSize == 0:
		if len(req.Proof) != 0 {
			return nil, refuse(http.StatusUnprocessableEntity, "old size 0 takes an empty consistency proof")
		}
	default:
		old, err := audit.ParseCheckpoint(c.Checkpoint, c.LogKey)
		if err != nil {
			return nil, fmt.Errorf("company %s: stored checkpoint: %w", c.ID, err)
		}
		proof := make(tlog.TreeProof, len(req.Proof))
		for i, h := range req.Proof {
			proof[i] = h
		}
		if old.Size == cp.Size && old.Hash != cp.Hash {
			return nil, refuse(http.StatusUnprocessableEntity, "size %d was cosigned with another root hash: the log forked", cp.Size)
		} else if old.Size != cp.Size && tlog.CheckTree(proof, cp.Size, cp.Hash, old.Size, old.Hash) != nil {
			return nil, refuse(http.StatusUnprocessableEntity, "the consistency proof from %d to %d does not verify", old.Size, cp.Size)
		}
	}
	// The mirror must hold exactly the entries of the tree.
	if m, err := n.db.MirrorSize(ctx, c.ID); err != nil {
		return nil, err
	} else if m < cp.Size {
		return nil, refuse(http.StatusUnprocessableEntity, "the mirror holds %d entries of log %s, fewer than %d: upload them first (POST /v1/mirror)", m, origin, cp.Size)
	}
	root, err := tlog.TreeHash(cp.Size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := n.db.MirrorHashes(ctx, c.ID, idx)
		out := make([]tlog.Hash, len(hs))
		for i := range hs {
			out[i] = hs[i]
		}
		return out, err
	}))
	if err != nil {
		return nil, fmt.Errorf("company %s: mirror tree hash: %w", c.ID, err)
	}
	if root != cp.Hash {
		return nil, refuse(http.StatusUnprocessableEntity, "the mirrored entries of log %s do not hash to the checkpoint's root", origin)
	}

	line, err := n.cosign(req.Checkpoint)
	if err != nil {
		return nil, err
	}
	cosigned := append(bytes.Clone(req.Checkpoint), line...)
	if err := n.db.Witness(ctx, c.ID, req.OldSize, cp.Size, cosigned, n.now()); portrait.ErrorCode(err) == portrait.ECONFLICT {
		now, _ := n.db.Company(ctx, c.ID)
		return nil, &WitnessError{Status: http.StatusConflict, Size: now.Size, Msg: "the witnessed size changed meanwhile"}
	} else if err != nil {
		return nil, err
	}
	return line, nil
}

// cosign returns the cosignature line of the signed checkpoint msg.
func (n *Node) cosign(msg []byte) ([]byte, error) {
	text, _, ok := bytes.Cut(msg, []byte("\n\n"))
	if !ok {
		return nil, refuse(http.StatusBadRequest, "checkpoint has no signature block")
	}
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, n.cosigner)
	if err != nil {
		return nil, fmt.Errorf("cosign: %w", err)
	}
	_, line, _ := bytes.Cut(signed, []byte("\n\n"))
	return line, nil
}
