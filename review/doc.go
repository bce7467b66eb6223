// Package review is human review of automated decisions (AD-2, AD-3,
// AD-7, RO-7): a subject appeals a decision with a statement, or refuses a
// purely automated one; reviewers work a queue, see the case with its
// explanation and the statement, and uphold or overturn it with a reason
// by a deadline; the subject sees the outcome.
//
// It enforces separation of duties (RO-7). Staff API keys are named
// "team/person" (package apikey; keys stored before names existed carry
// their id): a reviewer whose team is the owner of the use-case or of its
// model — catalog owner strings, compared without case — may not review
// its decisions, and a reviewer whose person part (or whole name) is the
// appellant's subject id, compared as keyed pseudonyms, may not review
// their own appeal.
//
// Reading a case's sealed explanation and statement is processing the
// subject asked for: the reviewer reads them through an Access grant the
// decision point gives Portrait's review service on the subject's behalf,
// and every view and outcome is recorded in the audit log (invariants 2
// and 3). Statements are sealed with the subject's data key, so erasure
// makes them unreadable with the rest (invariant 4).
package review
