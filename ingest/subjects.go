package ingest

import (
	"context"

	portrait "github.com/portrait-dev/portrait"
)

// Ingest keeps the subject rows it has read at one governance generation
// (Ingester.subjects, a keys.Kept), so that the next chunk at the same
// generation does not read them again: a request's subjects are mostly
// those of the one before, and the read was a tenth of a governed chunk's
// CPU.
//
// It is exactly as fresh as the generation check already makes a chunk:
// the only change to a stored subject's key is its erasure, which bumps
// the generation in the same transaction (tables.Tx.Erase), on whichever
// node it runs, and a chunk reads the generation from the store before it
// reads its subjects. An entry is used only by a chunk that read the
// generation the entry was read at, so every erasure that chunk's read
// would have seen is behind the entry too; an erasure after that is
// caught by the commit, which reads the generation again inside the
// transaction and decides the chunk again from the transaction's own
// reads (commit). Subjects new since the entry was read are misses and
// read from the store.

// subjectCacheMax bounds what is kept: past it the cache starts again,
// so a stream of ever-new subjects does not hold their wrapped keys.
const subjectCacheMax = 1 << 14

// cachedSubjects reads subjects through the Ingester's cache at gen, the
// generation its chunk read; the transaction's reads (commit) never use it.
type cachedSubjects struct {
	in  *Ingester
	gen int64
}

func (r cachedSubjects) Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error) {
	kept := &r.in.subjects
	out := make(map[portrait.Pseudonym]portrait.SubjectKey, len(pseudonyms))
	var miss []portrait.Pseudonym
	for _, ps := range pseudonyms {
		if s, ok := kept.Get(r.gen, ps); ok {
			out[ps] = s
		} else {
			miss = append(miss, ps)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	stored, err := r.in.store.Subjects(ctx, miss)
	if err != nil {
		return nil, err
	}
	for ps, s := range stored {
		kept.Put(r.gen, ps, s)
		out[ps] = s
	}
	return out, nil
}
