package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/detect"
	"github.com/portrait-dev/portrait/ingest"
)

// SM-1: personal data hidden in fields declared non-sensitive is refused
// per event with code sensitive_content, the rest of the batch is stored,
// nothing of the refused value reaches the database, and /metrics counts
// the detections by kind.
func TestSensitiveContentRefused(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			e := engines(t, name, ingest.Options{})
			e.grant(t, "alice", "personalization")
			const id, card, mobile, mail = "11010519491231002X", "6222021234567894", "13812345678", "zhang.san@example.cn"
			at := e.now.Add(-time.Hour)
			view := func(fields map[string]any) portrait.Event {
				fields["category"] = "sports"
				return portrait.Event{SubjectID: "alice", Type: "view", Time: at, Fields: fields}
			}
			items := []ingest.Item{
				{Event: view(map[string]any{"item": "sku-1"})},
				{Event: view(map[string]any{"item": "身份证" + id})},
				{Event: portrait.Event{SubjectID: "alice", Type: "search", Time: at, Fields: map[string]any{"search_query": "卡号 6222 0212 3456 7894"}}},
				{Event: view(map[string]any{"item": "回电 " + mobile})},
				{Event: view(map[string]any{"item": "sku-2", "city": "杭州 " + mail})}, // a location field: flagged, stored
				{Event: view(map[string]any{"item": "１１０１０５１９４９１２３１００２Ｘ"})},
				{Event: view(map[string]any{"item": "sku-3"})},
				{Event: view(map[string]any{"item": "HIV 检测"})}, // the pack's lexicon: flagged, stored
			}
			res, sum, err := e.in.Ingest(context.Background(), operator, items)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Accepted != 4 || sum.Rejected != 4 {
				t.Fatalf("summary %+v, want 4 accepted, 4 rejected; results %+v", sum, res)
			}
			for _, i := range []int{1, 2, 3, 5} {
				p := res[i].Problem
				if res[i].Status != ingest.Rejected || p == nil || p.Code != "sensitive_content" || p.Requirement != "SM-1" {
					t.Fatalf("event %d: %+v %+v, want sensitive_content SM-1", i, res[i], p)
				}
				for _, v := range []string{id, "6222", mobile, "１１０１"} {
					if contains(p.Reason, v) {
						t.Errorf("event %d: the reason repeats the value: %s", i, p.Reason)
					}
				}
			}
			if !contains(res[1].Problem.Reason, `"item"`) || !contains(res[1].Problem.Reason, "resident ID") {
				t.Errorf("reason does not name the field and what was found: %s", res[1].Problem.Reason)
			}
			if got := len(e.events(t, "alice")); got != 4 {
				t.Errorf("%d events stored, want 4", got)
			}
			c := e.in.Detections()
			for _, w := range []struct {
				kind, outcome string
				n             float64
			}{
				{detect.ResidentID, ingest.Refused, 2}, {detect.BankCard, ingest.Refused, 1},
				{detect.Mobile, ingest.Refused, 1}, {detect.Email, ingest.Flagged, 1},
				{detect.Lexicon, ingest.Flagged, 1},
			} {
				if got := count(t, c.WithLabelValues(w.kind, w.outcome)); got != w.n {
					t.Errorf("detections{%s,%s} = %v, want %v", w.kind, w.outcome, got, w.n)
				}
			}
			if e.path != "" {
				if err := e.store.TruncateWAL(context.Background()); err != nil {
					t.Fatal(err)
				}
				for _, needle := range []string{id, "11010519491231002", "6222021234567894", "6222 0212", mobile} {
					if f := scan(t, e.path, []byte(needle)); f != "" {
						t.Errorf("refused value %q found in %s", needle, f)
					}
				}
			}
		})
	}
}

// SM-1: a location field may carry coordinates.
func TestLocationFieldKeepsCoordinates(t *testing.T) {
	e := engines(t, "sqlite", ingest.Options{})
	e.grant(t, "bob", "personalization")
	_, sum := e.ingest(t, portrait.Event{SubjectID: "bob", Type: "view", Time: e.now.Add(-time.Hour),
		Fields: map[string]any{"item": "sku 42", "category": "sports", "city": "39.9087,116.3975"}})
	if sum.Accepted != 1 {
		t.Fatalf("coordinates in a location field refused: %+v", sum)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// count reads a counter's value.
func count(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
