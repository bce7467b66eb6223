package rules

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// DefaultKey is the verifier key of the default pack. Its signing key is
// held offline by the project's release maintainers and is not in the
// repository, so nobody who builds or runs Portrait can sign a pack that
// verifies with it; an edited default.pack fails verification and the
// binary refuses to start.
const DefaultKey = "portrait-rules-default+37f1e3bb+AVYKNKJzWWEjaJwku330jyf5B9iSjm2BQYMhIIzKBx7x"

//go:embed default.pack
var defaultPack []byte

var def struct {
	once sync.Once
	p    *Pack
	err  error
}

// Default returns the embedded default pack, verified with DefaultKey. It
// panics if the embedded pack does not verify: a binary built from an
// altered pack must not run (the tests catch it first).
func Default() *Pack {
	def.once.Do(func() {
		def.p, def.err = Open(defaultPack, mustVerifiers())
	})
	if def.err != nil {
		panic("rules: embedded default pack: " + def.err.Error())
	}
	return def.p
}

// Verifiers returns the keys a pack given with --pack is checked against:
// the default pack key and extra, the regulator's key when the engine is
// joined to one. A company key is never among them.
func Verifiers(extra ...string) (note.Verifiers, error) {
	var vs []note.Verifier
	for _, k := range append([]string{DefaultKey}, extra...) {
		v, err := note.NewVerifier(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("rule pack verifier key %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

func mustVerifiers() note.Verifiers {
	v, err := Verifiers()
	if err != nil {
		panic(err)
	}
	return v
}

// DefaultPack returns a copy of the embedded default pack as signed.
func DefaultPack() []byte { return append([]byte(nil), defaultPack...) }
