package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/portrait-dev/portrait/examples/demo"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
)

// populate gives each subject consent to personalisation and five views
// of sports items, and derives their labels: each is a sports fan.
func (e *env) populate(t *testing.T, ids ...string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	var items []ingest.Item
	for _, id := range ids {
		if _, err := e.ledger.Record(ctx, operator, consent.ByID(id), consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			items = append(items, ingest.Item{Event: portrait.Event{SubjectID: id, Type: "view", Time: now.Add(-time.Duration(i+1) * time.Hour),
				Fields: map[string]any{"item": "s", "category": "sports", "price": 20.0}}})
		}
	}
	if _, _, err := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{}).Ingest(ctx, operator, items); err != nil {
		t.Fatal(err)
	}
	eng, err := derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.All(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// Audience membership changes reach the destination that takes the
// audience, pseudonymous; rights events reach exactly the destinations
// that received the subject's data (and a destination that takes no
// audiences, such as a deletion orchestrator), and the log answers which
// destinations received whose data, for the subject's export (GDPR
// Art. 19, PIPL Art. 23).
func TestAudienceMembershipAndRecipients(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			if pg && os.Getenv(storetest.EnvPostgres) == "" {
				t.Skip(storetest.EnvPostgres + " is not set")
			}
			testAudienceMembership(t, newEnvOn(t, pg))
		})
	}
}

func testAudienceMembership(t *testing.T, e *env) {
	ctx := context.Background()
	e.populate(t, "ann", "ben", "cy", "eli") // four: the demo segments need k = 4
	// dan is stored but no sports fan: never in the audience.
	if _, err := e.ledger.Record(ctx, operator, consent.ByID("dan"), consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
		t.Fatal(err)
	}
	ps := e.keys.Pseudonym
	ads, orch := &receiver{ids: map[string]int{}}, &receiver{ids: map[string]int{}}
	adsHook, orchHook := httptest.NewServer(ads), httptest.NewServer(orch)
	defer adsHook.Close()
	defer orchHook.Close()
	sports := delivery.Audience{Name: "sports", Request: apply.Request{Purpose: "personalization", Expression: "labels.sports_fan", Output: apply.Pseudonymous}}
	d := &delivery.Dispatcher{Store: e.store, Audit: e.log, Backoff: func(int) time.Duration { return time.Millisecond },
		Audiences: apply.NewAudiences(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}), Pseudonym: e.keys.Pseudonym,
		Destinations: []delivery.Destination{
			{Name: "ads", Sender: &delivery.Webhook{URL: adsHook.URL, Secret: secret}, Audiences: []delivery.Audience{sports}},
			{Name: "orchestrator", Sender: &delivery.Webhook{URL: orchHook.URL, Secret: secret}},
		}}
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got := func(rc *receiver) []string {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var out []string
		for _, ev := range rc.events {
			who := map[string]string{string(ps("ann")): "ann", string(ps("ben")): "ben", string(ps("cy")): "cy", string(ps("eli")): "eli", string(ps("dan")): "dan"}[string(ev.Pseudonym)]
			if ev.SubjectID != "" {
				who += "!id" // an id in a pseudonymous audience
			}
			out = append(out, ev.Type+" "+who+" "+ev.Audience)
		}
		rc.events = nil
		return out
	}
	poll := func() {
		t.Helper()
		if err := d.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	poll()
	joined := got(ads)
	slices.Sort(joined)
	if want := []string{"audience.joined ann sports", "audience.joined ben sports", "audience.joined cy sports", "audience.joined eli sports"}; !slices.Equal(joined, want) {
		t.Fatalf("ads after the first pass: %v, want %v", joined, want)
	}
	if o := got(orch); len(o) != 0 {
		t.Errorf("the orchestrator takes no audience but got %v", o)
	}
	poll() // no change, nothing sent
	if a := got(ads); len(a) != 0 {
		t.Errorf("a pass without changes sent %v", a)
	}

	// ann withdraws: her withdrawal reaches ads, which received her data,
	// and she leaves the audience. dan, whose data ads never received, is
	// erased: only the orchestrator hears of it.
	if _, err := e.ledger.Record(ctx, operator, consent.ByID("ann"), consent.Change{Purpose: "personalization", Status: policy.Withdrawn}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rights.Erase(ctx, operator, ps("dan")); err != nil {
		t.Fatal(err)
	}
	poll()
	if a, want := got(ads), []string{"subject.withdrawal ann ", "audience.left ann sports"}; !slices.Equal(a, want) {
		t.Errorf("ads after ann's withdrawal and dan's erasure: %v, want %v", a, want)
	}
	if o, want := got(orch), []string{"subject.withdrawal ann ", "subject.erasure dan "}; !slices.Equal(o, want) {
		t.Errorf("orchestrator: %v, want %v", o, want)
	}
	// ben is erased: ads received his data, so it is told.
	if _, err := e.rights.Erase(ctx, operator, ps("ben")); err != nil {
		t.Fatal(err)
	}
	poll()
	if a := got(ads); !slices.Contains(a, "subject.erasure ben ") {
		t.Errorf("ads after ben's erasure: %v", a)
	}

	// The log answers who received whose data, on any node.
	for _, c := range []struct {
		who  string
		want []string
	}{{"ann", []string{"ads"}}, {"dan", nil}} {
		rs, err := delivery.Recipients(ctx, e.store.(delivery.LogIndex), e.log, ps(c.who))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range rs {
			names = append(names, r.Destination)
			if r.Audience != "sports" || r.Purpose != "personalization" || r.LogIndex <= 0 {
				t.Errorf("recipient of %s: %+v", c.who, r)
			}
		}
		if !slices.Equal(names, c.want) {
			t.Errorf("recipients of %s: %v, want %v", c.who, names, c.want)
		}
	}
	// A restarted dispatcher reads membership back: nothing resent.
	again := &delivery.Dispatcher{Store: e.store, Audit: e.log, Audiences: d.Audiences, Pseudonym: d.Pseudonym, Destinations: d.Destinations}
	if err := again.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if a := got(ads); len(a) != 0 {
		t.Errorf("a restarted dispatcher sent %v", a)
	}
}

// An identified audience is sent only when the decision point allows it —
// the purpose declared identified_output and a signed assessment on
// record (CM-6); its events then carry the subject id, read at sending,
// while the log records only the pseudonym. On both engines (invariant 7).
func TestAudienceIdentified(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			if pg && os.Getenv(storetest.EnvPostgres) == "" {
				t.Skip(storetest.EnvPostgres + " is not set")
			}
			testAudienceIdentified(t, newEnvOn(t, pg))
		})
	}
}

