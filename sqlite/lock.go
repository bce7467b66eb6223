package sqlite

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrInUse is returned by Open when another process, or another Open in
// this one, has the database file open.
var ErrInUse = errors.New("the database is in use by another process")

// lock takes the database's owner lock: an exclusive flock on a file
// beside it (path + ".lock"), held until unlock or the process ends (the
// kernel drops it then, so a crash leaves no stale lock to clear by hand).
//
// One process owns a SQLite store: the writer's group commit, the mover,
// the audit log's committed size and the kept log head all assume that
// only this process's commits move the file (CommittedLogSize). A second
// process writing the same file would not be seen by the first, so the
// second Open is refused rather than allowed to break invariant 5
// quietly. The file's content is the owner's process id, for the error.
func lock(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if busy, err := flock(f); err != nil || busy {
		f.Close()
		if busy {
			owner := "another process"
			if b, rerr := os.ReadFile(name); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
				owner = "process " + strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("%w: %s holds %s. SQLite is one node only: stop that process first, or use its HTTP API (staff keys: POST, GET /v1/keys and DELETE /v1/keys/{name}); for many nodes use PostgreSQL",
				ErrInUse, owner, name)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlock releases the lock taken by lock; the file stays, empty of
// meaning until the next owner writes its id.
func unlock(f *os.File) error {
	if f == nil {
		return nil
	}
	// Closing the only descriptor drops the flock; a second Close of the
	// store finds it closed already.
	if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}
