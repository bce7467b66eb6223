package server_test

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// maxShotHeight bounds a saved screenshot: a long page (the log's list
// of entries) is cut there, which is enough to show how it looks and
// keeps docs/screenshots small enough for the repository.
const maxShotHeight = 2400

// saveShot writes a full-page PNG screenshot to docs/screenshots/name,
// cut at maxShotHeight and compressed as far as image/png goes.
func saveShot(t *testing.T, name string, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if r := img.Bounds(); r.Dy() > maxShotHeight {
		if s, ok := img.(interface {
			SubImage(image.Rectangle) image.Image
		}); ok {
			img = s.SubImage(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+maxShotHeight))
		}
	}
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, img); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name), out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
