// Package witness implements both sides of checkpoint witnessing: the
// Ed25519 cosignatures of C2SP tlog-cosignature
// (https://github.com/C2SP/C2SP/blob/main/tlog-cosignature.md) and the
// add-checkpoint exchange of C2SP tlog-witness
// (https://github.com/C2SP/C2SP/blob/main/tlog-witness.md).
//
// A regulator node cosigns a company's checkpoint only after checking that
// it is consistent with the last one it cosigned for that log; a client
// that requires the regulator's cosignature (Open) therefore sees no tree
// the regulator has not seen grow append-only from the one before
// (invariant 8, nothing unverified is trusted). The regulator's cosigner
// key is a note key of signature type 0x04, distinct from any log key.
//
// Cosignatures are ordinary signed-note signature lines, so the Signer and
// Verifier here plug into golang.org/x/mod/sumdb/note; tests check them
// against an independent implementation, filippo.io/torchwood.
package witness
