package label

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/catalog"
)

// Segmentation is a segment label computed over a population: subjects in
// id order, their clusters, and a description of each segment.
type Segmentation struct {
	Label        string         `json:"label"`
	Version      int            `json:"version"`
	Features     []string       `json:"features"`
	Mean         []float64      `json:"mean"` // of each feature, for standardising
	SD           []float64      `json:"sd"`
	IDs          []string       `json:"ids"`
	Descriptions []catalog.Text `json:"descriptions"`
	// Confidence of each subject's membership: d2 / (d1 + d2) for the
	// distances to the nearest and second-nearest centre, so 1 deep inside
	// a segment and 0.5 on a border.
	Confidence []float64 `json:"confidence"`
	*Clustering
}

// Segment clusters subjects (id → feature values) for a segment label: its
// features are z-scored, then clustered with its k and seed. Subject ids
// are sorted first, so map order does not change the result.
func Segment(l *catalog.Label, subjects map[string]map[string]float64) (*Segmentation, error) {
	if len(l.Features) == 0 || l.K < 2 {
		return nil, &CheckError{Label: l.ID, Requirement: "LP-1", Msg: "a segment needs declared numeric features and k >= 2"}
	}
	ids := slices.Sorted(maps.Keys(subjects))
	points := make([][]float64, len(ids))
	for i, id := range ids {
		p := make([]float64, len(l.Features))
		for f, name := range l.Features {
			x, ok := subjects[id][name]
			if !ok {
				return nil, fmt.Errorf("segment %q: subject %s lacks feature %q", l.ID, id, name)
			}
			p[f] = x
		}
		points[i] = p
	}
	return SegmentSorted(l, ids, points)
}

// SegmentSorted is Segment over subjects given in id order, each point
// holding the label's features in their declared order: batch derivation
// holds them so, and a map per subject at 10⁶ subjects costs more memory
// than the points themselves. ids is kept in the result.
func SegmentSorted(l *catalog.Label, ids []string, points [][]float64) (*Segmentation, error) {
	if len(l.Features) == 0 || l.K < 2 {
		return nil, &CheckError{Label: l.ID, Requirement: "LP-1", Msg: "a segment needs declared numeric features and k >= 2"}
	}
	if len(ids) != len(points) || !slices.IsSorted(ids) {
		return nil, fmt.Errorf("segment %q: %d ids for %d points, or not in order", l.ID, len(ids), len(points))
	}
	for i, p := range points {
		if len(p) != len(l.Features) {
			return nil, fmt.Errorf("segment %q: subject %s has %d features, want %d", l.ID, ids[i], len(p), len(l.Features))
		}
	}
	z, mean, sd := Standardize(points)
	cl, err := KMeans(z, l.K, l.Seed, 100)
	if err != nil {
		return nil, fmt.Errorf("segment %q: %w", l.ID, err)
	}
	conf := make([]float64, len(z))
	for i, p := range z {
		d1, d2 := math.Inf(1), math.Inf(1)
		for _, c := range cl.Centroids {
			d := math.Sqrt(sqdist(p, c))
			if d < d1 {
				d1, d2 = d, d1
			} else if d < d2 {
				d2 = d
			}
		}
		conf[i] = 1
		if d1+d2 > 0 {
			conf[i] = d2 / (d1 + d2)
		}
	}
	return &Segmentation{Label: l.ID, Version: l.Version, Features: l.Features, Mean: mean, SD: sd,
		IDs: ids, Descriptions: Describe(cl.Centroids, l.Features), Confidence: conf, Clustering: cl}, nil
}

// Value is subject i's segment with its provenance: the segment's
// description and the subject's standardised distance from its centre.
func (s *Segmentation) Value(i int, now time.Time) Value {
	seg := s.Assign[i]
	return Value{Label: s.Label, Version: s.Version, Kind: catalog.KindSegment, Segment: seg,
		Confidence: s.Confidence[i], Inputs: s.Features, Computed: now,
		Facts: []Fact{{Func: "segment", Value: float64(seg), Text: s.Descriptions[seg]}}}
}

