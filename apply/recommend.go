package apply

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// Diversity is the floor a recommender keeps (FB-2): at least
// MinCategories distinct categories, no category above MaxShare of the
// list, and an Explore share of slots given to categories the ranking
// would not have shown. Repeats allows items the subject already consumed.
type Diversity struct {
	MinCategories int     `json:"min_categories"`
	MaxShare      float64 `json:"max_share"`
	Explore       float64 `json:"explore"`
	Repeats       bool    `json:"repeats"`
}

// DefaultDiversity: at least 3 categories in a list of 10, no category
// above half the list, one slot in ten for exploration.
var DefaultDiversity = Diversity{MinCategories: 3, MaxShare: 0.5, Explore: 0.1}

// MaxItems bounds n of one recommendation.
const MaxItems = 100

const maxItemID = 256

// PutItems validates and stores items of the item catalog, recording the
// import in the audit log. Items are not personal data.
func (s *Service) PutItems(ctx context.Context, caller policy.Caller, items []portrait.Item) (int, error) {
	if caller.Role != policy.Admin && caller.Role != policy.Operator && caller.Role != policy.System {
		return 0, portrait.Errorf(portrait.EFORBIDDEN, "role %q may not change the item catalog", caller.Role)
	}
	if len(items) == 0 {
		return 0, portrait.Errorf(portrait.EINVALID, "no items given: send a JSON array of {\"id\", \"categories\", \"price\"}")
	}
	now := s.now()
	seen := make(map[string]bool, len(items))
	for i := range items {
		it := &items[i]
		switch {
		case it.ID == "" || len(it.ID) > maxItemID:
			return 0, portrait.Errorf(portrait.EINVALID, "item %d: id is empty or longer than %d bytes", i, maxItemID)
		case seen[it.ID]:
			return 0, portrait.Errorf(portrait.EINVALID, "item %d: id %q appears twice in the batch", i, it.ID)
		case len(it.Categories) == 0:
			return 0, portrait.Errorf(portrait.EINVALID, "item %q has no categories; give at least one, e.g. \"categories\": [\"sports\"]", it.ID)
		case math.IsNaN(it.Price) || math.IsInf(it.Price, 0) || it.Price < 0:
			return 0, portrait.Errorf(portrait.EINVALID, "item %q: price %v must be a finite number, zero or more", it.ID, it.Price)
		}
		for _, c := range it.Categories {
			if strings.TrimSpace(c) == "" {
				return 0, portrait.Errorf(portrait.EINVALID, "item %q has an empty category", it.ID)
			}
		}
		seen[it.ID] = true
		if it.Updated.IsZero() {
			it.Updated = now
		}
		it.Updated = it.Updated.UTC()
	}
	ids := make([]string, len(items))
	for i := range items {
		ids[i] = items[i].ID
	}
	rec := audit.Record{Kind: "items", Time: now, Actor: actor(caller), Action: "put", Digest: digest(ids),
		Detail: map[string]any{"count": len(items)}}
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutItems(ctx, items); err != nil {
			return err
		}
		_, err := s.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return 0, failClosed("store items", err)
	}
	s.imu.Lock()
	s.items = nil // no request may rank without these items
	s.itemsGen++
	s.imu.Unlock()
	// Reload and re-rank now, so that requests do not wait for it; if
	// this fails, the next request tries again.
	if set, err := s.itemSet(ctx); err == nil {
		s.warm(set)
	}
	return len(items), nil
}

// itemSet is the item catalog as ranked.
type itemSet struct {
	list     []portrait.Item
	index    map[string]int
	oldest   time.Time
	newest   time.Time
	loadedAt time.Time
	// categories counts the distinct primary categories; groups holds
	// the item indexes of each.
	categories int
	groups     [][]int
	// catNames are the distinct categories of all items, and cats each
	// item's categories as indexes into catNames, so that ranking does
	// not hash strings per item.
	catNames []string
	cats     [][]int
	// catIdx indexes catNames; group is each item's primary category as
	// an index into groups.
	catIdx map[string]int
	group  []int32
	// ranked caches, per purpose, the ranking under the latest learnt
	// model: base scores and candidate lists do not depend on the subject.
	ranked struct {
		sync.Mutex
		by map[string]*ranking
	}
	indexOnce  sync.Once
	indexLists *lists
}

