package regulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// The regulator's side of the countersignature of high-tier changes
// (issue 12 §4, SG-7). A company engine asks for it once a named person
// at the company has approved a change request whose high-tier
// use-cases await the regulator. The ask names log entries only — the
// change request, the approval, each use-case's impact assessment — plus
// the Art. 56 answers, whose SHA-256 the assessment entry holds. The
// node reads those entries from its own mirror, proves each against the
// checkpoint it cosigned, and builds what the inspector sees from them
// alone: nothing the engine says about them is taken on its word. An
// inspector then countersigns or refuses; either is a signed statement
// (CountersignPrefix) the engine fetches on its poll and verifies with
// the regulator's key before recording it.

// docCountersign is the document kind of countersignature requests.
const docCountersign = "countersign"

// Countersignature request statuses at the regulator.
const (
	CSPending       = "pending"
	CSCountersigned = "countersigned"
	CSRefused       = "refused"
)

// CountersignRequest is what an engine sends to ask for a
// countersignature: log indexes of its own (witnessed) log.
type CountersignRequest struct {
	Request     int64           `json:"request"`  // the catalog record (change request)
	Approval    int64           `json:"approval"` // the catalog_approval record
	Assessments []AssessmentRef `json:"assessments"`
}

// AssessmentRef points at the impact assessment record of one high-tier
// use-case and carries its Art. 56 answers: the exact JSON whose SHA-256
// the record's answers_sha256 holds.
type AssessmentRef struct {
	UseCase string          `json:"use_case"`
	Index   int64           `json:"log_index"`
	Answers json.RawMessage `json:"answers"`
}

// Art56 are the answers of an impact assessment to PIPL Art. 56's
// questions, as the company's engine signs them (apply.Answers).
type Art56 struct {
	Purpose    string   `json:"purpose"`
	Necessity  string   `json:"necessity"`
	Rights     string   `json:"rights_impact"`
	Risks      string   `json:"risks"`
	Safeguards string   `json:"safeguards"`
	SignedBy   []string `json:"signed_by"`
}

// Review is a countersignature request as the regulator keeps it. Every
// field but the decision is read from verified mirror entries.
type Review struct {
	ID       string    `json:"id"`
	Company  string    `json:"company"`
	Request  int64     `json:"request"`
	Received time.Time `json:"received"`
	Author   string    `json:"author"`
	Approver string    `json:"approver"`
	// Data and Algorithm are the approver's judgement.
	Data        string             `json:"data"`
	Algorithm   string             `json:"algorithm"`
	Changes     []catalog.Change   `json:"changes"`
	Items       map[string]string  `json:"items"`
	Countersign []string           `json:"needs_countersignature"`
	Answers     map[string]Art56   `json:"answers"` // use-case → answers
	Ask         CountersignRequest `json:"ask"`

	Status    string          `json:"status"`
	DecidedBy string          `json:"decided_by,omitempty"`
	Decided   time.Time       `json:"decided,omitzero"`
	Note      string          `json:"note,omitempty"`
	Document  json.RawMessage `json:"document,omitempty"` // SignedCountersignature
	LogIndex  int64           `json:"log_index"`          // the regulator's own record of the decision
}

func reviewID(company string, request int64) string {
	return company + "-" + strconv.FormatInt(request, 10)
}

