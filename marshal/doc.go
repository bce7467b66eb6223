// Package marshal appends values as encoding/json's Marshal writes them,
// byte for byte, without reflection.
//
// Audit records are hashed into the log, ingested events are hashed into
// a chunk's digest and sealed, and label values are sealed; all of them
// are read back with encoding/json. Encoding with reflection was a large
// part of each of those paths (issue 14), so each had grown its own
// reflection-free encoder. This package is the one they share.
//
// Invariant: for every value it is given, the bytes (and any error) are
// exactly json.Marshal's; a type it does not write itself goes to
// json.Marshal whole. The tests compare the two.
package marshal
