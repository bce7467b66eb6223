package server

import (
	"encoding/json"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apikey"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/rights"
)

// contract is what one route reads and writes, in Go types: the OpenAPI
// document is derived from it (openapi.go), and tests hold the handlers
// to it (readJSON and writeJSON report the types they see).
//
// It sits beside the route table, keyed by "METHOD pattern", rather than
// in it, so that adding a route stays a one-line change to the table; a
// route without a contract fails TestContractCovers.
type contract struct {
	in     any    // the request body, a zero value; nil: none
	inText bool   // the body is also accepted as NDJSON
	out    any    // the success body, a zero value; nil: no body
	alt    any    // a second success shape (oneOf), chosen by a query parameter
	status int    // the success status; 0 is 200
	also   []int  // further statuses with the same body
	media  string // the success media type when not application/json
	query  []param
	// ignored are query parameters the handler, shared with another
	// route, reads but this route disregards (not documented here).
	ignored []string
}

// param is a query parameter.
type param struct {
	name, typ, example, desc string
	required                 bool
}

func q(name, typ, example, desc string) param { return param{name, typ, example, desc, false} }
func must(p param) param                      { p.required = true; return p }

var langParam = q("lang", "string", "en", "zh-CN (default) or en")
var formatParam = q("format", "string", "json", "json, or html for a page (also chosen by Accept: text/html)")

