// Package portrait is the vocabulary of Portrait, a user-profiling engine
// with the law built in: the domain types (events, consent records,
// subjects, stored values) and the Store contract that the sqlite and
// postgres packages implement.
//
// The declarations (purposes, fields, labels, use-cases) live in package
// catalog and the decision point with its Grant in package policy; this
// package re-exports their names so that a reader learns the system here.
// Store methods that read or write personal values take a policy.Grant,
// which only the decision point can mint (invariant 2).
package portrait

import (
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// Declarations, defined in package catalog.
type (
	Catalog   = catalog.Catalog
	Purpose   = catalog.Purpose
	Field     = catalog.Field
	EventType = catalog.EventType
	Label     = catalog.Label
	UseCase   = catalog.UseCase
)

// Governance, defined in package policy.
type (
	Grant      = policy.Grant
	Caller     = policy.Caller
	Suspension = policy.Suspension
)
