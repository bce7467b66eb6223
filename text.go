package portrait

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/portrait-dev/portrait/policy"
)

// CheckText refuses, with EINVALID naming field, a value that a text
// column cannot hold on both engines alike: one with a NUL byte or bytes
// that are not UTF-8. SQLite would store either, PostgreSQL refuses both
// (and jsonb refuses \u0000), so without this one check the same request
// is stored on one engine and fails with 503 on the other (invariant 7).
// The stores call it, through the Validate methods of what they write, so
// no path to a text column can skip it.
func CheckText(field string, values ...string) error {
	for _, v := range values {
		if strings.IndexByte(v, 0) >= 0 {
			return &Error{Code: EINVALID, Message: fmt.Sprintf("%s holds a NUL byte (\\u0000), which is not stored; remove it", field)}
		}
		if !utf8.ValidString(v) {
			return &Error{Code: EINVALID, Message: fmt.Sprintf("%s is not valid UTF-8; send text in UTF-8", field)}
		}
	}
	return nil
}

// checkJSONText is CheckText for every key and string inside a decoded
// JSON value.
func checkJSONText(field string, v any) error {
	switch v := v.(type) {
	case string:
		return CheckText(field, v)
	case []any:
		for _, e := range v {
			if err := checkJSONText(field, e); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range v {
			if err := CheckText(field+" key", k); err != nil {
				return err
			}
			if err := checkJSONText(field+"."+k, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate checks a consent record before it is appended: a subject, a
// purpose, a decision and a time, and text both engines can store.
func (r ConsentRecord) Validate() error {
	switch {
	case r.Pseudonym == "" || r.Purpose == "":
		return Errorf(EINVALID, "append consent: a record needs a subject and a purpose")
	case r.Status != policy.Granted && r.Status != policy.Refused && r.Status != policy.Withdrawn:
		return Errorf(EINVALID, "append consent of %s to %s: status %s; want granted, refused or withdrawn", r.Pseudonym, r.Purpose, r.Status)
	case r.At.IsZero():
		return Errorf(EINVALID, "append consent of %s to %s: the record has no time; set At", r.Pseudonym, r.Purpose)
	}
	for _, f := range []struct{ name, v string }{
		{"purpose", r.Purpose}, {"notice_version", r.NoticeVersion}, {"channel", r.Channel},
		{"user_agent", r.UserAgent}, {"ip", r.IP},
	} {
		if err := CheckText(f.name, f.v); err != nil {
			return err
		}
	}
	return CheckText("categories", r.Categories...)
}

// Validate checks the text of an item: its id, categories and attributes.
func (it Item) Validate() error {
	if err := CheckText("item id", it.ID); err != nil {
		return err
	}
	if err := CheckText("item categories", it.Categories...); err != nil {
		return err
	}
	for k, v := range it.Attributes {
		if err := CheckText("item attributes key", k); err != nil {
			return err
		}
		if err := checkJSONText("item attributes."+k, v); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the text of a request case.
func (c Case) Validate() error {
	if err := CheckText("case", c.ID, c.Type, c.Status, c.Outcome); err != nil {
		return err
	}
	return CheckText("reason", c.Reason)
}

// Validate checks the text of a review.
func (r Review) Validate() error {
	if err := CheckText("review", r.ID, r.DeterminationID, r.UseCase, r.Kind, r.Status, r.Reviewer, r.Outcome); err != nil {
		return err
	}
	return CheckText("reason", r.Reason)
}

// Validate checks the text of a decision record.
func (d StoredDetermination) Validate() error {
	return CheckText("decision", d.ID, d.UseCase, d.Model, d.InputHash, d.Status)
}

// CheckSuspension checks the text of a suspension or halt; it is not a
// method because Suspension lives in policy, which cannot name Error.
func CheckSuspension(s policy.Suspension) error {
	if err := CheckText("suspension", s.Kind, s.ID, s.By); err != nil {
		return err
	}
	return CheckText("reason", s.Reason)
}
