package oversight_test

import (
	"testing"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/examples/demo"
)

// art56 returns the demo's answers to PIPL Art. 56's questions, signed by
// two named people (FA-1).
func art56(tb testing.TB) apply.Answers {
	tb.Helper()
	a, err := apply.ParseAnswers(demo.Assessment)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
