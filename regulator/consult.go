package regulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rules"
)

// Rule packs under consultation (the precautionary procedure: public
// participation, experts from beyond law, worst-case analysis). A draft
// is opened for public comment, signed off by named experts of at least
// law, ethics and sociology, simulated against every company's filed
// catalog, then published signed in package rules' format. Every step is
// in the regulator's log.

// Pack statuses.
const (
	PackDraft        = "draft"
	PackConsultation = "consultation"
	PackPublished    = "published"
	PackSuperseded   = "superseded"
)

// Disciplines a publication needs a sign-off from, at least.
var Disciplines = []string{"law", "ethics", "sociology"}

// PackKeyPrefix is the header line of the cosigner's endorsement of the
// pack-signing key: an engine trusts one regulator key, its
// --regulator-key, and learns the pack key through it.
const PackKeyPrefix = "portrait-packkey/v1\n"

// Draft is a rule pack going through consultation.
type Draft struct {
	ID        string          `json:"id"`
	Title     string          `json:"title"`
	Text      json.RawMessage `json:"pack"`
	Status    string          `json:"status"`
	Created   time.Time       `json:"created"`
	CreatedBy string          `json:"created_by"`
	Opened    time.Time       `json:"opened,omitzero"`
	Published time.Time       `json:"published,omitzero"`
	Comments  []Comment       `json:"comments"`
	SignOffs  []SignOff       `json:"signoffs"`
	// Signed is the pack as published: a signed note (rules.Sign).
	Signed []byte `json:"signed,omitempty"`
	// Log lists the regulator's log records of each step.
	Log []int64 `json:"log"`
}

