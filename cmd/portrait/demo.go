package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apikey"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/examples/cdnow"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/importer"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// demoSubjects is how many synthetic subjects the demo seeds.
const demoSubjects = 300

// demoPicker are the subjects the privacy centre's demo sign-in offers.
var demoPicker = []string{"u0001", "u0002", "u0003", "u0004", "u0005"}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("demo", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", "", "SQLite file or postgres:// URL (default: a fresh file in a temporary directory)")
	adminKeyFlag := fs.String("admin-key", "", "fix the demo admin's API key (default: a random one)")
	adminKeyFile := fs.String("admin-key-file", "", "read the demo admin's API key from FILE (mode 0600)")
	keep := fs.Bool("keep", false, "keep the temporary directory (database, master key, assessments) when the demo ends")
	withCDNOW := fs.Bool("cdnow", false, "also import the real CDNOW purchase log (23,570 customers) and segment it; takes about a minute")
	if err := parse(fs, args); err != nil {
		return err
	}
	tuneGC(os.Getenv)
	admin, err := adminKey(*adminKeyFlag, *adminKeyFile)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		return fmt.Errorf("the demo catalog is invalid:\n%w", err)
	}
	dir, err := os.MkdirTemp("", "portrait-demo-")
	if err != nil {
		return err
	}
	// The directory holds a master key: it goes when the demo ends (after
	// the store is closed, deferred below), unless --keep.
	defer func() {
		if *keep {
			fmt.Fprintf(stdout, "kept %s (database, master key)\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	if *db == "" {
		*db = filepath.Join(dir, "portrait.db")
	}
	kr, err := loadKeys(filepath.Join(dir, "portrait.key"), true, logger)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	a, err := newApp(ctx, cat, store, kr, logger, options{
		Assessments: filepath.Join(dir, "assessments"),
		Demo:        true, DemoSubjects: demoPicker, CheckLog: true, Operator: "demo/operator",
	})
	if err != nil {
		return err
	}
	keysByRole, err := demoKeys(ctx, a, admin)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := seed(ctx, a, demoSubjects, time.Now())
	if err != nil {
		return fmt.Errorf("seed demo data: %w", err)
	}
	if *withCDNOW {
		if err := seedCDNOW(ctx, a, stdout); err != nil {
			return fmt.Errorf("import CDNOW: %w", err)
		}
	}
	if err := seedApply(ctx, a, demoSubjects); err != nil {
		return fmt.Errorf("seed demo use-cases: %w", err)
	}
	return a.listen(ctx, *addr, func(url string) {
		fmt.Fprintf(stdout, "Portrait demo — %d subjects, %d events seeded in %s\n", demoSubjects, n, time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(stdout, "  URL:            %s\n  privacy centre: %s/privacy/\n  staff console:  %s/console/reviews (sign in with a staff key)\n  database:       %s\n  files:          %s (removed on exit unless --keep)\n\n", url, url, url, *db, dir)
		fmt.Fprintf(stdout, "Demo API keys (Authorization: Bearer KEY), named demo/<role>:\n")
		for _, role := range policy.Roles {
			fmt.Fprintf(stdout, "  %-10s %s\n", role, keysByRole[role])
		}
		fmt.Fprintf(stdout, "\nDemo subjects (subject tokens, valid 24h):\n")
		for _, id := range demoPicker[:3] {
			fmt.Fprintf(stdout, "  %s  %s\n", id, kr.IssueToken(kr.Pseudonym(id), 24*time.Hour))
		}
		fmt.Fprintf(stdout, "\nTry:\n  curl -H 'Authorization: Bearer %s' %s/v1/catalog\n  curl %s/v1/log/checkpoint\n",
			keysByRole[policy.Admin], url, url)
	})
}

// demoKeys registers a key named demo/<role> for every role, the regulator
// included (the demo keeps a local regulator until the regulator's own
// node takes its place), admin's being adminKey if given. Demo keys do not
// expire; on a reused database, each start revokes the last start's.
func demoKeys(ctx context.Context, a *app, adminKey string) (map[policy.Role]string, error) {
	out := map[policy.Role]string{}
	for _, role := range policy.Roles {
		k := apikey.Secret(role)
		if role == policy.Admin && adminKey != "" {
			k = adminKey
		}
		name := "demo/" + string(role)
		err := a.staff.Register(ctx, system("demo"), name, role, apikey.Hash(k), time.Time{})
		if portrait.ErrorCode(err) == portrait.ECONFLICT && k != adminKey {
			if _, err = a.staff.Revoke(ctx, system("demo"), name); err == nil {
				err = a.staff.Register(ctx, system("demo"), name, role, apikey.Hash(k), time.Time{})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("demo API key %s: %s", name, cliMessage(err))
		}
		out[role] = k
	}
	return out, nil
}

var (
	demoCategories = []string{"sports", "books", "electronics", "fashion", "home", "beauty"}
	demoCities     = []string{"北京", "上海", "广州", "深圳", "杭州", "成都"}
	demoDevices    = []string{"ios", "android", "web"}
)

// seed records consents for n synthetic subjects and ingests their events
// through the governed path, exactly as the API would. It is deterministic.
func seed(ctx context.Context, a *app, n int, now time.Time) (int, error) {
	rng := rand.New(rand.NewPCG(42, 1))
	operator := policy.Caller{Role: policy.Operator, ID: "demo/operator"}
	cat := a.point.Catalog()
	var events []ingest.Item
	total := 0
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		_, sum, err := a.ingest.Ingest(ctx, operator, events)
		total += sum.Accepted
		events = events[:0]
		return err
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("u%04d", i)
		minor := i%50 == 0
		age := float64(18 + rng.IntN(50))
		if minor {
			age = float64(10 + rng.IntN(4))
		}
		for _, p := range cat.Purposes {
			if p.Basis != catalog.BasisConsent {
				continue
			}
			var st policy.Status
			switch r := rng.Float64(); {
			case p.ID == "personalization" && r < 0.85, p.ID == "marketing" && r < 0.5, r < 0.3:
				st = policy.Granted
			case r < 0.7:
				st = policy.Refused
			default:
				continue
			}
			var guardian string
			if minor && st == policy.Granted {
				// The demo's guardian flow: the operator has verified the
				// guardian and vouches for this subject and purpose (SM-3).
				tok, _, err := a.ledger.GuardianToken(ctx, operator, consent.ByID(id), p.ID)
				if err != nil {
					return total, fmt.Errorf("guardian token %s/%s: %w", id, p.ID, err)
				}
				guardian = tok
			}
			if _, err := a.ledger.Record(ctx, operator, consent.ByID(id), consent.Change{Purpose: p.ID, Status: st,
				NoticeVersion: p.NoticeVersion, Channel: "demo-app", UserAgent: "PortraitDemo/1.0", IP: "203.0.113.7",
				GuardianToken: guardian}); err != nil {
				return total, fmt.Errorf("consent %s/%s: %w", id, p.ID, err)
			}
		}
		t0 := now.Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
		events = append(events, ingest.Item{Event: portrait.Event{SubjectID: id, Type: "profile", Time: t0,
			Fields: map[string]any{"age": age, "city": demoCities[rng.IntN(len(demoCities))], "income": float64(3000 + rng.IntN(40000))}}})
		fav := demoCategories[rng.IntN(len(demoCategories))]
		for j, views := 0, 3+rng.IntN(25); j < views; j++ {
			c := fav
			if rng.Float64() < 0.4 {
				c = demoCategories[rng.IntN(len(demoCategories))]
			}
			events = append(events, ingest.Item{Event: portrait.Event{SubjectID: id, Type: "view",
				Time:   now.Add(-time.Duration(rng.IntN(60*24*60)) * time.Minute),
				Fields: map[string]any{"item": fmt.Sprintf("%s-%03d", c, rng.IntN(200)), "category": c, "price": float64(10 + rng.IntN(990)), "device": demoDevices[rng.IntN(3)]}}})
		}
		for j, buys := 0, rng.IntN(6); j < buys; j++ {
			q := float64(1 + rng.IntN(3))
			price := float64(10 + rng.IntN(500))
			events = append(events, ingest.Item{Event: portrait.Event{SubjectID: id, Type: "purchase",
				Time:           now.Add(-time.Duration(rng.IntN(180*24)) * time.Hour),
				IdempotencyKey: fmt.Sprintf("order-%s-%d", id, j),
				Fields:         map[string]any{"item": fmt.Sprintf("%s-%03d", fav, rng.IntN(200)), "category": fav, "price": price, "quantity": q, "amount": price * q}}})
		}
		if len(events) >= 1000 {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	return total, flush()
}

// seedApply puts what the scenario pages need on record: the item
// catalog, the impact assessment the high-risk credit use-case cannot go
// live without (FA-1), a first batch derivation of labels, segments and
// RFM tiers, the audit-only protected attribute of each subject (FP-2),
// and some credit decisions for the review queue and the fairness report.
func seedApply(ctx context.Context, a *app, n int) error {
	system := policy.Caller{Role: policy.System, ID: "demo"}
	rng := rand.New(rand.NewPCG(7, 7))
	var items []portrait.Item
	for _, c := range demoCategories {
		for i := range 200 {
			items = append(items, portrait.Item{ID: fmt.Sprintf("%s-%03d", c, i), Categories: []string{c},
				Price: float64(10 + rng.IntN(990)), Updated: time.Now().UTC()})
		}
	}
	if _, err := a.apply.PutItems(ctx, system, items); err != nil {
		return fmt.Errorf("items: %w", err)
	}
	ans, err := apply.ParseAnswers(demo.Assessment)
	if err != nil {
		return err
	}
	if _, err := a.apply.Assess(ctx, system, "credit_limit", ans); err != nil {
		return fmt.Errorf("assess credit_limit: %w", err)
	}
	if _, err := a.deriver.All(ctx, nil); err != nil {
		return fmt.Errorf("derive: %w", err)
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("u%04d", i)
		sex := "F"
		if rng.IntN(2) == 0 {
			sex = "M"
		}
		if err := a.monitor.PutProtected(ctx, system, id, map[string]string{"gender": sex}); err != nil {
			return fmt.Errorf("protected attributes of %s: %w", id, err)
		}
		if i%3 != 0 {
			continue
		}
		ps := a.keys.Pseudonym(id)
		operator := policy.Caller{Role: policy.Operator, ID: "demo/operator"}
		if _, err := a.apply.ShowNotice(ctx, operator, ps, "credit_limit"); err != nil {
			return fmt.Errorf("pre-use notice for %s: %w", id, err)
		}
		// Subjects without consent to credit are refused, with the reason;
		// that is part of the demo, not an error.
		a.apply.Determine(ctx, operator, ps, "credit_limit")
	}
	return nil
}

// seedCDNOW imports the shipped CDNOW log through the governed path, with
// consent to personalization recorded as imported (the log's customers
// are fictional to this demo), its dates shifted so the newest purchase is
// today; the derivation in seedApply then puts every customer in an RFM
// tier and a segment.
func seedCDNOW(ctx context.Context, a *app, stdout io.Writer) error {
	cat := a.point.Catalog()
	o := importer.Options{Format: "cdnow", Source: "CDNOW_master.txt", Grant: []string{"personalization"},
		Ledger: a.ledger, Keys: a.keys}
	open := func() (io.Reader, error) { return gzip.NewReader(bytes.NewReader(cdnow.Log)) }
	r, err := open()
	if err != nil {
		return err
	}
	newest, err := importer.Newest(cat, r, o)
	if err != nil {
		return err
	}
	o.Shift = time.Now().UTC().Truncate(24 * time.Hour).Sub(newest)
	if r, err = open(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Importing the CDNOW purchase log …")
	in := ingest.New(ingest.Deps{Store: a.store, Point: a.point, Ledger: a.ledger, Keys: a.keys, Log: a.log}, ingest.Options{Logger: a.logger})
	rep, err := importer.Import(ctx, in, cat, policy.Caller{Role: policy.Operator, ID: "demo-import"}, r, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CDNOW: %d purchases of %d customers imported\n", rep.Accepted, rep.Granted)
	return nil
}
