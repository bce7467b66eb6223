package derive

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
)

// memo is what an incremental derivation keeps of a subject between
// calls, so that the next one reads, decrypts and decodes only what is
// new (Store.EventsAfter from mark): its decoded events in time order, and
// the label values this engine stored last (the subject's opened key is
// kept beside it, in the engine's keys.Opened, for the same generation). It
// is never changed once made; a derivation makes a new one after its
// write commits.
//
// It is personal data in memory, so it lives only as long as the
// governance generation it was made at (invariant 5): a consent change,
// an objection, a suppression or an erasure anywhere bumps the
// generation, and the next derivation on every node reads the
// generation (one row, with the states) and drops every memo before it
// uses one. The retention sweep rewrites or deletes an event without
// bumping it, and "events after" does not bring back an event rewritten
// under its id, so a memo holding an event whose expiry has come is not
// used either (expires): the subject is read in full again.
type memo struct {
	events []label.Event // in time order, then id
	ids    []int64       // the events' ids, parallel
	// tail holds the events read since events was last merged, in the
	// order they arrived, with their ids: all of them newer than any
	// id in events when read (fold.go). A subject's events are events
	// and tail merged.
	tail    []label.Event
	tailIDs []int64
	mark    portrait.EventMark
	expires time.Time // the earliest expiry of an event held; zero if none expires
	stored  map[string]Stored
	views   map[*entry]*narrowed // the labels derived last, their events narrowed to their grants
	// bare: the subject had no label with a lawful basis, so nothing was
	// read; the memo says only that none of its labels is stored.
	bare bool
}

// usable reports whether the memo may stand in for the store at now:
// none of its events is due for the retention sweep.
func (m *memo) usable(now time.Time) bool {
	return m.expires.IsZero() || now.Before(m.expires)
}

// maxMemos bounds the subjects remembered; when full, the memos are
// simply dropped, since rebuilding one costs the read it saved.
const maxMemos = 10_000

// memos holds the memos of one governance generation and compiled catalog.
type memos struct {
	mu   sync.Mutex
	gen  int64
	comp *compiled
	m    map[portrait.Pseudonym]*memo
}

// at returns the memos of pseudonyms at generation gen under catalog c,
// dropping every memo first if either moved.
func (ms *memos) at(gen int64, c *compiled, pseudonyms []portrait.Pseudonym) map[portrait.Pseudonym]*memo {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.gen != gen || ms.comp != c {
		ms.gen, ms.comp, ms.m = gen, c, nil
		return nil
	}
	var out map[portrait.Pseudonym]*memo
	for _, ps := range pseudonyms {
		if m, ok := ms.m[ps]; ok {
			if out == nil {
				out = make(map[portrait.Pseudonym]*memo, len(pseudonyms))
			}
			out[ps] = m
		}
	}
	return out
}

// keep remembers what the subjects of a written page now hold, if the
// generation and catalog they were derived under are still current.
func (ms *memos) keep(gen int64, c *compiled, work []*subject) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.gen != gen || ms.comp != c {
		return
	}
	if ms.m == nil || len(ms.m)+len(work) > maxMemos {
		ms.m = make(map[portrait.Pseudonym]*memo, len(work))
	}
	for _, s := range work {
		if len(s.grants) == 0 && s.failed == 0 && len(s.values) == 0 {
			// Every label was deleted or is known not stored.
			ms.m[s.ps] = &memo{bare: true, stored: map[string]Stored{}}
			continue
		}
		if s.cipher == nil || s.failed > 0 || s.events == nil && s.memo == nil {
			delete(ms.m, s.ps) // not read in full: rebuild from the store next time
			continue
		}
		// s.events and s.ids are the subject's own (open made them), and
		// nothing changes them after the derivation.
		m := &memo{events: s.events, ids: s.ids, tail: s.tail, tailIDs: s.tailIDs, mark: s.mark, expires: s.expires, views: s.views}
		m.stored = maps.Clone(s.stored)
		if m.stored == nil {
			m.stored = map[string]Stored{}
		}
		for _, v := range s.fresh {
			m.stored[v.Label] = v
		}
		for _, id := range s.remove {
			delete(m.stored, id)
		}
		ms.m[s.ps] = m
	}
}

