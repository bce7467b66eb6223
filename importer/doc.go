// Package importer loads events from files — CSV with a header, NDJSON in
// the shape POST /v1/events takes, and the whitespace-separated CDNOW
// purchase log — through the same governed path as the API:
// ingest.Ingester.Ingest, in batches of 1,000. Nothing is written around
// the decision point (invariant 2): every row is validated against the
// catalog, minimised, authorised and sealed, and every batch is audited.
//
// Columns map to declared fields by name, or by an explicit mapping
// (column=field); a column that is neither is refused before anything is
// loaded (invariant 1). Each row that is rejected, or loses a field, is
// reported with its line number, the field and the reason. Rows get an
// idempotency key from the source name and line number, so importing the
// same file again stores nothing twice.
package importer
