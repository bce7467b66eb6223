// Package guard enforces invariant 2 — no personal value is read or
// written without a policy.Grant from the decision point — once, for every
// store engine.
//
// A Store implements portrait.Store over an Engine, which runs SQL and
// knows nothing of grants: its methods are keyed by pseudonym. The guard
// checks each grant before it calls the engine, so a refused call never
// reaches the data, and it filters what a read returns down to the fields
// the grant covers. The sqlite and postgres packages return their engines
// wrapped in a Store; neither calls a grant check itself.
//
// Where the engine's method would have the same signature as the
// contract's (the grants travel inside the values, as in InsertEvents),
// the guard defines the method itself; everywhere else the engine's
// pseudonym-keyed signature differs from the grant-taking one, so a
// grant-taking method the guard forgot would fail to compile rather than
// run unchecked.
package guard
