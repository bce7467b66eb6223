// Package rights handles data-subject requests: access and signed export
// (SR-1, SR-2), correction (CM-2), erasure with a signed receipt (SR-3),
// restriction and objection (SR-7, CM-4), label control (LP-3), the
// personalisation dial (LP-4, LP-5), and the privacy notice generated from
// the catalog (CN-7, CN-10, LP-6).
//
// Every request is a tracked case with a deadline (SR-4, SR-5); those that
// can be fulfilled automatically are fulfilled at once. Every read and
// write of personal values goes through a Grant from the policy decision
// point (invariant 2) and every change is recorded in the audit log in the
// same transaction (invariant 3). Erasure deletes the subject's wrapped
// data key and everything derived, so nothing readable stays behind
// (invariant 4).
package rights
