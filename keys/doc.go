// Package keys provides Portrait's key hierarchy: a 32-byte master secret,
// the keys derived from it with HKDF-SHA256 (RFC 5869), and what they are
// used for — envelope encryption of per-subject data keys, keyed
// pseudonyms, idempotency-key hashes, subject tokens and the Ed25519 keys
// that sign audit checkpoints and consent receipts.
//
// It keeps invariant 4, erasure is real: every personal payload is sealed
// with a per-subject AES-256-GCM data key, which is stored only wrapped by
// the master-derived wrapping key. Deleting the wrapped key (and calling
// Forget on every node's Keyring) leaves nothing readable, in the store or
// in its backups. Subjects appear outside the encrypted payloads only as
// HMAC-SHA256 pseudonyms, which cannot be reversed without the master.
//
// Only the standard library's crypto is used. No key material is ever
// printed: Keyring and Cipher format, log and marshal as a redacted
// placeholder (CM-5).
//
// The master key file holds one line, "portrait-master-key-v1:" followed by
// the standard base64 of the 32 bytes; the environment variable
// PORTRAIT_MASTER_KEY may carry the same text instead. Load refuses a key
// file that group or others can read (as ssh does for private keys): a
// master key readable by other accounts is a leak, not a warning.
package keys
