package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/rules"
)

// A joined engine keeps a copy of the regulator's rule pack in force in
// its own audit log (a record of kind packCopyKind holding the document
// the pack was verified from), so that a restart while the regulator
// cannot be reached checks the catalog against the regulator's pack, not
// the embedded default. The copy is not trusted for being in the log: it
// is verified again with the regulator's key (--regulator-key) before it
// is used, and the newest copy wins.

const packCopyKind = "rulepack_copy"

func packSum(cur *regulator.InForce) string {
	sum := sha256.Sum256(cur.Pack)
	return hex.EncodeToString(sum[:])
}

// keepPack records cur, the regulator's pack in force, unless the newest
// copy in the log is the same pack.
func keepPack(ctx context.Context, store portrait.Store, log *audit.Log, cur *regulator.InForce) error {
	if cur == nil {
		return nil
	}
	if had, err := newestPackCopy(ctx, store); err != nil {
		return err
	} else if had != nil && packSum(had) == packSum(cur) {
		return nil
	}
	doc, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	return store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		_, err := log.Append(ctx, tx, audit.Record{Kind: packCopyKind, Actor: "system:regulator", Action: "keep", Digest: packSum(cur),
			Codes: []string{"SG-6"}, Detail: map[string]any{"draft": cur.Draft, "document": string(doc)}})
		return err
	})
}

// newestPackCopy returns the newest copy of the regulator's pack in the
// log, unverified (nil if none).
func newestPackCopy(ctx context.Context, store portrait.Store) (*regulator.InForce, error) {
	size, err := store.LogSize(ctx)
	if err != nil {
		return nil, err
	}
	es, err := store.LogEntriesOfKind(ctx, []string{packCopyKind}, 0, size)
	if err != nil || len(es) == 0 {
		return nil, err
	}
	rec, err := audit.Decode(es[len(es)-1].Data)
	if err != nil {
		return nil, fmt.Errorf("copy of the regulator's rule pack (log entry %d): %w", es[len(es)-1].Index, err)
	}
	doc, _ := rec.Detail["document"].(string)
	var cur regulator.InForce
	if err := json.Unmarshal([]byte(doc), &cur); err != nil {
		return nil, fmt.Errorf("copy of the regulator's rule pack (log entry %d): %w", es[len(es)-1].Index, err)
	}
	return &cur, nil
}

// packCopy returns the regulator's pack from the newest copy in store,
// verified with c's key, or nil if the store holds none.
func packCopy(ctx context.Context, store portrait.Store, c *regulator.Client) (*rules.Pack, error) {
	cur, err := newestPackCopy(ctx, store)
	if err != nil || cur == nil {
		return nil, err
	}
	p, err := c.OpenPack(*cur)
	if err != nil {
		return nil, fmt.Errorf("the copy of the regulator's rule pack in the log does not verify: %w", err)
	}
	return p, nil
}
