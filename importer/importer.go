package importer

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Formats.
const (
	CSV    = "csv"
	NDJSON = "ndjson"
	CDNOW  = "cdnow" // customer_id date(YYYYMMDD) number_of_cds dollar_value, whitespace separated
)

// Options describe a file.
type Options struct {
	Format string
	// Map maps columns to declared fields; columns not in it must be
	// named as a declared field, or be the subject, type or time column.
	Map map[string]string
	// Subject, Type and Time name the columns of the subject id, the event
	// type and the time (default "subject", "type", "time"). EventType,
	// if set, is the type of every row instead of a column.
	Subject, Type, Time string
	EventType           string
	// TimeFormat is the Go layout of the time column (default RFC 3339).
	TimeFormat string
	// Shift is added to every event time, e.g. to bring an old data set
	// within its fields' retention (see Newest).
	Shift time.Duration
	// Source names the file in the rows' idempotency keys.
	Source string
	// Batch is the number of rows per Ingest call (default 1,000).
	Batch int
	// Progress, if set, is called after each batch with the rows read.
	Progress func(rows int)
	// MaxErrors bounds the row errors kept in the report (default 1,000);
	// the counts are always complete.
	MaxErrors int
	// Grant, if set, records consent to these purposes for every subject
	// of the file, through the consent ledger (channel "import", evidence
	// "bulk import"), before the subject's first event is ingested. It is
	// only for loading data whose consent was collected elsewhere, with
	// the evidence kept there: the ledger records that it was imported,
	// not given here. A subject's own refusal or withdrawal already on
	// record is kept, never overwritten (CN-4). Only purposes based on
	// consent, without separate consent (SM-2, CN-8), can be granted so.
	// Ledger and Keys are required with Grant.
	Grant  []string
	Ledger *consent.Ledger
	Keys   *keys.Keyring
}

// Import channel and evidence of consent recorded by Options.Grant.
const (
	GrantChannel  = "import"
	GrantEvidence = "bulk import"
)

// RowError is one problem of one row.
type RowError struct {
	Line        int    `json:"line"`
	Field       string `json:"field,omitempty"`
	Code        string `json:"code"`
	Reason      string `json:"reason"`
	Requirement string `json:"requirement,omitempty"`
	// Dropped is true when the row was stored without this field.
	Dropped bool `json:"dropped,omitempty"`
}

// Report summarises an import.
type Report struct {
	Rows       int        `json:"rows"`
	Accepted   int        `json:"accepted"`
	Rejected   int        `json:"rejected"`
	Duplicates int        `json:"duplicates"`
	Dropped    int        `json:"dropped_fields"`
	Errors     []RowError `json:"errors,omitempty"`
	// More counts row errors left out of Errors.
	More int `json:"more_errors,omitempty"`
	// Granted counts consent records written by Options.Grant; Kept
	// counts the (subject, purpose) pairs left alone because the subject
	// had refused or withdrawn that purpose.
	Granted int `json:"granted,omitempty"`
	Kept    int `json:"kept_refusals,omitempty"`
}

func (o *Options) defaults() error {
	if o.Format == CDNOW {
		if o.Subject == "" {
			o.Subject = "customer_id"
		}
		if o.Time == "" {
			o.Time = "date"
		}
		if o.TimeFormat == "" {
			o.TimeFormat = "20060102"
		}
		if o.EventType == "" {
			o.EventType = "purchase"
		}
		if o.Map == nil {
			o.Map = map[string]string{"number_of_cds": "quantity", "dollar_value": "amount"}
		}
	}
	if o.Subject == "" {
		o.Subject = "subject"
	}
	if o.Type == "" {
		o.Type = "type"
	}
	if o.Time == "" {
		o.Time = "time"
	}
	if o.TimeFormat == "" {
		o.TimeFormat = time.RFC3339
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = 1000
	}
	switch o.Format {
	case CSV, NDJSON, CDNOW:
		return nil
	}
	return fmt.Errorf("format %q: want csv, ndjson or cdnow", o.Format)
}

// checkGrant refuses, before anything is loaded, a grant the ledger could
// not record or that bulk import must not make.
func (o *Options) checkGrant(cat *catalog.Catalog) error {
	if len(o.Grant) == 0 {
		return nil
	}
	if o.Ledger == nil || o.Keys == nil {
		return errors.New("--grant needs the consent ledger and keyring")
	}
	for _, id := range o.Grant {
		p := cat.Purpose(id)
		switch {
		case p == nil:
			return fmt.Errorf("--grant %q: not a declared purpose", id)
		case p.Basis != catalog.BasisConsent:
			return fmt.Errorf("--grant %q: the purpose's basis is %s, not consent; there is nothing to grant", id, p.Basis)
		case p.Separate || cat.SensitivePurpose(id):
			return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "SM-2",
				Message: fmt.Sprintf("--grant %q: the purpose needs separate consent (SM-2, CN-8), which each subject must give with its own evidence, not a bulk import", id)}
		}
	}
	return nil
}