// itemsTTL bounds how stale another node's item import may look here.
const itemsTTL = 30 * time.Second

// itemSet returns the item catalog as ranked. When the set is older than
// itemsTTL, one request reloads it while the others go on with the set
// they have; a reload that finds the same items keeps the set, and with
// it the candidate lists built for it.
func (s *Service) itemSet(ctx context.Context) (*itemSet, error) {
	s.imu.Lock()
	set := s.items
	if set != nil && (s.opts.Now().Sub(set.loadedAt) < itemsTTL || s.reloading) {
		s.imu.Unlock()
		return set, nil
	}
	s.imu.Unlock()
	s.loading.Lock()
	defer s.loading.Unlock()
	s.imu.Lock()
	set, gen := s.items, s.itemsGen
	if set != nil && s.opts.Now().Sub(set.loadedAt) < itemsTTL {
		s.imu.Unlock()
		return set, nil
	}
	s.reloading = set != nil
	s.imu.Unlock()
	list, err := s.store.Items(ctx)
	now := s.opts.Now()
	s.imu.Lock()
	defer s.imu.Unlock()
	s.reloading = false
	if err != nil {
		return nil, failClosed("read items", err)
	}
	slices.SortFunc(list, func(a, b portrait.Item) int { return strings.Compare(a.ID, b.ID) })
	if set != nil && slices.EqualFunc(set.list, list, sameItem) {
		set.loadedAt = now
		return set, nil
	}
	next := newItemSet(list, now)
	if gen == s.itemsGen { // else items were put meanwhile: the next request reloads
		s.items = next
	}
	return next, nil
}

// sameItem says whether a and b rank alike: price and attributes do not
// count in ranking.
func sameItem(a, b portrait.Item) bool {
	return a.ID == b.ID && a.Updated.Equal(b.Updated) && slices.Equal(a.Categories, b.Categories)
}

// warm builds the candidate lists of set for every learnt model.
func (s *Service) warm(set *itemSet) {
	s.imu.Lock()
	var models []*Model
	if s.learnt != nil {
		for _, m := range s.learnt.models {
			models = append(models, m)
		}
	}
	s.imu.Unlock()
	for _, m := range models {
		set.ranking(m)
	}
}

// newItemSet indexes the items for ranking.
func newItemSet(list []portrait.Item, now time.Time) *itemSet {
	slices.SortFunc(list, func(a, b portrait.Item) int { return strings.Compare(a.ID, b.ID) })
	set := &itemSet{list: list, index: make(map[string]int, len(list)), loadedAt: now}
	cats := map[string]int{}
	for i, it := range list {
		g, ok := cats[it.Categories[0]]
		if !ok {
			g = len(set.groups)
			cats[it.Categories[0]] = g
			set.groups = append(set.groups, nil)
		}
		set.groups[g] = append(set.groups[g], i)
		set.index[it.ID] = i
		if set.oldest.IsZero() || it.Updated.Before(set.oldest) {
			set.oldest = it.Updated
		}
		if it.Updated.After(set.newest) {
			set.newest = it.Updated
		}
	}
	set.categories = len(cats)
	set.catIdx = map[string]int{}
	set.cats = make([][]int, len(list))
	set.group = make([]int32, len(list))
	for i, it := range list {
		set.group[i] = int32(cats[it.Categories[0]])
		for _, c := range it.Categories {
			k, ok := set.catIdx[c]
			if !ok {
				k = len(set.catNames)
				set.catIdx[c] = k
				set.catNames = append(set.catNames, c)
			}
			set.cats[i] = append(set.cats[i], k)
		}
	}
	return set
}

