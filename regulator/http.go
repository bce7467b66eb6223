package regulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/witness"
)

// maxBody bounds request bodies; a mirror upload of MaxUpload entries of
// a few hundred bytes each, base64-encoded, fits.
const maxBody = 16 << 20

// who may call a route: the public, a company by its enrolment token, or
// staff of the listed roles.
type who struct {
	public  bool
	company bool
	roles   []policy.Role
}

var (
	public  = who{public: true}
	company = who{company: true}
	admin   = who{roles: []policy.Role{Admin}}
	staff   = who{roles: []policy.Role{Admin, Inspector}}
)

// call is an authenticated request.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	staff   policy.Caller
	company Company
}

// Handler returns the node's HTTP API. Every route names who may call
// it; anything else is refused (deny by default).
func (n *Node) Handler(logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, w who, h func(context.Context, call) error) {
		mux.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(rw, r.Body, maxBody)
			c := call{w: rw, r: r}
			err := n.authorize(r, w, &c)
			if err == nil {
				err = h(r.Context(), c)
			}
			if err != nil {
				problem(rw, logger, err)
			}
		})
	}
	route("GET /healthz", public, func(_ context.Context, c call) error {
		return reply(c.w, 200, map[string]any{"status": "ok", "role": "regulator", "witness": n.cosigner.Name()})
	})
	route("GET /v1/witness/key", public, func(_ context.Context, c call) error {
		c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err := io.WriteString(c.w, n.WitnessKey()+"\n")
		return err
	})
	route("POST /add-checkpoint", public, n.addCheckpoint)
	route("POST /v1/companies", admin, func(ctx context.Context, c call) error {
		var in struct{ Name string }
		if err := decode(c.r, &in); err != nil {
			return err
		}
		co, tok, err := n.Enrol(ctx, c.staff, in.Name)
		if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, map[string]string{"id": co.ID, "enrolment_token": tok})
	})
	route("GET /v1/companies", staff, func(ctx context.Context, c call) error {
		cs, err := n.Companies(ctx)
		if err != nil {
			return err
		}
		out := make([]companyView, len(cs))
		for i, co := range cs {
			out[i] = view(co)
		}
		return reply(c.w, 200, map[string]any{"companies": out})
	})
	route("GET /v1/companies/{id}", staff, func(ctx context.Context, c call) error {
		co, err := n.Company(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, co)
	})
	route("GET /v1/companies/{id}/filings", staff, func(ctx context.Context, c call) error {
		if _, err := n.Company(ctx, c.r.PathValue("id")); err != nil {
			return err
		}
		fs, err := n.Filings(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"filings": fs})
	})
	route("GET /v1/companies/{id}/checkpoint", public, func(ctx context.Context, c call) error {
		co, err := n.Company(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return checkpoint(c.w, co)
	})
	// The monitoring endpoint of tlog-witness: the latest cosigned
	// checkpoint of the log whose origin hashes (SHA-256, hex) to hash.
	route("GET /{hash}/checkpoint", public, func(ctx context.Context, c call) error {
		cs, err := n.Companies(ctx)
		if err != nil {
			return err
		}
		for _, co := range cs {
			if sum := sha256.Sum256([]byte(co.Origin)); co.Origin != "" && hex.EncodeToString(sum[:]) == c.r.PathValue("hash") {
				return checkpoint(c.w, co)
			}
		}
		return portrait.Errorf(portrait.ENOTFOUND, "no log with that origin hash is witnessed here")
	})
	route("GET /v1/companies/{id}/entries", staff, func(ctx context.Context, c call) error {
		co, err := n.Company(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return n.entries(ctx, c, co)
	})
	route("POST /v1/staff", admin, func(ctx context.Context, c call) error {
		var in struct {
			Name string
			Role policy.Role
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		key, err := n.AddStaff(ctx, c.staff, in.Name, in.Role)
		if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, map[string]string{"name": in.Name, "role": string(in.Role), "key": key})
	})
	route("POST /v1/filings", company, func(ctx context.Context, c call) error {
		var f Filing
		if err := decode(c.r, &f); err != nil {
			return err
		}
		if err := n.File(ctx, c.company, f); err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"company": c.company.ID, "witnessed_size": c.company.Size})
	})
	route("POST /v1/mirror", company, func(ctx context.Context, c call) error {
		var in struct {
			From    int64    `json:"from"`
			Entries [][]byte `json:"entries"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		size, err := n.Mirror(ctx, c.company, in.From, in.Entries)
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]int64{"size": size})
	})
	route("POST /v1/orders", admin, func(ctx context.Context, c call) error {
		var o Order
		if err := decode(c.r, &struct {
			Company *string `json:"company"`
			Kind    *string `json:"kind"`
			Target  *Target `json:"target"`
			Reason  *string `json:"reason"`
			Silence *int64  `json:"max_silence_seconds"`
		}{&o.Company, &o.Kind, &o.Target, &o.Reason, &o.MaxSilenceSeconds}); err != nil {
			return err
		}
		rec, err := n.Issue(ctx, c.staff, o)
		if err != nil {
			return err
		}
		return reply(c.w, http.StatusCreated, rec)
	})
	route("POST /v1/orders/{id}/approve", admin, func(ctx context.Context, c call) error {
		rec, err := n.Approve(ctx, c.staff, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, rec)
	})
	route("GET /v1/companies/{id}/orders", staff, func(ctx context.Context, c call) error {
		list, err := n.Orders(ctx, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(c.w, 200, map[string]any{"orders": list})
	})
	route("GET /v1/mirror/orders", company, func(ctx context.Context, c call) error {
		list, err := n.Orders(ctx, c.company.ID)
		if err != nil {
			return err
		}
		out := []Delivery{}
		for _, o := range list {
			if o.Signed != nil {
				out = append(out, Delivery{SignedOrder: *o.Signed, Acknowledged: o.AckIndex != nil})
			}
		}
		return reply(c.w, 200, map[string]any{"company": c.company.ID, "orders": out})
	})
	route("POST /v1/mirror/orders/{id}/ack", company, func(ctx context.Context, c call) error {
		var in struct {
			LogIndex int64 `json:"log_index"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		if err := n.Ack(ctx, c.company, c.r.PathValue("id"), in.LogIndex); err != nil {
			return err
		}
		c.w.WriteHeader(http.StatusNoContent)
		return nil
	})
	n.supervisionRoutes(route)
	n.countersignRoutes(route)
	n.consultationRoutes(route)
	n.screenRoutes(mux, logger)
	route("GET /v1/mirror/checkpoint", company, func(_ context.Context, c call) error { return checkpoint(c.w, c.company) })
	route("GET /v1/mirror/entries", company, func(ctx context.Context, c call) error { return n.entries(ctx, c, c.company) })
	return mux
}

