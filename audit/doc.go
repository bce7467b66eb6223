// Package audit provides Portrait's tamper-evident audit log: an
// append-only Merkle tree of audit records with signed checkpoints,
// inclusion and consistency proofs, and a client-side verifier that an
// outsider can run against a server (requirements FA-5, FA-6).
//
// The tree is the one of RFC 6962 §2.1 (Certificate Transparency), built
// with golang.org/x/mod/sumdb/tlog as described by Russ Cox in
// "Transparent Logs for Skeptical Clients" (https://research.swtch.com/tlog):
// each record n adds its leaf hash and the roots of the complete subtrees
// it finishes, at storage indexes tlog.StoredHashIndex(0, n) onwards, so
// an append reads at most log₂ n earlier hashes and writes about two.
// Records are stored one per portrait.LogEntry with those hashes; a store
// finds the entry holding a stored hash with EntryForHash.
//
// Checkpoints follow C2SP tlog-checkpoint
// (https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md): the body
// "origin\nsize\nbase64(root hash)\n" signed as a C2SP signed note
// (https://github.com/C2SP/C2SP/blob/main/signed-note.md) with an Ed25519
// key named after the origin. Proofs and checkpoints therefore verify with
// independent implementations such as github.com/transparency-dev/merkle
// and github.com/transparency-dev/formats/log, as the tests show.
//
// Invariant 3 (fail closed): Log.Append runs inside the store transaction
// of the action it records and returns every failure, so that the caller's
// transaction rolls back and an action that cannot be logged does not
// happen. Invariant 4: records hold pseudonyms and digests, never personal
// data, so the log can be kept for the system's lifetime.
//
// Invariant 8 (nothing unverified is trusted): the store is not trusted.
// A Verifier keeps a verified head, a size up to which every record's
// hashes were recomputed from its data, and hands out records only after
// checking them against it (ReadVerified, ReadVerifiedKinds, CheckEntries):
// their data gives the root of the tree together with the stored proof
// hashes, and their kind column (an index no hash covers) equals the kind
// in the hashed record. The head starts at the newest stored checkpoint
// signed by the log's key, or at a full streaming check (Check, run by the
// server on start), and the Log signs only heads it has verified, so a
// record edited in the store is never signed over. A mismatch is
// ErrTampered; nothing outside this package parses record data (Decode).
package audit