func testAudienceIdentified(t *testing.T, e *env) {
	ctx := context.Background()
	e.populate(t, "gus", "hal", "ivy", "jon")
	cat := e.point.Catalog()
	cat.Purpose("personalization").Identified = true
	cat.Purpose("personalization").Assessment = "PIA-TEST-ID"
	cat.UseCases = append(cat.UseCases, catalog.UseCase{ID: "named_list", Kind: catalog.UseAudience, Tier: catalog.TierLimited,
		Purposes: []string{"personalization"}, Labels: []string{"sports_fan"}, Owner: "growth-team",
		Description: catalog.Text{"zh-CN": "名单", "en": "Named list"}})
	cat.Index()
	e.point.SetCatalog(cat)
	svc, err := apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, apply.Options{})
	if err != nil {
		t.Fatal(err)
	}
	aud := apply.NewAudiences(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log})
	aud.Assessments = svc
	rc := &receiver{ids: map[string]int{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	d := &delivery.Dispatcher{Store: e.store, Audit: e.log, Audiences: aud, Pseudonym: e.keys.Pseudonym,
		Identify: func(ctx context.Context, p portrait.Pseudonym) (string, error) {
			subs, err := e.store.Subjects(ctx, []portrait.Pseudonym{portrait.Pseudonym(p)})
			if err != nil {
				return "", err
			}
			return e.keys.SubjectID(subs[portrait.Pseudonym(p)])
		},
		Destinations: []delivery.Destination{{Name: "crm", Sender: &delivery.Webhook{URL: hook.URL, Secret: secret},
			Audiences: []delivery.Audience{{Name: "named", Request: apply.Request{Purpose: "personalization", Expression: "labels.sports_fan", Output: apply.Identified}}}}}}
	// Without the assessment the audience is refused, and the refusal
	// does not hold up rights events.
	if _, err := e.ledger.Record(ctx, operator, consent.ByID("gus"), consent.Change{Purpose: "marketing", Status: policy.Withdrawn}); err != nil {
		t.Fatal(err)
	}
	d.Destinations = append(d.Destinations, delivery.Destination{Name: "orchestrator", Sender: &delivery.Webhook{URL: hook.URL, Secret: secret}})
	err = d.Poll(ctx)
	var perr *portrait.Error
	if !errors.As(err, &perr) || perr.Requirement != "CM-6" || len(rc.events) != 1 || rc.events[0].Type != delivery.Withdrawal {
		t.Fatalf("identified audience without an assessment: %v, sent %+v", err, rc.events)
	}
	rc.events = nil
	d.Destinations = d.Destinations[:1]
	if _, err := svc.Assess(ctx, policy.Caller{Role: policy.Admin, ID: "admin"}, "named_list", demo.Answers()); err != nil {
		t.Fatal(err)
	}
	if err := d.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range rc.events {
		if ev.Type != delivery.Joined || ev.Pseudonym != e.keys.Pseudonym(ev.SubjectID) {
			t.Errorf("event %+v", ev)
		}
		ids = append(ids, ev.SubjectID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"gus", "hal", "ivy", "jon"}) {
		t.Errorf("identified members sent: %v", ids)
	}
	size, _ := e.store.LogSize(ctx)
	es, err := e.store.LogEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range es {
		if bytes.Contains(en.Data, []byte(`"gus"`)) {
			t.Errorf("log entry %d holds a raw subject id: %s", en.Index, en.Data)
		}
	}
}
