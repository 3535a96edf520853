package tabular

import (
	"fmt"
	"strconv"
)

// Series is one column of a Table with its cells.
type Series struct {
	Column
	// Num holds the cells of a numeric column, empty cells replaced by FillValue.
	Num []float64
	// Str holds the cells of a categorical or text column; an empty categorical cell holds
	// MissingValue, an empty text cell "".
	Str []string
	// Missing marks the cells that were empty in the source; nil when none was.
	Missing []bool
	// FillValue is what empty numeric cells became, as computed from the data when the schema
	// asked for the median or mean: recorded so that the same value can be reported and
	// applied to later data.
	FillValue float64
}

// Value returns cell i as text: the number in shortest form for a numeric column.
func (s *Series) Value(i int) string {
	if s.Kind == Numeric {
		return formatNum(s.Num[i])
	}
	return s.Str[i]
}

func (s *Series) missing(i int) bool { return s.Missing != nil && s.Missing[i] }

// clone copies the cells so a transform can change them without touching the source table.
func (s *Series) clone() *Series {
	c := *s
	c.Num = append([]float64(nil), s.Num...)
	c.Str = append([]string(nil), s.Str...)
	c.Missing = append([]bool(nil), s.Missing...)
	if s.Missing == nil {
		c.Missing = nil
	}
	return &c
}

func formatNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Table is a read-only, column-oriented table: every Series holds one cell per row. Columns
// of role Dropped are not in it.
type Table struct {
	Name    string
	Columns []*Series
	// lines[i] is the 1-based line of the source where row i starts, for messages.
	lines []int
}

// Len is the number of rows.
func (t *Table) Len() int { return len(t.lines) }

// Line is the 1-based line of the source file where row i starts.
func (t *Table) Line(i int) int { return t.lines[i] }

// Col returns the column named name, or nil.
func (t *Table) Col(name string) *Series {
	for _, s := range t.Columns {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Schema describes the table's columns as they are now: transforms change kinds (binning
// turns numbers into categories) and remove columns.
func (t *Table) Schema() Schema {
	s := Schema{Name: t.Name}
	for _, c := range t.Columns {
		s.Columns = append(s.Columns, c.Column)
	}
	return s
}

// byRole returns the names of the columns with one of the roles, in table order.
func (t *Table) byRole(roles ...Role) []string {
	var names []string
	for _, c := range t.Columns {
		for _, r := range roles {
			if c.Role == r {
				names = append(names, c.Name)
			}
		}
	}
	return names
}

// label returns the label column, or nil.
func (t *Table) label() *Series {
	for _, c := range t.Columns {
		if c.Role == Label {
			return c
		}
	}
	return nil
}

// Rows returns a new table holding the given rows, in that order.
func (t *Table) Rows(rows []int) (*Table, error) {
	n := t.Len()
	for k, r := range rows {
		if r < 0 || r >= n {
			return nil, fmt.Errorf("tabular: rows[%d] = %d, table has %d rows", k, r, n)
		}
	}
	out := &Table{Name: t.Name, lines: make([]int, len(rows))}
	for k, r := range rows {
		out.lines[k] = t.lines[r]
	}
	for _, s := range t.Columns {
		c := *s
		c.Num, c.Str, c.Missing = nil, nil, nil
		if s.Num != nil {
			c.Num = make([]float64, len(rows))
			for k, r := range rows {
				c.Num[k] = s.Num[r]
			}
		}
		if s.Str != nil {
			c.Str = make([]string, len(rows))
			for k, r := range rows {
				c.Str[k] = s.Str[r]
			}
		}
		if s.Missing != nil {
			c.Missing = make([]bool, len(rows))
			for k, r := range rows {
				c.Missing[k] = s.Missing[r]
			}
		}
		out.Columns = append(out.Columns, &c)
	}
	return out, nil
}
