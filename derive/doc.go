// Package derive is the store-backed derivation of labels: it turns the
// events and profile values a subject's grants let it read into label
// values (rule, score, RFM and segment labels, computed by package label),
// seals them with the subject's data key and stores them with their
// provenance.
//
// Derivation runs in two ways. Engine.Subjects recomputes the labels of a
// few subjects after new data arrives (ingest calls it through
// ingest.Options.OnStored), and only those labels whose inputs could have
// changed: a label whose event types and fields saw no new event, whose
// profile fields were not updated and whose version is current keeps its
// stored value. Engine.All pages through every subject, computes the rule
// and score labels, then the population-wide RFM quintiles and k-means
// segments, and stores them; the population model it fits (quintile
// breakpoints, segment centres) is kept so that later incremental updates
// place a subject against it.
//
// It keeps invariant 2, governance by construction: every value is
// computed only after the decision point allowed Derive for one of the
// label's purposes, with the label itself named so that a suppressed label
// is refused (LP-3); events and profile values are read through that
// grant, and only the fields it covers reach the rule. A label none of
// whose purposes has a lawful basis — consent withdrawn (CN-4), objection
// to profiling or restriction (SR-7), a suspension (RO-6) — is deleted
// instead of computed. Every batch of writes is recorded in the audit log
// (invariant 3): counts and label ids, never personal values.
//
// Between incremental derivations the engine keeps, per subject, the
// opened key, the decoded events, each label's events narrowed to its
// grant and the values it stored last, so that the next derivation reads
// and decodes only the events committed since (Store.EventsAfter); a rule
// label an index serves (label.Index) is evaluated from the index it kept,
// with the new events folded in, not over the whole history. What
// it keeps is tagged with the governance generation read with the states,
// and dropped when the generation moves: a withdrawal, objection,
// suppression or erasure on any node binds the next derivation on every
// node (invariant 5). It is not used once an event it holds is due for
// the retention sweep, which rewrites events without moving the
// generation (CM-3).
//
// Stored values are the JSON of label.Value (with one more key,
// "seen_event", the newest event id the value has read), sealed with
// AES-GCM under the subject key with the additional data
// pseudonym + "/label/" + label id, so a value cannot be moved to another
// subject or label.
package derive