// Comment is a public comment on a draft, published as made.
type Comment struct {
	Name string    `json:"name"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// SignOff is a named expert's sign-off, recorded by regulator staff.
type SignOff struct {
	Expert     string    `json:"expert"`
	Discipline string    `json:"discipline"`
	Statement  string    `json:"statement"`
	At         time.Time `json:"at"`
	By         string    `json:"recorded_by"`
}

// CatalogCheck loads a catalog's source under pack, as an engine does at
// start; the regulator's simulation uses it.
type CatalogCheck func(pack *rules.Pack, name string, data []byte) error

// docCatalog is a company's filed catalog source, one per company.
const docCatalog = "catalog"

// PackSigner returns the regulator's pack-signing key, derived from its
// cosigner key, named name (e.g. regulator.example/rules).
func PackSigner(name string, witnessSeed []byte) (note.Signer, string, error) {
	seed := sha256.Sum256(append([]byte("portrait/rulepack-signer/v1/"), witnessSeed...))
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), name)
	if err != nil {
		return nil, "", err
	}
	s, err := note.NewSigner(skey)
	return s, vkey, err
}

// Consult turns on rule-pack consultation: packs are signed by signer
// (whose verifier key is vkey) and simulated with check.
func (n *Node) Consult(signer note.Signer, vkey string, check CatalogCheck) {
	n.packSigner, n.packKey, n.catalogCheck = signer, vkey, check
}

func (n *Node) consulting() (*supervision, error) {
	sup, err := n.supervising()
	if err == nil && n.packSigner == nil {
		err = portrait.Errorf(portrait.EUNAVAILABLE, "this regulator node does not consult on rule packs")
	}
	return sup, err
}

// DraftPack records a draft rule pack. Its text must be a well-formed
// pack (it is checked as rules.Sign checks it).
func (n *Node) DraftPack(ctx context.Context, by policy.Caller, title string, text json.RawMessage) (Draft, error) {
	sup, err := n.consulting()
	if err != nil {
		return Draft{}, err
	}
	if title, err = checkText("title", title); err != nil {
		return Draft{}, err
	}
	if _, err := rules.Sign(text, n.packSigner); err != nil {
		return Draft{}, portrait.Errorf(portrait.EINVALID, "draft pack: %v", err)
	}
	d := Draft{ID: "pk_" + hex.EncodeToString(hash(token(""))[:6]), Title: title, Text: text, Status: PackDraft, Created: n.now(), CreatedBy: by.ID,
		Comments: []Comment{}, SignOffs: []SignOff{}}
	sum := sha256.Sum256(text)
	idx, err := n.record(ctx, audit.Record{Kind: "rulepack", Actor: actor(by), Action: "draft", Digest: hex.EncodeToString(sum[:]),
		Detail: map[string]any{"draft": d.ID, "title": title}}, nil)
	if err != nil {
		return Draft{}, err
	}
	d.Log = []int64{idx}
	return d, putDoc(ctx, sup.docs, docPack, d.ID, "", d.Created, d)
}

// Drafts lists every draft, oldest first.
func (n *Node) Drafts(ctx context.Context) ([]Draft, error) {
	sup, err := n.consulting()
	if err != nil {
		return nil, err
	}
	return listDocs[Draft](ctx, sup.docs, docPack, "")
}

// Draft returns one draft.
func (n *Node) Draft(ctx context.Context, id string) (Draft, error) {
	sup, err := n.consulting()
	if err != nil {
		return Draft{}, err
	}
	return getDoc[Draft](ctx, sup.docs, docPack, id)
}

// step changes a draft: the change is logged first, then stored.
func (n *Node) step(ctx context.Context, id string, actorName, action string, fn func(*Draft) (map[string]any, string, error)) (Draft, error) {
	sup, err := n.consulting()
	if err != nil {
		return Draft{}, err
	}
	d, err := getDoc[Draft](ctx, sup.docs, docPack, id)
	if err != nil {
		return Draft{}, err
	}
	detail, dg, err := fn(&d)
	if err != nil {
		return Draft{}, err
	}
	detail["draft"] = id
	idx, err := n.record(ctx, audit.Record{Kind: "rulepack", Actor: actorName, Action: action, Digest: dg, Detail: detail}, nil)
	if err != nil {
		return Draft{}, err
	}
	d.Log = append(d.Log, idx)
	return d, putDoc(ctx, sup.docs, docPack, d.ID, "", d.Created, d)
}

// OpenConsultation opens a draft for public comment.
func (n *Node) OpenConsultation(ctx context.Context, by policy.Caller, id string) (Draft, error) {
	return n.step(ctx, id, actor(by), "open", func(d *Draft) (map[string]any, string, error) {
		if d.Status != PackDraft {
			return nil, "", portrait.Errorf(portrait.ECONFLICT, "pack %s is %s, not a draft", id, d.Status)
		}
		d.Status, d.Opened = PackConsultation, n.now()
		return map[string]any{}, "", nil
	})
}

// CommentOn records a public comment, published with the draft. client is
// the commenter's address, for rate limiting only.
func (n *Node) CommentOn(ctx context.Context, client, id, name, text string) (Draft, error) {
	sup, err := n.consulting()
	if err != nil {
		return Draft{}, err
	}
	if text, err = checkText("comment", text); err != nil {
		return Draft{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "匿名 anonymous"
	} else if len(name) > 100 {
		return Draft{}, portrait.Errorf(portrait.EINVALID, "a commenter's name has at most 100 bytes")
	}
	if !sup.limiter.Allow(client, n.now()) {
		return Draft{}, ErrRateLimited
	}
	return n.step(ctx, id, "public", "comment", func(d *Draft) (map[string]any, string, error) {
		if d.Status != PackConsultation {
			return nil, "", portrait.Errorf(portrait.ECONFLICT, "pack %s is not open for comment (it is %s)", id, d.Status)
		}
		d.Comments = append(d.Comments, Comment{Name: name, Text: text, At: n.now()})
		return map[string]any{"comment": len(d.Comments)}, digest(text), nil
	})
}

// SignOffPack records a named expert's sign-off.
func (n *Node) SignOffPack(ctx context.Context, by policy.Caller, id string, s SignOff) (Draft, error) {
	var err error
	if s.Expert, err = checkText("expert's name", s.Expert); err != nil {
		return Draft{}, err
	}
	if s.Statement, err = checkText("statement", s.Statement); err != nil {
		return Draft{}, err
	}
	s.Discipline = strings.ToLower(strings.TrimSpace(s.Discipline))
	if s.Discipline == "" || len(s.Discipline) > 40 {
		return Draft{}, portrait.Errorf(portrait.EINVALID, "a sign-off names the expert's discipline (law, ethics, sociology, …)")
	}
	return n.step(ctx, id, actor(by), "signoff", func(d *Draft) (map[string]any, string, error) {
		if d.Status != PackConsultation {
			return nil, "", portrait.Errorf(portrait.ECONFLICT, "pack %s is not under consultation (it is %s)", id, d.Status)
		}
		s.At, s.By = n.now(), by.ID
		d.SignOffs = append(d.SignOffs, s)
		return map[string]any{"expert": s.Expert, "discipline": s.Discipline}, digest(s.Statement), nil
	})
}

// Publish signs a draft under consultation that every discipline in
// Disciplines has signed off, and puts it in force; the pack in force
// before is superseded.
func (n *Node) Publish(ctx context.Context, by policy.Caller, id string) (Draft, error) {
	all, err := n.Drafts(ctx)
	if err != nil {
		return Draft{}, err
	}
	d, err := n.step(ctx, id, actor(by), "publish", func(d *Draft) (map[string]any, string, error) {
		if d.Status != PackConsultation {
			return nil, "", portrait.Errorf(portrait.ECONFLICT, "pack %s must be under public consultation before it is published (it is %s)", id, d.Status)
		}
		for _, want := range Disciplines {
			if !slices.ContainsFunc(d.SignOffs, func(s SignOff) bool { return s.Discipline == want }) {
				return nil, "", portrait.Errorf(portrait.ECONFLICT, "pack %s has no sign-off by an expert in %s: publication needs %s", id, want, strings.Join(Disciplines, ", "))
			}
		}
		signed, err := rules.Sign(d.Text, n.packSigner)
		if err != nil {
			return nil, "", portrait.Errorf(portrait.EINVALID, "pack %s: %v", id, err)
		}
		d.Status, d.Published, d.Signed = PackPublished, n.now(), signed
		sum := sha256.Sum256(signed)
		return map[string]any{"signoffs": len(d.SignOffs), "comments": len(d.Comments)}, hex.EncodeToString(sum[:]), nil
	})
	if err != nil {
		return Draft{}, err
	}
	for _, old := range all {
		if old.Status == PackPublished && old.ID != id {
			old.Status = PackSuperseded
			if err := putDoc(ctx, n.sup.docs, docPack, old.ID, "", old.Created, old); err != nil {
				return Draft{}, err
			}
		}
	}
	return d, nil
}

// InForce is the pack in force as engines fetch it: the signed pack, the
// key it verifies with and the cosigner's endorsement of that key.
type InForce struct {
	Draft       string `json:"draft"`
	Pack        []byte `json:"pack"`
	Key         string `json:"key"`
	Endorsement []byte `json:"endorsement"`
}

// Current returns the pack in force; ENOTFOUND if none was published.
func (n *Node) Current(ctx context.Context) (InForce, error) {
	all, err := n.Drafts(ctx)
	if err != nil {
		return InForce{}, err
	}
	for _, d := range slices.Backward(all) {
		if d.Status == PackPublished {
			sig, err := n.cosigner.SignStatement(PackKeyPrefix, []byte(n.packKey))
			if err != nil {
				return InForce{}, err
			}
			return InForce{Draft: d.ID, Pack: d.Signed, Key: n.packKey, Endorsement: sig}, nil
		}
	}
	return InForce{}, portrait.Errorf(portrait.ENOTFOUND, "the regulator has published no rule pack")
}

// FileCatalog keeps a version of company c's catalog source, for
// simulations and for the diffs between versions on the console. Filing
// the same source again changes nothing.
func (n *Node) FileCatalog(ctx context.Context, c Company, src []byte) error {
	sup, err := n.supervising()
	if err != nil {
		return err
	}
	if len(src) == 0 || len(src) > 4<<20 {
		return portrait.Errorf(portrait.EINVALID, "catalog: want 1 byte to 4 MiB of YAML")
	}
	sum := sha256.Sum256(src)
	id := c.ID + "@" + hex.EncodeToString(sum[:8])
	if _, err := sup.docs.Doc(ctx, docCatalog, id); err == nil {
		return nil
	}
	if _, err := n.record(ctx, audit.Record{Kind: "catalog_source", Actor: "company:" + c.ID, Action: "file", Digest: hex.EncodeToString(sum[:]),
		Detail: map[string]any{"company": c.ID, "bytes": len(src)}}, nil); err != nil {
		return err
	}
	return putDoc(ctx, sup.docs, docCatalog, id, c.ID, n.now(), filedCatalog{Digest: hex.EncodeToString(sum[:]), Source: src})
}

// filedCatalog is one filed version of a company's catalog.
type filedCatalog struct {
	Digest string `json:"digest"`
	Source []byte `json:"source"`
}

// CatalogVersion is a filed catalog version with its diff from the one
// before (none for the first).
type CatalogVersion struct {
	Digest string
	Filed  time.Time
	Diff   []DiffLine
}

func (n *Node) catalogVersions(ctx context.Context, company string) ([]CatalogVersion, error) {
	ds, err := n.sup.docs.Docs(ctx, docCatalog, company)
	if err != nil {
		return nil, err
	}
	var out []CatalogVersion
	var prev []byte
	for _, d := range ds {
		var f filedCatalog
		if err := json.Unmarshal(d.Body, &f); err != nil {
			return nil, err
		}
		v := CatalogVersion{Digest: f.Digest[:16], Filed: d.Created}
		if prev != nil {
			v.Diff = Diff(string(prev), string(f.Source))
		}
		prev = f.Source
		out = append(out, v)
	}
	// Newest first.
	slices.Reverse(out)
	return out, nil
}

// latestCatalog returns a company's newest filed catalog.
func (n *Node) latestCatalog(ctx context.Context, company string) ([]byte, error) {
	ds, err := n.sup.docs.Docs(ctx, docCatalog, company)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	var f filedCatalog
	err = json.Unmarshal(ds[len(ds)-1].Body, &f)
	return f.Source, err
}

// DiffLine is one line of a diff: Op is "add", "del" or "" (context).
type DiffLine struct {
	Op, Sign, Text string
}

// Diff returns the changed lines between a and b with one line of
// context, by longest common subsequence (catalogs are small).
func Diff(a, b string) []DiffLine {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(x)*len(y) > 4_000_000 {
		return []DiffLine{{Op: "del", Sign: "-", Text: "(too large to diff)"}}
	}
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var all []DiffLine
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			all = append(all, DiffLine{Text: x[i], Sign: " "})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			all = append(all, DiffLine{Op: "add", Sign: "+", Text: y[j]})
			j++
		default:
			all = append(all, DiffLine{Op: "del", Sign: "-", Text: x[i]})
			i++
		}
	}
	var out []DiffLine
	for k, l := range all {
		near := l.Op != "" || (k > 0 && all[k-1].Op != "") || (k+1 < len(all) && all[k+1].Op != "")
		if near {
			out = append(out, l)
		}
	}
	return out
}

// Outcome is one company's result in a simulation.
type Outcome struct {
	Company string `json:"company"`
	Name    string `json:"name"`
	Filed   bool   `json:"catalog_filed"`
	Pass    bool   `json:"pass"`
	Error   string `json:"error,omitempty"`
}

// Simulate checks every enrolled company's filed catalog against draft
// id, as the company's engine would at start, and says which would be
// refused: the worst case before publication.
func (n *Node) Simulate(ctx context.Context, by policy.Caller, id string) ([]Outcome, error) {
	d, err := n.Draft(ctx, id)
	if err != nil {
		return nil, err
	}
	if n.catalogCheck == nil {
		return nil, portrait.Errorf(portrait.EUNAVAILABLE, "this node cannot load catalogs")
	}
	signed, err := rules.Sign(d.Text, n.packSigner)
	if err != nil {
		return nil, portrait.Errorf(portrait.EINVALID, "pack %s: %v", id, err)
	}
	pack, err := rules.Open(signed, note.VerifierList(mustVerifier(n.packKey)))
	if err != nil {
		return nil, err
	}
	cos, err := n.Companies(ctx)
	if err != nil {
		return nil, err
	}
	out := []Outcome{}
	fails := 0
	for _, co := range cos {
		o := Outcome{Company: co.ID, Name: co.Name}
		src, err := n.latestCatalog(ctx, co.ID)
		if err != nil {
			return nil, err
		} else if src == nil {
			out = append(out, o)
			continue
		}
		o.Filed = true
		if err := n.catalogCheck(pack, co.ID+"/catalog.yaml", src); err != nil {
			o.Error = err.Error()
			fails++
		} else {
			o.Pass = true
		}
		out = append(out, o)
	}
	if _, err := n.record(ctx, audit.Record{Kind: "rulepack", Actor: actor(by), Action: "simulate",
		Detail: map[string]any{"draft": id, "companies": len(out), "would_fail": fails}}, nil); err != nil {
		return nil, err
	}
	return out, nil
}

func mustVerifier(vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		panic(fmt.Sprintf("regulator pack key %q: %v", vkey, err))
	}
	return v
}
