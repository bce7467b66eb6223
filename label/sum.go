package label

import "math"

// Add returns a + b, saturated at ±math.MaxFloat64 instead of overflowing
// to an infinity. Ingest bounds every number (catalog.Field.Bounds), so a
// sum of stored values saturates only under a catalog that declares
// enormous bounds; even then an aggregate, and so a label, stays finite and
// encodable. A non-finite operand counts as nothing.
func Add(a, b float64) float64 {
	if math.IsNaN(b) || math.IsInf(b, 0) {
		return a
	}
	s := a + b
	switch {
	case math.IsInf(s, 1):
		return math.MaxFloat64
	case math.IsInf(s, -1):
		return -math.MaxFloat64
	}
	return s
}
