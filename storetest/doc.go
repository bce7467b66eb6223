// Package storetest is the conformance suite of portrait.Store: one set of
// tests that every engine runs against a fresh store of its own, so that
// SQLite and PostgreSQL keep one contract (invariant 7).
//
// The suite checks the contract's guarantees rather than an engine's
// internals: grants from the real decision point are demanded by every
// method that reads or writes personal values, and a zero or mismatched
// grant writes nothing (invariant 2); Update commits everything or
// nothing, and a failed audit append undoes the action it records
// (invariant 3); erasure removes the wrapped key and everything derived
// (invariant 4); governance changes move the generation (invariant 5); the
// log's stored hashes rebuild the same Merkle tree as package tlog.
//
// It also holds the shared benchmarks, which each engine's tests call.
package storetest