// Model is what recommendations learn from the whole population, with
// each subject's events counted only where the decision point allows
// deriving for the use-case's purpose: item popularity, and per label the
// lift of each category among the events of the subjects holding it.
type Model struct {
	Purpose    string                        `json:"purpose"`
	Popularity map[string]float64            `json:"popularity"`
	Lift       map[string]map[string]float64 `json:"lift"` // label key → category → lift
	Subjects   int                           `json:"subjects"`
	Learnt     time.Time                     `json:"learnt"`
}

type learnt struct {
	models map[string]*Model // by purpose
}

// subjectData is one subject's readable history.
type subjectData struct {
	categories map[string]float64 // weighted event count per category
	items      map[string]float64 // weighted event count per item
	consumed   map[string]bool
	labels     []string // held label keys
}

// read opens the subject's events (and, when labels is not empty, those
// labels) through grant g.
func (s *Service) read(ctx context.Context, g policy.Grant, c *keys.Cipher, items *itemSet, labels []string) (subjectData, error) {
	d := subjectData{categories: map[string]float64{}, items: map[string]float64{}, consumed: map[string]bool{}}
	evs, err := s.store.Events(ctx, g, time.Time{})
	if err != nil {
		return d, failClosed("read events", err)
	}
	p := g.Pseudonym()
	for _, e := range evs {
		w, ok := s.opts.Weights[e.Type]
		if !ok {
			continue
		}
		plain, err := c.Open(e.Sealed, []byte(p))
		if err != nil {
			return d, fmt.Errorf("open event %d of %s: %w", e.ID, p, err)
		}
		fields, err := label.DecodeFields(plain)
		if err != nil {
			return d, fmt.Errorf("decode event %d of %s: %w", e.ID, p, err)
		}
		item, _ := fields[s.opts.ItemField].(string)
		cats := []string(nil)
		if i, ok := items.index[item]; ok {
			cats = items.list[i].Categories
		} else if cat, _ := fields[s.opts.CategoryField].(string); cat != "" {
			cats = []string{cat}
		}
		if item != "" {
			d.items[item] += w
			if e.Type == s.opts.Consumed {
				d.consumed[item] = true
			}
		}
		for _, cat := range cats {
			d.categories[cat] += w
		}
	}
	if len(labels) == 0 {
		return d, nil
	}
	stored, err := s.store.Labels(ctx, g)
	if err != nil {
		return d, failClosed("read labels", err)
	}
	for _, lv := range stored {
		if !slices.Contains(labels, lv.Label) {
			continue
		}
		v, err := openLabel(c, p, lv)
		if err != nil {
			return d, err
		}
		if key, ok := labelKey(v); ok {
			d.labels = append(d.labels, key)
		}
	}
	return d, nil
}

// openLabel opens a stored label value as package derive seals it: the
// JSON of label.Value under pseudonym + "/label/" + label.
func openLabel(c *keys.Cipher, p portrait.Pseudonym, lv portrait.LabelValue) (label.Value, error) {
	b, err := c.Open(lv.Sealed, keys.LabelAD(p, lv.Label))
	if err != nil {
		return label.Value{}, fmt.Errorf("open label %s of %s: %w", lv.Label, p, err)
	}
	var v label.Value
	if err := json.Unmarshal(b, &v); err != nil {
		return label.Value{}, fmt.Errorf("decode label %s of %s: %w", lv.Label, p, err)
	}
	return v, nil
}

// labelKey is what a held label contributes: a rule or score label when
// true, a segment or RFM label by its group.
func labelKey(v label.Value) (string, bool) {
	switch v.Kind {
	case catalog.KindSegment, catalog.KindRFM:
		return v.Label + "#" + strconv.Itoa(v.Segment), true
	default:
		return v.Label, v.Bool
	}
}

func labelOf(key string) string {
	id, _, _ := strings.Cut(key, "#")
	return id
}

