package monitor_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/sqlite"
)

// env is a whole Portrait on a fresh SQLite file with the test catalog.
type env struct {
	t     testing.TB
	store portrait.Store
	keys  *keys.Keyring
	point *policy.Point
	log   *audit.Log
	led   *consent.Ledger
	in    *ingest.Ingester
	mon   *monitor.Monitor
	now   time.Time
}

var (
	operator = policy.Caller{Role: policy.Operator, ID: "op-1"}
	auditor  = policy.Caller{Role: policy.Auditor, ID: "au-1"}
	reviewer = policy.Caller{Role: policy.Reviewer, ID: "rv-1"}
)

func newEnv(t testing.TB, opts monitor.Options) *env {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portrait.db"))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, store, opts)
}

// newEnvOn is newEnv on store.
func newEnvOn(t testing.TB, store portrait.Store, opts monitor.Options) *env {
	t.Helper()
	cat, err := catalog.Load("testdata/catalog.yaml", label.Check)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		t.Fatal(err)
	}
	point := policy.New(cat)
	log, err := audit.New("portrait.test/log", kr.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := consent.New(consent.Deps{Store: store, Point: point, Log: log, Keys: kr}, consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	in := ingest.New(ingest.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, ingest.Options{Logger: logger})
	opts.Logger = logger
	mon, err := monitor.New(monitor.Deps{Store: store, Point: point, Keys: kr, Log: log}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: store, keys: kr, point: point, log: log, led: ledger, in: in, mon: mon, now: time.Now().UTC().Truncate(time.Second)}
}

func (e *env) ingest(events ...portrait.Event) {
	e.t.Helper()
	items := make([]ingest.Item, len(events))
	for i, ev := range events {
		items[i].Event = ev
	}
	res, _, err := e.in.Ingest(context.Background(), operator, items)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != ingest.Accepted {
			e.t.Fatalf("event %d: %s %+v", r.Index, r.Status, r.Problem)
		}
	}
}

// grant asks the decision point, as Portrait's system role, for action on subject.
func (e *env) grant(id string, action policy.Action, purpose string) policy.Grant {
	e.t.Helper()
	ps := e.keys.Pseudonym(id)
	st, err := e.store.States(context.Background(), []portrait.Pseudonym{ps})
	if err != nil {
		e.t.Fatal(err)
	}
	d := e.point.Decide(policy.Request{State: st[ps], Action: action, Purpose: purpose, Caller: policy.Caller{Role: policy.System, ID: "test"}})
	if !d.Allow {
		e.t.Fatalf("grant %s %s: %v", action, id, d.Err())
	}
	return d.Grant
}

