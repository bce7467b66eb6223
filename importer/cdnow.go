package importer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// Purchase is one line of a CDNOW log.
type Purchase struct {
	Line     int
	Customer string
	Day      time.Time // UTC midnight
	CDs      int
	Dollars  float64
}

// ReadCDNOW calls fn for each purchase of a CDNOW log (customer id, date
// YYYYMMDD, number of CDs, dollar value; an optional header line), with
// the same line reader the cdnow import format uses. It is for reading the
// file outside the governed path — the forecast evaluation of
// `portrait predict`, which stores nothing. A malformed line is an error
// naming its line and column.
func ReadCDNOW(r io.Reader, fn func(Purchase) error) error {
	src := &fieldsReader{sc: bufio.NewScanner(r)}
	if _, _, err := src.record(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	for {
		cells, line, err := src.record()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if len(cells) != 4 {
			return fmt.Errorf("line %d: %d columns, want 4 (customer_id date number_of_cds dollar_value)", line, len(cells))
		}
		p := Purchase{Line: line, Customer: cells[0]}
		if p.Day, err = time.Parse("20060102", cells[1]); err != nil {
			return fmt.Errorf("line %d: date: %q is not YYYYMMDD", line, cells[1])
		}
		if p.CDs, err = strconv.Atoi(cells[2]); err != nil || p.CDs < 0 {
			return fmt.Errorf("line %d: number_of_cds: %q is not a whole number", line, cells[2])
		}
		if p.Dollars, err = strconv.ParseFloat(cells[3], 64); err != nil || math.IsNaN(p.Dollars) || math.IsInf(p.Dollars, 0) {
			return fmt.Errorf("line %d: dollar_value: %q is not a number", line, cells[3])
		}
		if err := fn(p); err != nil {
			return err
		}
	}
}
