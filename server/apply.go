package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/review"
)

// applyRoutes are the use-case routes: items, recommendations, decisions,
// pre-use notices, oversight and human review.
func (s *Server) applyRoutes() []route {
	if s.cfg.Apply == nil || s.cfg.Review == nil {
		return nil
	}
	ops := []policy.Role{policy.Admin, policy.Operator}
	me := []policy.Role{policy.Subject}
	admin := []policy.Role{policy.Admin}
	reviewer := []policy.Role{policy.Reviewer}
	return []route{
		{"POST", "/v1/items", ops, "Add or replace items of the item catalog (JSON array)", s.postItems},
		{"GET", "/v1/recommendations", ops, "Recommendations for ?subject= through ?usecase=, ?n= items (LP-3, LP-4, LP-5, FB-2)", s.getRecommendations},
		{"GET", "/v1/me/recommendations", me, "My recommendations through ?usecase=, ?n= items", s.getRecommendations},
		{"POST", "/v1/decisions", ops, "An explained automated decision {usecase, subject} (AD-2, AD-4)", s.postDecision},
		{"GET", "/v1/me/decisions", me, "My decisions, explanations and review outcomes (AD-3)", s.getMyDecisions},
		{"POST", "/v1/me/decisions/{id}/appeal", me, "Appeal my decision with a statement (AD-3)", s.postAppeal},
		{"POST", "/v1/me/decisions/{id}/review", me, "Ask for human review of my decision: kind refusal or appeal (AD-2)", s.postAppeal},
		{"PUT", "/v1/me/usecases/{id}/automation", me, "Refuse (or accept again) purely automated decisions for a use-case (AD-2)", s.putAutomation},
		{"POST", "/v1/me/usecases/{id}/notice", me, "Show me a use-case's pre-use notice and record it (CN-11)", s.postNotice},
		{"POST", "/v1/subjects/{id}/usecases/{usecase}/notice", ops, "Record that a use-case's pre-use notice was shown to a subject (CN-11)", s.postNotice},
		{"POST", "/v1/usecases/{id}/halt", admin, "Halt a use-case at once (overseer, AD-7)", s.postHalt},
		{"POST", "/v1/usecases/{id}/resume", admin, "Resume a halted use-case (overseer, AD-7)", s.postResume},
		{"POST", "/v1/usecases/{id}/assessment", admin, "Create, sign and record an impact assessment (FA-1, AD-5)", s.postAssessment},
		{"GET", "/v1/reviews", reviewer, "The open review queue (AD-3)", s.getReviews},
		{"GET", "/v1/reviews/overdue", []policy.Role{policy.Admin, policy.Reviewer, policy.Auditor, policy.Regulator}, "Open reviews past their deadline", s.getOverdueReviews},
		{"GET", "/v1/reviews/{id}", reviewer, "One case: decision, explanation, statement", s.getReview},
		{"POST", "/v1/reviews/{id}", reviewer, "Uphold or overturn with a reason (RO-7 separation of duties)", s.postReview},
	}
}

func (s *Server) postItems(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var items []portrait.Item
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&items); err != nil {
		return portrait.Errorf(portrait.EINVALID, "the body must be a JSON array of items {\"id\", \"categories\", \"attributes\", \"price\"}: %v", err)
	}
	n, err := s.cfg.Apply.PutItems(r.Context(), c, items)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, itemsStored{Stored: n})
}

// applySubject is the pseudonym a staff request names by external id.
func (s *Server) applySubject(c policy.Caller, id string) (portrait.Pseudonym, error) {
	if c.Role == policy.Subject {
		return c.Pseudonym, nil
	}
	if id == "" || len(id) > 256 {
		return "", portrait.Errorf(portrait.EINVALID, "name the subject by its id (1 to 256 bytes)")
	}
	return s.cfg.Keys.Pseudonym(id), nil
}

