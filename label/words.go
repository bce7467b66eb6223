package label

import (
	"encoding/json"
	"fmt"

	"github.com/portrait-dev/portrait/catalog"
)

// A stored value leaves out the words that follow from its other fields,
// and decoding puts them back, so that every reader (the privacy centre,
// the console, exports, the monitors) sees the value as it was computed.
// Batch derivation seals one RFM value per subject; its class name and
// sentence, in two languages, were a quarter of it.

// RFMText words an RFM class and its scores, as the class fact shows them.
func RFMText(class string, r, f, m int) catalog.Text {
	name := RFMClassName(class)
	return catalog.Text{
		"zh-CN": fmt.Sprintf("「%s」（R %d、F %d、M %d，满分5）", name.In("zh-CN"), r, f, m),
		"en":    fmt.Sprintf("is “%s” (R %d, F %d, M %d out of 5)", name.In("en"), r, f, m)}
}

// UnmarshalJSON decodes a value and words what its sealed form leaves out:
// the sentence of an RFM class fact, from the class and the value's score
// (R·100 + F·10 + M).
func (v *Value) UnmarshalJSON(b []byte) error {
	type plain Value // without this method
	if err := json.Unmarshal(b, (*plain)(v)); err != nil {
		return err
	}
	v.Word()
	return nil
}

// Word puts back the words a sealed value leaves out. UnmarshalJSON calls
// it; a decoder that embeds Value in a larger record and decodes the record
// in one pass calls it after (derive.Stored).
func (v *Value) Word() {
	if v.Kind != catalog.KindRFM {
		return
	}
	s := int(v.Score)
	r, f, m := s/100, s/10%10, s%10
	if float64(s) != v.Score || r < 1 || r > 5 || f < 1 || f > 5 || m < 1 || m > 5 {
		return // not a score RFM wrote: left as stored
	}
	for i := range v.Facts {
		fa := &v.Facts[i]
		if class, ok := fa.Equals.(string); ok && fa.Func == "rfm" && fa.Text == nil && rfmClasses[class] != nil {
			fa.Text = RFMText(class, r, f, m)
		}
	}
}

// UnmarshalJSON decodes RFM scores and names the class when the sealed
// form left its name out.
func (s *RFMScore) UnmarshalJSON(b []byte) error {
	type plain RFMScore
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	if s.Name == nil {
		s.Name = RFMClassName(s.Class)
	}
	return nil
}
