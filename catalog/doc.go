// Package catalog loads and validates the declarations file — purposes,
// fields, event types, labels and use-cases — that says what the company may
// collect and do ("privacy as code").
//
// It keeps invariant 1, declared or refused: anything not declared here is
// rejected elsewhere, and a declaration that breaks a rule (no retention,
// no legal basis, a sensitive field without separate consent, an unknown
// fideslang key) is rejected here with file:line:column, what is wrong and
// how to fix it.
package catalog
