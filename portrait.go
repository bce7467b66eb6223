// Package portrait is the vocabulary of Portrait, a user-profiling engine
// with the law built in: the domain types (events, consent records,
// subjects, stored values) and the Store contract that the sqlite and
// postgres packages implement.
//
// The declarations (purposes, fields, labels, use-cases) live in package
// catalog and the decision point with its Grant in package policy. Store
// methods that read or write personal values take a policy.Grant, which
// only the decision point can mint; package guard checks every one before
// an engine runs (invariant 2).
package portrait
