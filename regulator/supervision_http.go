package regulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"

	portrait "github.com/portrait-dev/portrait"
)

// maxPublicBody bounds what anyone may send without an account.
const maxPublicBody = 16 << 10

// supervisionRoutes are the routes of supervision reports and complaints.
func (n *Node) supervisionRoutes(route func(string, who, func(context.Context, call) error)) {
	route("POST /v1/supervision", company, func(ctx context.Context, c call) error {
		var s SignedSupervision
		if err := decode(c.r, &s); err != nil {
			return err
		}
		rec, err := n.Receive(ctx, c.company, s)
		if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, map[string]any{"id": rec.ID, "log_index": rec.LogIndex})
	})
	route("GET /v1/companies/{id}/supervision", staff, func(ctx context.Context, c call) error {
		co, err := n.Company(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		reps, err := n.Reports(ctx, co.ID)
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"company": co.ID, "reports": reps, "series": Chart(reps)})
	})
	route("POST /v1/complaints", public, func(ctx context.Context, c call) error {
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxPublicBody)
		var in struct {
			Company string `json:"company"`
			Text    string `json:"text"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		rc, err := n.Complain(ctx, clientAddr(c.r), in.Company, in.Text, "regulator")
		if errors.Is(err, ErrRateLimited) {
			return tooMany(c.w)
		} else if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, rc)
	})
	route("GET /v1/complaints/{id}", public, func(ctx context.Context, c call) error {
		secret := c.r.URL.Query().Get("secret")
		if secret == "" {
			return portrait.Errorf(portrait.EINVALID, "following a complaint needs ?secret=, as returned when it was made")
		}
		cm, err := n.Follow(ctx, c.r.PathValue("id"), secret)
		if err != nil {
			return err
		}
		return reply(c.w, 200, cm)
	})
	route("GET /v1/companies/{id}/complaints", staff, func(ctx context.Context, c call) error {
		co, err := n.Company(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		list, err := n.Complaints(ctx, co.ID)
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"complaints": list})
	})
	route("POST /v1/complaints/{id}/close", admin, func(ctx context.Context, c call) error {
		var in struct {
			Note string `json:"note"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		cm, err := n.Close(ctx, c.staff, c.r.PathValue("id"), in.Note)
		if err != nil {
			return err
		}
		return reply(c.w, 200, cm)
	})
	// The company's side: its complaint queue, complaints it took at its
	// own /v1/reports, and its answers.
	route("GET /v1/mirror/complaints", company, func(ctx context.Context, c call) error {
		list, err := n.Complaints(ctx, c.company.ID)
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"complaints": list})
	})
	route("POST /v1/mirror/complaints", company, func(ctx context.Context, c call) error {
		var in struct {
			Text string `json:"text"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		rc, err := n.Complain(ctx, "", c.company.ID, in.Text, "company")
		if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, rc)
	})
	route("POST /v1/mirror/complaints/{id}/answer", company, func(ctx context.Context, c call) error {
		var in struct {
			Answer string `json:"answer"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		cm, err := n.AnswerComplaint(ctx, c.company, c.r.PathValue("id"), in.Answer)
		if err != nil {
			return err
		}
		return reply(c.w, 200, cm)
	})
}

// consultationRoutes are the routes of rule packs under consultation.
func (n *Node) consultationRoutes(route func(string, who, func(context.Context, call) error)) {
	route("POST /v1/packs", admin, func(ctx context.Context, c call) error {
		var in struct {
			Title string          `json:"title"`
			Pack  json.RawMessage `json:"pack"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		d, err := n.DraftPack(ctx, c.staff, in.Title, in.Pack)
		if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, d)
	})
	route("GET /v1/packs", public, func(ctx context.Context, c call) error {
		list, err := n.Drafts(ctx)
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"packs": list})
	})
	route("GET /v1/packs/current", public, func(ctx context.Context, c call) error {
		cur, err := n.Current(ctx)
		if err != nil {
			return err
		}
		return reply(c.w, 200, cur)
	})
	route("GET /v1/packs/{id}", public, func(ctx context.Context, c call) error {
		d, err := n.Draft(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, d)
	})
	route("POST /v1/packs/{id}/open", admin, func(ctx context.Context, c call) error {
		d, err := n.OpenConsultation(ctx, c.staff, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, d)
	})
	route("POST /v1/packs/{id}/comments", public, func(ctx context.Context, c call) error {
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxPublicBody)
		var in struct {
			Name string `json:"name"`
			Text string `json:"text"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		d, err := n.CommentOn(ctx, clientAddr(c.r), c.r.PathValue("id"), in.Name, in.Text)
		if errors.Is(err, ErrRateLimited) {
			return tooMany(c.w)
		} else if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, d)
	})
	route("POST /v1/packs/{id}/signoffs", admin, func(ctx context.Context, c call) error {
		var in SignOff
		if err := decode(c.r, &struct {
			Expert     *string `json:"expert"`
			Discipline *string `json:"discipline"`
			Statement  *string `json:"statement"`
		}{&in.Expert, &in.Discipline, &in.Statement}); err != nil {
			return err
		}
		d, err := n.SignOffPack(ctx, c.staff, c.r.PathValue("id"), in)
		if err != nil {
			return err
		}
		return reply(c.w, 201, d)
	})
	route("POST /v1/packs/{id}/simulate", staff, func(ctx context.Context, c call) error {
		out, err := n.Simulate(ctx, c.staff, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"outcomes": out})
	})
	route("POST /v1/packs/{id}/publish", admin, func(ctx context.Context, c call) error {
		d, err := n.Publish(ctx, c.staff, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, d)
	})
	route("POST /v1/mirror/catalog", company, func(ctx context.Context, c call) error {
		src, err := io.ReadAll(c.r.Body)
		if err != nil {
			return portrait.Errorf(portrait.ETOOLARGE, "catalog: %v", err)
		}
		if err := n.FileCatalog(ctx, c.company, src); err != nil {
			return err
		}
		c.w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// clientAddr is the caller's address for rate limiting. The node is
// meant to be reached directly; behind a proxy every client shares one
// bucket, which errs on the side of refusing.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func tooMany(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Retry-After", "60")
	w.WriteHeader(http.StatusTooManyRequests)
	_, err := w.Write([]byte(`{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"too many submissions from this address; try again later","code":"rate_limited","requirement":"RO-8"}` + "\n"))
	return err
}
