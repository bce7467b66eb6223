// Package delivery carries audience membership changes and subject-rights
// events — erasure, withdrawal of consent, objection, restriction — from
// Portrait to the systems a company has configured as destinations, so
// that where personal data went, the subject's choice follows (PIPL
// Art. 23, GDPR Art. 19).
//
// The outbox is the audit log. Every such action is recorded there in the
// same store transaction as the action itself (invariant 3), so an action
// that happened always has its record, and a record always stands for an
// action that happened. The Dispatcher tails the log by kind from a cursor
// and delivers one event per record and destination; the event id is the
// log origin and index, stable across retries and restarts, so a receiver
// deduplicates by it (webhook-id). Events carry the subject's pseudonym,
// never the raw id (invariant 4).
//
// Webhooks are signed per the Standard Webhooks specification
// (https://www.standardwebhooks.com): headers webhook-id,
// webhook-timestamp and webhook-signature "v1,base64(HMAC-SHA256(secret,
// id.timestamp.body))" with a "whsec_" secret. Failed deliveries are
// retried with exponential backoff and then kept in a dead-letter list
// that can be listed and replayed.
//
// The dispatcher's own state — its cursor, dead letters and replays — is
// kept in the same log, so it survives restarts and is itself evidence of
// who was told what. Delivery is at least once: a crash between sending
// and recording the cursor resends, which receivers absorb by webhook-id.
//
// Audiences: a destination may take audiences (Destination.Audiences).
// The dispatcher materialises them through the decision point — pseudonyms,
// or ids only for an assessed identified output (CM-6) — and logs each
// change as a "joined" or "left" record naming destination and audience;
// those records are the outbox of the membership events and the account
// of which destination received whose data. A destination that takes
// audiences receives rights events only about subjects it received; one
// that takes none receives all of them. Recipients reads the account back
// for the subject's export (PIPL Art. 23, GDPR Art. 19).
package delivery