// Describe writes a plain-language description of each centroid, given in
// standardised coordinates: the features furthest from the average, with
// how far ("buys often, spends little" / "购买频繁、消费较低"). Known feature
// names (recency, frequency, monetary) get their own words; others read
// "high X" / "X较高". Descriptions are made distinct, if need be by adding
// further features.
func Describe(centroids [][]float64, features []string) []catalog.Text {
	out := make([]catalog.Text, len(centroids))
	for depth := 2; ; depth++ {
		seen := map[string]int{}
		for j, c := range centroids {
			out[j] = describe(c, features, depth)
			seen[out[j]["en"]]++
		}
		dup := false
		for _, n := range seen {
			dup = dup || n > 1
		}
		if !dup || depth >= len(features) {
			if dup { // centroids alike in every word: number the alike apart
				for j := range out {
					if seen[out[j]["en"]] > 1 {
						out[j] = catalog.Text{"zh-CN": fmt.Sprintf("%s（第%d组）", out[j]["zh-CN"], j+1),
							"en": fmt.Sprintf("%s (group %d)", out[j]["en"], j+1)}
					}
				}
			}
			return out
		}
	}
}

// featureWords words the known features at each level of distance from
// the average: extremely, very, plainly, somewhat (|z| ≥ 3, 1.5, 0.5, 0.25).
var featureWords = map[string][2][4][2]string{ // feature → {high, low} → level → {zh, en}
	"recency": {
		{{"极久未购买", "has not bought for an extremely long time"}, {"很久未购买", "has not bought for a very long time"}, {"较久未购买", "has not bought for a long time"}, {"近期购买略少", "has not bought for a while"}},
		{{"几乎天天购买", "bought extremely recently"}, {"刚刚购买过", "bought very recently"}, {"最近有购买", "bought recently"}, {"近期有购买", "bought fairly recently"}},
	},
	"frequency": {
		{{"购买极其频繁", "buys extremely often"}, {"购买非常频繁", "buys very often"}, {"购买频繁", "buys often"}, {"购买略频繁", "buys somewhat often"}},
		{{"几乎不购买", "almost never buys"}, {"极少购买", "buys very rarely"}, {"很少购买", "buys rarely"}, {"购买略少", "buys somewhat rarely"}},
	},
	"monetary": {
		{{"消费极高", "spends an extreme amount"}, {"消费非常高", "spends a great deal"}, {"消费较高", "spends a lot"}, {"消费略高", "spends somewhat more"}},
		{{"几乎不消费", "spends almost nothing"}, {"消费非常低", "spends very little"}, {"消费较低", "spends little"}, {"消费略低", "spends somewhat less"}},
	},
}

var genericWords = [2][4][2]string{
	{{"%s极高", "extremely high %s"}, {"%s非常高", "very high %s"}, {"%s较高", "high %s"}, {"%s略高", "somewhat high %s"}},
	{{"%s极低", "extremely low %s"}, {"%s非常低", "very low %s"}, {"%s较低", "low %s"}, {"%s略低", "somewhat low %s"}},
}

func describe(c []float64, features []string, depth int) catalog.Text {
	order := make([]int, len(c))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return math.Abs(c[order[a]]) > math.Abs(c[order[b]]) })
	var zh, en []string
	for _, f := range order[:min(depth, len(order))] {
		z := c[f]
		level := 0
		switch a := math.Abs(z); {
		case a >= 3:
		case a >= 1.5:
			level = 1
		case a >= 0.5:
			level = 2
		case a >= 0.25:
			level = 3
		default:
			level = -1
		}
		if level < 0 {
			if len(zh) == 0 {
				zh, en = append(zh, "各项接近平均"), append(en, "close to average on every feature")
			}
			break
		}
		hi := 0
		if z < 0 {
			hi = 1
		}
		if w, ok := featureWords[baseFeature(features[f])]; ok {
			zh = append(zh, w[hi][level][0])
			en = append(en, w[hi][level][1])
			continue
		}
		zh = append(zh, fmt.Sprintf(genericWords[hi][level][0], features[f]))
		en = append(en, fmt.Sprintf(genericWords[hi][level][1], features[f]))
	}
	return catalog.Text{"zh-CN": strings.Join(zh, "、"), "en": strings.Join(en, ", ")}
}

// baseFeature strips a transform prefix, so "log_monetary" reads as monetary.
func baseFeature(name string) string {
	for _, p := range []string{"log_", "log1p_", "z_"} {
		name = strings.TrimPrefix(name, p)
	}
	return name
}
