package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/policy"
)

// restorer is the caller of re-applied actions in the log.
var restorer = policy.Caller{Role: policy.System, ID: "restore"}

// catchUp runs before a joined engine serves anyone: it brings the log up
// to the regulator's newest cosigned checkpoint and re-applies what the
// missing entries record, so that a restored backup or a wound-back log
// never serves data an erasure, withdrawal or order had removed
// (invariant 8). A forked log is an error: the engine does not start.
func (a *app) catchUp(ctx context.Context) (int, error) {
	entries, err := a.link.Catchup(ctx, a.store)
	if err != nil {
		return 0, fmt.Errorf("catch up with the regulator's witnessed log: %w", err)
	}
	if err := a.replay(ctx, entries); err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return 0, nil
	}
	// The stored checkpoint is the backup's, smaller than what the
	// regulator cosigned; publish a cosigned one of the repaired log before
	// serving, so no outsider is shown a rolled-back head.
	note, err := a.log.Sign(ctx, a.store)
	if err != nil {
		return 0, fmt.Errorf("sign the repaired log: %w", err)
	}
	if err := a.publish(ctx, note); err != nil {
		return 0, fmt.Errorf("publish the repaired log's checkpoint: %w", err)
	}
	return len(entries), nil
}

// replay re-applies the erasures, consent withdrawals and refusals,
// restrictions and objections, suspensions and lifts, and the regulator's
// orders that entries record.
func (a *app) replay(ctx context.Context, entries []portrait.LogEntry) error {
	for _, e := range entries {
		// The entries were checked against the cosigned root by Catchup.
		r, err := audit.Decode(e.Data)
		if err != nil {
			return fmt.Errorf("log entry %d: %w", e.Index, err)
		}
		if err := a.reapply(ctx, r); err != nil {
			return fmt.Errorf("re-apply log entry %d (%s %s): %w", e.Index, r.Kind, r.Action, err)
		}
	}
	return nil
}

func (a *app) reapply(ctx context.Context, r audit.Record) error {
	switch {
	case r.Kind == "erasure" && r.Pseudonym != "":
		return a.erase(ctx, r.Pseudonym)
	case r.Kind == "consent" && r.Pseudonym != "" && r.Action != policy.Granted.String():
		st, err := a.ledger.States(ctx, []portrait.Pseudonym{r.Pseudonym})
		if err != nil {
			return err
		}
		s := st[r.Pseudonym]
		if s == nil || s.Consents[r.Purpose].Status != policy.Granted {
			return nil
		}
		// The subject's consent in the restored store is still granted:
		// withdraw it again, on the channel "restore".
		_, err = a.ledger.Record(ctx, restorer, consent.ByPseudonym(r.Pseudonym), consent.Change{Purpose: r.Purpose, Status: policy.Withdrawn, Channel: "restore"})
		return err
	case r.Kind == "flags" && r.Pseudonym != "":
		// The record carries the restriction and objections it set
		// (consent.Choices); older records carry only a digest, and are
		// skipped.
		st, err := a.ledger.State(ctx, r.Pseudonym)
		if err != nil {
			return err
		}
		f := portrait.Flags{Minor: st.Minor, Restricted: st.Restricted, ObjectProfiling: st.ObjectProfiling,
			ObjectMarketing: st.ObjectMarketing, Personalization: st.Personalization}
		was := f
		if !consent.Choices(r, &f) || f == was {
			return nil
		}
		err = a.ledger.SetFlags(ctx, restorer, r.Pseudonym, f, r.Action)
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			return nil // erased since, or not in the backup
		}
		return err
	case r.Kind == "order" && r.Action == "apply" && a.enforcer != nil:
		// The order's own effects are re-applied from their records
		// (suspension above; a receivership registers its receiver's key
		// again); the regulator is told where the order now stands.
		return a.enforcer.Reapply(ctx, r)
	case r.Kind == "suspension":
		kind, _ := r.Detail["kind"].(string)
		id, _ := r.Detail["id"].(string)
		reason, _ := r.Detail["reason"].(string)
		caller := policy.Caller{Role: policy.Regulator, ID: "restore"}
		var err error
		if r.Action == "suspend" {
			err = a.ledger.Suspend(ctx, caller, policy.Suspension{Kind: kind, ID: id, Reason: reason})
		} else if r.Action == "lift" {
			err = a.ledger.Lift(ctx, caller, kind, id)
		}
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			return nil
		}
		return err
	}
	return nil
}

// erase erases a subject again if the store still holds it.
func (a *app) erase(ctx context.Context, pseudonym portrait.Pseudonym) error {
	subs, err := a.store.Subjects(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return err
	}
	if _, ok := subs[pseudonym]; !ok {
		return nil
	}
	_, err = a.rights.Erase(ctx, restorer, pseudonym)
	return err
}

// journal is the erasure journal of an engine without a regulator
// (--erasure-journal): one pseudonym per line, appended and synced after
// every erasure, kept apart from the database and its backups, and
// replayed on start so that restoring a backup does not revive an erased
// subject. Pseudonyms are keyed hashes, not personal data (invariant 4).
type journal struct {
	mu   sync.Mutex
	path string
}

// add appends pseudonym to the journal.
func (j *journal) add(pseudonym portrait.Pseudonym) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("erasure journal: %w", err)
	}
	if _, err := f.WriteString(string(pseudonym + "\n")); err != nil {
		f.Close()
		return fmt.Errorf("erasure journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("erasure journal: %w", err)
	}
	return f.Close()
}

// pseudonyms reads the journal; a missing journal is empty.
func (j *journal) pseudonyms() ([]portrait.Pseudonym, error) {
	f, err := os.Open(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	defer f.Close()
	var out []portrait.Pseudonym
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		if strings.ContainsAny(p, " \t") {
			return nil, fmt.Errorf("erasure journal %s:%d: not a pseudonym", j.path, n)
		}
		out = append(out, portrait.Pseudonym(p))
	}
	return out, sc.Err()
}

// replayJournal erases again every journalled subject the store holds.
func (a *app) replayJournal(ctx context.Context, j *journal) (int, error) {
	ps, err := j.pseudonyms()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps {
		subs, err := a.store.Subjects(ctx, []portrait.Pseudonym{p})
		if err != nil {
			return n, err
		}
		if _, ok := subs[p]; !ok {
			continue
		}
		if _, err := a.rights.Erase(ctx, restorer, p); err != nil {
			return n, fmt.Errorf("replay erasure journal: %w", err)
		}
		n++
	}
	return n, nil
}
