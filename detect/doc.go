// Package detect finds personal data where the catalog says there is none:
// resident ID numbers, bank card numbers, mainland mobile numbers, e-mail
// addresses, precise coordinates and the rule pack's sensitive terms in the
// values of fields declared non-sensitive (SM-1).
//
// Invariant: a Finding never carries the value it was found in, only its
// kind and the field, so a refusal can say what was found without
// repeating it into a response, a log or the audit record.
//
// Digits are read after the rule pack's normaliser (rules.Fold: NFKC, so
// full-width digits count), and lexicon terms are matched by the pack's own
// Match; e-mail addresses and coordinates are read after NFKC alone, since
// Fold turns the "@" and "." they are made of into separators.
package detect
