package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxVerifyEntries caps how many entries Verify fetches and checks in one
// run; when more were added, the newest are checked. Consistency with the
// saved checkpoint is always checked over the whole log.
const MaxVerifyEntries = 10000

// maxBody bounds any response Verify reads.
const maxBody = 16 << 20

// Verify checks the log served at server as an outside auditor would
// (FA-6), for `portrait verify`: it fetches the verifier key and the
// latest checkpoint, checks the signature, checks that the checkpoint
// extends the one saved in checkpointFile (consistency proof; same size
// with another root is a fork), checks each entry added since (up to
// MaxVerifyEntries) against the checkpoint by inclusion proof, and only
// then saves the new checkpoint to checkpointFile. An empty checkpointFile
// checks without saving. A short summary is written to out.
//
// The first run trusts the key the server presents; later runs check the
// saved checkpoint with it, so a changed key is detected.
func Verify(ctx context.Context, client *http.Client, server string, checkpointFile string, out io.Writer) error {
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

	if cp.Size-from > MaxVerifyEntries {
		fmt.Fprintf(out, "%d new entries: checking the newest %d\n", cp.Size-from, MaxVerifyEntries)
		from = cp.Size - MaxVerifyEntries
	}
	if err := v.entries(cp, from); err != nil {
		return err
	}
	if from == cp.Size {
		fmt.Fprintln(out, "no new entries to check")
	} else {
		fmt.Fprintf(out, "entries %d to %d (%d) are in the signed log\n", from, cp.Size-1, cp.Size-from)
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

// entries checks entries from … cp.Size-1 by inclusion proof. On a
// mismatch it looks for the served entry elsewhere, to tell a reordering
// from a change.
func (v verifier) entries(cp Checkpoint, from int64) error {
	n := cp.Size - from
	leaves := make([]tlog.Hash, n)
	proofs := make([]tlog.RecordProof, n)
	for i := range n {
		idx := from + i
		data, err := v.get("/v1/log/entries/" + strconv.FormatInt(idx, 10))
		if err != nil {
			return err
		}
		leaves[i] = tlog.RecordHash(data)
		if proofs[i], err = v.proof(fmt.Sprintf("/v1/log/proof/inclusion?index=%d&size=%d", idx, cp.Size)); err != nil {
			return err
		}
	}
	for i := range n {
		idx := from + i
		if tlog.CheckRecord(proofs[i], cp.Size, cp.Hash, idx, leaves[i]) == nil {
			continue
		}
		for j := range n {
			if j != i && tlog.CheckRecord(proofs[j], cp.Size, cp.Hash, from+j, leaves[i]) == nil {
				return fmt.Errorf("entry %d is not the one the signed log (size %d) holds there: the server serves entry %d in its place: entries were reordered or removed", idx, cp.Size, from+j)
			}
		}
		return fmt.Errorf("entry %d does not match the signed log (size %d): its content was changed or it was removed", idx, cp.Size)
	}
	return nil
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
