package regulator

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"github.com/portrait-dev/portrait/audit"
)

// Change is one difference between a company's algorithm filing and the
// one it replaced: a JSON path into the filing (lists of objects with an
// "id" are keyed by it) and the value before and after. Filings hold
// declarations, never personal data.
type Change struct {
	Path string `json:"path"`
	Was  any    `json:"was,omitempty"`
	Now  any    `json:"now,omitempty"`
}

// maxChanges bounds the changes kept with one filing; a filing that
// changes more keeps the first ones and says how many there were.
const maxChanges = 500

// diffFilings lists what changed between two algorithm filings, ignoring
// when and in which language each was generated.
func diffFilings(was, now json.RawMessage) (changes []Change, total int) {
	a, b := map[string]any{}, map[string]any{}
	for _, x := range []struct {
		raw json.RawMessage
		out map[string]any
	}{{was, a}, {now, b}} {
		var v any
		if len(x.raw) > 0 && json.Unmarshal(x.raw, &v) == nil {
			flatten("", v, x.out)
		}
	}
	for _, skip := range []string{"generated", "lang"} {
		delete(a, skip)
		delete(b, skip)
	}
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		if reflect.DeepEqual(a[p], b[p]) {
			continue
		}
		total++
		if len(changes) < maxChanges {
			changes = append(changes, Change{Path: p, Was: a[p], Now: b[p]})
		}
	}
	return changes, total
}

func flatten(prefix string, v any, out map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, x, out)
		}
	case []any:
		if len(v) == 0 {
			out[prefix] = v
		}
		for i, x := range v {
			key := strconv.Itoa(i)
			if m, ok := x.(map[string]any); ok {
				if id, ok := m["id"].(string); ok {
					key = id
				}
			}
			flatten(prefix+"["+key+"]", x, out)
		}
	default:
		out[prefix] = v
	}
}

// FilingRecord is one filing as the regulator's log keeps it.
type FilingRecord struct {
	LogIndex              int64    `json:"log_index"`
	At                    string   `json:"at"`
	Origin                string   `json:"origin"`
	CatalogDigest         string   `json:"catalog_digest"`
	PreviousCatalogDigest string   `json:"previous_catalog_digest,omitempty"`
	Changes               []Change `json:"changes,omitempty"`
	ChangeCount           int      `json:"change_count,omitempty"`
}

// Filings lists company id's filings, oldest first, from the regulator's
// own log, each checked against its signed tree (invariant 8).
func (n *Node) Filings(ctx context.Context, id string) ([]FilingRecord, error) {
	kr, ok := n.db.(audit.KindReader)
	if !ok {
		return nil, fmt.Errorf("the regulator's store cannot read its log by kind")
	}
	size, err := n.db.LogSize(ctx)
	if err != nil {
		return nil, err
	}
	es, err := n.log.ReadVerifiedKinds(ctx, kr, []string{"filing"}, 0, size)
	if err != nil {
		return nil, fmt.Errorf("read filings: %w", err)
	}
	out := []FilingRecord{}
	for _, e := range es {
		d := e.Record.Detail
		if d["company"] != id {
			continue
		}
		f := FilingRecord{LogIndex: e.Index, At: e.Record.Time.UTC().Format("2006-01-02T15:04:05Z")}
		f.Origin, _ = d["origin"].(string)
		f.CatalogDigest, _ = d["catalog_digest"].(string)
		f.PreviousCatalogDigest, _ = d["previous_catalog_digest"].(string)
		if raw, err := json.Marshal(d["changes"]); err == nil {
			json.Unmarshal(raw, &f.Changes)
		}
		if c, ok := d["change_count"].(float64); ok {
			f.ChangeCount = int(c)
		}
		out = append(out, f)
	}
	return out, nil
}