// Delivery is an issued order as a company engine polls it.
type Delivery struct {
	SignedOrder
	Acknowledged bool `json:"acknowledged"`
}

// companyView is a company as GET /v1/companies lists it.
type companyView struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Origin  string `json:"origin"`
	Size    int64  `json:"witnessed_size"`
	Contact string `json:"last_contact,omitempty"`
}

func view(c Company) companyView {
	v := companyView{ID: c.ID, Name: c.Name, Origin: c.Origin, Size: c.Size}
	if !c.Contact.IsZero() {
		v.Contact = c.Contact.Format("2006-01-02T15:04:05Z07:00")
	}
	return v
}

func checkpoint(w http.ResponseWriter, c Company) error {
	if len(c.Checkpoint) == 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "the regulator has cosigned no checkpoint of company %s yet", c.ID)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write(c.Checkpoint)
	return err
}

// entries serves mirrored entries [from, to), at most MaxUpload at once.
func (n *Node) entries(ctx context.Context, c call, co Company) error {
	q := c.r.URL.Query()
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	if err1 != nil || err2 != nil || from < 0 || to < from || to-from > MaxUpload {
		return portrait.Errorf(portrait.EINVALID, "want ?from=N&to=M with 0 <= N <= M and at most %d entries", MaxUpload)
	}
	es, err := n.db.MirrorEntries(ctx, co.ID, from, to)
	if err != nil {
		return err
	}
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.Data
	}
	return reply(c.w, 200, map[string]any{"from": from, "entries": out})
}

func (n *Node) addCheckpoint(ctx context.Context, c call) error {
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		return portrait.Errorf(portrait.ETOOLARGE, "request body: %v", err)
	}
	line, err := n.AddCheckpoint(ctx, body)
	var we *WitnessError
	if errors.As(err, &we) {
		if we.Status == http.StatusConflict {
			c.w.Header().Set("Content-Type", witness.ContentTypeSize)
			c.w.WriteHeader(http.StatusConflict)
			_, err := io.WriteString(c.w, strconv.FormatInt(we.Size, 10)+"\n")
			return err
		}
		c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		c.w.WriteHeader(we.Status)
		_, err := io.WriteString(c.w, we.Msg+"\n")
		return err
	} else if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = c.w.Write(line)
	return err
}

func (n *Node) authorize(r *http.Request, w who, c *call) error {
	if w.public {
		return nil
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return portrait.Errorf(portrait.EUNAUTHORIZED, "send Authorization: Bearer with a regulator staff key or a company's enrolment token")
	}
	if w.company {
		co, err := n.Member(r.Context(), tok)
		c.company = co
		return err
	}
	caller, err := n.Staff(r.Context(), tok)
	if err != nil {
		return err
	}
	for _, role := range w.roles {
		if caller.Role == role {
			c.staff = caller
			return nil
		}
	}
	return portrait.Errorf(portrait.EFORBIDDEN, "role %s may not do this", caller.Role)
}

func decode(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return portrait.Errorf(portrait.ETOOLARGE, "request body over %d bytes", mb.Limit)
		}
		return portrait.Errorf(portrait.EINVALID, "request body: %v", err)
	}
	return nil
}

func reply(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

var statuses = map[string]int{
	portrait.EINVALID: 400, portrait.ENOTFOUND: 404, portrait.ECONFLICT: 409, portrait.EUNAUTHORIZED: 401,
	portrait.EFORBIDDEN: 403, portrait.EDENIED: 403, portrait.ETOOLARGE: 413, portrait.EUNAVAILABLE: 503,
}

// problem writes err as RFC 9457 problem+json; internal detail is only
// logged.
func problem(w http.ResponseWriter, logger *slog.Logger, err error) {
	code := portrait.ErrorCode(err)
	status, ok := statuses[code]
	if !ok {
		status = 500
		logger.Error("regulator: internal error", "err", err)
	}
	var pe *portrait.Error
	req := ""
	if errors.As(err, &pe) {
		req = pe.Requirement
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status,
		"detail": portrait.ErrorMessage(err), "code": code, "requirement": req})
}