func (s *Server) getRecommendations(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil {
		return portrait.Errorf(portrait.EINVALID, "n=%q: give the number of items wanted, 1 to 100", q.Get("n"))
	}
	if q.Get("usecase") == "" {
		return portrait.Errorf(portrait.EINVALID, "name the recommendation use-case: ?usecase=")
	}
	p, err := s.applySubject(c, q.Get("subject"))
	if err != nil {
		return err
	}
	rec, err := settle(s, r, func(ctx context.Context) (apply.Recommendation, error) {
		return s.cfg.Apply.Recommend(keyCheckGeneration(ctx, r), c, p, q.Get("usecase"), n)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rec)
}

// settled is r's context without its cancellation, for the governed calls
// a client sends hundreds of times a second (a decision, a
// recommendation). Under a context that can be cancelled every statement
// costs a watcher goroutine in database/sql and another in the SQLite
// driver (pgx likewise): 0.1–0.2 ms of CPU on a 0.4 ms decision
// (BenchmarkDecisionHTTP/governed-cancellable). Such a call is short and
// bounded — it reads one subject and writes one record, all or nothing
// (invariant 3) — so a client that hangs up gains nothing from stopping
// it halfway; it is decided and audited as if the answer had been read.
// The values (trace, caller) are kept. Callers go through settle, which
// bounds how long the request waits.
func settled(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

// keyCheckGeneration returns ctx deciding at the governance generation
// the request's staff key check read (consent.AtGeneration), so that a
// decision or recommendation reads the generation once per request, not
// twice: the request is served as of its key check, and anything
// committed after it binds the next request. A request without that read
// (a subject token) reads it in the ledger as before.
func keyCheckGeneration(ctx context.Context, r *http.Request) context.Context {
	if in := info(r.Context()); in != nil && in.genRead {
		return consent.AtGeneration(ctx, in.gen)
	}
	return ctx
}

type decisionBody struct {
	UseCase string `json:"usecase"`
	Subject string `json:"subject"`
}

func (s *Server) postDecision(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var b decisionBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	p, err := s.applySubject(c, b.Subject)
	if err != nil {
		return err
	}
	d, err := settle(s, r, func(ctx context.Context) (apply.Determination, error) {
		return s.cfg.Apply.Determine(keyCheckGeneration(ctx, r), c, p, b.UseCase)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, d)
}

func (s *Server) getMyDecisions(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	list, err := s.cfg.Review.Decisions(r.Context(), c, c.Pseudonym)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, decisionsResponse{Decisions: list})
}

type appealBody struct {
	Kind      string `json:"kind"`
	Statement string `json:"statement"`
}

func (s *Server) postAppeal(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var b appealBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.Kind == "" {
		b.Kind = review.KindAppeal
	}
	rv, err := s.cfg.Review.Appeal(r.Context(), c, r.PathValue("id"), b.Kind, b.Statement)
	if err != nil {
		return err
	}
	rv.Sealed = nil
	return writeJSON(w, http.StatusCreated, rv)
}

func (s *Server) putAutomation(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var b automationBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if err := s.cfg.Apply.RefuseAutomation(r.Context(), c, c.Pseudonym, r.PathValue("id"), b.Refused); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, automationResponse{UseCase: r.PathValue("id"), Refused: b.Refused})
}

func (s *Server) postNotice(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	uc := r.PathValue("id")
	p := c.Pseudonym
	if c.Role != policy.Subject {
		var err error
		if p, err = s.applySubject(c, r.PathValue("id")); err != nil {
			return err
		}
		uc = r.PathValue("usecase")
	}
	n, err := s.cfg.Apply.ShowNotice(r.Context(), c, p, uc)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, n)
}

func (s *Server) postHalt(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var b reasonBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if err := s.cfg.Apply.Halt(r.Context(), c, r.PathValue("id"), b.Reason); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, useCaseStatus{UseCase: r.PathValue("id"), Status: "halted"})
}

func (s *Server) postResume(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	if err := s.cfg.Apply.Resume(r.Context(), c, r.PathValue("id")); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, useCaseStatus{UseCase: r.PathValue("id"), Status: "resumed"})
}

func (s *Server) postAssessment(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	// The body answers PIPL Art. 56's questions, signed by named people.
	var ans apply.Answers
	if err := readJSON(r, &ans); err != nil {
		return err
	}
	a, err := s.cfg.Apply.Assess(r.Context(), c, r.PathValue("id"), ans)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, a)
}

func (s *Server) getReviews(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	list, err := s.cfg.Review.Queue(r.Context(), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, reviewsResponse{Reviews: list})
}

func (s *Server) getOverdueReviews(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	list, err := s.cfg.Review.Overdue(r.Context(), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, reviewsResponse{Reviews: list})
}

func (s *Server) getReview(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	cs, err := s.cfg.Review.Case(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, cs)
}

func (s *Server) postReview(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var b reviewBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	rv, err := s.cfg.Review.Conclude(r.Context(), c, r.PathValue("id"), b.Outcome, b.Reason)
	if err != nil {
		return err
	}
	rv.Sealed = nil
	return writeJSON(w, http.StatusOK, rv)
}
