// Package apply is where portraits meet people: recommendations,
// automated decisions with their explanations, and audiences (see
// audience.go). Every application crosses the decision point (invariant
// 2) and is recorded in the audit log before its result is returned
// (invariant 3).
package apply
