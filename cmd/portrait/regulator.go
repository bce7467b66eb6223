package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/rules"
	"github.com/portrait-dev/portrait/server"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/witness"
)

func init() { commands["regulator"] = regulatorCmd }

const regulatorUsage = `usage:
  portrait regulator serve --addr HOST:PORT --db DSN --key-file FILE --admin-key KEY [--name NAME]
  portrait regulator demo  [--addr HOST:PORT] [--company-addr HOST:PORT]
`

func regulatorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, regulatorUsage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return regulatorServe(ctx, args[1:], stdout, stderr)
	case "demo":
		return regulatorDemo(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "portrait regulator: unknown command %q\n%s", args[0], regulatorUsage)
	return errUsage
}

// regulatorDB is a regulator node's database as serve holds it.
type regulatorDB interface {
	regulator.DB
	regulator.Docs
	Close() error
}

// openRegulatorDB opens a regulator node's database: the same engines and
// migrations as a company's store, used through regulator.DB.
func openRegulatorDB(ctx context.Context, dsn string) (regulatorDB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.Open(ctx, dsn)
	}
	return sqlite.Open(ctx, dsn)
}

func regulatorServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("regulator serve", stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "address to listen on")
	db := fs.String("db", "regulator.db", "SQLite file or postgres:// URL of the regulator's own store")
	keyFile := fs.String("key-file", "regulator.key", "the regulator's master key file (created if missing); or set PORTRAIT_MASTER_KEY")
	adminKey := fs.String("admin-key", "", "register this regulator-admin API key at start-up")
	name := fs.String("name", "regulator.local", "the regulator's name: its log is NAME/log, its cosigner NAME/witness")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	kr, err := loadKeys(*keyFile, true, logger)
	if err != nil {
		return err
	}
	store, err := openRegulatorDB(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	l, err := audit.New(*name+"/log", kr.LogKey())
	if err != nil {
		return err
	}
	cosigner, err := witness.NewSigner(*name+"/witness", kr.WitnessKey())
	if err != nil {
		return err
	}
	node := regulator.New(regulator.Deps{DB: store, Log: l, Cosigner: cosigner})
	node.Supervise(store, kr)
	packSigner, packKey, err := regulator.PackSigner(*name+"/rules", kr.WitnessKey().Seed())
	if err != nil {
		return err
	}
	node.Consult(packSigner, packKey, func(p *rules.Pack, name string, data []byte) error {
		_, err := catalog.ParseWith(p, name, data, label.Check)
		return err
	})
	if *adminKey != "" {
		if err := node.EnsureAdmin(ctx, "admin", *adminKey); err != nil {
			return fmt.Errorf("register admin key: %w", err)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: node.Handler(logger), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go l.Publish(ctx, store, func(ctx context.Context, note []byte) error {
		return store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, note) })
	}, time.Second)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "Portrait regulator serving on http://%s\nwitness key: %s\n", ln.Addr(), node.WitnessKey())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// regulatorFlags are serve's flags for joining a regulator.
type regulatorFlags struct {
	url, key, token *string
	// supervise is how often a supervision report is sent.
	supervise *time.Duration
	// catalog is the catalog file, filed for the regulator's simulations.
	catalog string
}

func (f regulatorFlags) joined() bool { return *f.url != "" || *f.key != "" || *f.token != "" }

// pack returns the rule pack the engine checks its catalog against: on a
// joined engine the regulator's pack in force, verified, if it has
// published one; else --pack or the embedded default.
//
// When the regulator cannot be reached, the engine falls back to --pack or
// the default, says so and reports local: join then decides whether it
// may start at all. A first join may not, nor may an engine whose
// regulator answers by then (it starts again and reads the pack); a
// restart serves with the high tier stopped (SG-5) until the regulator
// answers and has no pack in force other than the local one — a pack it
// has published needs a restart. Keeping a verified copy of the
// regulator's pack for offline starts is left to do (docs/DESIGN-NOTES.md).
func (f regulatorFlags) pack(ctx context.Context, path string, logger *slog.Logger) (p *rules.Pack, local bool, err error) {
	if !f.joined() {
		p, err = loadPack(path)
		return p, false, err
	}
	c, err := regulator.NewClient(*f.url, *f.key, *f.token, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return nil, false, fmt.Errorf("join regulator: %w (give --regulator, --regulator-key and --regulator-token)", err)
	}
	p, err = c.Pack(ctx)
	if errors.Is(err, regulator.ErrUnreachable) {
		logger.Warn("the regulator cannot be reached for its rule pack in force: checking the catalog against --pack or the embedded default; the high tier stays stopped until the regulator answers", "err", err)
		p, err = loadPack(path)
		return p, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("the regulator's rule pack in force: %w", err)
	}
	if p == nil {
		p, err = loadPack(path)
		return p, false, err
	}
	if path != "" {
		return nil, false, fmt.Errorf("--pack %s: the regulator has a rule pack in force (%s), which a joined engine uses", path, p)
	}
	return p, false, nil
}

