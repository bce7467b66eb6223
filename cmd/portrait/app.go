package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apikey"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/rules"
	"github.com/portrait-dev/portrait/server"
	"github.com/portrait-dev/portrait/sqlite"
)

// app is one wired Portrait process.
type app struct {
	store  portrait.Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	ingest *ingest.Ingester
	server *server.Server
	logger *slog.Logger
	// monitor runs the fairness, price and diversity monitors every
	// monitorEvery inside serve (FB-1).
	monitor      *monitor.Monitor
	monitorEvery time.Duration
	cors         []string             // serve --cors-origins
	tls          *tls.Config          // serve --tls-cert/--tls-key; nil serves plain HTTP
	deliveries   *delivery.Dispatcher // nil without destinations
	rights       *rights.Service
	apply        *apply.Service
	review       *review.Service
	// alerted holds the integrity findings already recorded as alerts.
	alerted sync.Map
	// deriver derives labels: incrementally after each ingested batch
	// (synchronously, through ingest.Options.OnStored), and in batch.
	deriver *derive.Engine
	// onStored derives the subjects of a stored batch: the local queue,
	// or with serve --cluster the share of the node owning each subject.
	// It is set before anything is ingested.
	onStored func(ctx context.Context, pseudonyms []portrait.Pseudonym)
	// queue is the local derivation queue; pending marks a stored batch's
	// subjects in its transaction so the queue's work survives a stop
	// (nil with --cluster, whose work stream carries it).
	queue   *derive.Queue
	pending func(ctx context.Context, tx portrait.Tx, pseudonyms []portrait.Pseudonym) error
	// staff checks and manages staff API keys.
	staff *apikey.Service
	// oversight makes the algorithm filing sent to the regulator.
	oversight *oversight.Service
	// link, when the engine is joined to a regulator (serve --regulator),
	// has every checkpoint cosigned before it is published.
	link *regulator.Link
	// enforcer applies the regulator's signed orders when joined.
	enforcer *regulator.Enforcer
	// supervisor routes complaints and sends supervision reports when
	// joined; it runs while serving.
	supervisor func(ctx context.Context)
}

// openStore opens a postgres:// URL with the postgres package and anything
// else as a SQLite file.
func openStore(ctx context.Context, dsn string) (portrait.Store, error) {
	if isPostgres(dsn) {
		return postgres.Open(ctx, dsn)
	}
	return sqlite.Open(ctx, dsn)
}

// openExisting opens a store that must already exist: the read-only
// commands never create an empty SQLite file that no server reads.
func openExisting(ctx context.Context, dsn string) (portrait.Store, error) {
	if err := mustExist(dsn); err != nil {
		return nil, err
	}
	return openStore(ctx, dsn)
}

// mustExist refuses a SQLite file that does not exist.
func mustExist(dsn string) error {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		if _, err := os.Stat(dsn); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no database at %s: give the --db the server uses (or PORTRAIT_DB)", dsn)
		}
	}
	return nil
}

// loadKeys reads the master key from PORTRAIT_MASTER_KEY or the key file;
// create makes a new key file when neither exists.
func loadKeys(path string, create bool, logger *slog.Logger) (*keys.Keyring, error) {
	if k, ok, err := keys.FromEnv(); ok || err != nil {
		return k, err
	}
	k, err := keys.Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !create {
		return k, err
	}
	logger.Warn("no master key found: generating one; back it up, losing it makes all stored data unreadable", "key_file", path)
	return keys.Generate(path)
}

// logOrigin is the audit log's origin, named after the master key.
func logOrigin(kr *keys.Keyring) string { return "portrait.local/log/" + kr.ID() }

