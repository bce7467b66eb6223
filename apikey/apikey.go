package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// Defaults of key lifetimes.
const (
	// DefaultTTL is the lifetime of a key created without one: 90 days.
	DefaultTTL = 90 * 24 * time.Hour
	// MaxTTL is the longest lifetime a created key may have: 365 days.
	MaxTTL = 365 * 24 * time.Hour
	// MinTTL is the shortest.
	MinTTL = time.Minute
	// TouchEvery is how often a key's last use is written, at most, per node.
	TouchEvery = time.Minute
)

// CompanyRoles are the roles a company may give the keys it creates.
var CompanyRoles = []policy.Role{policy.Admin, policy.Operator, policy.Reviewer, policy.Auditor}

// Store is what the service needs of a store; portrait.Store satisfies it.
type Store interface {
	Generation(ctx context.Context) (int64, error)
	APIKey(ctx context.Context, hash []byte) (portrait.APIKey, error)
	APIKeys(ctx context.Context) ([]portrait.APIKey, error)
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
}

var _ Store = portrait.Store(nil)

// Options tune a Service.
type Options struct {
	// Roles are the roles Create may give (default CompanyRoles).
	Roles []policy.Role
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Service creates, lists, revokes and checks staff keys. It is safe for
// concurrent use.
type Service struct {
	store Store
	log   *audit.Log
	opts  Options

	mu      sync.Mutex
	touched map[string]time.Time // key id → last use recorded from this node

	verified verified
}

// maxVerified bounds the keys a node keeps verified; past it the cache
// starts again (a company has tens of keys, not thousands).
const maxVerified = 4096

// verified are the keys this node read from the store in force, at the
// governance generation gen. A revocation moves the generation in its own
// transaction (Tx.RevokeAPIKey), so a key kept at the generation every
// request reads first is a key no node has revoked since: the request
// reads one counter instead of the key's row, and a revocation on any
// node still refuses the next request on every node. Expiry is checked
// on every request against the kept expiry.
type verified struct {
	mu   sync.RWMutex
	gen  int64
	keys map[[sha256.Size]byte]portrait.APIKey
}

// get returns the key kept for hash if the cache is at gen.
func (v *verified) get(gen int64, hash []byte) (portrait.APIKey, bool) {
	if len(hash) != sha256.Size {
		return portrait.APIKey{}, false
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.keys == nil || v.gen != gen {
		return portrait.APIKey{}, false
	}
	k, ok := v.keys[[sha256.Size]byte(hash)]
	return k, ok
}

// keep keeps k, read from the store after generation gen was read, so
// that it is at least that fresh. A cache at an older generation is
// dropped first; one at a newer generation (another request read past a
// revocation meanwhile) keeps nothing from this one.
func (v *verified) keep(gen int64, k portrait.APIKey) {
	if len(k.Hash) != sha256.Size {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.keys != nil && gen < v.gen:
		return
	case v.keys == nil || gen > v.gen || len(v.keys) >= maxVerified:
		v.gen, v.keys = gen, map[[sha256.Size]byte]portrait.APIKey{}
	}
	v.keys[[sha256.Size]byte(k.Hash)] = k
}

// Deps are what a Service is built from.
type Deps struct {
	Store Store
	Log   *audit.Log
}

// New returns a Service over d.Store, recording in d.Log.
func New(d Deps, opts Options) *Service {
	store, log := d.Store, d.Log
	if opts.Roles == nil {
		opts.Roles = CompanyRoles
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{store: store, log: log, opts: opts, touched: map[string]time.Time{}}
}

// Key is a stored key as listed: never its secret or its hash.
type Key struct {
	Name     string      `json:"name"`
	Role     policy.Role `json:"role"`
	Created  time.Time   `json:"created"`
	Expires  time.Time   `json:"expires,omitzero"` // absent: never (bootstrap and demo keys)
	Expired  bool        `json:"expired,omitempty"`
	LastUsed time.Time   `json:"last_used,omitzero"` // to the minute; absent: never used
}

// NewKey is a created key with its secret, shown this once.
type NewKey struct {
	Name    string      `json:"name"`
	Role    policy.Role `json:"role"`
	Key     string      `json:"key"`
	Expires time.Time   `json:"expires"`
}

// Hash is the SHA-256 of a key, the only form the store keeps.
func Hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Secret makes a new random key for role: 192 bits, with a prefix that
// secret scanners and people recognise.
func Secret(role policy.Role) string {
	b := make([]byte, 24)
	rand.Read(b)
	return "pk_" + string(role) + "_" + hex.EncodeToString(b)
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "key_" + hex.EncodeToString(b)
}

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// Create makes a key for the person name with role, expiring after ttl
// (0: DefaultTTL), and returns it with its secret. by is who asked; the
// creation is an audit record.
func (s *Service) Create(ctx context.Context, by policy.Caller, name string, role policy.Role, ttl time.Duration) (NewKey, error) {
	if err := portrait.CheckStaffName(name); err != nil {
		return NewKey{}, err
	}
	if err := s.creatable(role); err != nil {
		return NewKey{}, err
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return NewKey{}, portrait.Errorf(portrait.EINVALID, "expires_in %s: want between %s and %s; the default is %s",
			catalog.Duration(ttl), catalog.Duration(MinTTL), catalog.Duration(MaxTTL), catalog.Duration(DefaultTTL))
	}
	now := s.now()
	secret := Secret(role)
	k := portrait.APIKey{ID: newID(), Name: name, Hash: Hash(secret), Role: role, Created: now, Expires: now.Add(ttl)}
	if err := s.put(ctx, by, k); err != nil {
		return NewKey{}, err
	}
	return NewKey{Name: name, Role: role, Key: secret, Expires: k.Expires}, nil
}

func (s *Service) creatable(role policy.Role) error {
	if slices.Contains(s.opts.Roles, role) {
		return nil
	}
	if role == policy.Regulator {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-6",
			Message: fmt.Sprintf("role %q: a company may not create regulator keys — the regulator's authority is its own, and no company key may lift its orders; want one of %v", role, s.opts.Roles)}
	}
	return portrait.Errorf(portrait.EINVALID, "role %q: want one of %v", role, s.opts.Roles)
}

// put stores k with its audit record, in one transaction.
func (s *Service) put(ctx context.Context, by policy.Caller, k portrait.APIKey) error {
	detail := map[string]any{"name": k.Name, "role": string(k.Role)}
	if !k.Expires.IsZero() {
		detail["expires"] = k.Expires.Format(time.RFC3339)
	}
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutAPIKey(ctx, k); err != nil {
			return err
		}
		_, err := s.log.Append(ctx, tx, audit.Record{Kind: "apikey", Time: k.Created, Actor: actor(by), Action: "create", Detail: detail})
		return err
	})
	if portrait.ErrorCode(err) == portrait.ECONFLICT {
		return &portrait.Error{Code: portrait.ECONFLICT, Err: err,
			Message: fmt.Sprintf("name %s: a key of that name is in force; revoke it first (DELETE /v1/keys/%s, or portrait keys revoke --name %s)", k.Name, k.Name, k.Name)}
	}
	return failClosed("create API key", err)
}