func addRegulatorFlags(fs *flag.FlagSet) regulatorFlags {
	return regulatorFlags{
		url:       fs.String("regulator", "", "URL of the regulator node to join"),
		key:       fs.String("regulator-key", "", "the regulator's witness key, as served at its /v1/witness/key"),
		token:     fs.String("regulator-token", "", "the company's enrolment token (better set as PORTRAIT_REGULATOR_TOKEN)"),
		supervise: fs.Duration("supervise-every", 24*time.Hour, "how often a joined engine sends the regulator a signed supervision report (0: never)"),
	}
}

// join connects a to the regulator, if the flags name one, and files the
// engine's log origin and key, receipt key, catalog digest and algorithm
// filing. It runs on every start, so a restart refiles a changed catalog.
//
// A restart while the regulator cannot be reached — the store's
// checkpoint already carries this regulator's cosignature — joins
// offline: the engine serves with its high tier stopped (SG-5, a weak
// precaution) and files and catches up on the first poll that reaches
// the regulator, which resumes the high tier. A first join needs the
// regulator. The returned offline reports the first case; the caller
// then skips the catch-up at start.
//
// localPack says the catalog was checked against the local pack because
// the regulator could not be reached for its own (pack).
// copied, when set, is the store's verified copy of the regulator's
// pack that the catalog was checked against instead.
func (f regulatorFlags) join(ctx context.Context, a *app, localPack bool, copied *rules.Pack) (offline bool, err error) {
	if !f.joined() {
		return false, nil
	}
	c, err := regulator.NewClient(*f.url, *f.key, *f.token, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return false, fmt.Errorf("join regulator: %w (give --regulator, --regulator-key and --regulator-token)", err)
	}
	filing, err := a.oversight.Filing(ctx, "zh-CN")
	if err != nil {
		return false, fmt.Errorf("join regulator: algorithm filing: %w", err)
	}
	alg, err := json.Marshal(filing)
	if err != nil {
		return false, err
	}
	fl := regulator.Filing{Origin: a.log.Origin(), LogKey: a.log.VerifierKey(),
		ReceiptKey:    base64.StdEncoding.EncodeToString(a.keys.ReceiptKey().Public().(ed25519.PublicKey)),
		CatalogDigest: filing.CatalogDigest, Algorithms: alg}
	err = c.File(ctx, fl)
	if errors.Is(err, regulator.ErrUnreachable) {
		cp, cerr := a.store.Checkpoint(ctx)
		if cerr != nil || cp == nil {
			return false, fmt.Errorf("join regulator: %w (a first join needs the regulator)", err)
		}
		if _, verr := witness.Verify(cp, c.Key); verr != nil {
			return false, fmt.Errorf("join regulator: %w (this store holds no checkpoint the regulator cosigned, so this is a first join, which needs the regulator)", err)
		}
		offline = true
		a.logger.Warn("the regulator cannot be reached: serving with the high tier stopped until it answers (SG-5)", "err", err)
	} else if err != nil {
		return false, fmt.Errorf("join regulator: %w", err)
	} else if localPack {
		return false, fmt.Errorf("join regulator: the regulator answers now, but its rule pack in force could not be read a moment ago; start again so the catalog is checked against it")
	}
	// The catalog itself goes to the regulator too, for its simulation
	// of draft rule packs (issue 11); offline, on the first answer.
	fileCatalog := func(ctx context.Context) error {
		if f.catalog == "" {
			return nil
		}
		src, err := os.ReadFile(f.catalog)
		if err != nil {
			return err
		}
		return c.FileCatalog(ctx, src)
	}
	if !offline {
		if err := fileCatalog(ctx); err != nil {
			return false, fmt.Errorf("join regulator: %w", err)
		}
		// A verified copy of the pack in force, for offline restarts.
		_, cur, err := c.PackInForce(ctx)
		if err == nil {
			err = keepPack(ctx, a.store, a.log, cur)
		}
		if err != nil {
			return false, fmt.Errorf("join regulator: keep a copy of its rule pack: %w", err)
		}
	}
	a.link = &regulator.Link{Client: c, Log: a.log, Store: a.store}
	a.enforcer = &regulator.Enforcer{Client: c, Gov: a.ledger, Take: takeover{a}, Log: a.log, Store: a.store, Logger: a.logger, Changes: countersigning{a}}
	if offline {
		a.enforcer.Offline(func(ctx context.Context) error {
			if localPack {
				// The catalog was checked against the store's copy of
				// the regulator's pack, or the local one: the high tier
				// stays stopped if the regulator has another in force,
				// until a restart applies it.
				p, err := c.Pack(ctx)
				if err != nil {
					return err
				}
				switch {
				case copied != nil && p != nil && p.Digest() == copied.Digest():
				case copied == nil && p == nil:
				case p == nil:
					return fmt.Errorf("the regulator has no rule pack in force any more and this engine checked its catalog against its copy of %s: restart; the high tier stays stopped", copied)
				default:
					return fmt.Errorf("the regulator has a rule pack in force (%s) other than the one this engine checked its catalog against while the regulator was unreachable: restart to apply it; the high tier stays stopped", p)
				}
			}
			if err := c.File(ctx, fl); err != nil {
				return err
			}
			if err := fileCatalog(ctx); err != nil {
				return err
			}
			n, err := a.catchUp(ctx)
			if n > 0 {
				a.logger.Warn("the log was behind the regulator's witnessed log: missing entries fetched, verified and re-applied", "entries", n)
			}
			if err == nil {
				a.logger.Info("the regulator answered: filed, caught up, the high tier resumes")
			}
			return err
		})
	}
	a.apply.SetSilence(a.enforcer.Silence)
	// High-tier use-cases now also need the regulator's countersignature
	// to go live (SG-7).
	if err := a.oversight.SetRegulator(ctx, regulator.CountersignVerifier(c.Key, c.Company)); err != nil {
		return false, fmt.Errorf("join regulator: %w", err)
	}
	a.server.Regulated(c.Key)
	a.oversight.Join(complaintsVia{c})
	a.supervisor = func(ctx context.Context) { a.supervise(ctx, c, 2*time.Second, *f.supervise, f.catalog) }
	return offline, nil
}

