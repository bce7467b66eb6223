package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// maxBody bounds any response Verify reads.
const maxBody = 64 << 20

// DefaultSamples is how many entries covered by the saved checkpoint
// Verify re-checks at random by default. If a fraction f of those entries
// was changed in place since they were first verified, k samples miss
// every changed one with probability (1-f)^k: with 256, a change to 1% of
// the entries is caught with probability 92%, to 2% with 99.4%, to 5%
// with 99.9998%. A single changed entry among M is caught with
// probability k/M; VerifyOptions.Full checks every entry.
const DefaultSamples = 256

// VerifyOptions says how much Verify re-checks.
type VerifyOptions struct {
	// Full streams every entry of the log and recomputes the whole tree.
	Full bool
	// Samples is how many entries covered by the saved checkpoint are
	// re-checked at random by inclusion proof (when not Full); 0 means
	// DefaultSamples, a negative number none.
	Samples int
	// Rand picks the samples; nil uses math/rand/v2's global source.
	Rand *rand.Rand
}

// Verify is VerifyWith the default options.
func Verify(ctx context.Context, client *http.Client, server string, checkpointFile string, out io.Writer) error {
	return VerifyWith(ctx, client, server, checkpointFile, VerifyOptions{}, out)
}

// VerifyWith checks the log served at server as an outside auditor would
// (FA-6), for `portrait verify`: it fetches the verifier key and the
// latest checkpoint, checks the signature, checks that the checkpoint
// extends the one saved in checkpointFile (consistency proof; same size
// with another root is a fork), streams every entry added since and
// recomputes the tree from them (no cap), re-checks entries the saved
// checkpoint already covered (a random sample by inclusion proof, or with
// opt.Full every entry from the first), and only then saves the new
// checkpoint to checkpointFile. An empty checkpointFile checks without
// saving. A short summary is written to out.
//
// The first run trusts the key the server presents; later runs check the
// saved checkpoint with it, so a changed key is detected.
func VerifyWith(ctx context.Context, client *http.Client, server string, checkpointFile string, opt VerifyOptions, out io.Writer) error {
	if client == nil {
		client = http.DefaultClient
	}
	v := verifier{ctx: ctx, client: client, server: strings.TrimRight(server, "/")}

	key, err := v.get("/v1/log/key")
	if err != nil {
		return err
	}
	vkey := strings.TrimSpace(string(key))
	msg, err := v.get("/v1/log/checkpoint")
	if err != nil {
		return err
	}
	cp, err := ParseCheckpoint(msg, vkey)
	if err != nil {
		return fmt.Errorf("checkpoint from %s: %w", v.server, err)
	}
	fmt.Fprintf(out, "checkpoint %s: %d entries, root %s, signature by %s verified\n", cp.Origin, cp.Size, b64(cp.Hash), vkey)

	var from int64
	if checkpointFile != "" {
		savedMsg, err := os.ReadFile(checkpointFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(out, "no saved checkpoint at %s: trusting this key from now on\n", checkpointFile)
		case err != nil:
			return fmt.Errorf("read saved checkpoint: %w", err)
		default:
			saved, err := ParseCheckpoint(savedMsg, vkey)
			if err != nil {
				return fmt.Errorf("saved checkpoint %s does not verify with the key the server now presents (%s): %w", checkpointFile, vkey, err)
			}
			if err := v.consistent(saved, cp); err != nil {
				return err
			}
			fmt.Fprintf(out, "consistent with the saved checkpoint of %d entries\n", saved.Size)
			from = saved.Size
		}
	}

	if opt.Full {
		from = 0
	} else if err := v.sample(cp, from, opt, out); err != nil {
		return err
	}
	if err := v.stream(cp, from); err != nil {
		return err
	}
	switch {
	case from == cp.Size:
		fmt.Fprintln(out, "no new entries to check")
	case opt.Full:
		fmt.Fprintf(out, "every entry, 0 to %d (%d), streamed and hashed: the tree gives the signed root\n", cp.Size-1, cp.Size)
	default:
		fmt.Fprintf(out, "entries %d to %d (%d) streamed and hashed: the tree gives the signed root\n", from, cp.Size-1, cp.Size-from)
	}

	if checkpointFile != "" {
		if err := writeFileAtomic(checkpointFile, msg); err != nil {
			return fmt.Errorf("save checkpoint: %w", err)
		}
		fmt.Fprintf(out, "saved checkpoint to %s\n", checkpointFile)
	}
	return nil
}

type verifier struct {
	ctx    context.Context
	client *http.Client
	server string
}