// mirrored returns the records at indexes of company co's log, each
// proved against the checkpoint the regulator cosigned: entries beyond
// it are not yet witnessed (ECONFLICT: ask again after the next
// checkpoint), and an entry whose hash the cosigned tree does not hold
// is refused.
func (n *Node) mirrored(ctx context.Context, co Company, indexes []int64) (map[int64]audit.Record, error) {
	if co.Size == 0 || len(co.Checkpoint) == 0 {
		return nil, portrait.Errorf(portrait.ECONFLICT, "nothing of the company's log is witnessed yet")
	}
	cp, err := audit.ParseCheckpoint(co.Checkpoint, co.LogKey)
	if err != nil || cp.Size != co.Size {
		return nil, fmt.Errorf("the cosigned checkpoint of company %s does not verify with its filed log key: %v", co.ID, err)
	}
	hr := hashReader(func(idx []int64) ([][32]byte, error) { return n.db.MirrorHashes(ctx, co.ID, idx) })
	out := make(map[int64]audit.Record, len(indexes))
	for _, i := range indexes {
		if i < 0 || i >= cp.Size {
			return nil, &portrait.Error{Code: portrait.ECONFLICT, Requirement: "SG-7",
				Message: fmt.Sprintf("log entry %d is not witnessed yet (witnessed size %d); ask again after the next checkpoint", i, cp.Size)}
		}
		es, err := n.db.MirrorEntries(ctx, co.ID, i, i+1)
		if err != nil || len(es) != 1 {
			return nil, fmt.Errorf("mirror entry %d of %s: %v", i, co.ID, err)
		}
		proof, err := tlog.ProveRecord(cp.Size, i, hr)
		if err != nil {
			return nil, fmt.Errorf("prove mirror entry %d of %s: %w", i, co.ID, err)
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, i, tlog.RecordHash(es[0].Data)); err != nil {
			return nil, fmt.Errorf("mirror entry %d of %s is not in the cosigned tree: %w", i, co.ID, err)
		}
		rec, err := audit.Decode(es[0].Data)
		if err != nil {
			return nil, fmt.Errorf("mirror entry %d of %s: %w", i, co.ID, err)
		}
		out[i] = rec
	}
	return out, nil
}

// detail decodes a record's detail into v through JSON.
func detail(rec audit.Record, v any) error {
	b, err := json.Marshal(rec.Detail)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	return err
}

func invalid(format string, args ...any) error {
	return &portrait.Error{Code: portrait.EINVALID, Requirement: "SG-7", Message: fmt.Sprintf(format, args...)}
}

// review builds the review of ask from company co's mirrored log, or
// says why the ask does not hold.
func (n *Node) review(ctx context.Context, co Company, ask CountersignRequest) (Review, error) {
	idx := []int64{ask.Request, ask.Approval}
	for _, a := range ask.Assessments {
		idx = append(idx, a.Index)
	}
	recs, err := n.mirrored(ctx, co, idx)
	if err != nil {
		return Review{}, err
	}
	var req struct {
		FourEyes    int               `json:"four_eyes"`
		Author      string            `json:"author"`
		Changes     []catalog.Change  `json:"changes"`
		Items       map[string]string `json:"items"`
		Countersign []string          `json:"countersign"`
	}
	rr := recs[ask.Request]
	if rr.Kind != "catalog" || detail(rr, &req) != nil || req.FourEyes < 1 || len(req.Items) == 0 {
		return Review{}, invalid("log entry %d is not a catalog change request", ask.Request)
	}
	if len(req.Countersign) == 0 {
		return Review{}, invalid("change request %d has no high-tier use-case: it needs no countersignature", ask.Request)
	}
	var appr struct {
		Request   int64             `json:"request"`
		Items     map[string]string `json:"items"`
		Data      string            `json:"data"`
		Algorithm string            `json:"algorithm"`
	}
	ar := recs[ask.Approval]
	if ar.Kind != "catalog_approval" || detail(ar, &appr) != nil || appr.Request != ask.Request || !maps.Equal(appr.Items, req.Items) {
		return Review{}, invalid("log entry %d is not the approval of change request %d", ask.Approval, ask.Request)
	}
	approver := ar.Actor[strings.IndexByte(ar.Actor, ':')+1:]
	if approver == "" || approver == req.Author {
		return Review{}, invalid("change request %d was approved by its author %s: four eyes are two people", ask.Request, req.Author)
	}
	answers := map[string]Art56{}
	for _, a := range ask.Assessments {
		var as struct {
			UseCase string `json:"usecase"`
			Answers string `json:"answers_sha256"`
		}
		rec := recs[a.Index]
		sum := sha256.Sum256(a.Answers)
		if rec.Kind != "assessment" || detail(rec, &as) != nil || as.UseCase != a.UseCase {
			return Review{}, invalid("log entry %d is not an impact assessment of use-case %s", a.Index, a.UseCase)
		}
		if as.Answers != hex.EncodeToString(sum[:]) {
			return Review{}, invalid("the Art. 56 answers sent for use-case %s are not those its assessment (log entry %d) was signed with", a.UseCase, a.Index)
		}
		var ans Art56
		d := json.NewDecoder(bytes.NewReader(a.Answers))
		d.DisallowUnknownFields()
		if err := d.Decode(&ans); err != nil {
			return Review{}, invalid("Art. 56 answers of use-case %s: %v", a.UseCase, err)
		}
		answers[a.UseCase] = ans
	}
	for _, k := range req.Countersign {
		if _, ok := answers[strings.TrimPrefix(k, "use_case:")]; !ok {
			return Review{}, invalid("high-tier use-case %s comes without its impact assessment (PIPL Art. 56): run portrait assess first", strings.TrimPrefix(k, "use_case:"))
		}
	}
	return Review{ID: reviewID(co.ID, ask.Request), Company: co.ID, Request: ask.Request, Author: req.Author, Approver: approver,
		Data: appr.Data, Algorithm: appr.Algorithm, Changes: req.Changes, Items: req.Items, Countersign: req.Countersign,
		Answers: answers, Ask: ask, Status: CSPending}, nil
}