// verifyWitnessed checks that the server's checkpoint carries a valid
// cosignature by the witness key wkey and, given the regulator's URL,
// that the regulator has not cosigned a larger tree of the same log: a
// server showing less than the regulator witnessed has been rolled back
// or is hiding entries.
func verifyWitnessed(ctx context.Context, hc *http.Client, server, wkey, reg string, stdout io.Writer) error {
	v, err := witness.NewVerifier(wkey)
	if err != nil {
		return err
	}
	get := func(url string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return body, err
	}
	key, err := get(server + "/v1/log/key")
	if err != nil {
		return err
	}
	msg, err := get(server + "/v1/log/checkpoint")
	if err != nil {
		return err
	}
	cp, err := audit.ParseCheckpoint(msg, string(key))
	if err != nil {
		return fmt.Errorf("checkpoint from %s: %w", server, err)
	}
	sig, err := witness.Verify(msg, v)
	if err != nil {
		return fmt.Errorf("checkpoint of %d entries from %s: %w", cp.Size, server, err)
	}
	at, _ := witness.Time(sig)
	fmt.Fprintf(stdout, "checkpoint of %d entries cosigned by %s at %s\n", cp.Size, v.Name(), at.UTC().Format(time.RFC3339))
	if reg == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(cp.Origin))
	rmsg, err := get(reg + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
	if err != nil {
		return fmt.Errorf("regulator's checkpoint of %s: %w", cp.Origin, err)
	}
	rcp, err := audit.ParseCheckpoint(rmsg, string(key))
	if err != nil {
		return fmt.Errorf("regulator's checkpoint of %s: %w", cp.Origin, err)
	}
	if _, err := witness.Verify(rmsg, v); err != nil {
		return fmt.Errorf("regulator's checkpoint of %s: %w", cp.Origin, err)
	}
	if rcp.Size > cp.Size {
		return fmt.Errorf("the regulator has cosigned %d entries of %s but the server shows only %d: the log was rolled back or entries are withheld", rcp.Size, cp.Origin, cp.Size)
	}
	fmt.Fprintf(stdout, "the regulator's newest cosigned checkpoint has %d entries: the server is not behind it\n", rcp.Size)
	return nil
}

