// Package label is the label engine of the profiling pipeline
// (collect → clean → segment → model → portrait): it turns a subject's
// profile values and events into derived labels.
//
//   - Rule labels are CEL expressions (cel.dev/cel-go), type-checked against
//     the label's declared inputs, with built-in aggregates over windows
//     (count, frequency, sum, mean, min, max, distinct, recency, monetary)
//     and a cost bound checked at load time and enforced at evaluation.
//   - RFM labels score recency, frequency and monetary value in quintiles
//     over the population and name a customer class.
//   - Segment labels cluster subjects by k-means (k-means++, seeded and
//     deterministic) over standardised numeric features and describe each
//     segment in plain words.
//   - Score labels evaluate a logistic or scorecard model; Train fits a
//     logistic model with gonum's LBFGS, and Counterfactual finds the
//     smallest change that flips the outcome.
//
// It keeps invariant 1, declared or refused: Check refuses a label whose
// rule does not compile, returns something other than bool, reads a name
// that is not among its declared inputs, has a bad window or an unbounded
// or excessive cost, or whose model or features are not declared numeric
// fields — each refusal names the label and LP-1. It keeps invariant 6,
// every automated output explains itself: a Value carries its label
// version, inputs, event span and the Facts (the aggregates, fields and
// contributions) that decided it, and Explain renders them as one sentence
// in Chinese or English.
//
// Rule variables: each input field is a top-level variable of its catalog
// type (number → double, string, bool, time → timestamp) holding the
// subject's latest value, or the type's zero value when absent; the map
// fields holds only the inputs that are present (`"age" in fields`).
// events is a list of maps with "type", "time", "age" (duration since now)
// and the event's fields; now is the evaluation time. Windows are written
// as in the catalog ("30d", "12h", "1y"). Aggregates over no events are 0;
// recency of a type never seen is 1e9 days.
//
// An Index holds a subject's events as one rule's aggregates read them —
// per event type in (time, id) order, one column per field read — so that
// EvalIndex finds each window by binary search and derivation can fold a
// new event into the index it kept (Index.With) instead of evaluating over
// the whole history; its values are Eval's to the bit.
package label
