package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	portrait "github.com/portrait-dev/portrait"
)

// logServer serves the /v1/log routes of the external contract from a
// Memory, as package server does from a store. Its fields can be swapped
// to play a dishonest server.
type logServer struct {
	mu    sync.Mutex
	log   *Log
	store *Memory
	// note, when set, replaces the signed checkpoint.
	note func(signed []byte) []byte
}

func (s *logServer) state() (*Log, *Memory) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log, s.store
}

func (s *logServer) set(l *Log, m *Memory) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log, s.store = l, m
}

// editEntries changes the stored entries in place, keeping the tree.
func (s *logServer) editEntries(f func(e []portrait.LogEntry)) {
	_, m := s.state()
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m.entries)
}

func (s *logServer) setNote(f func(signed []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.note = f
}

func (s *logServer) handler() http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, err error) {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrRange) {
			status = http.StatusBadRequest
		}
		http.Error(w, err.Error(), status)
	}
	arg := func(r *http.Request, name string) int64 {
		n, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	proof := func(w http.ResponseWriter, p [][32]byte, err error) {
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(NewProofResponse(p))
	}
	mux.HandleFunc("GET /v1/log/key", func(w http.ResponseWriter, r *http.Request) {
		l, _ := s.state()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(l.VerifierKey() + "\n"))
	})
	mux.HandleFunc("GET /v1/log/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		// As package server does: the newest saved checkpoint, else
		// one signed now.
		l, m := s.state()
		msg, _ := m.Checkpoint(r.Context())
		if len(msg) == 0 {
			var err error
			if msg, err = l.Sign(r.Context(), m); err != nil {
				fail(w, err)
				return
			}
		}
		s.mu.Lock()
		tamper := s.note
		s.mu.Unlock()
		if tamper != nil {
			msg = tamper(msg)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(msg)
	})
	mux.HandleFunc("GET /v1/log/entries/{index}", func(w http.ResponseWriter, r *http.Request) {
		l, m := s.state()
		i, err := strconv.ParseInt(r.PathValue("index"), 10, 64)
		if err != nil {
			http.Error(w, "index is not a number", http.StatusBadRequest)
			return
		}
		data, err := l.Entry(r.Context(), m, i)
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	})
	mux.HandleFunc("GET /v1/log/entries", func(w http.ResponseWriter, r *http.Request) {
		l, m := s.state()
		ds, err := l.Entries(r.Context(), m, arg(r, "from"), arg(r, "to"))
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(EntriesResponse{Entries: ds})
	})
	mux.HandleFunc("GET /v1/log/proof/inclusion", func(w http.ResponseWriter, r *http.Request) {
		l, m := s.state()
		p, err := l.InclusionProof(r.Context(), m, arg(r, "index"), arg(r, "size"))
		proof(w, p, err)
	})
	mux.HandleFunc("GET /v1/log/proof/consistency", func(w http.ResponseWriter, r *http.Request) {
		l, m := s.state()
		p, err := l.ConsistencyProof(r.Context(), m, arg(r, "from"), arg(r, "to"))
		proof(w, p, err)
	})
	return mux
}