// contracts by "METHOD pattern". Routes under /v1/subjects/{id}/ that
// act on a subject's behalf share the contract of their /v1/me/ twin.
var contracts = map[string]contract{
	"GET /healthz":                                     {out: health{}},
	"GET /metrics":                                     {media: "text/plain"},
	"GET /openapi.json":                                {out: map[string]any{}},
	"GET /v1/catalog":                                  {out: catalog.Catalog{}},
	"POST /v1/events":                                  {in: []eventInput{}, inText: true, out: eventsResponse{}, also: []int{422}},
	"POST /v1/me/events":                               {in: []eventInput{}, inText: true, out: eventsResponse{}, also: []int{422}},
	"PUT /v1/me/consents/{purpose}":                    {in: consentBody{}, out: consent.Receipt{}},
	"POST /v1/subjects/{id}/guardian-token":            {in: guardianBody{}, out: guardianTokenResponse{}},
	"GET /v1/me/consents":                              {out: consentsResponse{}, query: []param{langParam}},
	"POST /v1/subjects/{id}/tokens":                    {out: tokenResponse{}, status: 201},
	"DELETE /v1/me/token":                              {status: 204},
	"POST /v1/receipts/verify":                         {in: consent.Receipt{}, out: receiptCheck{}},
	"GET /v1/receipts/key":                             {media: "text/plain"},
	"GET /v1/suspensions":                              {out: suspensionsResponse{}},
	"POST /v1/suspensions":                             {in: suspensionBody{}, out: policy.Suspension{}, status: 201},
	"DELETE /v1/suspensions/{kind}/{id}":               {status: 204},
	"GET /v1/log/checkpoint":                           {media: "text/plain"},
	"GET /v1/log/key":                                  {media: "text/plain"},
	"GET /v1/log/entries/{index}":                      {out: json.RawMessage{}},
	"GET /v1/log/entries":                              {out: audit.EntriesResponse{}, query: []param{must(q("from", "integer", "0", "first index, inclusive")), must(q("to", "integer", "10", "last index, exclusive"))}},
	"GET /v1/log/proof/inclusion":                      {out: audit.ProofResponse{}, query: []param{must(q("index", "integer", "3", "the entry")), must(q("size", "integer", "10", "the tree size"))}},
	"GET /v1/log/proof/consistency":                    {out: audit.ProofResponse{}, query: []param{must(q("from", "integer", "5", "the older tree size")), must(q("to", "integer", "10", "the newer tree size"))}},
	"GET /v1/me/export":                                {out: rights.Export{}, alt: rights.Bundle{}, query: []param{q("signed", "string", "1", "1 for a signed bundle (SR-2) instead of the plain export")}},
	"POST /v1/me/erasure":                              {out: rights.Erasure{}, status: 201, also: []int{200}},
	"GET /v1/me/labels":                                {out: labelsResponse{}},
	"DELETE /v1/me/labels/{label}":                     {status: 204, query: []param{q("mode", "string", "deselect", "deselect or delete (default)")}},
	"POST /v1/me/labels/{label}/restore":               {status: 204},
	"PUT /v1/me/personalization":                       {in: personalizationBody{}, out: personalizationResponse{}},
	"PUT /v1/me/fields/{field}":                        {in: fieldBody{}, status: 204},
	"POST /v1/me/restriction":                          {status: 204},
	"DELETE /v1/me/restriction":                        {status: 204},
	"POST /v1/me/objection":                            {in: objectionBody{}, status: 204},
	"GET /v1/me/cases":                                 {out: casesResponse{}},
	"POST /v1/me/requests":                             {in: caseRequestBody{}, out: portrait.Case{}, status: 201},
	"GET /v1/cases":                                    {out: casesResponse{}},
	"GET /v1/cases/overdue":                            {out: casesResponse{}},
	"POST /v1/cases/{case}/close":                      {in: closeBody{}, out: portrait.Case{}},
	"GET /v1/notice":                                   {out: rights.Notice{}, query: []param{langParam}},
	"GET /v1/subjects/{id}/portrait":                   {out: portraitResponse{}, query: []param{must(q("purpose", "string", "personalization", "the purpose the labels are read for"))}},
	"GET /v1/labels":                                   {out: labelDefsResponse{}},
	"GET /v1/derivation":                               {out: derive.Status{}},
	"POST /v1/derivation":                              {out: derive.Summary{}},
	"POST /v1/audiences":                               {in: apply.Request{}, out: apply.Result{}},
	"POST /v1/items":                                   {in: []portrait.Item{}, out: itemsStored{}},
	"GET /v1/recommendations":                          {out: apply.Recommendation{}, query: []param{must(q("subject", "string", "u-1001", "the subject's id")), must(q("usecase", "string", "home_feed", "a recommendation use-case")), must(q("n", "integer", "10", "items wanted, 1 to 100"))}},
	"GET /v1/me/recommendations":                       {out: apply.Recommendation{}, query: []param{must(q("usecase", "string", "home_feed", "a recommendation use-case")), must(q("n", "integer", "10", "items wanted, 1 to 100"))}, ignored: []string{"subject"}},
	"POST /v1/decisions":                               {in: decisionBody{}, out: apply.Determination{}, status: 201},
	"GET /v1/me/decisions":                             {out: decisionsResponse{}},
	"POST /v1/me/decisions/{id}/appeal":                {in: appealBody{}, out: portrait.Review{}, status: 201},
	"POST /v1/me/decisions/{id}/review":                {in: appealBody{}, out: portrait.Review{}, status: 201},
	"PUT /v1/me/usecases/{id}/automation":              {in: automationBody{}, out: automationResponse{}},
	"POST /v1/me/usecases/{id}/notice":                 {out: apply.Notice{}, status: 201},
	"POST /v1/subjects/{id}/usecases/{usecase}/notice": {out: apply.Notice{}, status: 201},
	"POST /v1/usecases/{id}/halt":                      {in: reasonBody{}, out: useCaseStatus{}},
	"POST /v1/usecases/{id}/resume":                    {out: useCaseStatus{}},
	"POST /v1/usecases/{id}/assessment":                {in: apply.Answers{}, out: apply.Assessment{}, status: 201},
	"GET /v1/catalog/changes":                          {out: changeList{}},
	"POST /v1/catalog/changes/{index}/approve":         {in: oversight.Judgement{}, out: oversight.ChangeRequest{}},
	"POST /v1/catalog/changes/{index}/countersign":     {in: json.RawMessage{}, out: oversight.ChangeRequest{}},
	"GET /v1/reviews":                                  {out: reviewsResponse{}},
	"GET /v1/reviews/overdue":                          {out: reviewsResponse{}},
	"GET /v1/reviews/{id}":                             {out: review.Case{}},
	"POST /v1/reviews/{id}":                            {in: reviewBody{}, out: portrait.Review{}},
	"GET /v1/records/processing":                       {out: oversight.Processing{}, query: []param{formatParam, langParam}},
	"GET /v1/filing":                                   {out: oversight.Filing{}, query: []param{formatParam, langParam}},
	"GET /v1/evidence":                                 {out: oversight.Bundle{}},
	"POST /v1/breaches":                                {in: oversight.BreachInput{}, out: oversight.Breach{}, status: 201},
	"GET /v1/breaches":                                 {out: breachesResponse{}},
	"POST /v1/reports":                                 {in: oversight.ReportInput{}, out: oversight.ReportReceipt{}, status: 201},
	"GET /v1/reports":                                  {out: reportsResponse{}},
	"GET /v1/reports/{id}":                             {out: oversight.Report{}, query: []param{must(q("secret", "string", "s3cr3t", "the secret returned when the report was made"))}},
	"POST /v1/reports/{id}/answer":                     {in: answerBody{}, out: oversight.Report{}},
	"PUT /v1/subjects/{id}/protected":                  {in: map[string]string{}, status: 204},
	"GET /v1/subjects/{id}/protected":                  {out: protectedResponse{}},
	"POST /v1/monitor/runs":                            {out: monitor.Report{}, status: 201},
	"GET /v1/monitor/report":                           {out: monitor.Report{}},
	"GET /v1/monitor/proxies":                          {out: proxiesResponse{}},
	"POST /v1/monitor/proxies/{feature}/clear":         {in: reasonBody{}, out: monitor.ProxyFlag{}},
	"POST /v1/keys":                                    {in: keyRequest{}, out: apikey.NewKey{}, status: 201},
	"GET /v1/keys":                                     {out: keysResponse{}},
	"DELETE /v1/keys/{name...}":                        {status: 204},
	"GET /sdk/portrait.js":                             {media: "text/javascript"},
	"POST /v1/me/gpc":                                  {out: receiptsResponse{}},
	"GET /v1/deliveries/dead":                          {out: deadLettersResponse{}},
	"POST /v1/deliveries/dead/replay":                  {in: replayBody{}, out: statusResponse{}},
}