// options are what differs between the commands that wire an app.
type options struct {
	// DeriveDelay is how long a subject waits in the derivation queue for
	// more of its events before a page that is not full is derived
	// (serve --derive-delay, derive.Engine.NewQueue).
	DeriveDelay time.Duration
	// Assessments is the directory of signed impact assessments.
	Assessments string
	// Origin names the audit log in its checkpoints (--origin, e.g. the
	// company's domain); "portrait.local/log/<key id>" when empty.
	Origin string
	// Journal, if set, records every erasure (--erasure-journal).
	Journal *journal
	// Demo turns on the privacy centre's picker of DemoSubjects.
	Demo         bool
	DemoSubjects []string
	// Limits are the HTTP connection limits (zero: the server's defaults).
	IdleTimeout, BodyGrace time.Duration
	MinBodyRate            int64
	// StoreTimeout bounds a decision's, recommendation's or key check's
	// wait for the store (serve --store-timeout; zero: the default).
	StoreTimeout time.Duration
	// Destinations receive subject-rights events (serve --webhook, --nats-rights)
	// and the membership changes of their audiences (--audiences), which
	// are materialised every AudienceEvery.
	Destinations  []delivery.Destination
	AudienceEvery time.Duration
	// CheckLog runs the full start-up check of the audit log before
	// anything reads it (serve, demo): a log that does not match its
	// hashes and signed checkpoint is never served.
	CheckLog bool
	// TrustedProxies are the peers whose forwarding headers are believed
	// (serve --trusted-proxies).
	TrustedProxies []netip.Prefix
	// Operator is who starts the node (serve --operator, team/person):
	// the baseline's acceptor and the author of catalog changes (SG-7).
	Operator string
}

// onErased appends each erasure to the journal, if there is one. The
// erasure has committed by then: a failure to journal it is logged, and
// only a later restore of an older backup would miss it.
func (o options) onErased(logger *slog.Logger) func(context.Context, portrait.Pseudonym) {
	if o.Journal == nil {
		return nil
	}
	return func(ctx context.Context, pseudonym portrait.Pseudonym) {
		if err := o.Journal.add(pseudonym); err != nil {
			logger.ErrorContext(ctx, "erasure not journalled", "err", err)
		}
	}
}

// storeFlags are the flags every command that opens a store shares.
type storeFlags struct{ db, catalog, keyFile, pack *string }

func addStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		db:      fs.String("db", "portrait.db", "SQLite file or postgres:// URL"),
		catalog: fs.String("catalog", "catalog.yaml", "the catalog (declarations) file"),
		keyFile: fs.String("key-file", "portrait.key", "master key file; or set PORTRAIT_MASTER_KEY"),
		pack:    fs.String("pack", "", "a rule pack signed by a trusted key (default: the embedded pack)"),
	}
}

// openExisting is open for the commands that only read what is stored
// (derive and train read events, monitor reads outcomes): they never start
// an empty database.
func (f storeFlags) openExisting(ctx context.Context, stderr io.Writer) (*app, func(), error) {
	if err := mustExist(*f.db); err != nil {
		return nil, nil, err
	}
	return f.open(ctx, stderr, false)
}

// open loads the catalog and the master key (creating a key file if
// create is set and there is none) and wires an app over the store, as
// serve does; the returned func closes the store.
func (f storeFlags) open(ctx context.Context, stderr io.Writer, create bool) (*app, func(), error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pack, err := loadPack(*f.pack)
	if err != nil {
		return nil, nil, err
	}
	cat, err := catalog.LoadWith(pack, *f.catalog, label.Check)
	if err != nil {
		return nil, nil, fmt.Errorf("load catalog:\n%w", err)
	}
	kr, err := loadKeys(*f.keyFile, create, logger)
	if err != nil {
		return nil, nil, err
	}
	store, err := openStore(ctx, *f.db)
	if err != nil {
		return nil, nil, err
	}
	a, err := newApp(ctx, cat, store, kr, logger, options{Assessments: assessmentsDir()})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return a, func() { store.Close() }, nil
}

