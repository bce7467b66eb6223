// Package demo ships the demo catalog inside the binary, so that
// `portrait demo` runs with nothing but the Go toolchain.
package demo

import _ "embed"

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