// FA-6: an outsider's verifier accepts an honest log and refuses every
// kind of tampering, leaving the saved checkpoint untouched.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	const saved, grown = 20, 30

	// rebuild serves a rewritten history from a fresh log with the
	// honest key, as a dishonest operator would.
	rebuild := func(recs ...[]Record) func(*logServer) {
		return func(s *logServer) {
			var all []Record
			for _, r := range recs {
				all = append(all, r...)
			}
			s.set(buildLog(t, "k", all))
		}
	}
	swapped := testRecords(0, grown)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	changed := testRecords(0, saved)
	changed[2].Action = "forget"

	tests := []struct {
		name    string
		noSaved bool // verify from scratch, without a saved checkpoint
		tamper  func(s *logServer)
		want    string
	}{
		{name: "honest"},
		{name: "honest, first run", noSaved: true},
		{
			name: "changed entry",
			tamper: func(s *logServer) {
				s.editEntries(func(e []portrait.LogEntry) {
					e[25].Data = bytes.Replace(e[25].Data, []byte("recommend"), []byte("forget"), 1)
				})
			},
			want: "entry 25 does not match the signed log (size 30): its content was changed",
		},
		{
			name: "changed old entry",
			tamper: func(s *logServer) {
				s.editEntries(func(e []portrait.LogEntry) {
					e[3].Data = bytes.Replace(e[3].Data, []byte("recommend"), []byte("forget"), 1)
				})
			},
			want: "entry 3 does not match the signed log (size 30): its content was changed",
		},
		{
			name:    "changed entry, first run",
			noSaved: true,
			tamper: func(s *logServer) {
				s.editEntries(func(e []portrait.LogEntry) {
					e[7].Data = bytes.Replace(e[7].Data, []byte("recommend"), []byte("forget"), 1)
				})
			},
			want: "entry 7 does not match the signed log",
		},
		{
			name: "reordered entries",
			tamper: func(s *logServer) {
				s.editEntries(func(e []portrait.LogEntry) {
					e[22].Data, e[23].Data = e[23].Data, e[22].Data
				})
			},
			want: "entry 22 does not match the signed log (size 30): its content was changed, or entries were reordered or removed",
		},
		{
			name: "removed entry, later ones shifted",
			tamper: func(s *logServer) {
				s.editEntries(func(e []portrait.LogEntry) {
					for i := 24; i < len(e)-1; i++ {
						e[i].Data = e[i+1].Data
					}
				})
			},
			want: "entry 24 does not match the signed log (size 30)",
		},
		{
			name:   "removed entry, history rewritten",
			tamper: rebuild(testRecords(0, 5), testRecords(6, grown+1)),
			want:   "forked checkpoint: the log of 30 entries",
		},
		{
			name:   "reordered entries, history rewritten",
			tamper: rebuild(swapped),
			want:   "does not extend the saved one of 20",
		},
		{
			name:   "removed entries, log shrank",
			tamper: rebuild(testRecords(0, 15)),
			want:   "the log shrank: the saved checkpoint has 20 entries",
		},
		{
			name:   "forked checkpoint, same size",
			tamper: rebuild(changed),
			want:   "forked checkpoint: at size 20 the saved root is",
		},
		{
			name: "wrong key",
			tamper: func(s *logServer) {
				_, m := s.state()
				m.checkpoint = nil
				s.set(newTestLog(t, "stolen"), m)
			},
			want: "does not verify with the key the server now presents",
		},
		{
			name: "bad signature",
			tamper: func(s *logServer) {
				s.setNote(func(msg []byte) []byte { return bytes.Replace(msg, []byte("\n30\n"), []byte("\n31\n"), 1) })
			},
			want: "invalid signature",
		},
		{
			name:    "bad signature, first run",
			noSaved: true,
			tamper: func(s *logServer) {
				s.setNote(func(msg []byte) []byte { return bytes.Replace(msg, []byte("\n30\n"), []byte("\n31\n"), 1) })
			},
			want: "invalid signature",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, m := buildLog(t, "k", testRecords(0, saved))
			s := &logServer{log: l, store: m}
			ts := httptest.NewServer(s.handler())
			defer ts.Close()
			file := filepath.Join(t.TempDir(), "checkpoint")
			var out bytes.Buffer

			if !tt.noSaved {
				if err := Verify(ctx, ts.Client(), ts.URL, file, &out); err != nil {
					t.Fatalf("first, honest Verify: %v\n%s", err, out.String())
				}
			}
			before, _ := os.ReadFile(file)
			if _, err := l.Append(ctx, m, testRecords(saved, grown)...); err != nil {
				t.Fatal(err)
			}
			// The server publishes a checkpoint of the grown log, as serve
			// does every second; the store is changed after that.
			if err := l.publish(ctx, m, m.SaveCheckpoint); err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				tt.tamper(s)
			}

			out.Reset()
			err := Verify(ctx, ts.Client(), ts.URL, file, &out)
			after, readErr := os.ReadFile(file)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("honest Verify: %v\n%s", err, out.String())
				}
				c, err := ParseCheckpoint(after, l.VerifierKey())
				if err != nil || c.Size != grown {
					t.Fatalf("saved checkpoint %+v, %v; want size %d", c, err, grown)
				}
				if !strings.Contains(out.String(), "entries 0 to 29 (30)") && !strings.Contains(out.String(), "entries 20 to 29 (10)") ||
					!tt.noSaved && !strings.Contains(out.String(), "re-checked every one of the 20 entries verified before") {
					t.Fatalf("summary does not say what was checked:\n%s", out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify error %v\nwant %q", err, tt.want)
			}
			if tt.noSaved {
				if readErr == nil {
					t.Fatal("a checkpoint was saved although verification failed")
				}
			} else if !bytes.Equal(before, after) {
				t.Fatalf("saved checkpoint changed although verification failed:\n%s", after)
			}
		})
	}
}

// Verify says what failed when the server is not a log server.
func TestVerifyUnreachable(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	err := Verify(context.Background(), ts.Client(), ts.URL, "", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/v1/log/key: 404") {
		t.Fatalf("Verify error %v, want the failing URL and status", err)
	}
}
