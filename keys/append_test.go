package keys

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// OpenAppend opens what Open opens, into dst's memory when it has room,
// and refuses what Open refuses: a wrong ad, an altered byte, a short
// ciphertext, a destroyed key.
func TestOpenAppend(t *testing.T) {
	k := mustNew(t, 1)
	_, c, err := k.NewSubject("erin")
	if err != nil {
		t.Fatal(err)
	}
	msg, ad := []byte(`{"category":"books"}`), []byte("ad")
	sealed := c.Seal(msg, ad)
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1
	tests := []struct {
		name       string
		sealed, ad []byte
		destroy    bool
		wantErr    string
		wantErrIs  error
	}{
		{name: "good", sealed: sealed, ad: ad},
		{name: "wrong ad", sealed: sealed, ad: []byte("other"), wantErr: "authentication failed"},
		{name: "altered", sealed: altered, ad: ad, wantErr: "authentication failed"},
		{name: "short", sealed: sealed[:10], ad: ad, wantErr: "shorter than"},
		{name: "destroyed", sealed: sealed, ad: ad, destroy: true, wantErrIs: ErrDestroyed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c
			if tt.destroy {
				_, c, _ = k.NewSubject("frank")
				tt.sealed = c.Seal(msg, ad)
				c.destroy()
			}
			buf := make([]byte, 3, 256)
			copy(buf, "pre")
			got, err := c.OpenAppend(buf, tt.sealed, tt.ad)
			want, werr := c.Open(tt.sealed, tt.ad)
			if tt.wantErr != "" || tt.wantErrIs != nil {
				if err == nil || (tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs)) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OpenAppend = %q, %v; want an error %q %v", got, err, tt.wantErr, tt.wantErrIs)
				}
				if werr == nil || werr.Error() != err.Error() {
					t.Errorf("OpenAppend's error %v, Open's %v", err, werr)
				}
				return
			}
			if err != nil || werr != nil {
				t.Fatal(err, werr)
			}
			if string(got) != "pre"+string(msg) || !bytes.Equal(want, msg) {
				t.Fatalf("OpenAppend = %q, Open = %q; want %q after the prefix", got, want, msg)
			}
			if &got[0] != &buf[0] {
				t.Error("OpenAppend did not reuse dst's memory")
			}
		})
	}
}

// SealAppend appends what Seal makes, which Open opens, after dst's bytes
// and into its memory when it has room; a destroyed key gives nil.
func TestSealAppend(t *testing.T) {
	k := mustNew(t, 1)
	_, c, err := k.NewSubject("erin")
	if err != nil {
		t.Fatal(err)
	}
	msg, ad := []byte(`{"category":"books"}`), []byte("ad")
	buf := make([]byte, 0, 256)
	buf = append(buf, "prefix"...)
	out := c.SealAppend(buf, msg, ad)
	if string(out[:6]) != "prefix" || &out[0] != &buf[0] {
		t.Fatal("SealAppend did not append into dst's memory")
	}
	if len(out)-6 != len(msg)+c.Overhead() {
		t.Errorf("sealed %d bytes, want %d", len(out)-6, len(msg)+c.Overhead())
	}
	if got, err := c.Open(out[6:], ad); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("Open = %q, %v; want %q", got, err, msg)
	}
	_, gone, _ := k.NewSubject("frank")
	gone.destroy()
	if out := gone.SealAppend(buf, msg, ad); out != nil {
		t.Errorf("a destroyed key sealed %d bytes, want nil", len(out))
	}
}
