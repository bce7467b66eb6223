// Package consent is Portrait's consent ledger: it records grants,
// refusals and withdrawals (one record per purpose, never bundled; CN-2),
// issues signed receipts that can be verified offline, applies Global
// Privacy Control opt-outs (CN-12), enforces guardian consent for minors
// (SM-3) and the notice version in force (CN-3), and keeps the other
// standing choices — restriction, objection, the personalisation dial,
// suppressed labels — and the regulator's suspensions (RO-6).
//
// Every change is made in one store transaction together with its audit
// record, so a change that cannot be logged is not made (invariant 3).
//
// The Ledger also keeps a coherent in-memory cache of governance state
// (invariant 5): each State or States call first reads the store's
// generation, which every governance change increments, and drops the cache
// and reloads the suspensions into the decision point when it moved. A
// withdrawal through any node therefore reaches the very next request on
// every node, at the cost of one small read per call. A request whose key
// check already read the generation passes it on (AtGeneration), so the
// read is made once per request; the request is then served as of that
// read, and a change committed after it binds the next request.
//
// Calls name their subject with ByID (staff, who know the external id; the
// ledger then creates the subject and its data key if no event has yet) or
// ByPseudonym (a subject token carries only the pseudonym; the subject must
// be stored). Other methods take the pseudonym, as the store does.
//
// Sensitive and sharing purposes (catalog separate_consent, SM-2 and CN-8)
// need no special path: every consent is already its own record for one
// purpose, so separate consent is what the ledger always records; receipts
// for such purposes say so (separate_consent: true).
package consent