// AskCountersignature takes company co's request for a countersignature,
// verified against the mirror. Asking again for the same change request
// (verified again) returns what the regulator has.
func (n *Node) AskCountersignature(ctx context.Context, co Company, ask CountersignRequest) (Review, error) {
	sup, err := n.supervising()
	if err != nil {
		return Review{}, err
	}
	rv, err := n.review(ctx, co, ask)
	if err != nil {
		return Review{}, err
	}
	if had, err := getDoc[Review](ctx, sup.docs, docCountersign, rv.ID); err == nil {
		return had, nil
	}
	rv.Received = n.now()
	rv.LogIndex, err = n.record(ctx, audit.Record{Kind: "countersign", Time: rv.Received, Actor: "company:" + co.ID, Action: "ask", Codes: []string{"SG-7"},
		Detail: map[string]any{"company": co.ID, "request": rv.Request, "items": rv.Items}}, nil)
	if err != nil {
		return Review{}, err
	}
	return rv, putDoc(ctx, sup.docs, docCountersign, rv.ID, co.ID, rv.Received, rv)
}

// Reviews lists the countersignature requests of company (or "" for
// all), newest first.
func (n *Node) Reviews(ctx context.Context, company string) ([]Review, error) {
	sup, err := n.supervising()
	if err != nil {
		return nil, err
	}
	list, err := listDocs[Review](ctx, sup.docs, docCountersign, company)
	slices.Reverse(list)
	return list, err
}

