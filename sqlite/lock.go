package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ErrInUse is returned by Open when another process has the database
// file open.
var ErrInUse = errors.New("the database is in use by another process")

// ownerLock is a process's hold on a database: an exclusive flock on a
// file beside it (path + ".lock"), shared by every Open of that database
// in this process and released when the last one closes, or when the
// process ends (the kernel drops it then, so a crash leaves no stale lock
// to clear by hand).
//
// One process owns a SQLite store: the writer's group commit, the mover,
// the audit log's committed size and the kept log head all assume that
// only this process's commits move the file (CommittedLogSize). A second
// process writing the same file would not be seen by the first, so its
// Open is refused rather than allowed to break invariant 5 quietly.
// Handles opened in one process see each other's commits through the
// same file and are allowed, as before (tests use them as two nodes).
// The lock file holds the owner's process id, for the error.
type ownerLock struct {
	name string // the lock file's absolute path, the key in held
	f    *os.File
	n    int // Opens holding it
	// gen is the file's governance generation as this process knows it
	// (generation.go): shared by every handle on the file, since a bump
	// by one moves it for all.
	gen generation
}

var held = struct {
	sync.Mutex
	m map[string]*ownerLock
}{m: map[string]*ownerLock{}}

// lock takes or shares this process's hold on the database at path.
func lock(path string) (*ownerLock, error) {
	name, err := filepath.Abs(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("lock %s.lock: %w", path, err)
	}
	held.Lock()
	defer held.Unlock()
	if l := held.m[name]; l != nil {
		l.n++
		return l, nil
	}
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
	l := &ownerLock{name: name, f: f, n: 1}
	held.m[name] = l
	return l, nil
}

// unlock gives back one Open's share of the hold; the last one closes
// the lock file, which drops the flock. A second Close of the same store
// gives back nothing more.
func unlock(l **ownerLock) error {
	if *l == nil {
		return nil
	}
	held.Lock()
	defer held.Unlock()
	o := *l
	*l = nil
	if o.n--; o.n > 0 {
		return nil
	}
	delete(held.m, o.name)
	return o.f.Close()
}
