// Package demo ships the demo catalog inside the binary, so that
// `portrait demo` runs with nothing but the Go toolchain.
package demo

import (
	_ "embed"

	"github.com/portrait-dev/portrait/apply"
)

// Catalog is examples/demo/catalog.yaml.
//
//go:embed catalog.yaml
var Catalog []byte

// CatalogName is the path the catalog is reported under in errors.
const CatalogName = "examples/demo/catalog.yaml"

// Assessment is examples/demo/assessment.json: the demo's answers to PIPL
// Art. 56's questions for its high-tier use-case credit_limit, signed by
// two named people (apply.Answers; portrait assess --answers).
//
//go:embed assessment.json
var Assessment []byte

// Answers returns Assessment as parsed answers. The file is embedded and
// checked by this package's test, so a parse error is a build defect and
// panics.
func Answers() apply.Answers {
	a, err := apply.ParseAnswers(Assessment)
	if err != nil {
		panic("examples/demo/assessment.json: " + err.Error())
	}
	return a
}