// consistent checks that cp extends saved.
func (v verifier) consistent(saved, cp Checkpoint) error {
	switch {
	case saved.Origin != cp.Origin:
		return fmt.Errorf("the saved checkpoint is for log %q, the server serves %q", saved.Origin, cp.Origin)
	case saved.Size > cp.Size:
		return fmt.Errorf("the log shrank: the saved checkpoint has %d entries (root %s), the server's only %d: entries were removed or history rewritten", saved.Size, b64(saved.Hash), cp.Size)
	case saved.Size == cp.Size && saved.Hash != cp.Hash:
		return fmt.Errorf("forked checkpoint: at size %d the saved root is %s but the server's is %s: entries were changed, removed or reordered", cp.Size, b64(saved.Hash), b64(cp.Hash))
	case saved.Size == cp.Size || saved.Size == 0:
		return nil
	}
	p, err := v.proof(fmt.Sprintf("/v1/log/proof/consistency?from=%d&to=%d", saved.Size, cp.Size))
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(p, cp.Size, cp.Hash, saved.Size, saved.Hash); err != nil {
		return fmt.Errorf("forked checkpoint: the log of %d entries (root %s) does not extend the saved one of %d (root %s): entries before %d were changed, removed or reordered (%v)", cp.Size, b64(cp.Hash), saved.Size, b64(saved.Hash), saved.Size, err)
	}
	return nil
}

// sample re-checks entries below old (covered by the checkpoint saved
// last time) by inclusion proof in cp: all of them if there are no more
// than the samples, else a random sample.
func (v verifier) sample(cp Checkpoint, old int64, opt VerifyOptions, out io.Writer) error {
	k := int64(opt.Samples)
	if k == 0 {
		k = DefaultSamples
	}
	if k < 0 || old == 0 {
		return nil
	}
	var picks []int64
	if k >= old {
		for i := range old {
			picks = append(picks, i)
		}
	} else {
		seen := map[int64]bool{}
		for int64(len(picks)) < k {
			var i int64
			if opt.Rand != nil {
				i = opt.Rand.Int64N(old)
			} else {
				i = rand.Int64N(old)
			}
			if !seen[i] {
				seen[i] = true
				picks = append(picks, i)
			}
		}
		slices.Sort(picks)
	}
	for _, i := range picks {
		if err := v.checkOne(cp, i); err != nil {
			return err
		}
	}
	if int64(len(picks)) == old {
		fmt.Fprintf(out, "re-checked every one of the %d entries verified before by inclusion proof\n", old)
	} else {
		fmt.Fprintf(out, "re-checked %d of the %d entries verified before, at random, by inclusion proof: "+
			"if a fraction f of them were changed, all are missed with probability (1-f)^%d (f=1%%: %.1f%%); use --full to check every entry\n",
			len(picks), old, len(picks), 100*math.Pow(0.99, float64(len(picks))))
	}
	return nil
}

// checkOne checks entry i by inclusion proof in cp.
func (v verifier) checkOne(cp Checkpoint, i int64) error {
	data, err := v.get("/v1/log/entries/" + strconv.FormatInt(i, 10))
	if err != nil {
		return err
	}
	p, err := v.proof(fmt.Sprintf("/v1/log/proof/inclusion?index=%d&size=%d", i, cp.Size))
	if err != nil {
		return err
	}
	if tlog.CheckRecord(p, cp.Size, cp.Hash, i, tlog.RecordHash(data)) != nil {
		return fmt.Errorf("entry %d does not match the signed log (size %d): its content was changed, or entries were reordered or removed "+
			"(the proof hashes come from the server, so a change to a neighbouring entry shows here too; --full names the first changed entry)", i, cp.Size)
	}
	return nil
}

// stream fetches entries from … cp.Size-1 in pages and recomputes the
// tree from them, starting from the subtree roots of the tree of size
// from, which the inclusion proof of entry from holds (its left
// siblings). At each page boundary the recomputed subtree roots must be
// the left siblings of that entry's proof, and at the end the root must
// be the signed one; the first page that differs is searched for the
// first entry that does not match, to name it.
func (v verifier) stream(cp Checkpoint, from int64) error {
	if from >= cp.Size {
		return nil
	}
	front, err := v.frontier(cp, from)
	if err != nil {
		return err
	}
	t := newTree(from, front)
	for lo := from; lo < cp.Size; lo += MaxEntries {
		hi := min(lo+MaxEntries, cp.Size)
		datas, err := v.entryPage(lo, hi)
		if err != nil {
			return err
		}
		before := slices.Clone(t.stack)
		for _, d := range datas {
			t.add(d, nil)
		}
		ok, err := v.matches(cp, hi, t)
		if err != nil {
			return err
		}
		if !ok {
			return v.locate(cp, lo, before, datas)
		}
	}
	return nil
}

