package regulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/witness"
)

// Client is a company engine's connection to its regulator, authenticated
// by the company's enrolment token.
type Client struct {
	URL   string
	Token string
	// Key verifies the regulator's cosignatures (--regulator-key).
	Key  *witness.Verifier
	HTTP *http.Client
	// Company is the company's id at the regulator, learnt by File.
	Company string

	// contact is when the regulator last answered a request with
	// success (Unix nanoseconds): the dead-man switch counts from it.
	contact atomic.Int64
}

// ErrUnreachable marks a request the regulator did not answer: no
// connection, or a server error. A refusal (4xx) is not one.
var ErrUnreachable = errors.New("the regulator cannot be reached")

// Contact reports when the regulator last answered with success; the
// zero time if it never has.
func (c *Client) Contact() time.Time {
	if n := c.contact.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// NewClient returns a client of the regulator at url, checking its
// witness key vkey.
func NewClient(url, vkey, tok string, hc *http.Client) (*Client, error) {
	v, err := witness.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("regulator key: %w", err)
	}
	if url == "" || tok == "" {
		return nil, errors.New("joining a regulator takes its URL, its witness key and the company's enrolment token")
	}
	return &Client{URL: strings.TrimRight(url, "/"), Token: tok, Key: v, HTTP: hc}, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("regulator %s %s: %w: %w", method, path, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("regulator %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var p struct{ Detail string }
		json.Unmarshal(data, &p)
		if resp.StatusCode/100 == 5 {
			return fmt.Errorf("regulator %s %s: %w: %s: %s", method, path, ErrUnreachable, resp.Status, p.Detail)
		}
		return fmt.Errorf("regulator %s %s: %s: %s", method, path, resp.Status, p.Detail)
	}
	c.contact.Store(time.Now().UnixNano())
	if out == nil {
		return nil
	}
	if s, ok := out.(*[]byte); ok {
		*s = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// File sends the company's filing and learns the company's id.
func (c *Client) File(ctx context.Context, f Filing) error {
	var out struct{ Company string }
	if err := c.do(ctx, "POST", "/v1/filings", f, &out); err != nil {
		return err
	}
	c.Company = out.Company
	return nil
}

// Orders returns the orders issued to the company, each verified against
// the regulator's key and checked to be addressed to this company; an
// order that fails is an error, never skipped silently.
func (c *Client) Orders(ctx context.Context) ([]Order, []bool, error) {
	var out struct{ Orders []Delivery }
	if err := c.do(ctx, "GET", "/v1/mirror/orders", nil, &out); err != nil {
		return nil, nil, err
	}
	orders := make([]Order, len(out.Orders))
	acked := make([]bool, len(out.Orders))
	for i, d := range out.Orders {
		o, err := VerifyOrder(d.SignedOrder, c.Key, c.Company)
		if err != nil {
			return nil, nil, err
		}
		orders[i], acked[i] = o, d.Acknowledged
	}
	return orders, acked, nil
}

// Ack acknowledges that the engine applied order id, recorded at index
// of its log.
func (c *Client) Ack(ctx context.Context, id string, index int64) error {
	return c.do(ctx, "POST", "/v1/mirror/orders/"+id+"/ack", map[string]int64{"log_index": index}, nil)
}

// Checkpoint returns the newest checkpoint the regulator cosigned for the
// company, its cosignature verified; nil if there is none yet.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	var cp []byte
	err := c.do(ctx, "GET", "/v1/mirror/checkpoint", nil, &cp)
	if err != nil && strings.Contains(err.Error(), " 404 ") {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if _, err := witness.Verify(cp, c.Key); err != nil {
		return nil, err
	}
	return cp, nil
}

// Entries returns the mirrored entries [from, to) as uploaded.
func (c *Client) Entries(ctx context.Context, from, to int64) ([][]byte, error) {
	all := make([][]byte, 0, max(to-from, 0))
	for lo := from; lo < to; {
		hi := min(to, lo+MaxUpload)
		var out struct{ Entries [][]byte }
		if err := c.do(ctx, "GET", fmt.Sprintf("/v1/mirror/entries?from=%d&to=%d", lo, hi), nil, &out); err != nil {
			return nil, err
		}
		if int64(len(out.Entries)) != hi-lo {
			return nil, fmt.Errorf("regulator sent %d entries for [%d, %d)", len(out.Entries), lo, hi)
		}
		all = append(all, out.Entries...)
		lo = hi
	}
	return all, nil
}

// Link submits an engine's checkpoints to the regulator: its Submit is the
// save step of audit.Log.Publish when the engine is joined.
type Link struct {
	*Client
	Log   *audit.Log
	Store audit.Reader

	mu   sync.Mutex
	size int64 // the size the regulator last cosigned, as far as known
}

// Submit uploads the entries the regulator lacks, sends the signed
// checkpoint msg with a consistency proof from the last cosigned one, and
// returns msg with the regulator's cosignature added, verified.
func (l *Link) Submit(ctx context.Context, msg []byte) ([]byte, error) {
	cp, err := audit.ParseCheckpoint(msg, l.Log.VerifierKey())
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 3 {
		old := l.size
		if old > cp.Size {
			return nil, fmt.Errorf("%w: the regulator cosigned %d entries, the log has %d", ErrBehind, old, cp.Size)
		}
		if err := l.upload(ctx, old, cp.Size); err != nil {
			return nil, err
		}
		proof, err := l.Log.ConsistencyProof(ctx, l.Store, old, cp.Size)
		if err != nil {
			return nil, err
		}
		out, err := witness.AddCheckpoint(ctx, l.HTTP, l.URL, witness.Request{OldSize: old, Proof: proof, Checkpoint: msg}, l.Key)
		var conflict *witness.ConflictError
		if errors.As(err, &conflict) {
			l.size = conflict.Size
			continue
		} else if err != nil {
			return nil, err
		}
		l.size = cp.Size
		return out, nil
	}
	return nil, errors.New("add-checkpoint: the cosigned size kept changing")
}

// ErrBehind reports a log smaller than what the regulator has cosigned:
// a restored backup or a wound-back head.
var ErrBehind = errors.New("the log is behind what the regulator witnessed")

// upload sends entries [from, to) to the mirror.
func (l *Link) upload(ctx context.Context, from, to int64) error {
	for lo := from; lo < to; {
		hi := min(to, lo+MaxUpload)
		es, err := l.Store.LogEntries(ctx, lo, hi)
		if err != nil {
			return err
		}
		datas := make([][]byte, len(es))
		for i, e := range es {
			datas[i] = e.Data
		}
		if err := l.do(ctx, "POST", "/v1/mirror", map[string]any{"from": lo, "entries": datas}, nil); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// ErrFork reports a log that disagrees with what the regulator
// witnessed: the same size with another root, or a prefix that the
// witnessed entries do not extend.
var ErrFork = errors.New("the log disagrees with what the regulator witnessed")

// Catchup compares the engine's log with the newest checkpoint the
// regulator cosigned for it. A log that is behind (a restored backup, a
// wound-back head) gets the missing entries from the mirror, verified:
// their hashes, appended to the log's own, must give the cosigned root;
// they are then appended to the log exactly as witnessed and returned,
// for the engine to re-apply what they record before it serves anyone.
// A log that disagrees with the cosigned tree is ErrFork.
func (l *Link) Catchup(ctx context.Context, store EngineStore) ([]portrait.LogEntry, error) {
	msg, err := l.Checkpoint(ctx)
	if err != nil || msg == nil {
		return nil, err
	}
	cp, err := audit.ParseCheckpoint(msg, l.Log.VerifierKey())
	if err != nil {
		return nil, fmt.Errorf("the regulator's checkpoint: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.size = cp.Size
	n, err := store.LogSize(ctx)
	if err != nil {
		return nil, err
	}
	own := func(idx []int64) ([][32]byte, error) { return store.LogHashes(ctx, idx) }
	if n >= cp.Size {
		root, err := tlog.TreeHash(cp.Size, hashReader(own))
		if err != nil {
			return nil, err
		}
		if root != cp.Hash {
			return nil, fmt.Errorf("%w: its first %d entries do not hash to the cosigned root", ErrFork, cp.Size)
		}
		return nil, nil
	}
	datas, err := l.Entries(ctx, n, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("fetch entries [%d, %d) from the mirror: %w", n, cp.Size, err)
	}
	entries, err := hashEntries(n, datas, own)
	if err != nil {
		return nil, err
	}
	base := tlog.StoredHashIndex(0, n)
	var fresh []tlog.Hash
	for _, e := range entries {
		for i := 0; i < len(e.Hashes); i += 32 {
			fresh = append(fresh, tlog.Hash(e.Hashes[i:i+32]))
		}
	}
	root, err := tlog.TreeHash(cp.Size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= base {
				out[i] = fresh[x-base]
				continue
			}
			h, err := own([]int64{x})
			if err != nil {
				return nil, err
			}
			out[i] = h[0]
		}
		return out, nil
	}))
	if err != nil {
		return nil, err
	}
	if root != cp.Hash {
		return nil, fmt.Errorf("%w: its %d entries and the mirror's %d do not hash to the cosigned root", ErrFork, n, len(datas))
	}
	for i := range entries {
		if entries[i].Kind, err = audit.KindOf(entries[i].Data); err != nil {
			return nil, fmt.Errorf("witnessed entry %d: %w", entries[i].Index, err)
		}
	}
	err = store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if m, err := tx.LogSize(ctx); err != nil || m != n {
			return fmt.Errorf("the log grew from %d to %d during catch-up: %v", n, m, err)
		}
		return tx.AppendLog(ctx, entries)
	})
	if err != nil {
		return nil, fmt.Errorf("append %d witnessed entries: %w", len(entries), err)
	}
	return entries, nil
}

func hashReader(read func([]int64) ([][32]byte, error)) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := read(idx)
		out := make([]tlog.Hash, len(hs))
		for i := range hs {
			out[i] = hs[i]
		}
		return out, err
	})
}
