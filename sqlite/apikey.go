package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

const apiKeyColumns = `id, name, hash, role, created, expires, revoked, last_used`

const putAPIKeySQL = `INSERT INTO api_keys (` + apiKeyColumns + `) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)`

// PutAPIKey implements guard.Tx.PutAPIKey.
func (tx *txn) PutAPIKey(ctx context.Context, k portrait.APIKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if k.Name == "" {
		k.Name = k.ID
	}
	if k.Created.IsZero() {
		k.Created = time.Now()
	}
	_, err := tx.exec(ctx, putAPIKeySQL, k.ID, k.Name, k.Hash, string(k.Role), k.Created.UnixNano(), nanos(k.Expires))
	if isUnique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "put API key %s: a key with this id or hash was stored before, or a key named %s is in force", k.ID, k.Name)
	} else if err != nil {
		return fmt.Errorf("put API key %s: %w", k.Name, err)
	}
	return nil
}

const revokeAPIKeySQL = `UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL RETURNING ` + apiKeyColumns

// RevokeAPIKey implements guard.Tx.RevokeAPIKey.
func (tx *txn) RevokeAPIKey(ctx context.Context, name string, at time.Time) (portrait.APIKey, error) {
	if at.IsZero() {
		return portrait.APIKey{}, portrait.Errorf(portrait.EINVALID, "revoke API key %s: no time given", name)
	}
	st, err := tx.stmt(ctx, revokeAPIKeySQL)
	if err != nil {
		return portrait.APIKey{}, err
	}
	k, err := scanAPIKey(st.QueryRowContext(ctx, at.UnixNano(), name))
	if errors.Is(err, sql.ErrNoRows) {
		return portrait.APIKey{}, portrait.Errorf(portrait.ENOTFOUND, "no API key named %s is in force", name)
	} else if err != nil {
		return portrait.APIKey{}, fmt.Errorf("revoke API key %s: %w", name, err)
	}
	return k, nil
}

const touchAPIKeySQL = `UPDATE api_keys SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)`

// TouchAPIKey implements guard.Tx.TouchAPIKey.
func (tx *txn) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if _, err := tx.exec(ctx, touchAPIKeySQL, at.UnixNano(), id, at.UnixNano()); err != nil {
		return fmt.Errorf("record use of API key %s: %w", id, err)
	}
	return nil
}

func scanAPIKey(row interface{ Scan(...any) error }) (portrait.APIKey, error) {
	var k portrait.APIKey
	var role string
	var created, expires, revoked, used sql.NullInt64
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &role, &created, &expires, &revoked, &used); err != nil {
		return portrait.APIKey{}, err
	}
	k.Role = policy.Role(role)
	k.Created, k.Expires, k.Revoked, k.LastUsed = fromNanos(created), fromNanos(expires), fromNanos(revoked), fromNanos(used)
	return k, nil
}
