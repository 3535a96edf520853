package tabular

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every error about the content of a file: a wrong column count, a
// header that differs from the schema, a cell that does not parse.
var ErrMalformed = errors.New("tabular: malformed table")

// CellError names where a file is wrong: the 1-based line and, when one is at fault, the
// column. errors.Is(err, ErrMalformed) holds for it.
type CellError struct {
	Line   int
	Column string // empty when the whole line is at fault
	Msg    string
}

func (e *CellError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("tabular: line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("tabular: line %d, column %s: %s", e.Line, e.Column, e.Msg)
}

func (e *CellError) Unwrap() error { return ErrMalformed }

// quote shows a cell in a message, cut short so that a huge cell cannot flood a log.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// ReadFile reads the CSV file at path; see Read.
func ReadFile(path string, s Schema) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tabular: %w", err)
	}
	defer f.Close()
	t, err := Read(f, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Read parses comma-separated values (RFC 4180 quoting, a leading UTF-8 byte-order mark
// ignored) against the schema, strictly: every line has exactly the declared number of
// fields, the header (when declared) repeats the column names, numeric cells are finite
// numbers written without spaces, label cells are declared classes. Empty cells are missing
// values: numeric ones take the column's declared fill, categorical ones become MissingValue,
// text ones stay empty. A data set with no rows is an error.
func Read(r io.Reader, s Schema) (*Table, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(r)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // counted here, to say which column is missing or extra
	cr.ReuseRecord = true

	t := &Table{Name: s.Name}
	kept := make([]int, 0, len(s.Columns)) // schema index of each column of t
	for i, c := range s.Columns {
		if c.Role == Dropped {
			continue
		}
		kept = append(kept, i)
		t.Columns = append(t.Columns, &Series{Column: cloneColumn(c)})
	}
	classes := map[string]bool{}
	if c := t.label(); c != nil {
		for _, v := range c.Classes {
			classes[v] = true
		}
	}

	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &CellError{Line: pe.Line, Msg: pe.Err.Error()}
			}
			return nil, fmt.Errorf("tabular: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(s.Columns) {
			what := "row"
			if first && s.Header {
				what = "header"
			}
			return nil, &CellError{Line: line, Msg: fmt.Sprintf("%s has %d fields, the schema declares %d columns", what, len(rec), len(s.Columns))}
		}
		if first && s.Header {
			first = false
			for j, c := range s.Columns {
				if rec[j] != c.Name {
					l, _ := cr.FieldPos(j)
					return nil, &CellError{Line: l, Column: c.Name, Msg: fmt.Sprintf("header names column %d %s, the schema %s", j+1, quote(rec[j]), quote(c.Name))}
				}
			}
			continue
		}
		first = false
		row := len(t.lines)
		t.lines = append(t.lines, line)
		for k, j := range kept {
			if err := t.Columns[k].appendCell(rec[j], row, classes); err != nil {
				l, _ := cr.FieldPos(j)
				return nil, &CellError{Line: l, Column: s.Columns[j].Name, Msg: err.Error()}
			}
		}
	}
	if first && s.Header {
		return nil, &CellError{Line: 1, Msg: "no header line"}
	}
	if t.Len() == 0 {
		return nil, &CellError{Line: 1, Msg: "no data rows"}
	}
	for _, c := range t.Columns {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func cloneColumn(c Column) Column {
	c.Classes = slices.Clone(c.Classes)
	return c
}

// appendCell parses one cell of row row into the series.
func (s *Series) appendCell(cell string, row int, classes map[string]bool) error {
	if cell == "" {
		if s.Role == Label {
			return errors.New("empty label")
		}
		if s.Kind == Numeric && s.Fill == "" {
			return errors.New("empty cell, and the schema declares no fill for this column")
		}
		if s.Missing == nil {
			s.Missing = make([]bool, row, row+1)
		}
	}
	if s.Missing != nil {
		s.Missing = append(s.Missing, cell == "")
	}
	switch {
	case s.Kind == Numeric:
		v := 0.0
		if cell != "" {
			var err error
			if v, err = strconv.ParseFloat(cell, 64); err != nil {
				return fmt.Errorf("%s is not a number", quote(cell))
			}
			if math.IsInf(v, 0) || math.IsNaN(v) {
				return fmt.Errorf("%s is not a finite number", quote(cell))
			}
		}
		s.Num = append(s.Num, v)
	case s.Role == Label && !classes[cell]:
		return fmt.Errorf("label %s is not one of the declared classes %s", quote(cell), strings.Join(s.Classes, ", "))
	case s.Kind == Categorical && cell == "":
		s.Str = append(s.Str, MissingValue)
	default:
		s.Str = append(s.Str, cell)
	}
	return nil
}

// fill computes the declared fill of a numeric column and puts it into its empty cells.
func (s *Series) fill() error {
	if s.Kind != Numeric || s.Fill == "" {
		return nil
	}
	var present []float64
	for i, v := range s.Num {
		if !s.missing(i) {
			present = append(present, v)
		}
	}
	switch s.Fill {
	case FillMedian, FillMean:
		if len(present) == 0 {
			return fmt.Errorf("%w: column %s: every cell is empty, so its %s is undefined", ErrMalformed, s.Name, s.Fill)
		}
		if s.Fill == FillMedian {
			s.FillValue = median(present)
		} else {
			s.FillValue = mean(present)
		}
	default:
		v, err := literalFill(s.Fill)
		if err != nil {
			return fmt.Errorf("%w: column %s: fill %q: %v", ErrInvalidSchema, s.Name, s.Fill, err)
		}
		s.FillValue = v
	}
	for i := range s.Num {
		if s.missing(i) {
			s.Num[i] = s.FillValue
		}
	}
	return nil
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// mean sums in float64; data sets read from text are far too small for the sum to lose
// precision that matters.
func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}
