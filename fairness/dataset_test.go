package fairness

import (
	"os"
	"path/filepath"
	"testing"
)

// dataset returns the path of a real data set under PORTRAIT_DATASETS.
// COMPAS and Adult may not be copied into the project, so the tests that
// read them are opt-in; .ci/run points the variable at the shared folder.
func dataset(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("PORTRAIT_DATASETS")
	if dir == "" {
		t.Skipf("opt-in: set PORTRAIT_DATASETS to the folder holding %s (.ci/run sets it)", rel)
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("PORTRAIT_DATASETS is set but %s is missing: %v", p, err)
	}
	return p
}