// newApp wires every service over store. Background work it starts (the
// derivation queue) ends with ctx.
func newApp(ctx context.Context, cat *catalog.Catalog, store portrait.Store, kr *keys.Keyring, logger *slog.Logger, opt options) (*app, error) {
	a := &app{store: store, keys: kr, logger: logger}
	a.point = policy.New(cat)
	var err error
	origin := opt.Origin
	if origin == "" {
		origin = logOrigin(kr)
	}
	if a.log, err = audit.New(origin, kr.LogKey()); err != nil {
		return nil, err
	}
	if opt.CheckLog {
		res, err := a.log.Check(ctx, store)
		if te := (*audit.TamperError)(nil); errors.As(err, &te) {
			return nil, fmt.Errorf("refusing to serve an audit log that does not match its hashes and signed checkpoint: %v.\nTo recover: %s", te, audit.Recovery)
		} else if err != nil {
			return nil, fmt.Errorf("check the audit log: %w", err)
		}
		logger.Info("audit log checked", "entries", res.Entries, "signed_checkpoint", res.Checkpoint, "seconds", res.Elapsed.Seconds())
	}
	a.log.OnTamper(a.tamperAlert)
	if a.ledger, err = consent.New(consent.Deps{Store: store, Point: a.point, Log: a.log, Keys: kr}, consent.Options{}); err != nil {
		return nil, err
	}
	if _, err := a.ledger.States(ctx, nil); err != nil {
		return nil, fmt.Errorf("load governance state: %w", err)
	}
	if a.deriver, err = derive.New(derive.Deps{Store: store, Point: a.point, Ledger: a.ledger, Keys: kr, Log: a.log}, derive.Options{Logger: logger}); err != nil {
		return nil, err
	}
	// The export lists the destinations the subject's data was delivered
	// to, from the log (PIPL Art. 23, GDPR Art. 19).
	index, ok := store.(delivery.LogIndex)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no index of log records by subject", store)
	}
	delivered := func(ctx context.Context, p portrait.Pseudonym) ([]rights.DeliveredEntry, error) {
		return delivery.Recipients(ctx, index, a.log, p)
	}
	if a.rights, err = rights.New(rights.Deps{Store: store, Point: a.point, Ledger: a.ledger, Keys: kr, Log: a.log}, rights.Options{Logger: logger, OnErased: opt.onErased(logger), Delivered: delivered}); err != nil {
		return nil, err
	}
	// apply tells the monitor what each recommendation showed (FB-2); the
	// monitor may halt a pricing use-case through apply (FP-1). The closure
	// breaks the construction cycle.
	observe := func(uc string, ps portrait.Pseudonym, items, cats []string) { a.monitor.Observe(uc, ps, items, cats) }
	if a.apply, err = apply.New(apply.Deps{Store: store, Point: a.point, Ledger: a.ledger, Keys: kr, Log: a.log}, apply.Options{Assessments: opt.Assessments, Observe: observe}); err != nil {
		return nil, err
	}
	a.monitorEvery = time.Hour
	if a.monitor, err = monitor.New(monitor.Deps{Store: store, Point: a.point, Keys: kr, Log: a.log, Halter: a.apply}, monitor.Options{Logger: logger}); err != nil {
		return nil, err
	}
	// Ingest returns once a batch is stored and audited; the queue derives
	// the labels it touched right after, each subject once (or, with
	// --cluster, the bucket's owner does). A lexicon hit flags the field
	// through the monitor, the one owner of the flags.
	a.queue = a.deriver.NewQueue(ctx, 100_000, opt.DeriveDelay)
	a.onStored, a.pending = a.queue.Add, a.queue.Mark
	a.ingest = ingest.New(ingest.Deps{Store: store, Point: a.point, Ledger: a.ledger, Keys: kr, Log: a.log}, ingest.Options{Logger: logger,
		OnStored: func(ctx context.Context, ps []portrait.Pseudonym) { a.onStored(ctx, ps) },
		Pending: func(ctx context.Context, tx portrait.Tx, ps []portrait.Pseudonym) error {
			if a.pending == nil {
				return nil
			}
			return a.pending(ctx, tx, ps)
		}, Flags: a.monitor})
	if a.review, err = review.New(review.Deps{Store: store, Point: a.point, Ledger: a.ledger, Keys: kr, Log: a.log}, review.Options{}); err != nil {
		return nil, err
	}
	ov, err := oversight.New(ctx, oversight.Deps{Store: store, Point: a.point, Keys: kr, Log: a.log, Apply: a.apply}, oversight.Options{Operator: opt.Operator})
	if err != nil {
		return nil, err
	}
	a.oversight = ov
	a.staff = apikey.New(apikey.Deps{Store: store, Log: a.log}, apikey.Options{Logger: logger})
	audiences := apply.NewAudiences(apply.Deps{Store: store, Point: a.point, Ledger: a.ledger, Keys: kr, Log: a.log})
	audiences.Assessments = a.apply
	if len(opt.Destinations) > 0 {
		a.deliveries = &delivery.Dispatcher{Store: store, Audit: a.log, Destinations: opt.Destinations, Logger: logger,
			Audiences: audiences, AudienceEvery: opt.AudienceEvery, Pseudonym: kr.Pseudonym,
			Identify: func(ctx context.Context, p portrait.Pseudonym) (string, error) {
				subs, err := store.Subjects(ctx, []portrait.Pseudonym{p})
				if err != nil {
					return "", err
				}
				sub, ok := subs[p]
				if !ok {
					return "", portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored", p)
				}
				return kr.SubjectID(sub)
			}}
	}
	a.server = server.New(server.Config{Store: store, Staff: a.staff, Point: a.point, Ledger: a.ledger, Keys: kr, Log: a.log, Deliveries: a.deliveries,
		Apply: a.apply, Review: a.review, Oversight: ov,
		Deriver: a.deriver, Audiences: audiences,
		Ingester: a.ingest, Logger: logger, Monitor: a.monitor,
		Rights: a.rights, Demo: opt.Demo, DemoSubjects: opt.DemoSubjects,
		IdleTimeout: opt.IdleTimeout, BodyGrace: opt.BodyGrace, MinBodyRate: opt.MinBodyRate,
		TrustedProxies: opt.TrustedProxies, StoreTimeout: opt.StoreTimeout})
	return a, nil
}

