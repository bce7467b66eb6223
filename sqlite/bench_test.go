package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/portrait-dev/portrait/storetest"
)

func BenchmarkInsertEvents(b *testing.B) {
	storetest.BenchmarkInsertEvents(b, mustOpen(b, filepath.Join(b.TempDir(), "portrait.db")))
}

func BenchmarkStates(b *testing.B) {
	storetest.BenchmarkStates(b, mustOpen(b, filepath.Join(b.TempDir(), "portrait.db")))
}

func BenchmarkSessionEnded(b *testing.B) {
	storetest.BenchmarkSessionEnded(b, mustOpen(b, filepath.Join(b.TempDir(), "portrait.db")))
}
