package tables

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrate applies the migrations in fsys's migrations directory (files
// named NNNN_what.sql) that schema_version does not record, in version
// order, and records each. db must be the engine's migration transaction,
// which excludes every other process or node migrating the same store,
// and schema_version must exist: its column types are the engine's.
//
// Versions are recorded one by one rather than as a high-water mark, so a
// migration merged later with a lower number than one already applied
// still runs.
func (db DB) Migrate(ctx context.Context, fsys fs.FS) error {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	applied := map[int]bool{}
	rows, err := db.query(ctx, `SELECT version FROM schema_version`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a version number such as 0002_", base)
		}
		if applied[v] {
			continue
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		// The file goes to the engine as it is, not through the dialect:
		// without arguments both drivers run a text of several statements
		// in order (pgx by its simple protocol).
		if _, err := db.Q.Exec(ctx, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := db.exec(ctx, `INSERT INTO schema_version (version, applied) VALUES (?, ?)`, v, db.D.Time(time.Now())); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}
