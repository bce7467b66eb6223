// Package policy is Portrait's single policy decision point.
//
// Decide answers whether a caller may take an action on one subject's data
// for one purpose, consulting the catalog (declared purposes and fields),
// the subject's consents and flags (restriction, objection, minors,
// suppressed labels) and the regulator's suspensions. An allow carries a
// Grant, which only this package can mint; store methods that read or write
// personal data demand one (invariant 2). Every refusal names the rule that
// refused, with the requirement id (CN-1, SR-7, RO-6, …), so that a person
// can act on it.
package policy