// takeover carries out receivership orders on an engine.
type takeover struct{ a *app }

// Receive implements regulator.Takeover.Receive: the receiver's key, known
// only by its hash, becomes an admin key named after the order.
func (t takeover) Receive(ctx context.Context, o regulator.Order) error {
	sum, err := hex.DecodeString(o.ReceiverKeyHash)
	if err != nil || len(sum) != sha256.Size {
		return fmt.Errorf("receivership %s: receiver key hash is not a hex SHA-256", o.ID)
	}
	if _, err := t.a.store.APIKey(ctx, sum); err == nil {
		return nil // registered by another node
	}
	id := server.ReceiverPrefix + o.ID
	err = t.a.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutAPIKey(ctx, portrait.APIKey{ID: id, Name: id, Hash: sum, Role: policy.Admin, Created: time.Now().UTC()}); err != nil {
			return err
		}
		_, err := t.a.log.Append(ctx, tx, audit.Record{Kind: "apikey", Actor: "regulator:order:" + o.ID, Action: "create",
			Codes: []string{"RO-6"}, Detail: map[string]any{"id": id, "role": string(policy.Admin), "receivership": o.ID}})
		return err
	})
	if portrait.ErrorCode(err) == portrait.ECONFLICT {
		return nil
	}
	return err
}

// Set implements regulator.Takeover.Set.
func (t takeover) Set(o *regulator.Order) {
	if o == nil {
		t.a.server.SetReceivership(nil)
		return
	}
	t.a.server.SetReceivership(&server.Receivership{Order: o.ID, Receiver: server.ReceiverPrefix + o.ID, Reason: o.Reason})
}

// countersigning asks the regulator to countersign approved high-tier
// changes and records its decisions (SG-7).
type countersigning struct{ a *app }

// Awaiting implements regulator.Countersigning.Awaiting: each approved
// request awaiting the regulator, with the impact assessment on record
// of each of its high-tier use-cases. A request one of whose use-cases
// has none is not asked for yet: the regulator would refuse the ask.
func (cs countersigning) Awaiting(ctx context.Context) ([]regulator.CountersignRequest, error) {
	crs, err := cs.a.oversight.ChangeRequests(ctx)
	if err != nil {
		return nil, err
	}
	var out []regulator.CountersignRequest
next:
	for _, cr := range crs {
		if cr.Status != oversight.StatusCountersign || cr.Approval == nil {
			continue
		}
		ask := regulator.CountersignRequest{Request: cr.Index, Approval: cr.Approval.Index}
		for _, k := range cr.Countersign {
			id := strings.TrimPrefix(k, "use_case:")
			as, ok := cs.a.apply.Assessment(id)
			if !ok {
				cs.a.logger.Warn("a high-tier use-case awaits the regulator's countersignature but has no impact assessment on record: run portrait assess", "usecase", id, "request", cr.Index)
				continue next
			}
			ans, err := json.Marshal(as.Answers)
			if err != nil {
				return nil, err
			}
			ask.Assessments = append(ask.Assessments, regulator.AssessmentRef{UseCase: id, Index: as.LogIndex, Answers: ans})
		}
		out = append(out, ask)
	}
	return out, nil
}

// Receive implements regulator.Countersigning.Receive.
func (cs countersigning) Receive(ctx context.Context, doc []byte) error {
	_, err := cs.a.oversight.Receive(ctx, doc)
	switch portrait.ErrorCode(err) {
	case portrait.ECONFLICT, portrait.ENOTFOUND:
		return nil // recorded before, or about a request this log no longer asks
	}
	return err
}