// bootstrapName is the name the key given by --admin-key registers under.
const bootstrapName = "admin/bootstrap"

// system is who the commands act as in the audit log.
func system(cmd string) policy.Caller { return policy.Caller{Role: policy.System, ID: cmd} }

// adminKey returns the bootstrap admin key given by --admin-key or by
// --admin-key-file (so that it need not appear in ps), or "" for none.
func adminKey(key, file string) (string, error) {
	switch {
	case key != "" && file != "":
		return "", errors.New("give the admin key once: --admin-key (PORTRAIT_ADMIN_KEY) or --admin-key-file (PORTRAIT_ADMIN_KEY_FILE), not both")
	case file == "":
		return key, nil
	}
	b, err := keys.ReadPrivate(file)
	if err != nil {
		return "", fmt.Errorf("read --admin-key-file: %w", err)
	}
	k := strings.TrimSpace(string(b))
	if k == "" || strings.ContainsAny(k, "\n\r") {
		return "", fmt.Errorf("read --admin-key-file: %s must hold the key on one line", file)
	}
	return k, nil
}

// cliMessage is what a command prints for err: the caller-safe message of
// a refusal, the whole chain of an unexpected failure.
func cliMessage(err error) string {
	switch portrait.ErrorCode(err) {
	case portrait.EINTERNAL, portrait.EUNAVAILABLE:
		return err.Error()
	}
	return portrait.ErrorMessage(err)
}

// tamperAlert reports a record the log's verifier refused: an error in
// the server's log, once per entry and reason an audit record of kind
// "alert" (as the monitors record theirs), and the counter
// portrait_audit_integrity_failures_total that package server exports.
func (a *app) tamperAlert(te *audit.TamperError) {
	a.logger.Error("audit log integrity check failed: a record does not match the signed log; see README \"Recovering from a detected tamper\"",
		"entry", te.Index, "reason", te.Reason)
	key := fmt.Sprint(te.Index, te.Reason)
	if _, seen := a.alerted.LoadOrStore(key, true); seen {
		return
	}
	rec := audit.Record{Kind: "alert", Actor: "system", Action: "integrity", Codes: []string{"FA-6"},
		Detail: map[string]any{"monitor": "audit", "entry": te.Index, "reason": te.Reason}}
	// Not in the caller's goroutine: the finding may come from a read
	// inside a write transaction, which the alert's own would wait on.
	go func() {
		err := a.store.Update(context.Background(), func(ctx context.Context, tx portrait.Tx) error {
			_, err := a.log.Append(ctx, tx, rec)
			return err
		})
		if err != nil {
			a.logger.Error("audit log integrity alert not recorded", "err", err)
		}
	}()
}

