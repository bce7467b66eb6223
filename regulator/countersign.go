package regulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/witness"
)

// CountersignPrefix is the header line of a countersignature's signed
// message (see witness.Signer.SignStatement).
const CountersignPrefix = "portrait-countersignature/v1\n"

// Countersignature is the regulator's agreement that a company's change
// request — new or changed high-tier use-cases, already approved by a
// named person at the company — may go live (SG-7). It names the request
// by its index in the company's log and the definitions by digest, so it
// covers exactly what was filed.
type Countersignature struct {
	Company string `json:"company"`
	Request int64  `json:"request"`
	// Items are the request's labels and use-cases, "use_case:ID" →
	// definition digest, as the company's change request lists them.
	Items    map[string]string `json:"items"`
	Signed   time.Time         `json:"signed"`
	SignedBy string            `json:"signed_by"` // regulator staff key name
	Note     string            `json:"note,omitempty"`
	// Refused marks the regulator's refusal of the request: signed as a
	// countersignature is, so that the engine can trust it, and never
	// accepted as one (CountersignVerifier).
	Refused bool `json:"refused,omitempty"`
}

// SignedCountersignature is a countersignature as an engine receives it:
// the exact bytes signed and the regulator's signature over
// CountersignPrefix || Body.
type SignedCountersignature struct {
	Body      json.RawMessage `json:"countersignature"`
	Signature []byte          `json:"signature"`
}

// SignCountersignature signs c with the regulator's key.
func SignCountersignature(s *witness.Signer, c Countersignature) (SignedCountersignature, error) {
	if c.Company == "" || len(c.Items) == 0 || c.SignedBy == "" {
		return SignedCountersignature{}, fmt.Errorf("countersignature: want a company, the request's items and who signs")
	}
	body, err := json.Marshal(c)
	if err != nil {
		return SignedCountersignature{}, err
	}
	sig, err := s.SignStatement(CountersignPrefix, body)
	if err != nil {
		return SignedCountersignature{}, err
	}
	return SignedCountersignature{Body: body, Signature: sig}, nil
}

// VerifyCountersignature checks doc (a SignedCountersignature as JSON)
// against the regulator's key and that it is addressed to company; only
// then is its body parsed.
func VerifyCountersignature(doc []byte, v *witness.Verifier, company string) (Countersignature, error) {
	var sc SignedCountersignature
	d := json.NewDecoder(bytes.NewReader(doc))
	d.DisallowUnknownFields()
	if err := d.Decode(&sc); err != nil {
		return Countersignature{}, fmt.Errorf("countersignature document: %w", err)
	}
	if !v.VerifyStatement(CountersignPrefix, sc.Body, sc.Signature) {
		return Countersignature{}, fmt.Errorf("countersignature does not verify with the regulator's key %s", v.Name())
	}
	var c Countersignature
	d = json.NewDecoder(bytes.NewReader(sc.Body))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Countersignature{}, fmt.Errorf("signed countersignature: %w", err)
	}
	if c.Company != company {
		return Countersignature{}, fmt.Errorf("countersignature is addressed to company %s, not %s", c.Company, company)
	}
	return c, nil
}

// CountersignVerifier returns a function that verifies the regulator's
// decision documents (countersignatures and refusals) for company with
// v, in the shape oversight.SetRegulator takes.
func CountersignVerifier(v *witness.Verifier, company string) oversight.CountersignVerifier {
	return func(doc []byte) (oversight.RegulatorDecision, error) {
		c, err := VerifyCountersignature(doc, v, company)
		if err != nil {
			return oversight.RegulatorDecision{}, err
		}
		return oversight.RegulatorDecision{Request: c.Request, Items: maps.Clone(c.Items), Refused: c.Refused, Note: c.Note, By: c.SignedBy}, nil
	}
}
