package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const demoPath = "../examples/demo/catalog.yaml"

// want is a problem a fixture expects, written in the fixture as a comment
// "# want: COL REQ text" on the line where the problem is; REQ is "-" for a
// shape problem without a requirement, text a substring of the message.
type want struct {
	line, col int
	req, text string
}

var wantRE = regexp.MustCompile(`^\s*(\d+)\s+(\S+)\s+(.+?)\s*$`)

func fixtureWants(t *testing.T, data []byte) []want {
	t.Helper()
	var out []want
	for i, line := range strings.Split(string(data), "\n") {
		parts := strings.Split(line, "# want:")
		for _, p := range parts[1:] {
			m := wantRE.FindStringSubmatch(p)
			if m == nil {
				t.Fatalf("line %d: malformed want comment %q", i+1, p)
			}
			col, _ := strconv.Atoi(m[1])
			req := m[2]
			if req == "-" {
				req = ""
			}
			out = append(out, want{line: i + 1, col: col, req: req, text: m[3]})
		}
	}
	return out
}

// TestFixtures loads every testdata/*.yaml and checks that it yields exactly
// the problems its want comments list, at the exact line and column with the
// requirement id, and that a fixture without wants passes.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { checkFixture(t, file) })
	}
}

// checkFixture parses file and checks that it yields exactly the problems
// its want comments list.
func checkFixture(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wants := fixtureWants(t, data)
	c, err := Parse(file, data)
	if len(wants) == 0 {
		if err != nil {
			t.Fatalf("want a valid catalog, got:\n%v", err)
		}
		if c == nil {
			t.Fatal("nil catalog without error")
		}
		return
	}
	errs := AsErrors(err)
	if errs == nil {
		t.Fatalf("want %d problems, got err=%v", len(wants), err)
	}
	if c != nil {
		t.Error("an invalid catalog must not be returned")
	}
	matched := make([]bool, len(errs.Problems))
	for _, w := range wants {
		found := false
		for i, p := range errs.Problems {
			rendered := strings.TrimPrefix(p.String(), fmt.Sprintf("%s:%d:%d: ", p.File, p.Line, p.Column))
			if !matched[i] && p.Line == w.line && p.Column == w.col && p.Requirement == w.req && strings.Contains(rendered, w.text) {
				matched[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing problem at %d:%d [%s] %q", w.line, w.col, w.req, w.text)
		}
	}
	for i, p := range errs.Problems {
		if !matched[i] {
			t.Errorf("unexpected problem: %s", p)
		}
		if p.File != file {
			t.Errorf("problem names file %q, want %q", p.File, file)
		}
	}
	if !sort.SliceIsSorted(errs.Problems, func(i, j int) bool {
		a, b := errs.Problems[i], errs.Problems[j]
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	}) {
		t.Error("problems are not sorted by position")
	}
}

// TestBadFaith: each catalog a company acting in bad faith would write —
// synonyms, traditional characters, separators, full-width letters and
// pinyin for protected groups; health declared as browsing; inferences from
// pharmacy and halal-plus-place; untagged 杀熟; overlong retention; minors
// targeted; CV screening at minimal; credit and blacklists as audiences —
// is refused by the default pack, and every refusal names the pack's rule.
// LP-2, SM-1, SM-3, AD-2, AD-6, FP-1, CM-3, CM-6, CN-1, SG-6.
func TestBadFaith(t *testing.T) {
	files, err := filepath.Glob("testdata/badfaith/*.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("bad-faith fixtures missing: %v %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(fixtureWants(t, data)) == 0 {
				t.Fatal("a bad-faith fixture must want a refusal")
			}
			errs := AsErrors(ParseErr(Parse(file, data)))
			if errs == nil {
				t.Fatal("bad-faith catalog accepted")
			}
			ruled := false
			for _, p := range errs.Problems {
				ruled = ruled || p.Rule != "" || strings.Contains(p.Message, "too long")
			}
			if !ruled {
				t.Errorf("no refusal names a pack rule: %v", errs)
			}
			checkFixture(t, file)
		})
	}
}

// ParseErr drops the catalog of a Parse result.
func ParseErr(_ *Catalog, err error) error { return err }

