package demo_test

import (
	"testing"

	"github.com/portrait-dev/portrait/examples/demo"
)

// The embedded answers parse and are signed by two people (FA-1), so
// Answers never panics in a built binary.
func TestAnswers(t *testing.T) {
	if a := demo.Answers(); len(a.SignedBy) < 2 {
		t.Fatalf("demo answers signed by %v; want two named people", a.SignedBy)
	}
}
