package catalog

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any input yields a catalog or *Errors, never a panic.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	files = append(files, demoPath, "testdata/bad/catalog.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	check := func(c *Catalog, l *Label) error { return nil }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data, check)
		switch {
		case err == nil && c == nil:
			t.Fatal("nil catalog without error")
		case err != nil && c != nil:
			t.Fatal("catalog returned with an error")
		case err != nil && AsErrors(err) == nil:
			t.Fatalf("error is not *Errors: %T %v", err, err)
		case err != nil && len(AsErrors(err).Problems) == 0:
			t.Fatal("*Errors without problems")
		}
	})
}
