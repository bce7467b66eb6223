//go:build !unix

package sqlite

import "os"

// flock is not available here: the owner lock is not taken, and keeping
// one process per database file is left to the operator.
func flock(f *os.File) (busy bool, err error) { return false, nil }
