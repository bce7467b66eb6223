//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// flock takes an exclusive lock on f without waiting; busy reports that
// another open file description holds it.
func flock(f *os.File) (busy bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
