package regulator

import (
	"context"
	"encoding/json"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// Staff roles on a regulator node. They are stored as API keys like a
// company's staff keys, but no company engine accepts them.
const (
	// Admin enrols companies, creates staff keys and issues orders.
	Admin = policy.RegulatorAdmin
	// Inspector reads companies, filings and the mirror.
	Inspector = policy.Inspector
)

// Company is an enrolled company as the regulator keeps it. It holds no
// personal data: keys, digests and the company's own filing.
type Company struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	TokenHash []byte    `json:"-"` // SHA-256 of the enrolment token
	Created   time.Time `json:"created"`

	Filing
	// Size is the size of the latest checkpoint the regulator cosigned,
	// Checkpoint that checkpoint with the company's signature and the
	// cosignature.
	Size       int64     `json:"witnessed_size"`
	Checkpoint []byte    `json:"-"`
	Contact    time.Time `json:"last_contact,omitzero"`
}

// Filing is what a company engine files on joining and on every catalog
// change: its log's origin and verifier key, its receipt key, the digest
// of its catalog and its algorithm filing (备案, oversight.Filing).
type Filing struct {
	Origin        string          `json:"origin,omitempty"`
	LogKey        string          `json:"log_key,omitempty"`
	ReceiptKey    string          `json:"receipt_key,omitempty"`
	CatalogDigest string          `json:"catalog_digest,omitempty"`
	Algorithms    json.RawMessage `json:"algorithms,omitempty"`
}

// Store is what the regulator node needs beyond a portrait.Store (whose
// audit log and API keys it uses for its own log and staff). The sqlite
// and postgres packages implement it over the same database.
type Store interface {
	// PutCompany enrols a new company.
	PutCompany(ctx context.Context, c Company) error
	// Company returns one company; ENOTFOUND if absent. CompanyBy finds
	// one by enrolment token hash ("token") or log origin ("origin").
	Company(ctx context.Context, id string) (Company, error)
	CompanyBy(ctx context.Context, field string, value []byte) (Company, error)
	Companies(ctx context.Context) ([]Company, error)
	// FileCompany replaces the company's filing; ECONFLICT if another
	// company has filed the same origin.
	FileCompany(ctx context.Context, id string, f Filing, at time.Time) error
	// Witness records checkpoint cp of size as cosigned, only if the
	// company's witnessed size is still old (ECONFLICT otherwise): the
	// compare and the update are one statement, as tlog-witness asks.
	Witness(ctx context.Context, id string, old, size int64, cp []byte, at time.Time) error

	// PutMirror stores entries from index from on, replacing any
	// mirrored entries at or after from. ECONFLICT unless from lies
	// between the witnessed size and the number of mirrored entries:
	// witnessed entries are never replaced.
	PutMirror(ctx context.Context, id string, from int64, entries []portrait.LogEntry) error
	// MirrorSize is the number of mirrored entries of the company.
	MirrorSize(ctx context.Context, id string) (int64, error)
	MirrorEntries(ctx context.Context, id string, from, to int64) ([]portrait.LogEntry, error)
	// MirrorHashes returns stored Merkle hashes of the company's mirrored
	// log by storage index, as portrait.Store.LogHashes does for its own.
	MirrorHashes(ctx context.Context, id string, indexes []int64) ([][32]byte, error)
}