// The demo catalog passes and carries the derived flags.
func TestDemo(t *testing.T) {
	c, err := Load(demoPath)
	if err != nil {
		t.Fatalf("demo catalog: %v", err)
	}
	// SM-1: financial data is sensitive by category, and the score built on it inherits the flag.
	if f := c.Field("income"); f == nil || !f.Sensitive {
		t.Error("income (user.financial) should be sensitive")
	}
	if l := c.Label("credit_score"); l == nil || !l.Sensitive {
		t.Error("credit_score reads income and should be sensitive")
	}
	if l := c.Label("sports_fan"); l == nil || l.Sensitive {
		t.Error("sports_fan reads no sensitive field")
	}
	if c.Field("item").Type != TypeString {
		t.Errorf("item type = %q, want the default %q", c.Field("item").Type, TypeString)
	}
	if a := c.AgeField(); a == nil || a.Name != "age" {
		t.Errorf("age field = %v", a)
	}
	if !c.SensitivePurpose("credit") || c.SensitivePurpose("personalization") {
		t.Error("SensitivePurpose: credit should be sensitive, personalization not")
	}
	if c.Handler.Officer != "dpo@example.com" || c.Handler.Name.In("en") != "Example Tech Co." {
		t.Errorf("handler = %+v", c.Handler)
	}
	if got := c.UseCase("credit_limit").Model; got != "credit_score" {
		t.Errorf("credit_limit model = %q", got)
	}
	if w := c.Label("credit_score").Model.Weights["income"]; w != 0.0002 {
		t.Errorf("income weight = %v", w)
	}
	if got := c.Field("amount").Retention.String(); got != "1095d" {
		t.Errorf("amount retention = %s, want 1095d", got)
	}
}

// GET /v1/catalog serves the loaded catalog as JSON with the YAML's keys.
func TestJSONKeys(t *testing.T) {
	c, err := Load(demoPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Purposes []struct {
			ID string `json:"id"`
		} `json:"purposes"`
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
		EventTypes []struct {
			ID     string   `json:"id"`
			Fields []string `json:"fields"`
		} `json:"event_types"`
		Labels []struct {
			ID string `json:"id"`
		} `json:"labels"`
		UseCases []struct {
			ID string `json:"id"`
		} `json:"use_cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Purposes) != 6 || doc.Purposes[0].ID != "service" {
		t.Errorf("purposes = %+v", doc.Purposes)
	}
	if len(doc.Fields) != 11 || doc.Fields[0].Name != "item" {
		t.Errorf("fields = %+v", doc.Fields)
	}
	if len(doc.EventTypes) != 4 || doc.EventTypes[0].ID != "view" || strings.Join(doc.EventTypes[0].Fields, ",") != "item,category,price,device,city" {
		t.Errorf("event_types = %+v", doc.EventTypes)
	}
	if len(doc.Labels) != 6 || doc.Labels[0].ID != "sports_fan" {
		t.Errorf("labels = %+v", doc.Labels)
	}
	if len(doc.UseCases) != 3 || doc.UseCases[2].ID != "credit_limit" {
		t.Errorf("use_cases = %+v", doc.UseCases)
	}
}

// The error output of a bad catalog is stable, one line per problem.
func TestGolden(t *testing.T) {
	_, err := Load("testdata/bad/catalog.yaml")
	if AsErrors(err) == nil {
		t.Fatalf("want *Errors, got %v", err)
	}
	got := []byte(err.Error() + "\n")
	golden := "testdata/bad/catalog.golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantOut, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wantOut) {
		t.Errorf("error output differs from %s (run go test -update):\n%s", golden, got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.yaml")
	if err == nil || AsErrors(err) != nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("want a wrapped not-exist error, got %v", err)
	}
}

// OptOut picks the advertising, sale and sharing data uses, and only those
// (not a use that merely starts with the same letters).
func TestPurposeOptOut(t *testing.T) {
	for _, tc := range []struct {
		use  string
		want bool
	}{
		{"marketing", true},
		{"marketing.advertising.first_party.targeted", true},
		{"third_party_sharing", true},
		{"third_party_sharing.payment_processing", true},
		{"marketingx", false},
		{"personalize.content.profiling", false},
		{"analytics.reporting", false},
		{"", false},
	} {
		if got := (&Purpose{DataUse: tc.use}).OptOut(); got != tc.want {
			t.Errorf("OptOut(%q) = %v, want %v", tc.use, got, tc.want)
		}
	}
}
