package derive

import (
	"encoding/json"

	"github.com/portrait-dev/portrait/label"
)

// UnmarshalJSON decodes a stored value. label.Value words on decoding
// what its sealed form leaves out, and Stored embeds it, so Stored
// decodes its own fields beside it rather than through the embedded
// method alone, which would drop them.
func (s *Stored) UnmarshalJSON(b []byte) error {
	if err := s.Value.UnmarshalJSON(b); err != nil {
		return err
	}
	var own struct {
		RFM  *label.RFMScore `json:"rfm"`
		Seen int64           `json:"seen_event"`
	}
	if err := json.Unmarshal(b, &own); err != nil {
		return err
	}
	s.RFM, s.Seen = own.RFM, own.Seen
	return nil
}