// drop forgets the subjects of a page.
func (ms *memos) drop(work []*subject) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, s := range work {
		delete(ms.m, s.ps)
	}
}

// subjectKeys returns, for an incremental page read at generation gen,
// the opened keys kept for it (keys.Opened) and the stored subject rows
// of the others, but for subjects with a bare memo; a batch page reads
// every row. A key or memo kept at gen means the subject was not erased
// since (erasure bumps the generation).
func (e *Engine) subjectKeys(ctx context.Context, gen int64, pseudonyms []portrait.Pseudonym, mems map[portrait.Pseudonym]*memo, incremental bool) (map[portrait.Pseudonym]*keys.Cipher, map[portrait.Pseudonym]portrait.SubjectKey, error) {
	var opened map[portrait.Pseudonym]*keys.Cipher
	need := pseudonyms
	if incremental {
		need = nil
		for _, ps := range pseudonyms {
			if m := mems[ps]; m != nil && m.bare {
				continue // stored at gen (erasure moves it), and no key needed
			}
			if c, ok := e.opened.Get(gen, ps); ok {
				if opened == nil {
					opened = make(map[portrait.Pseudonym]*keys.Cipher, len(pseudonyms))
				}
				opened[ps] = c
				continue
			}
			need = append(need, ps)
		}
	}
	if len(need) == 0 {
		return opened, nil, nil
	}
	stored, err := e.store.Subjects(ctx, need)
	if err != nil {
		return nil, nil, fmt.Errorf("derive: load subjects: %w", err)
	}
	return opened, stored, nil
}

// deletions returns the labels the write must delete: those removed,
// less the labels without a lawful basis that the memo knows are not
// stored. Such a label was deleted (or never stored) when the memo was
// made, and only a derivation under a lawful basis stores it again, which
// needs a governance change (a new generation, so no memo) or this
// engine's own write (which the memo records). A node running another
// catalog may store it meanwhile; the next full read (after any
// generation change, or a memo dropped) deletes it, and every read
// decides each label again under the reader's catalog.
func (s *subject) deletions() []string {
	if s.memo == nil || s.ungranted == 0 {
		return s.remove
	}
	var out []string
	for i, id := range s.remove {
		if _, ok := s.memo.stored[id]; ok || i >= s.ungranted {
			out = append(out, id)
		}
	}
	return out
}

// nothingToWrite reports whether a page has no value to store and no
// label to delete.
func nothingToWrite(work []*subject) bool {
	for _, s := range work {
		if len(s.values) > 0 || len(s.deletions()) > 0 {
			return false
		}
	}
	return true
}

// checkMemo drops a memo the subject cannot derive from: one whose key
// was dropped from keys.Opened, or a bare memo now that some label has a
// basis (a population model fitted since). Both read in full instead.
func (s *subject) checkMemo() {
	if s.memo == nil || len(s.grants) == 0 {
		return
	}
	if s.memo.bare || s.cipher == nil {
		s.memo = nil
	}
}

// rows reads the subject rows a page still lacks: subjects whose bare
// memo stood in for the row and that now have a label to derive. Those
// erased meanwhile leave the page.
func (e *Engine) rows(ctx context.Context, work []*subject) ([]*subject, error) {
	var need []portrait.Pseudonym
	for _, s := range work {
		if s.cipher == nil && s.subj.Pseudonym == "" && len(s.grants) > 0 {
			need = append(need, s.ps)
		}
	}
	if len(need) == 0 {
		return work, nil
	}
	stored, err := e.store.Subjects(ctx, need)
	if err != nil {
		return nil, fmt.Errorf("derive: load subjects: %w", err)
	}
	return slices.DeleteFunc(work, func(s *subject) bool {
		if s.cipher != nil || s.subj.Pseudonym != "" || len(s.grants) == 0 {
			return false
		}
		subj, ok := stored[s.ps]
		s.subj = subj
		return !ok
	}), nil
}

// withRoom returns a copy of s with capacity for n more elements, in one
// allocation (slices.Grow of slices.Clone copies twice).
func withRoom[S ~[]E, E any](s S, n int) S {
	out := make(S, len(s), len(s)+n)
	copy(out, s)
	return out
}
