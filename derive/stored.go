package derive

import (
	"encoding/json"

	"github.com/portrait-dev/portrait/label"
)

// UnmarshalJSON decodes a stored value in one pass. Stored embeds
// label.Value, whose UnmarshalJSON would be promoted and decode the value
// alone, dropping Stored's own fields; so the value is decoded through a
// type without that method, beside RFM and Seen, and then worded.
func (s *Stored) UnmarshalJSON(b []byte) error {
	type value label.Value // without UnmarshalJSON
	w := struct {
		*value
		RFM  *label.RFMScore `json:"rfm"`
		Seen int64           `json:"seen_event"`
	}{value: (*value)(&s.Value)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	s.RFM, s.Seen = w.RFM, w.Seen
	s.Value.Word()
	return nil
}
