package regulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/portrait-dev/portrait/rules"
)

// Supervise sends a signed supervision report and returns its id at the
// regulator.
func (c *Client) Supervise(ctx context.Context, s SignedSupervision) (string, error) {
	var out struct{ ID string }
	err := c.do(ctx, "POST", "/v1/supervision", s, &out)
	return out.ID, err
}

// Complaints returns the complaints about the company, with their text.
func (c *Client) Complaints(ctx context.Context) ([]Complaint, error) {
	var out struct{ Complaints []Complaint }
	if err := c.do(ctx, "GET", "/v1/mirror/complaints", nil, &out); err != nil {
		return nil, err
	}
	return out.Complaints, nil
}

// Forward files text, taken at the company's own /v1/reports, as a
// complaint about the company, and returns the receipt with the URL
// where the complainant follows it.
func (c *Client) Forward(ctx context.Context, text string) (ComplaintReceipt, string, error) {
	var rc ComplaintReceipt
	if err := c.do(ctx, "POST", "/v1/mirror/complaints", map[string]string{"text": text}, &rc); err != nil {
		return rc, "", err
	}
	return rc, c.URL + "/v1/complaints/" + url.PathEscape(rc.ID) + "?secret=" + url.QueryEscape(rc.Secret), nil
}

// AnswerComplaint sends the company's answer to complaint id.
func (c *Client) AnswerComplaint(ctx context.Context, id, text string) error {
	return c.do(ctx, "POST", "/v1/mirror/complaints/"+url.PathEscape(id)+"/answer", map[string]string{"answer": text}, nil)
}

// Pack returns the rule pack in force at the regulator, verified: the
// pack key must be endorsed by the regulator's key (the engine's
// --regulator-key) and the pack signed by it. nil if none is published.
func (c *Client) Pack(ctx context.Context) (*rules.Pack, error) {
	p, _, err := c.PackInForce(ctx)
	return p, err
}

// PackInForce is Pack with the document the pack was verified from, for
// a copy kept for offline starts (OpenPack verifies it again then).
func (c *Client) PackInForce(ctx context.Context) (*rules.Pack, *InForce, error) {
	var cur InForce
	err := c.do(ctx, "GET", "/v1/packs/current", nil, &cur)
	if err != nil && strings.Contains(err.Error(), " 404 ") {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	p, err := c.OpenPack(cur)
	if err != nil {
		return nil, nil, err
	}
	return p, &cur, nil
}

// OpenPack verifies a document of the regulator's pack in force with the
// regulator's key and returns the pack.
func (c *Client) OpenPack(cur InForce) (*rules.Pack, error) {
	if !c.Key.VerifyStatement(PackKeyPrefix, []byte(cur.Key), cur.Endorsement) {
		return nil, fmt.Errorf("the regulator's pack key %q is not endorsed by its key %s", cur.Key, c.Key.Name())
	}
	trusted, err := rules.Verifiers(cur.Key)
	if err != nil {
		return nil, err
	}
	return rules.Open(cur.Pack, trusted)
}

// FileCatalog sends the catalog source, for the regulator's simulations
// of draft rule packs.
func (c *Client) FileCatalog(ctx context.Context, src []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", c.URL+"/v1/mirror/catalog", bytes.NewReader(src))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("regulator: file catalog: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("regulator: file catalog: %s", resp.Status)
	}
	return nil
}

// AskCountersignature asks the regulator to countersign a change
// request's high-tier use-cases and returns the request's status there.
func (c *Client) AskCountersignature(ctx context.Context, ask CountersignRequest) (string, error) {
	var out struct{ Status string }
	err := c.do(ctx, "POST", "/v1/mirror/countersignatures", ask, &out)
	return out.Status, err
}

// Countersignatures returns the regulator's decisions on the company's
// countersignature requests, as signed documents (not yet verified).
func (c *Client) Countersignatures(ctx context.Context) ([]json.RawMessage, error) {
	var out struct{ Decisions []json.RawMessage }
	if err := c.do(ctx, "GET", "/v1/mirror/countersignatures", nil, &out); err != nil {
		return nil, err
	}
	return out.Decisions, nil
}