// Learn recomputes the population model for purpose. It reads only the
// subjects for whom the decision point allows Derive for purpose, and of
// them only the labels it allows (a suppressed label is never counted).
func (s *Service) Learn(ctx context.Context, purpose string, labels []string) (*Model, error) {
	items, err := s.itemSet(ctx)
	if err != nil {
		return nil, err
	}
	m := &Model{Purpose: purpose, Popularity: map[string]float64{}, Lift: map[string]map[string]float64{}, Learnt: s.opts.Now()}
	byLabel := map[string]map[string]float64{}
	total := map[string]float64{}
	sys := policy.Caller{Role: policy.System, ID: "apply.learn"}
	fields := []string{s.opts.ItemField, s.opts.CategoryField}
	var after portrait.Pseudonym
	for {
		page, err := s.store.Pseudonyms(ctx, after, 500)
		if err != nil {
			return nil, failClosed("list subjects", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1]
		states, err := s.ledger.States(ctx, page)
		if err != nil {
			return nil, err
		}
		subs, err := s.store.Subjects(ctx, page)
		if err != nil {
			return nil, failClosed("read subjects", err)
		}
		for _, p := range page {
			st, sub := states[p], subs[p]
			if st == nil {
				continue
			}
			dec := s.point.Decide(policy.Request{State: st, Purpose: purpose, Fields: fields, Action: policy.Derive, Caller: sys})
			if !dec.Allow {
				continue
			}
			var allowed []string
			for _, l := range labels {
				if s.point.Decide(policy.Request{State: st, Purpose: purpose, Labels: []string{l}, Action: policy.Derive, Caller: sys}).Allow {
					allowed = append(allowed, l)
				}
			}
			c, err := s.keys.Open(sub)
			if err != nil {
				return nil, fmt.Errorf("open key of %s: %w", p, err)
			}
			d, err := s.read(ctx, dec.Grant, c, items, allowed)
			if err != nil {
				return nil, err
			}
			m.Subjects++
			for it, w := range d.items {
				m.Popularity[it] += w
			}
			for cat, w := range d.categories {
				total[cat] += w
				for _, key := range d.labels {
					if byLabel[key] == nil {
						byLabel[key] = map[string]float64{}
					}
					byLabel[key][cat] += w
				}
			}
		}
	}
	all := sum(total)
	for key, cats := range byLabel {
		n := sum(cats)
		m.Lift[key] = map[string]float64{}
		for cat, w := range cats {
			m.Lift[key][cat] = (w / n) / (total[cat] / all)
		}
	}
	return m, nil
}

func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// model returns the learnt model of purpose, relearning it when stale.
func (s *Service) model(ctx context.Context, purpose string, labels []string) (*Model, error) {
	get := func() *Model {
		s.imu.Lock()
		defer s.imu.Unlock()
		if s.learnt == nil {
			return nil
		}
		m := s.learnt.models[purpose]
		if m == nil || s.opts.Now().Sub(m.Learnt) >= s.opts.LearnEvery {
			return nil
		}
		return m
	}
	if m := get(); m != nil {
		return m, nil
	}
	s.learning.Lock()
	defer s.learning.Unlock()
	if m := get(); m != nil {
		return m, nil
	}
	m, err := s.Learn(ctx, purpose, labels)
	if err != nil {
		return nil, err
	}
	// Build the candidate lists for the new model here, once, rather than
	// in whichever requests come next.
	if items, err := s.itemSet(ctx); err == nil {
		items.ranking(m)
	}
	s.imu.Lock()
	if s.learnt == nil {
		s.learnt = &learnt{models: map[string]*Model{}}
	}
	s.learnt.models[purpose] = m
	s.imu.Unlock()
	return m, nil
}

// Recommended is one item of a recommendation.
type Recommended struct {
	ID           string   `json:"id"`
	Personalized bool     `json:"personalized"`
	Reasons      []string `json:"reasons"`
}

// Recommendation is the answer: the items, the personalisation level that
// was applied, and why personalisation was off when it was (LP-4, LP-5).
type Recommendation struct {
	UseCase         string        `json:"usecase"`
	Items           []Recommended `json:"items"`
	Personalization int           `json:"personalization"`
	NotPersonalized string        `json:"not_personalized,omitempty"`
	LabelsUsed      []string      `json:"labels_used"`
	LogIndex        int64         `json:"log_index"`
}

// input is what the bare scorer ranks with: a subject's held labels (keys),
// their category history, and the personalisation weight 0..1.
type input struct {
	Labels    []string
	History   map[string]float64
	Consumed  map[string]bool
	Weight    float64
	Diversity Diversity
	N         int
	// why holds, per category index, the reasons its affinity counted;
	// rank fills it.
	why [][]string
}

type scored struct {
	i        int
	score    float64
	base     float64
	personal float64
	// why indexes the category whose affinity counted (its reasons are
	// in.why[why]); no pointers here keeps ranking 10,000 candidates
	// cheap for the garbage collector.
	why int
}

// byRank orders by score, then by item id (items are kept in id order, so
// the index decides ties).
func byRank(a, b scored) int {
	if a.score != b.score {
		return cmp.Compare(b.score, a.score)
	}
	return cmp.Compare(a.i, b.i)
}

func categoriesIn(out []Recommended, items *itemSet) int {
	seen := map[string]bool{}
	for _, r := range out {
		seen[items.list[items.index[r.ID]].Categories[0]] = true
	}
	return len(seen)
}

// diversify picks n items from the ranked candidates keeping the floor.
// Categories are counted by group index, not by name, so that no string
// is hashed per candidate.
func diversify(cands []scored, items *itemSet, in input) []Recommended {
	shown, distinct := 0, 0
	per := make([]int32, len(items.groups))
	for _, c := range cands {
		if !math.IsInf(c.score, -1) {
			shown++
			if g := items.group[c.i]; per[g] == 0 {
				per[g] = 1
				distinct++
			}
		}
	}
	clear(per)
	n := min(in.N, shown)
	d := in.Diversity
	explore := int(float64(n) * d.Explore)
	maxPer := max(1, int(float64(n)*d.MaxShare))
	minCats := min(d.MinCategories, n, distinct)
	if d.MaxShare <= 0 || d.MaxShare >= 1 {
		maxPer = n
	}
	used := 0 // categories shown so far
	taken := make([]bool, len(cands))
	for j, c := range cands {
		taken[j] = math.IsInf(c.score, -1)
	}
	var out []Recommended // nil when nothing can be shown, as before
	if n > 0 {
		out = make([]Recommended, 0, n)
	}
	add := func(j int, reasons []string, personalized bool) {
		taken[j] = true
		if g := items.group[cands[j].i]; per[g] == 0 {
			used++
		}
		per[items.group[cands[j].i]]++
		out = append(out, Recommended{ID: items.list[cands[j].i].ID, Personalized: personalized, Reasons: reasons})
	}
	main := n - explore
	for pass := 0; pass < 2 && len(out) < main; pass++ {
		for j, c := range cands {
			if len(out) >= main {
				break
			}
			g := items.group[c.i]
			if taken[j] || (pass == 0 && int(per[g]) >= maxPer) {
				continue
			}
			// Keep room for the categories the floor still needs.
			if need := minCats - used; need > 0 && per[g] > 0 && main-len(out) <= need {
				continue
			}
			personalized := in.Weight > 0 && c.personal > 0
			reasons := []string{"popular"}
			if personalized {
				reasons = uniq(in.why[c.why])
			}
			add(j, reasons, personalized)
		}
	}
	// Exploration: the most popular items of the least-shown categories.
	for len(out) < n {
		best, bestCount := -1, int32(math.MaxInt32)
		for j, c := range cands {
			if taken[j] {
				continue
			}
			k := per[items.group[c.i]]
			if k < bestCount || (k == bestCount && c.base > cands[best].base) {
				best, bestCount = j, k
			}
		}
		if best < 0 {
			break
		}
		add(best, []string{"explore"}, false)
	}
	return out
}

func primary(items *itemSet, i int) string { return items.list[i].Categories[0] }

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// Recommend answers one recommendation request for the subject's
// pseudonym through use-case usecase (LP-3, LP-4, LP-5, FB-2). The gate
// refuses what may not run; personalisation is off (and the answer says
// why) when the dial is 0, the subject objected to profiling or there is
// no basis for the purpose; a deselected, deleted or suspended label is
// never read. Every answer is recorded in the audit log before it is
// returned (invariant 3).
func (s *Service) Recommend(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, usecase string, n int) (Recommendation, error) {
	if n < 1 || n > MaxItems {
		return Recommendation{}, portrait.Errorf(portrait.EINVALID, "n = %d is out of range: ask for 1 to %d items", n, MaxItems)
	}
	states, gen, err := s.ledger.StatesAt(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return Recommendation{}, err
	}
	st := states[pseudonym]
	uc, err := s.Gate(ctx, usecase, KindRecommendation, st)
	if err != nil {
		return Recommendation{}, err
	}
	purpose := uc.Purposes[0]
	items, err := s.itemSet(ctx)
	if err != nil {
		return Recommendation{}, err
	}
	in := input{N: n, Diversity: DefaultDiversity}
	if d, ok := s.opts.Diversity[uc.ID]; ok {
		in.Diversity = d
	}
	out := Recommendation{UseCase: uc.ID, LabelsUsed: []string{}}
	dec := s.point.Decide(policy.Request{State: st, Purpose: purpose, Fields: []string{s.opts.ItemField, s.opts.CategoryField}, Action: policy.Use, Caller: caller})
	switch {
	case !dec.Allow:
		out.NotPersonalized = dec.Reasons[0].Message + " (" + dec.Reasons[0].Requirement + ")"
	case st.Personalization == 0:
		out.NotPersonalized = "the subject set personalisation to 0 (LP-4)"
	}
	if dec.Allow {
		var allowed []string
		if st.Personalization > 0 {
			for _, l := range uc.Labels {
				if s.point.Decide(policy.Request{State: st, Purpose: purpose, Labels: []string{l}, Action: policy.Use, Caller: caller}).Allow {
					allowed = append(allowed, l)
				}
			}
		}
		c, err := s.cipher(ctx, gen, pseudonym)
		if err != nil {
			return Recommendation{}, fmt.Errorf("open key of %s: %w", pseudonym, err)
		}
		if c != nil {
			d, err := s.read(ctx, dec.Grant, c, items, allowed)
			if err != nil {
				return Recommendation{}, err
			}
			in.Consumed = d.consumed
			if st.Personalization > 0 {
				in.Labels, in.History = d.labels, d.categories
				in.Weight = float64(st.Personalization) / 100
				out.Personalization = st.Personalization
			}
		} else if st.Personalization > 0 {
			out.NotPersonalized = "nothing is stored about this subject yet"
		}
	}
	m, err := s.model(ctx, purpose, uc.Labels)
	if err != nil {
		return Recommendation{}, err
	}
	out.Items = rank(m, items, in)
	used := map[string]bool{}
	ids := make([]string, len(out.Items))
	cats := make([]string, len(out.Items))
	for i, it := range out.Items {
		ids[i] = it.ID
		if j, ok := items.index[it.ID]; ok && len(items.list[j].Categories) > 0 {
			cats[i] = items.list[j].Categories[0]
		}
		for _, r := range it.Reasons {
			if r != "popular" && r != "explore" && r != "history" {
				used[r] = true
			}
		}
	}
	for l := range used {
		out.LabelsUsed = append(out.LabelsUsed, l)
	}
	slices.Sort(out.LabelsUsed)
	allow := true
	rec := audit.Record{Kind: "recommendation", Time: s.now(), Actor: actor(caller), Pseudonym: pseudonym, Purpose: purpose,
		Action: uc.ID, Allow: &allow, Digest: digest(ids),
		Detail: map[string]any{"usecase": uc.ID, "n": len(ids), "personalization": out.Personalization, "labels_used": out.LabelsUsed}}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		out.LogIndex, err = s.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return Recommendation{}, failClosed("record recommendation", err)
	}
	if s.opts.Observe != nil {
		s.opts.Observe(uc.ID, pseudonym, ids, cats)
	}
	return out, nil
}