// contractOf returns the contract of a route.
func contractOf(method, pattern string) (contract, bool) {
	if c, ok := contracts[method+" "+pattern]; ok {
		return c, true
	}
	if rest, ok := strings.CutPrefix(pattern, "/v1/subjects/{id}/"); ok {
		c, ok := contracts[method+" /v1/me/"+rest]
		return c, ok
	}
	return contract{}, false
}

// The bodies below were anonymous structs and maps in the handlers; named,
// they are what the document describes and the client decodes.

// eventInput is one event as POST /v1/events takes it (ingest's wire
// form, which is unexported there); unknown keys reject the event.
type eventInput struct {
	Subject        string         `json:"subject" doc:"the subject's id in your system"`
	Type           string         `json:"type" doc:"an event type declared in the catalog"`
	Time           time.Time      `json:"time" doc:"RFC 3339"`
	IdempotencyKey string         `json:"idempotency_key,omitempty" doc:"a repeated key is stored once"`
	Fields         map[string]any `json:"fields" doc:"the event type's declared fields"`
}

type health struct {
	Status       string           `json:"status"`
	Receivership *Receivership    `json:"receivership,omitempty"`
	Regulator    *regulatorHealth `json:"regulator,omitempty"`
}

type regulatorHealth struct {
	SilentSeconds     int64 `json:"silent_seconds"`
	MaxSilenceSeconds int64 `json:"max_silence_seconds"`
	HighTierStopped   bool  `json:"high_tier_stopped"`
}

type guardianTokenResponse struct {
	GuardianToken string    `json:"guardian_token"`
	Expires       time.Time `json:"expires"`
	Purpose       string    `json:"purpose"`
}

type consentsResponse struct {
	Consents []consentView `json:"consents"`
	History  []historyView `json:"history"`
}

type tokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

type receiptCheck struct {
	Valid   bool             `json:"valid"`
	Receipt *consent.Receipt `json:"receipt"`
}

type suspensionsResponse struct {
	Suspensions []policy.Suspension `json:"suspensions"`
}

type suspensionBody struct {
	Kind   string `json:"kind" enum:"purpose,field,label,model,usecase"`
	ID     string `json:"id"`
	Reason string `json:"reason" doc:"shown to the company and to subjects"`
}

type itemsStored struct {
	Stored int `json:"stored"`
}

type decisionsResponse struct {
	Decisions []review.Mine `json:"decisions"`
}

type automationBody struct {
	Refused bool `json:"refused"`
}

type automationResponse struct {
	UseCase string `json:"usecase"`
	Refused bool   `json:"refused"`
}

type reasonBody struct {
	Reason string `json:"reason"`
}

type useCaseStatus struct {
	UseCase string `json:"usecase"`
	Status  string `json:"status"`
}

type reviewsResponse struct {
	Reviews []portrait.Review `json:"reviews"`
}

type reviewBody struct {
	Outcome string `json:"outcome" enum:"upheld,overturned,modified"`
	Reason  string `json:"reason"`
}

type labelDefsResponse struct {
	Labels   []catalog.Label `json:"labels"`
	Problems string          `json:"problems,omitempty"`
}

type labelsResponse struct {
	Labels []rights.LabelEntry `json:"labels"`
}

type personalizationBody struct {
	Level *int `json:"level" doc:"0 (none) to 100 (full)"`
}

type personalizationResponse struct {
	Level int `json:"level"`
}

type fieldBody struct {
	Value json.RawMessage `json:"value" doc:"the corrected value, of the field's type"`
}

type objectionBody struct {
	Kind     string `json:"kind" enum:"profiling,marketing"`
	Withdraw bool   `json:"withdraw"`
}

type casesResponse struct {
	Cases []portrait.Case `json:"cases"`
}

type caseRequestBody struct {
	Type string `json:"type" enum:"explanation,access,export,correction,erasure,restriction,objection,withdrawal"`
}

type closeBody struct {
	Status string `json:"status" enum:"fulfilled,refused"`
	Text   string `json:"text"`
}

type breachesResponse struct {
	Breaches []oversight.Breach `json:"breaches"`
}

type reportsResponse struct {
	Reports []oversight.Report `json:"reports"`
}

type answerBody struct {
	Answer string `json:"answer"`
}

type protectedResponse struct {
	Subject    string            `json:"subject" doc:"the pseudonym"`
	Attributes map[string]string `json:"attributes"`
}

type proxiesResponse struct {
	Proxies []monitor.ProxyFlag `json:"proxies"`
}

type keysResponse struct {
	Keys []apikey.Key `json:"keys"`
}

type deadLettersResponse struct {
	Dead []delivery.DeadLetter `json:"dead"`
}

type statusResponse struct {
	Status string `json:"status"`
}

type receiptsResponse struct {
	Receipts []consent.Receipt `json:"receipts"`
}
