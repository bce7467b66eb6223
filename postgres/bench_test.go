package postgres_test

import (
	"testing"

	"github.com/portrait-dev/portrait/storetest"
)

func BenchmarkInsertEvents(b *testing.B) {
	storetest.BenchmarkInsertEvents(b, mustOpen(b, freshSchema(b)))
}

func BenchmarkStates(b *testing.B) {
	storetest.BenchmarkStates(b, mustOpen(b, freshSchema(b)))
}

func BenchmarkSessionEnded(b *testing.B) {
	storetest.BenchmarkSessionEnded(b, mustOpen(b, freshSchema(b)))
}
