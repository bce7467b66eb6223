package regulator

import (
	"context"
	"net/url"
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