// grant records the Options.Grant purposes for the subjects of events
// not yet seen, in the order they first appear.
func grant(ctx context.Context, caller policy.Caller, cat *catalog.Catalog, o *Options, events []ingest.Item, seen map[string]bool, rep *Report) error {
	var ids []string
	var pss []portrait.Pseudonym
	for _, it := range events {
		if id := it.Event.SubjectID; !seen[id] {
			seen[id] = true
			ids, pss = append(ids, id), append(pss, o.Keys.Pseudonym(id))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	states, err := o.Ledger.States(ctx, pss)
	if err != nil {
		return fmt.Errorf("import: read consent states: %w", err)
	}
	for i, id := range ids {
		st := states[pss[i]]
		for _, purpose := range o.Grant {
			nv := cat.Purpose(purpose).NoticeVersion
			if st != nil {
				c := st.Consents[purpose]
				if c.Status == policy.Refused || c.Status == policy.Withdrawn {
					rep.Kept++
					continue // the subject's own choice stands (CN-4)
				}
				if c.Status == policy.Granted && c.NoticeVersion == nv {
					continue // already granted for the current notice
				}
			}
			if _, err := o.Ledger.Record(ctx, caller, consent.ByID(id), consent.Change{Purpose: purpose, Status: policy.Granted,
				NoticeVersion: nv, Channel: GrantChannel, UserAgent: GrantEvidence}); err != nil {
				return fmt.Errorf("import: grant %s to subject %q: %w", purpose, id, err)
			}
			rep.Granted++
		}
	}
	return nil
}

// row is one decoded line, or why it could not be decoded.
type row struct {
	line  int
	event portrait.Event
	err   *RowError
}

// reader yields rows.
type reader interface {
	next() (row, error) // io.EOF at the end
}

// Import reads r in the given format and ingests its rows as caller, in
// batches. A malformed header or mapping is an error before anything is
// loaded; a bad row is reported and skipped. An error from Ingest (the
// store or audit log failed) stops the import: the batches before it are
// stored, the report says how many rows.
func Import(ctx context.Context, in *ingest.Ingester, cat *catalog.Catalog, caller policy.Caller, r io.Reader, o Options) (Report, error) {
	var rep Report
	if err := o.defaults(); err != nil {
		return rep, err
	}
	if err := o.checkGrant(cat); err != nil {
		return rep, err
	}
	rd, err := newReader(cat, r, &o)
	if err != nil {
		return rep, err
	}
	granted := map[string]bool{}
	batch := make([]row, 0, o.Batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		items := make([]ingest.Item, 0, len(batch))
		var lines []int
		for _, b := range batch {
			if b.err != nil {
				rep.Rejected++
				rep.add(*b.err, o.MaxErrors)
				continue
			}
			items = append(items, ingest.Item{Event: b.event})
			lines = append(lines, b.line)
		}
		batch = batch[:0]
		if len(items) == 0 {
			return nil
		}
		if len(o.Grant) > 0 {
			if err := grant(ctx, caller, cat, &o, items, granted, &rep); err != nil {
				return err
			}
		}
		res, sum, err := in.Ingest(ctx, caller, items)
		if err != nil {
			return fmt.Errorf("import: ingest rows %d–%d: %w", lines[0], lines[len(lines)-1], err)
		}
		rep.Accepted += sum.Accepted
		rep.Duplicates += sum.Duplicates
		rep.Dropped += sum.Dropped
		for i, res := range res {
			if res.Status == ingest.Rejected {
				rep.Rejected++
				rep.add(RowError{Line: lines[i], Field: fieldOf(res.Reason), Code: res.Code, Reason: res.Reason, Requirement: res.Requirement}, o.MaxErrors)
			}
			for _, d := range res.Dropped {
				rep.add(RowError{Line: lines[i], Field: d.Field, Code: d.Code, Reason: d.Message, Requirement: d.Requirement, Dropped: true}, o.MaxErrors)
			}
		}
		if o.Progress != nil {
			o.Progress(rep.Rows)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rw, err := rd.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("import: %w", err)
		}
		rep.Rows++
		if rw.err == nil {
			rw.event.Time = rw.event.Time.Add(o.Shift)
			if rw.event.IdempotencyKey == "" && o.Source != "" {
				rw.event.IdempotencyKey = "import:" + o.Source + ":" + strconv.Itoa(rw.line)
			}
		}
		batch = append(batch, rw)
		if len(batch) == o.Batch {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	return rep, flush()
}

func (rep *Report) add(e RowError, limit int) {
	if len(rep.Errors) < limit {
		rep.Errors = append(rep.Errors, e)
	} else {
		rep.More++
	}
}

var quotedField = regexp.MustCompile(`field "([^"]+)"`)

// fieldOf picks the field an ingest reason names.
func fieldOf(reason string) string {
	if m := quotedField.FindStringSubmatch(reason); m != nil {
		return m[1]
	}
	return ""
}

// Newest reads r and returns the latest event time in it (before any
// shift), so that a caller can shift an old data set to end now.
func Newest(cat *catalog.Catalog, r io.Reader, o Options) (time.Time, error) {
	var newest time.Time
	if err := o.defaults(); err != nil {
		return newest, err
	}
	rd, err := newReader(cat, r, &o)
	if err != nil {
		return newest, err
	}
	for {
		rw, err := rd.next()
		if errors.Is(err, io.EOF) {
			return newest, nil
		}
		if err != nil {
			return newest, err
		}
		if rw.err == nil && rw.event.Time.After(newest) {
			newest = rw.event.Time
		}
	}
}

func newReader(cat *catalog.Catalog, r io.Reader, o *Options) (reader, error) {
	switch o.Format {
	case NDJSON:
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		return &ndjsonReader{sc: sc}, nil
	case CDNOW:
		return newTable(cat, &fieldsReader{sc: bufio.NewScanner(r)}, o)
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	return newTable(cat, &csvReader{r: cr}, o)
}

type ndjsonReader struct {
	sc   *bufio.Scanner
	line int
}

func (n *ndjsonReader) next() (row, error) {
	for n.sc.Scan() {
		n.line++
		text := strings.TrimSpace(n.sc.Text())
		if text == "" {
			continue
		}
		items, err := ingest.Decode(strings.NewReader(text), true)
		if err != nil || len(items) != 1 {
			return row{line: n.line, err: &RowError{Line: n.line, Code: "malformed", Reason: fmt.Sprintf("not one JSON event: %v", err)}}, nil
		}
		if p := items[0].Err; p != nil {
			return row{line: n.line, err: &RowError{Line: n.line, Field: fieldOf(p.Reason), Code: p.Code, Reason: p.Reason, Requirement: p.Requirement}}, nil
		}
		return row{line: n.line, event: items[0].Event}, nil
	}
	if err := n.sc.Err(); err != nil {
		return row{}, fmt.Errorf("line %d: %w", n.line+1, err)
	}
	return row{}, io.EOF
}

// records yields the cells of each line; the first is the header.
type records interface {
	record() ([]string, int, error)
}

type csvReader struct{ r *csv.Reader }

func (c *csvReader) record() ([]string, int, error) {
	rec, err := c.r.Read()
	if err != nil {
		return nil, 0, err
	}
	line, _ := c.r.FieldPos(0)
	return rec, line, nil
}

// fieldsReader splits lines on white space; a first line that does not
// start with a digit is a header, otherwise the CDNOW columns are assumed.
type fieldsReader struct {
	sc     *bufio.Scanner
	line   int
	header bool
	peeked []string
}

func (f *fieldsReader) record() ([]string, int, error) {
	if !f.header {
		f.header = true
		if !f.sc.Scan() {
			if err := f.sc.Err(); err != nil {
				return nil, 1, err
			}
			return nil, 1, io.EOF
		}
		f.line++
		cells := strings.Fields(f.sc.Text())
		if len(cells) > 0 && cells[0] != "" && cells[0][0] >= '0' && cells[0][0] <= '9' {
			f.peeked = cells
			return []string{"customer_id", "date", "number_of_cds", "dollar_value"}, 0, nil
		}
		return cells, f.line, nil
	}
	if f.peeked != nil {
		cells := f.peeked
		f.peeked = nil
		return cells, f.line, nil
	}
	for f.sc.Scan() {
		f.line++
		cells := strings.Fields(f.sc.Text())
		if len(cells) > 0 {
			return cells, f.line, nil
		}
	}
	if err := f.sc.Err(); err != nil {
		return nil, f.line + 1, err
	}
	return nil, f.line + 1, io.EOF
}

// table turns header-and-cells records into events.
type table struct {
	src              records
	cat              *catalog.Catalog
	o                *Options
	subject, typ, at int
	columns          []string // header
	fields           []*catalog.Field
	header           bool
}

func newTable(cat *catalog.Catalog, src records, o *Options) (*table, error) {
	t := &table{src: src, cat: cat, o: o, subject: -1, typ: -1, at: -1}
	head, _, err := src.record()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the file is empty: want a header line naming the columns")
	}
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	t.columns = slices.Clone(head)
	t.fields = make([]*catalog.Field, len(head))
	for col, name := range t.columns {
		name = strings.TrimSpace(name)
		switch {
		case name == o.Subject:
			t.subject = col
			continue
		case name == o.Time:
			t.at = col
			continue
		case name == o.Type && o.EventType == "":
			t.typ = col
			continue
		}
		field := name
		if m, ok := o.Map[name]; ok {
			field = m
		} else if len(o.Map) > 0 && o.Format != CDNOW {
			continue // with a mapping, unmapped columns are left out
		}
		f := cat.Field(field)
		if f == nil {
			if _, mapped := o.Map[name]; mapped {
				return nil, fmt.Errorf("--map %s=%s: field %q is not declared in the catalog; declare it under fields: or map to a declared field", name, field, field)
			}
			return nil, fmt.Errorf("column %q is not a declared field; map it with --map %s=FIELD or remove the column", name, name)
		}
		t.fields[col] = f
	}
	for col := range o.Map {
		if !slices.Contains(t.columns, col) {
			return nil, fmt.Errorf("--map names column %q, which the header does not have (columns: %s)", col, strings.Join(t.columns, ", "))
		}
	}
	switch {
	case t.subject < 0:
		return nil, fmt.Errorf("no subject column %q in the header (columns: %s); name it with --subject", o.Subject, strings.Join(t.columns, ", "))
	case t.at < 0:
		return nil, fmt.Errorf("no time column %q in the header (columns: %s); name it with --time", o.Time, strings.Join(t.columns, ", "))
	case t.typ < 0 && o.EventType == "":
		return nil, fmt.Errorf("no event type column %q in the header; name it with --type-column, or give every row a type with --type", o.Type)
	}
	if o.EventType != "" && cat.EventType(o.EventType) == nil {
		return nil, fmt.Errorf("--type %q is not a declared event type; declare it under event_types:", o.EventType)
	}
	return t, nil
}

func (t *table) next() (row, error) {
	cells, line, err := t.src.record()
	if err != nil {
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			return row{line: perr.Line, err: &RowError{Line: perr.Line, Code: "malformed", Reason: perr.Err.Error()}}, nil
		}
		return row{}, err
	}
	bad := func(col int, code, format string, args ...any) (row, error) {
		e := &RowError{Line: line, Code: code, Reason: fmt.Sprintf(format, args...)}
		if col >= 0 && col < len(t.columns) {
			e.Field = t.columns[col]
			if f := t.fields[col]; f != nil {
				e.Field = f.Name
			}
		}
		return row{line: line, err: e}, nil
	}
	if len(cells) != len(t.columns) {
		return bad(-1, "malformed", "%d cells, want %d (%s)", len(cells), len(t.columns), strings.Join(t.columns, ", "))
	}
	ev := portrait.Event{SubjectID: strings.TrimSpace(cells[t.subject]), Type: t.o.EventType, Fields: map[string]any{}}
	if ev.SubjectID == "" {
		return bad(t.subject, "no_subject", "the subject id is empty")
	}
	if t.typ >= 0 {
		ev.Type = strings.TrimSpace(cells[t.typ])
	}
	at, err := time.Parse(t.o.TimeFormat, strings.TrimSpace(cells[t.at]))
	if err != nil {
		return bad(t.at, "invalid_time", "time %q does not match the layout %q", cells[t.at], t.o.TimeFormat)
	}
	ev.Time = at.UTC()
	for col, f := range t.fields {
		if f == nil {
			continue
		}
		s := strings.TrimSpace(cells[col])
		if s == "" {
			continue // an empty cell is an absent value
		}
		switch f.Type {
		case catalog.TypeNumber:
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return bad(col, "wrong_type", "field %q must be a number, got %q", f.Name, s)
			}
			ev.Fields[f.Name] = x
		case catalog.TypeBool:
			b, err := strconv.ParseBool(s)
			if err != nil {
				return bad(col, "wrong_type", "field %q must be true or false, got %q", f.Name, s)
			}
			ev.Fields[f.Name] = b
		default:
			ev.Fields[f.Name] = s
		}
	}
	return row{line: line, event: ev}, nil
}
