package tables

// BySubject splits rows ordered by subject into one slice per subject.
// The slices share xs's array but are capped, so appending to one cannot
// overwrite the next subject's rows.
func BySubject[T any](xs []T, subject func(*T) string) map[string][]T {
	out := map[string][]T{}
	for i := 0; i < len(xs); {
		p, j := subject(&xs[i]), i+1
		for j < len(xs) && subject(&xs[j]) == p {
			j++
		}
		out[p] = xs[i:j:j]
		i = j
	}
	return out
}
