// Package ingest is the governed intake of behavioural events (CM-1, CM-3).
//
// Each event is checked against the catalog (declared type, declared
// fields for that type, declared value types; invariant 1), then each field
// is kept only if one of its purposes has a lawful basis for that subject
// (minimum necessary, decided by the policy point, which mints the Grant the
// store demands: invariant 2). Values are sealed with the subject's data key
// before they reach the store (invariant 4), and the batch is stored in the
// same transaction as its audit record (invariant 3). One bad event never
// blocks the good ones. The sweeper deletes values past their retention.
package ingest