// Register stores a key whose secret the caller chose — the bootstrap
// admin key, the demo's keys, a regulator's receiver key — by its hash,
// under name and role, with no expiry if expires is zero. Registering
// the same key again under the same name and role does nothing, so that
// every node and every restart may do it; a revoked key is refused.
func (s *Service) Register(ctx context.Context, by policy.Caller, name string, role policy.Role, hash []byte, expires time.Time) error {
	if err := portrait.CheckStaffName(name); err != nil {
		return err
	}
	k := portrait.APIKey{ID: newID(), Name: name, Hash: hash, Role: role, Created: s.now(), Expires: expires}
	if err := k.Validate(); err != nil {
		return err
	}
	err := s.registered(ctx, k)
	if portrait.ErrorCode(err) != portrait.ENOTFOUND {
		return err
	}
	err = s.put(ctx, by, k)
	if portrait.ErrorCode(err) == portrait.ECONFLICT {
		// Another node registered it meanwhile, or the name or the
		// hash is taken: say which.
		return s.registered(ctx, k)
	}
	return err
}

// registered says whether k's hash is stored in force under k's name and
// role (nil), absent (ENOTFOUND), or in the way (ECONFLICT, saying why).
func (s *Service) registered(ctx context.Context, k portrait.APIKey) error {
	got, err := s.store.APIKey(ctx, k.Hash)
	switch {
	case err == nil && got.Role == k.Role && (got.Name == k.Name || portrait.CheckStaffName(got.Name) != nil):
		// The same key; a key stored before names existed keeps its id
		// as its name.
		return nil
	case err == nil:
		return portrait.Errorf(portrait.ECONFLICT, "this key is already registered as %s with role %s", got.Name, got.Role)
	case portrait.ErrorCode(err) != portrait.ENOTFOUND:
		return failClosed("read API keys", err)
	}
	all, err := s.store.APIKeys(ctx)
	if err != nil {
		return failClosed("read API keys", err)
	}
	for _, o := range all {
		switch {
		case slices.Equal(o.Hash, k.Hash):
			return portrait.Errorf(portrait.ECONFLICT, "this key (%s) was revoked on %s; a revoked key is never accepted again — choose a new one", o.Name, o.Revoked.Format(time.RFC3339))
		case o.Name == k.Name && o.Revoked.IsZero():
			return portrait.Errorf(portrait.ECONFLICT, "%s is already registered with another key; start with that key, or revoke it first (portrait keys revoke --name %s)", k.Name, k.Name)
		}
	}
	return portrait.Errorf(portrait.ENOTFOUND, "no key %s", k.Name)
}