// DecideCountersignature countersigns (refuse false) or refuses change
// request review id as staff member by. The request is verified against
// the mirror again first; the decision is signed with the regulator's key,
// recorded in the regulator's log and handed to the engine on its poll.
func (n *Node) DecideCountersignature(ctx context.Context, by policy.Caller, id string, refuse bool, note string) (Review, error) {
	if by.Role != Admin && by.Role != Inspector {
		return Review{}, portrait.Errorf(portrait.EFORBIDDEN, "only regulator staff countersign")
	}
	if refuse && strings.TrimSpace(note) == "" {
		return Review{}, invalid("a refusal says why: the company reads it")
	}
	if strings.TrimSpace(note) != "" {
		var err error
		if note, err = checkText("note", note); err != nil {
			return Review{}, err
		}
	}
	sup, err := n.supervising()
	if err != nil {
		return Review{}, err
	}
	rv, err := getDoc[Review](ctx, sup.docs, docCountersign, id)
	if err != nil {
		return Review{}, err
	}
	if rv.Status != CSPending {
		return Review{}, portrait.Errorf(portrait.ECONFLICT, "change request %d of %s was already %s by %s", rv.Request, rv.Company, rv.Status, rv.DecidedBy)
	}
	co, err := n.db.Company(ctx, rv.Company)
	if err != nil {
		return Review{}, err
	}
	again, err := n.review(ctx, co, rv.Ask)
	if err != nil {
		return Review{}, fmt.Errorf("verify change request %d against the mirror: %w", rv.Request, err)
	}
	if !maps.Equal(again.Items, rv.Items) {
		return Review{}, invalid("the stored request differs from the mirror's; not signed")
	}
	rv.Decided, rv.DecidedBy, rv.Note = n.now(), actor(by), strings.TrimSpace(note)
	sc, err := SignCountersignature(n.cosigner, Countersignature{Company: rv.Company, Request: rv.Request, Items: rv.Items,
		Signed: rv.Decided, SignedBy: by.ID, Note: rv.Note, Refused: refuse})
	if err != nil {
		return Review{}, err
	}
	if rv.Document, err = json.Marshal(sc); err != nil {
		return Review{}, err
	}
	action := "countersign"
	rv.Status = CSCountersigned
	if refuse {
		rv.Status, action = CSRefused, "refuse"
	}
	sum := sha256.Sum256(rv.Document)
	rv.LogIndex, err = n.record(ctx, audit.Record{Kind: "countersign", Time: rv.Decided, Actor: rv.DecidedBy, Action: action, Codes: []string{"SG-7"},
		Digest: hex.EncodeToString(sum[:]), Detail: map[string]any{"company": rv.Company, "request": rv.Request, "items": rv.Items}}, nil)
	if err != nil {
		return Review{}, err
	}
	return rv, putDoc(ctx, sup.docs, docCountersign, rv.ID, rv.Company, rv.Received, rv)
}

// countersignRoutes are the routes of the countersignature of high-tier
// changes: the company asks and fetches decisions, staff decide.
func (n *Node) countersignRoutes(route func(string, who, func(context.Context, call) error)) {
	route("POST /v1/mirror/countersignatures", company, func(ctx context.Context, c call) error {
		var ask CountersignRequest
		if err := decode(c.r, &ask); err != nil {
			return err
		}
		rv, err := n.AskCountersignature(ctx, c.company, ask)
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"id": rv.ID, "status": rv.Status})
	})
	route("GET /v1/mirror/countersignatures", company, func(ctx context.Context, c call) error {
		list, err := n.Reviews(ctx, c.company.ID)
		if err != nil {
			return err
		}
		docs := []json.RawMessage{}
		for _, rv := range list {
			if rv.Status != CSPending {
				docs = append(docs, rv.Document)
			}
		}
		return reply(c.w, 200, map[string]any{"decisions": docs})
	})
	route("GET /v1/countersignatures", staff, func(ctx context.Context, c call) error {
		list, err := n.Reviews(ctx, c.r.URL.Query().Get("company"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"requests": list})
	})
	for _, d := range []struct {
		path   string
		refuse bool
	}{{"countersign", false}, {"refuse", true}} {
		route("POST /v1/countersignatures/{id}/"+d.path, staff, func(ctx context.Context, c call) error {
			var in struct{ Note string }
			if err := decode(c.r, &in); err != nil {
				return err
			}
			rv, err := n.DecideCountersignature(ctx, c.staff, c.r.PathValue("id"), d.refuse, in.Note)
			if err != nil {
				return err
			}
			return reply(c.w, 200, rv)
		})
	}
}
