package audit

import (
	"context"
	"fmt"
	"slices"
	"sync"

	portrait "github.com/portrait-dev/portrait"
)

// Memory is an in-process log store satisfying Writer and Reader. It is
// not transactional: it serves tests and tools that need a log without a
// database. It answers LogHashes from the entries, as the SQL stores do,
// through EntryForHash.
type Memory struct {
	mu         sync.RWMutex
	entries    []portrait.LogEntry
	checkpoint []byte
}

var (
	_ Writer     = (*Memory)(nil)
	_ Reader     = (*Memory)(nil)
	_ KindReader = (*Memory)(nil)
)

// LogSize implements Reader.LogSize and Writer.LogSize.
func (m *Memory) LogSize(ctx context.Context) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.entries)), nil
}

// LogEntries implements Reader.LogEntries: entries from ≤ i < to.
func (m *Memory) LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "log entries [%d, %d): want 0 <= from <= to", from, to)
	}
	if to > int64(len(m.entries)) {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "log entries [%d, %d): the log has %d", from, to, len(m.entries))
	}
	return append([]portrait.LogEntry(nil), m.entries[from:to]...), nil
}

// LogEntriesOfKind implements KindReader.LogEntriesOfKind.
func (m *Memory) LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error) {
	es, err := m.LogEntries(ctx, from, min(to, int64(len(m.entries))))
	if err != nil {
		return nil, err
	}
	var out []portrait.LogEntry
	for _, e := range es {
		if slices.Contains(kinds, e.Kind) {
			out = append(out, e)
		}
	}
	return out, nil
}

// LogHashes implements Reader.LogHashes and Writer.LogHashes.
func (m *Memory) LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([][32]byte, len(indexes))
	for i, x := range indexes {
		if x < 0 {
			return nil, fmt.Errorf("stored hash %d: negative index", x)
		}
		rec, off := EntryForHash(x)
		if rec >= int64(len(m.entries)) {
			return nil, portrait.Errorf(portrait.ENOTFOUND, "stored hash %d: entry %d is not in the log of %d", x, rec, len(m.entries))
		}
		h := m.entries[rec].Hashes
		if (off+1)*HashSize > len(h) {
			return nil, portrait.Errorf(portrait.ENOTFOUND, "stored hash %d: entry %d holds %d hashes, not %d", x, rec, len(h)/HashSize, off+1)
		}
		copy(out[i][:], h[off*HashSize:])
	}
	return out, nil
}

// AppendLog implements Writer.AppendLog; entries must continue the log.
func (m *Memory) AppendLog(ctx context.Context, entries []portrait.LogEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := portrait.CheckAppend(int64(len(m.entries)), entries); err != nil {
		return err
	}
	m.entries = append(m.entries, entries...)
	return nil
}

// SaveCheckpoint implements Writer.SaveCheckpoint.
func (m *Memory) SaveCheckpoint(ctx context.Context, note []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checkpoint = append([]byte(nil), note...)
	return nil
}

// Checkpoint implements Reader.Checkpoint.
func (m *Memory) Checkpoint(ctx context.Context) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.checkpoint, nil
}