// List returns the keys in force (expired ones included, marked), by name.
func (s *Service) List(ctx context.Context) ([]Key, error) {
	all, err := s.store.APIKeys(ctx)
	if err != nil {
		return nil, failClosed("list API keys", err)
	}
	now := s.now()
	out := []Key{}
	for _, k := range all {
		if !k.Revoked.IsZero() {
			continue
		}
		out = append(out, Key{Name: k.Name, Role: k.Role, Created: k.Created, Expires: k.Expires, LastUsed: k.LastUsed,
			Expired: !k.Expires.IsZero() && !now.Before(k.Expires)})
	}
	return out, nil
}

// Revoke revokes the key in force named name, at once: the next request
// with it, on any node, is refused. by is who asked; the revocation is an
// audit record.
func (s *Service) Revoke(ctx context.Context, by policy.Caller, name string) (Key, error) {
	if name == "" {
		return Key{}, portrait.Errorf(portrait.EINVALID, "name: which key to revoke? want its team/person name")
	}
	now := s.now()
	var k portrait.APIKey
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) (err error) {
		if k, err = tx.RevokeAPIKey(ctx, name, now); err != nil {
			return err
		}
		_, err = s.log.Append(ctx, tx, audit.Record{Kind: "apikey", Time: now, Actor: actor(by), Action: "revoke",
			Detail: map[string]any{"name": k.Name, "role": string(k.Role)}})
		return err
	})
	if err != nil {
		return Key{}, failClosed("revoke API key", err)
	}
	return Key{Name: k.Name, Role: k.Role, Created: k.Created, Expires: k.Expires, LastUsed: k.LastUsed}, nil
}

// Authenticate returns the caller a key's secret stands for, or
// EUNAUTHORIZED if it is unknown, revoked or expired.
func (s *Service) Authenticate(ctx context.Context, secret string) (policy.Caller, error) {
	c, _, err := s.checkHash(ctx, Hash(secret))
	return c, err
}

// AuthenticateAt is Authenticate, and also returns the governance
// generation the check read first (see CheckHash): a request may decide
// at it rather than read it again (consent.AtGeneration).
func (s *Service) AuthenticateAt(ctx context.Context, secret string) (policy.Caller, int64, error) {
	return s.checkHash(ctx, Hash(secret))
}

// CheckHash is Authenticate for a key known by its hash (a console
// session holds the hash, never the key).
//
// The generation is read first, on every call: a key this node verified
// at that generation is not read again (verified); any other is read from
// the store and kept. Unknown and revoked keys are never kept.
func (s *Service) CheckHash(ctx context.Context, hash []byte) (policy.Caller, error) {
	c, _, err := s.checkHash(ctx, hash)
	return c, err
}

func (s *Service) checkHash(ctx context.Context, hash []byte) (policy.Caller, int64, error) {
	unavailable := func(err error) (policy.Caller, int64, error) {
		return policy.Caller{}, 0, &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the key store is not reachable; try again", Err: err}
	}
	gen, err := s.store.Generation(ctx)
	if err != nil {
		return unavailable(err)
	}
	k, ok := s.verified.get(gen, hash)
	if !ok {
		k, err = s.store.APIKey(ctx, hash)
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			return policy.Caller{}, 0, portrait.Errorf(portrait.EUNAUTHORIZED, "unknown or revoked API key")
		} else if err != nil {
			return unavailable(err)
		}
		if k.Revoked.IsZero() {
			s.verified.keep(gen, k)
		}
	}
	now := s.now()
	if err := k.Check(now); err != nil {
		return policy.Caller{}, 0, err
	}
	s.touch(ctx, k, now)
	return policy.Caller{Role: k.Role, ID: k.Name}, gen, nil
}

// touch records k's use, unless this node or another recorded one less
// than TouchEvery ago: one write per key and minute at most, not one per
// request. A failure is logged, never the caller's: last use informs, it
// does not guard.
func (s *Service) touch(ctx context.Context, k portrait.APIKey, now time.Time) {
	s.mu.Lock()
	last := s.touched[k.ID]
	if k.LastUsed.After(last) {
		last = k.LastUsed
	}
	if now.Sub(last) < TouchEvery {
		s.mu.Unlock()
		return
	}
	s.touched[k.ID] = now
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.TouchAPIKey(ctx, k.ID, now) }); err != nil {
		s.opts.Logger.Warn("record API key use", "name", k.Name, "err", err)
	}
}

func actor(c policy.Caller) string { return string(c.Role) + ":" + c.ID }

func failClosed(op string, err error) error {
	var pe *portrait.Error
	if err == nil || errors.As(err, &pe) {
		return err
	}
	return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: op + ": the store or audit log is unavailable; nothing was changed", Err: err}
}
