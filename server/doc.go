// Package server is Portrait's HTTP API: JSON under /v1, OpenAPI 3.0 at
// /openapi.json generated from the route table and the Go types each route
// decodes and encodes (contract.go; the tests fail when a handler reads or
// writes other than the document says), RFC 9457 problem+json
// errors, Prometheus metrics at /metrics, and the audit-log endpoints that
// outsiders verify.
//
// It is the only package that knows HTTP. Every route lists the roles that
// may call it and everything else is refused (deny by default); a subject
// token reaches only its own subject. Handlers never touch personal data
// directly: they go through ingest, consent and the stores, which demand a
// policy.Grant (invariant 2), and an action whose audit record cannot be
// written is refused (invariant 3).
package server
