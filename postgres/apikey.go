package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

const apiKeyColumns = `id, name, hash, role, created, expires, revoked, last_used`

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
	_, err := tx.tx.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)`,
		k.ID, k.Name, k.Hash, string(k.Role), k.Created, ts(k.Expires))
	if isUnique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "put API key %s: a key with this id or hash was stored before, or a key named %s is in force", k.ID, k.Name)
	} else if err != nil {
		return fmt.Errorf("put API key %s: %w", k.Name, err)
	}
	return nil
}

// RevokeAPIKey implements guard.Tx.RevokeAPIKey.
func (tx *txn) RevokeAPIKey(ctx context.Context, name string, at time.Time) (portrait.APIKey, error) {
	if at.IsZero() {
		return portrait.APIKey{}, portrait.Errorf(portrait.EINVALID, "revoke API key %s: no time given", name)
	}
	k, err := scanAPIKey(tx.tx.QueryRow(ctx, `UPDATE api_keys SET revoked = $1 WHERE name = $2 AND revoked IS NULL RETURNING `+apiKeyColumns, at, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return portrait.APIKey{}, portrait.Errorf(portrait.ENOTFOUND, "no API key named %s is in force", name)
	} else if err != nil {
		return portrait.APIKey{}, fmt.Errorf("revoke API key %s: %w", name, err)
	}
	return k, nil
}

// TouchAPIKey implements guard.Tx.TouchAPIKey.
func (tx *txn) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if _, err := tx.tx.Exec(ctx, `UPDATE api_keys SET last_used = $1 WHERE id = $2 AND (last_used IS NULL OR last_used < $1)`, at, id); err != nil {
		return fmt.Errorf("record use of API key %s: %w", id, err)
	}
	return nil
}

func scanAPIKey(row pgx.Row) (portrait.APIKey, error) {
	var k portrait.APIKey
	var role string
	var expires, revoked, used *time.Time
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &role, &k.Created, &expires, &revoked, &used); err != nil {
		return portrait.APIKey{}, err
	}
	k.Role, k.Created = policy.Role(role), k.Created.UTC()
	k.Expires, k.Revoked, k.LastUsed = fromTS(expires), fromTS(revoked), fromTS(used)
	return k, nil
}