// putLabel stores a rule label value as the derivation engine would.
func (e *env) putLabel(id, name string, v bool) {
	e.t.Helper()
	ctx := context.Background()
	ps := e.keys.Pseudonym(id)
	subs, err := e.store.Subjects(ctx, []portrait.Pseudonym{ps})
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.keys.Open(subs[ps])
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(label.Value{Label: name, Version: 1, Kind: catalog.KindRule, Bool: v, Computed: e.now})
	g := e.grant(id, policy.Derive, "analytics")
	err = e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: g, Pseudonym: ps, Label: name, Version: 1,
			Sealed: c.Seal(b, keys.LabelAD(ps, name)), Computed: e.now}})
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) putDecision(id string, n int, outcome bool) {
	e.t.Helper()
	ctx := context.Background()
	g := e.grant(id, policy.Use, "service")
	err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutDetermination(ctx, portrait.StoredDetermination{Grant: g, ID: fmt.Sprintf("d-%s-%d", id, n), Pseudonym: e.keys.Pseudonym(id),
			UseCase: "loan", Model: "loan_score", ModelVersion: 1, Outcome: outcome, Score: map[bool]float64{true: 0.7, false: 0.3}[outcome],
			InputHash: "h", Status: "automated", Created: e.now})
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) records(kind string) []audit.Record {
	e.t.Helper()
	ctx := context.Background()
	size, err := e.store.LogSize(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	ents, err := e.store.LogEntries(ctx, 0, size)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []audit.Record
	for _, en := range ents {
		var r audit.Record
		if err := json.Unmarshal(en.Data, &r); err != nil {
			e.t.Fatal(err)
		}
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

const evilItem = `shoe<script>alert(1)</script>&"`

// population builds, through the real ingest path, 120 subjects whose
// postcode_income tracks their sex, whose shoe colour does not, where
// loyal customers are shown higher prices, women are approved for loans
// less often, and one subject's views narrow to one category.
func (e *env) population() {
	e.t.Helper()
	ctx := context.Background()
	var evs []portrait.Event
	for i := range 120 {
		id := fmt.Sprintf("s%03d", i)
		sex := []string{"F", "M"}[i%2]
		income := 3000.0 + float64(i%7)*10
		if sex == "M" {
			income += 3000
		}
		colours := []string{"red", "blue", "green"}
		evs = append(evs, portrait.Event{SubjectID: id, Type: "profile", Time: e.now.Add(-48 * time.Hour),
			Fields: map[string]any{"postcode_income": income, "shoe_colour": colours[(i/2)%3]}})
		price := 100.0
		if i%3 == 0 {
			price = 125 // loyal customers pay more: 大数据杀熟
		}
		evs = append(evs, portrait.Event{SubjectID: id, Type: "price_shown", Time: e.now.Add(-time.Hour),
			Fields: map[string]any{"item": evilItem, "price": price, "context": "web"}})
	}
	e.ingest(evs...)
	for i := range 120 {
		id := fmt.Sprintf("s%03d", i)
		if err := e.mon.PutProtected(ctx, operator, id, map[string]string{"sex": []string{"F", "M"}[i%2], "age_band": []string{"18-34", "35-54", "55+"}[i%5%3]}); err != nil {
			e.t.Fatal(err)
		}
		e.putLabel(id, "loyal", i%3 == 0)
		// Men approved 4 times in 5, women 1 time in 4.
		approve := i%2 == 1 && i%5 != 0 || i%2 == 0 && i%8 == 0
		e.putDecision(id, 0, approve)
	}
	// FB-2: a subject who saw five categories a week for three weeks, and
	// only one this week.
	cats := []string{"sports", "books", "garden", "music", "toys"}
	var views []portrait.Event
	for w := 3; w >= 0; w-- {
		for j := range 10 {
			c := cats[j%5]
			if w == 0 {
				c = "sports"
			}
			views = append(views, portrait.Event{SubjectID: "narrow", Type: "view", Time: e.now.Add(-time.Duration(w)*7*24*time.Hour - time.Duration(j+1)*time.Minute),
				Fields: map[string]any{"item": fmt.Sprintf("%s-%d", c, j), "category": c}})
		}
	}
	e.ingest(views...)
}

// TestMonitorRun runs every monitor over a synthetic population.
func TestMonitorRun(t *testing.T) {
	e := newEnv(t, monitor.Options{Dir: t.TempDir()})
	e.population()
	ctx := context.Background()
	rep, err := e.mon.Run(ctx, e.now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Subjects != 121 || rep.WithValues != 120 {
		t.Errorf("subjects %d, with protected values %d", rep.Subjects, rep.WithValues)
	}
	t.Logf("alerts by monitor: %v; proxy findings: %d", rep.AlertCount, len(rep.Proxies.Findings))
	alerts := map[string][]monitor.Alert{}
	for _, a := range rep.Alerts {
		alerts[a.Kind] = append(alerts[a.Kind], a)
	}

	// FP-6: postcode_income tracks sex and is flagged; shoe colour is not.
	flagged := map[string]bool{}
	for _, f := range rep.Proxies.Findings {
		if f.Flagged {
			flagged[f.Feature+"~"+f.Protected] = true
		}
	}
	if !flagged["postcode_income~sex"] || flagged["shoe_colour~sex"] || flagged["shoe_colour~age_band"] {
		t.Errorf("proxy flags: %v", flagged)
	}
	if !e.mon.Sensitive("postcode_income") || e.mon.Sensitive("shoe_colour") {
		t.Errorf("sensitive: postcode_income %v, shoe_colour %v", e.mon.Sensitive("postcode_income"), e.mon.Sensitive("shoe_colour"))
	}
	// FP-6: until cleared, the decision point treats the proxy as sensitive:
	// no derivation from it for a purpose without separate consent.
	useProxy := policy.Request{State: &policy.State{Pseudonym: "any"}, Purpose: "analytics", Fields: []string{"postcode_income"},
		Action: policy.Derive, Caller: policy.Caller{Role: policy.System, ID: "test"}}
	if d := e.point.Decide(useProxy); d.Allow || d.Reasons[0].Code != "proxy_flagged" {
		t.Errorf("derivation from a flagged proxy: %+v", d)
	}
	var proxyFlags []string
	for _, r := range e.records("proxy_flag") {
		proxyFlags = append(proxyFlags, r.Detail["feature"].(string))
	}
	if !strings.Contains(strings.Join(proxyFlags, ","), "postcode_income") {
		t.Errorf("proxy_flag records: %v", proxyFlags)
	}

	// FP-3, FP-4: women's approval rate is under four fifths of men's.
	if len(rep.Fairness.UseCases) != 1 || rep.Fairness.UseCases[0].Audit == nil {
		t.Fatalf("fairness section: %+v", rep.Fairness)
	}
	var sexAlert *monitor.Alert
	for i, a := range alerts["fairness"] {
		if a.Scope == "loan/sex=F" {
			sexAlert = &alerts["fairness"][i]
		}
	}
	if sexAlert == nil || sexAlert.Requirement != "FP-4" || !(sexAlert.Value < 0.8) {
		t.Errorf("no four-fifths alert for women: %+v", alerts["fairness"])
	}

	// FP-1: loyal customers are shown a 25 % higher price.
	if len(alerts["price"]) != 1 || alerts["price"][0].Requirement != "FP-1" || alerts["price"][0].Value < 0.24 || alerts["price"][0].Value > 0.26 {
		t.Errorf("price alerts: %+v", alerts["price"])
	}

	// FB-2: the narrowing subject is below the floor, with a falling trend.
	narrow := e.keys.Pseudonym("narrow")
	var div *monitor.Alert
	for i, a := range alerts["diversity"] {
		if a.Pseudonym == narrow {
			div = &alerts["diversity"][i]
		}
	}
	if div == nil || div.Value != 0 || div.Requirement != "FB-2" {
		t.Errorf("diversity alerts: %+v", alerts["diversity"])
	}
	for _, sd := range rep.Diversity.Scopes {
		if sd.Scope == "subject:"+string(narrow) && (len(sd.Periods) != 4 || sd.Trend.Slope == nil || *sd.Trend.Slope >= 0) {
			t.Errorf("narrow trend: %+v", sd)
		}
	}

	// Every alert is in the audit log, with its requirement and no value
	// of a subject.
	logged := e.records("alert")
	if len(logged) != len(rep.Alerts) {
		t.Errorf("%d alerts, %d alert records", len(rep.Alerts), len(logged))
	}
	reqs := map[string]int{}
	for _, r := range logged {
		reqs[r.Codes[0]]++
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "3000") || strings.Contains(string(b), `"F"`) {
			t.Errorf("alert record holds a personal value: %s", b)
		}
	}
	for _, id := range []string{"FP-1", "FP-4", "FP-6", "FB-2"} {
		if reqs[id] == 0 {
			t.Errorf("no alert record for %s: %v", id, reqs)
		}
	}
	// FP-2: the engine's read of protected attributes is logged, names only.
	acc := e.records("protected_access")
	if len(acc) != 1 || acc[0].Actor != "system:fairness" {
		t.Errorf("protected_access records: %+v", acc)
	}

	// No NaN or infinity anywhere in the JSON (json refuses them).
	var buf bytes.Buffer
	if err := monitor.WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "NaN") || strings.Contains(buf.String(), "Inf") {
		t.Error("NaN or Inf in the JSON report")
	}
	files, _ := filepath.Glob(filepath.Join(e.mon.Options().Dir, "monitor-*.json"))
	if len(files) != 1 {
		t.Errorf("report files: %v", files)
	}
	// The HTML has charts, no script, and escapes the evil item name.
	buf.Reset()
	if err := monitor.WriteHTML(&buf, rep, "en", nil); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	if strings.Contains(strings.ToLower(html), "<script") || !strings.Contains(html, "&lt;script&gt;") || !strings.Contains(html, "<svg") {
		t.Errorf("HTML: script or unescaped value or no chart:\n%.2000s", html)
	}

	// FP-6: only a reviewer clears a flag; the clearance is logged and
	// survives a restart (flags are rebuilt from the log).
	if _, err := e.mon.ClearProxy(ctx, operator, "postcode_income", "checked"); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
		t.Errorf("operator cleared a proxy: %v", err)
	}
	if _, err := e.mon.ClearProxy(ctx, reviewer, "postcode_income", ""); portrait.ErrorCode(err) != portrait.EINVALID {
		t.Errorf("clear without reason: %v", err)
	}
	if _, err := e.mon.ClearProxy(ctx, reviewer, "postcode_income", "income is a lawful credit criterion here"); err != nil {
		t.Fatal(err)
	}
	if e.mon.Sensitive("postcode_income") || len(e.records("proxy_clear")) != 1 {
		t.Error("clearance not applied or not logged")
	}
	if d := e.point.Decide(useProxy); !d.Allow {
		t.Errorf("derivation from a cleared proxy: %+v", d.Reasons)
	}
	m2, err := monitor.New(monitor.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log}, monitor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if m2.Sensitive("postcode_income") || len(m2.Proxies()) == 0 {
		t.Errorf("after reload: %+v", m2.Proxies())
	}
	// A second run does not flag the cleared feature again.
	before := len(e.records("proxy_flag"))
	if _, err := e.mon.Run(ctx, e.now); err != nil {
		t.Fatal(err)
	}
	if after := len(e.records("proxy_flag")); after != before || e.mon.Sensitive("postcode_income") {
		t.Errorf("cleared feature flagged again: %d → %d flags", before, after)
	}
	if len(e.mon.Reports()) != 2 {
		t.Errorf("%d reports kept", len(e.mon.Reports()))
	}
}

// TestProtected: protected attributes are accepted only when declared
// protected, readable only by the auditor and the fairness engine, and
// every access is logged without the values (FP-2).
func TestProtected(t *testing.T) {
	e := newEnv(t, monitor.Options{})
	ctx := context.Background()
	if err := e.mon.PutProtected(ctx, operator, "alice", map[string]string{"sex": "F", "age_band": "35-54"}); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name  string
		c     policy.Caller
		attrs map[string]string
		code  string
		want  string
	}{
		{"undeclared", operator, map[string]string{"religion": "x"}, portrait.EINVALID, "protected: true"},
		{"not protected", operator, map[string]string{"shoe_colour": "red"}, portrait.EINVALID, "not declared protected: true"},
		{"empty", operator, map[string]string{}, portrait.EINVALID, "no protected attribute"},
		{"empty value", operator, map[string]string{"sex": " "}, portrait.EINVALID, "empty value"},
		{"auditor writes", auditor, map[string]string{"sex": "F"}, portrait.EFORBIDDEN, "may not record"},
		{"reviewer writes", reviewer, map[string]string{"sex": "F"}, portrait.EFORBIDDEN, "may not record"},
	}
	for _, b := range bad {
		err := e.mon.PutProtected(ctx, b.c, "alice", b.attrs)
		if portrait.ErrorCode(err) != b.code || !strings.Contains(portrait.ErrorMessage(err), b.want) {
			t.Errorf("%s: %v", b.name, err)
		}
	}
	got, err := e.mon.ReadProtected(ctx, auditor, "alice")
	if err != nil || got["sex"] != "F" || got["age_band"] != "35-54" {
		t.Fatalf("auditor read: %v %v", got, err)
	}
	for _, c := range []policy.Caller{
		{Role: policy.Admin, ID: "a"}, operator, reviewer, {Role: policy.Regulator, ID: "r"},
		{Role: policy.Subject, Pseudonym: e.keys.Pseudonym("alice")}, {Role: policy.System, ID: "sweeper"},
	} {
		if _, err := e.mon.ReadProtected(ctx, c, "alice"); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
			t.Errorf("%s:%s read protected attributes: %v", c.Role, c.ID, err)
		}
	}
	if _, err := e.mon.ReadProtected(ctx, auditor, "nobody"); portrait.ErrorCode(err) != portrait.ENOTFOUND {
		t.Errorf("unknown subject: %v", err)
	}
	acc := e.records("protected_access")
	if len(acc) != 1 || acc[0].Actor != "auditor:au-1" || acc[0].Pseudonym != e.keys.Pseudonym("alice") {
		t.Fatalf("access records: %+v", acc)
	}
	b, _ := json.Marshal(acc[0])
	if strings.Contains(string(b), "35-54") || !strings.Contains(string(b), "age_band") {
		t.Errorf("access record: %s", b)
	}
	if len(e.records("protected_write")) != 1 {
		t.Errorf("write records: %d", len(e.records("protected_write")))
	}
	// The values are sealed: the raw store never holds them in clear.
	g := e.grant("alice", policy.Access, "")
	pv, err := e.store.Protected(ctx, g)
	if err != nil || len(pv) != 2 {
		t.Fatalf("stored: %v %v", pv, err)
	}
	for _, v := range pv {
		if bytes.Contains(v.Sealed, []byte("35-54")) {
			t.Error("protected value stored in clear")
		}
	}
}

// TestEmpty: with nothing stored, every section says why it is empty and
// nothing is NaN.
func TestEmpty(t *testing.T) {
	e := newEnv(t, monitor.Options{})
	rep, err := e.mon.Run(context.Background(), e.now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fairness.Note == "" || rep.Proxies.Note == "" || rep.Diversity.Note == "" || len(rep.Alerts) != 0 {
		t.Errorf("empty report: %+v", rep)
	}
	var buf bytes.Buffer
	if err := monitor.WriteHTML(&buf, rep, "en", nil); err != nil {
		t.Fatal(err)
	}
	if err := monitor.WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []monitor.Options{{ProxyThreshold: 2}, {DiversityFloor: -1}, {Period: time.Second}, {MinShare: 1}} {
		if _, err := monitor.New(monitor.Deps{}, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
