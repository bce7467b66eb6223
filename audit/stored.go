package audit

import (
	portrait "github.com/portrait-dev/portrait"
)

// HashRecords returns the log records whose entries hold the stored
// hashes at indexes (see EntryForHash), each once, in first-seen order: a
// store fetches their Hashes in one query and hands them to PickHashes.
func HashRecords(indexes []int64) ([]int64, error) {
	records := make([]int64, 0, len(indexes))
	seen := make(map[int64]bool, len(indexes))
	for _, x := range indexes {
		if x < 0 {
			return nil, portrait.Errorf(portrait.EINVALID, "log hash index %d is negative", x)
		}
		r, _ := EntryForHash(x)
		if !seen[r] {
			seen[r] = true
			records = append(records, r)
		}
	}
	return records, nil
}

// PickHashes takes the stored hash at each index out of the Hashes of the
// record that produced it; hashes maps record index to LogEntry.Hashes.
func PickHashes(indexes []int64, hashes map[int64][]byte) ([][32]byte, error) {
	out := make([][32]byte, len(indexes))
	for i, x := range indexes {
		r, off := EntryForHash(x)
		h, ok := hashes[r]
		if !ok {
			return nil, portrait.Errorf(portrait.ENOTFOUND, "log hash %d: record %d is not in the log", x, r)
		}
		if (off+1)*HashSize > len(h) {
			return nil, portrait.Errorf(portrait.ENOTFOUND, "log hash %d: record %d stores %d hashes, want at least %d", x, r, len(h)/HashSize, off+1)
		}
		copy(out[i][:], h[off*HashSize:])
	}
	return out, nil
}