// matches reports whether t (of t.n entries) is the signed tree's prefix.
func (v verifier) matches(cp Checkpoint, n int64, t *tree) (bool, error) {
	if n == cp.Size {
		return t.root() == cp.Hash, nil
	}
	front, err := v.frontier(cp, n)
	if err != nil {
		return false, err
	}
	return slices.Equal(front, t.stack), nil
}

// locate finds, by bisection, the first of datas (entries lo, lo+1, …)
// that does not match cp, given the subtree roots before lo.
func (v verifier) locate(cp Checkpoint, lo int64, before []tlog.Hash, datas [][]byte) error {
	// ok(j): the first j of datas match.
	ok := func(j int) (bool, error) {
		t := newTree(lo, before)
		for _, d := range datas[:j] {
			t.add(d, nil)
		}
		return v.matches(cp, lo+int64(j), t)
	}
	a, b := 0, len(datas) // ok(a) holds, ok(b) does not
	for b-a > 1 {
		m := (a + b) / 2
		// A server that cannot prove a prefix (its stored hashes there
		// are broken too) counts as not matching it.
		good, err := ok(m)
		if err != nil {
			good = false
		}
		if good {
			a = m
		} else {
			b = m
		}
	}
	return fmt.Errorf("entry %d does not match the signed log (size %d): its content was changed, or entries were reordered or removed", lo+int64(a), cp.Size)
}

// frontier returns the roots of the complete subtrees of the tree of size
// n, left to right, as the left siblings in the inclusion proof of entry
// n in cp (checked by the caller against hashes it computed).
func (v verifier) frontier(cp Checkpoint, n int64) ([]tlog.Hash, error) {
	if n == 0 {
		return nil, nil
	}
	p, err := v.proof(fmt.Sprintf("/v1/log/proof/inclusion?index=%d&size=%d", n, cp.Size))
	if err != nil {
		return nil, err
	}
	return leftSiblings(p, n, cp.Size)
}

// leftSiblings returns the hashes of proof (the RFC 6962 audit path of
// leaf m in a tree of size n, leaf first) that lie left of m, root side
// first: the complete subtrees covering [0, m).
func leftSiblings(proof []tlog.Hash, m, n int64) ([]tlog.Hash, error) {
	// The path top-down: at [lo, hi) split at k, the largest power of two
	// below hi-lo; the sibling is the half without m.
	var left []bool
	for lo, hi := int64(0), n; hi-lo > 1; {
		k := int64(1) << (bits.Len64(uint64(hi-lo-1)) - 1)
		if m < lo+k {
			left = append(left, false)
			hi = lo + k
		} else {
			left = append(left, true)
			lo += k
		}
	}
	if len(left) != len(proof) {
		return nil, fmt.Errorf("inclusion proof of entry %d in %d has %d hashes, want %d", m, n, len(proof), len(left))
	}
	var out []tlog.Hash
	for i, l := range left {
		if l {
			out = append(out, proof[len(proof)-1-i])
		}
	}
	return out, nil
}

// EntriesResponse is the JSON body of GET /v1/log/entries?from=&to=: the
// entries exactly as hashed, in order.
type EntriesResponse struct {
	Entries [][]byte `json:"entries"`
}

func (v verifier) entryPage(lo, hi int64) ([][]byte, error) {
	path := fmt.Sprintf("/v1/log/entries?from=%d&to=%d", lo, hi)
	body, err := v.get(path)
	if err != nil {
		return nil, err
	}
	var r EntriesResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("GET %s%s: not {\"entries\": [base64, …]}: %w", v.server, path, err)
	}
	if int64(len(r.Entries)) != hi-lo {
		return nil, fmt.Errorf("GET %s%s: %d entries, want %d", v.server, path, len(r.Entries), hi-lo)
	}
	return r.Entries, nil
}

func (v verifier) proof(path string) ([]tlog.Hash, error) {
	body, err := v.get(path)
	if err != nil {
		return nil, err
	}
	var p ProofResponse
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("GET %s%s: proof is not {\"hashes\": [base64, …]}: %w", v.server, path, err)
	}
	out := make([]tlog.Hash, len(p.Hashes))
	for i, h := range p.Hashes {
		if len(h) != len(out[i]) {
			return nil, fmt.Errorf("GET %s%s: proof hash %d has %d bytes, want 32", v.server, path, i, len(h))
		}
		copy(out[i][:], h)
	}
	return out, nil
}

func (v verifier) get(path string) ([]byte, error) {
	url := v.server + path
	req, err := http.NewRequestWithContext(v.ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("GET %s: response over %d bytes", url, maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		snippet := strings.TrimSpace(string(body))
		if len(snippet) > 200 {
			snippet = snippet[:200] + "…"
		}
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, snippet)
	}
	return body, nil
}

func b64(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }

// writeFileAtomic replaces name with data, so that an interrupted save
// never leaves a truncated checkpoint.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
