package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/policy"
)

// SM-1: an event carrying a resident ID number in an ordinary field is
// refused over HTTP with sensitive_content, and /metrics counts it, on
// both engines (invariant 7).
func TestIngestSensitiveContentMetric(t *testing.T) { onEachStore(t, testIngestSensitiveContentMetric) }

func testIngestSensitiveContentMetric(t *testing.T, h *harness) {
	op := h.staff(policy.Operator)
	now := time.Now().UTC().Format(time.RFC3339)
	batch := fmt.Sprintf(`[{"subject":"alice","type":"view","time":%q,"fields":{"item":"11010519491231002X"}},
	 {"subject":"alice","type":"view","time":%q,"fields":{"item":"sku-1"}}]`, now, now)
	var r eventsResp
	if resp := h.do("POST", "/v1/events", op, "application/json", []byte(batch), &r); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(r.Results) != 2 || r.Results[0].Code != "sensitive_content" || r.Results[0].Requirement != "SM-1" || r.Results[1].Status == "rejected" {
		t.Fatalf("results %+v", r.Results)
	}
	if strings.Contains(r.Results[0].Reason, "1101051949") {
		t.Errorf("the reason repeats the value: %s", r.Results[0].Reason)
	}
	if m := get(t, h, "/metrics", ""); !strings.Contains(m, `portrait_ingest_detections_total{kind="resident_id",outcome="refused"} 1`) {
		t.Errorf("/metrics has no resident_id detection")
	}
}