// listen serves until ctx ends, with the checkpoint publisher and the
// retention sweeper running beside it.
func (a *app) listen(ctx context.Context, addr string, ready func(url string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := a.server.HTTPServer()
	srv.Handler = server.CORS(a.cors, srv.Handler)
	go a.log.Publish(ctx, a.store, a.saveCheckpoint, time.Second)
	go a.sweep(ctx, time.Minute)
	if a.enforcer != nil {
		// Orders bind within the poll interval on every node: a
		// suspension is in the shared store, read on each request.
		go a.enforcer.Run(ctx, 2*time.Second)
	}
	if a.supervisor != nil {
		go a.supervisor(ctx)
	}
	go a.monitor.Schedule(ctx, a.monitorEvery)
	if a.deliveries != nil {
		go a.deliveries.Run(ctx, time.Second)
	}
	errc := make(chan error, 1)
	url := "http://" + ln.Addr().String()
	if a.tls != nil {
		srv.TLSConfig = a.tls
		url = "https://" + ln.Addr().String()
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	a.logger.Info("serving", "url", url)
	if ready != nil {
		ready(url)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// saveCheckpoint publishes a signed checkpoint. A joined engine publishes
// only checkpoints the regulator has cosigned: until it has, the last
// cosigned one stays the one served.
func (a *app) saveCheckpoint(ctx context.Context, note []byte) error {
	if a.link != nil && a.enforcer.Rejoining() {
		return errors.New("regulator: not yet rejoined; the last cosigned checkpoint stays published")
	}
	return a.publish(ctx, note)
}

// publish is saveCheckpoint without waiting for a rejoin: the catch-up
// that rejoins publishes the repaired log through it.
func (a *app) publish(ctx context.Context, note []byte) error {
	if a.link != nil {
		cosigned, err := a.link.Submit(ctx, note)
		if err != nil {
			return fmt.Errorf("regulator: %w", err)
		}
		note = cosigned
	}
	return a.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, note) })
}

// loadTLS reads --tls-cert and --tls-key, so that a bad pair stops
// start-up with a clear error rather than failing every handshake.
func loadTLS(cert, key string) (*tls.Config, error) {
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, fmt.Errorf("serve: give --tls-cert and --tls-key together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("serve: --tls-cert %s / --tls-key %s: %w", cert, key, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

func (a *app) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := a.ingest.Sweep(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			a.logger.Error("retention sweep", "err", err)
		} else if n > 0 {
			a.logger.Info("retention sweep", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("serve", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", "portrait.db", "SQLite file or postgres:// URL")
	catPath := fs.String("catalog", "catalog.yaml", "the catalog (declarations) file")
	keyFile := fs.String("key-file", "portrait.key", "master key file (created if missing); or set PORTRAIT_MASTER_KEY")
	adminKeyFlag := fs.String("admin-key", "", "register this admin API key at start-up, as "+bootstrapName+" (it then shows in ps: prefer --admin-key-file)")
	adminKeyFile := fs.String("admin-key-file", "", "read the admin API key to register from FILE (mode 0600), as "+bootstrapName)
	deriveDelay := fs.Duration("derive-delay", 100*time.Millisecond, "how long ingested subjects may wait for their labels, so that several batches of one subject derive once (0: as soon as the queue is free)")
	monitorEvery := fs.Duration("monitor-every", time.Hour, "how often the fairness, price and diversity monitors run (0 turns them off)")
	assessments := fs.String("assessments", assessmentsDir(), "directory of signed impact assessments (FA-1)")
	idle := fs.Duration("idle-timeout", server.DefaultIdleTimeout, "close a keep-alive connection idle this long")
	grace := fs.Duration("body-grace", server.DefaultBodyGrace, "time a request body may take before --min-body-rate applies")
	rate := fs.Int64("min-body-rate", server.DefaultMinBodyRate, "bytes per second a request body must keep arriving at after --body-grace, else the connection is closed (408); -1 turns it off")
	storeTimeout := fs.Duration("store-timeout", server.DefaultStoreTimeout, "answer 503 with Retry-After when a decision, recommendation or key check has waited this long for the store (the call itself runs to its end)")
	cors := fs.String("cors-origins", "", "exact origins (comma-separated, e.g. https://shop.example.com) whose pages may call the API with the browser SDK; none by default")
	natsURL := fs.String("nats", "", "NATS server URL to take events from (with credentials, set PORTRAIT_NATS rather than the flag)")
	natsStream := fs.String("nats-stream", "", "JetStream stream whose events are ingested (with --nats); every node shares one durable consumer")
	webhook := fs.String("webhook", "", "URL that receives subject-rights events as Standard Webhooks; the secret (whsec_…) comes from PORTRAIT_WEBHOOK_SECRET")
	shareFlag := fs.Bool("cluster", false, "with --nats-stream on PostgreSQL: derive each subject on the one live node that owns its bucket (docs/SCALING.md)")
	natsRights := fs.String("nats-rights", "", "NATS subject that receives subject-rights events (with --nats)")
	audiencesFile := fs.String("audiences", "", "JSON file of audiences whose joined/left changes the --webhook and --nats-rights destinations receive: [{\"name\", \"request\": {\"purpose\", \"expression\", \"output\"}}]; they then receive rights events only about subjects they received")
	audienceEvery := fs.Duration("audience-every", time.Minute, "how often the --audiences are materialised for their destinations")
	packPath := fs.String("pack", "", "a rule pack signed by a trusted key (default: the embedded pack)")
	origin := fs.String("origin", "", "the audit log's origin in its checkpoints, e.g. the company's domain (shop.example/portrait); default portrait.local/log/<key id>")
	reg := addRegulatorFlags(fs)
	journalPath := fs.String("erasure-journal", "", "without a regulator: a file, kept apart from the database and its backups, that records every erasure and is replayed on start")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; with --tls-key")
	tlsKey := fs.String("tls-key", "", "the PEM private key of --tls-cert")
	proxies := fs.String("trusted-proxies", "", "CIDR prefixes or addresses (comma-separated) of reverse proxies whose Forwarded / X-Forwarded-For / X-Forwarded-Proto headers are believed; none by default")
	operator := fs.String("operator", "", "your staff name (team/person): recorded as accepting a new store's first catalog, and as the author of the change request a changed catalog files, which someone else must approve")
	level := fs.String("log-level", "info", "least severe log level written: debug, info (includes the access log), warn or error")
	pprofAddr := fs.String("pprof-addr", "", "serve Go's profiles and execution trace (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060, to an admin API key only; off by default")
	if err := parse(fs, args); err != nil {
		return err
	}
	tuneGC(os.Getenv)
	if *operator != "" {
		if err := portrait.CheckStaffName(*operator); err != nil {
			return fmt.Errorf("serve: --operator: %s", cliMessage(err))
		}
	}
	if *deriveDelay < 0 || *storeTimeout < 0 {
		return fmt.Errorf("serve: --derive-delay %s, --store-timeout %s: neither can be negative", *deriveDelay, *storeTimeout)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("serve: --log-level %q: want debug, info, warn or error", *level)
	}
	trusted, err := server.ParseProxies(*proxies)
	if err != nil {
		return fmt.Errorf("serve: --trusted-proxies: %w", err)
	}
	tlsConf, err := loadTLS(*tlsCert, *tlsKey)
	if err != nil {
		return err
	}
	if *idle <= 0 || *grace <= 0 || *rate == 0 {
		return fmt.Errorf("serve: --idle-timeout and --body-grace must be positive, and --min-body-rate positive or -1")
	}
	origins, err := server.ParseOrigins(*cors)
	if err != nil {
		return err
	}
	if *natsURL == "" && (*natsStream != "" || *natsRights != "") {
		return fmt.Errorf("--nats-stream and --nats-rights need --nats: %w", errUsage)
	}
	if *shareFlag && (*natsStream == "" || !isPostgres(*db)) {
		return fmt.Errorf("--cluster needs --nats-stream and a postgres:// --db: %w", errUsage)
	}
	nc, dests, err := destinations(*natsURL, *webhook, *natsRights)
	if err != nil {
		return err
	}
	if *audiencesFile != "" {
		aus, err := loadAudiences(*audiencesFile)
		if err != nil {
			return err
		}
		if len(dests) == 0 {
			return fmt.Errorf("--audiences needs a destination (--webhook or --nats-rights): %w", errUsage)
		}
		for i := range dests {
			dests[i].Audiences = aus
		}
	}
	if *audienceEvery <= 0 {
		return fmt.Errorf("serve: --audience-every must be positive")
	}
	if nc != nil {
		defer nc.Drain()
	}
	admin, err := adminKey(*adminKeyFlag, *adminKeyFile)
	if err != nil {
		return err
	}
	var jr *journal
	if *journalPath != "" {
		jr = &journal{path: *journalPath}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	reg.catalog = *catPath
	pack, localPack, err := reg.pack(ctx, *packPath, logger)
	if err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	cat, err := catalog.LoadWith(pack, *catPath, label.Check)
	if err != nil {
		return fmt.Errorf("refusing to start on an invalid catalog:\n%w", err)
	}
	kr, err := loadKeys(*keyFile, true, logger)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	var copied *rules.Pack
	if localPack && reg.joined() {
		// The regulator cannot be reached: its pack, as the store kept a
		// verified copy of it, rather than the local one.
		if c, err := regulator.NewClient(*reg.url, *reg.key, *reg.token, http.DefaultClient); err == nil {
			if copied, err = packCopy(ctx, store, c); err != nil {
				return fmt.Errorf("refusing to start: %w", err)
			}
		}
		if copied != nil {
			logger.Warn("checking the catalog against the copy of the regulator's rule pack this store kept", "pack", copied.String())
			if cat, err = catalog.LoadWith(copied, *catPath, label.Check); err != nil {
				return fmt.Errorf("refusing to start on an invalid catalog:\n%w", err)
			}
		}
	}
	a, err := newApp(ctx, cat, store, kr, logger, options{Assessments: *assessments, DeriveDelay: *deriveDelay, Destinations: dests, AudienceEvery: *audienceEvery, Origin: *origin, Journal: jr,
		IdleTimeout: *idle, BodyGrace: *grace, MinBodyRate: *rate, StoreTimeout: *storeTimeout, CheckLog: true, TrustedProxies: trusted, Operator: *operator})
	if err != nil {
		return err
	}
	offline, err := reg.join(ctx, a, localPack, copied)
	if err != nil {
		return err
	}
	// Before serving anyone: a log behind the regulator's witnessed one,
	// or a journal of erasures, is replayed. Offline, the catch-up waits
	// for the regulator's first answer, with the high tier stopped.
	if a.link != nil && !offline {
		n, err := a.catchUp(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			logger.Warn("the log was behind the regulator's witnessed log: missing entries fetched, verified and re-applied", "entries", n)
		}
	}
	if a.enforcer != nil {
		// The receivership and dead-man limit in force, from the log
		// (re-fetched entries included), before anyone is served.
		if err := a.enforcer.Scan(ctx); err != nil {
			return fmt.Errorf("read the regulator's orders in force from the log: %w", err)
		}
	}
	if jr != nil {
		n, err := a.replayJournal(ctx, jr)
		if err != nil {
			return err
		}
		if n > 0 {
			logger.Warn("erasure journal: subjects erased again after a restore", "subjects", n)
		}
	}
	a.monitorEvery, a.cors, a.tls = *monitorEvery, origins, tlsConf
	if admin != "" {
		// The bootstrap key does not expire: it is the operator's own, set
		// in the node's configuration. Revoke it once named admins exist.
		if err := a.staff.Register(ctx, system("serve"), bootstrapName, policy.Admin, apikey.Hash(admin), time.Time{}); err != nil {
			return fmt.Errorf("register the admin key as %s: %s", bootstrapName, cliMessage(err))
		}
	}
	if *pprofAddr != "" {
		// After the keys are in: profiles are for an admin key only.
		u, err := servePprof(ctx, *pprofAddr, a.staff)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "profiles on %s/debug/pprof/ (an admin key as bearer)\n", u)
	}
	if *shareFlag {
		if err := a.share(ctx, *db, nc); err != nil {
			return err
		}
	} else {
		// Subjects a stopped process left waiting are derived now.
		a.queue.Recover(ctx)
	}
	if *natsStream != "" {
		var stop context.CancelCauseFunc
		ctx, stop = intake(ctx, a, nc, *natsStream)
		defer stop(nil)
	}
	err = a.listen(ctx, *addr, func(url string) { fmt.Fprintf(stdout, "Portrait serving on %s\n", url) })
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause // the NATS intake stopped
	}
	return err
}
