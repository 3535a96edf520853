package tabular

import (
	"errors"
	"strings"
	"testing"
)

// smallSchema covers every kind and role.
func smallSchema() Schema {
	return Schema{Name: "small", Header: true, Columns: []Column{
		{Name: "id", Kind: Text, Role: Kept},
		{Name: "age", Kind: Numeric, Role: QuasiIdentifier, Fill: FillMedian},
		{Name: "city", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "note", Kind: Text, Role: Dropped},
		{Name: "income", Kind: Numeric, Role: Feature, Fill: "-1"},
		{Name: "ill", Kind: Categorical, Role: Label, Classes: []string{"no", "yes"}},
	}}
}

func TestReadParsesAndFills(t *testing.T) {
	in := "\xef\xbb\xbfid,age,city,note,income,ill\n" +
		"a,30,Oslo,x,100,no\n" +
		"b,,Oslo,\"two\nlines\",,yes\n" + // a quoted field spans lines 3 and 4
		"c,40,,y,300,no\n" +
		"d,20.5,Rome,,400,yes\n" +
		"e,50,Rome,z,500,no\n"
	tab, err := Read(strings.NewReader(in), smallSchema())
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 5 || len(tab.Columns) != 5 || tab.Col("note") != nil {
		t.Fatalf("%d rows, %d columns (dropped column present: %v)", tab.Len(), len(tab.Columns), tab.Col("note") != nil)
	}
	age := tab.Col("age")
	// The median of the present ages 30, 40, 20.5, 50 is (30+40)/2.
	if age.FillValue != 35 || age.Num[1] != 35 || !age.Missing[1] || age.Missing[0] {
		t.Errorf("age: fill %v, cells %v, missing %v", age.FillValue, age.Num, age.Missing)
	}
	if inc := tab.Col("income"); inc.FillValue != -1 || inc.Num[1] != -1 {
		t.Errorf("income: fill %v, cells %v", inc.FillValue, inc.Num)
	}
	if city := tab.Col("city"); city.Str[2] != MissingValue || !city.Missing[2] || city.Str[3] != "Rome" {
		t.Errorf("city: %q, missing %v", city.Str, city.Missing)
	}
	if got := [4]int{tab.Line(0), tab.Line(1), tab.Line(2), tab.Line(4)}; got != [4]int{2, 3, 5, 7} {
		t.Errorf("lines %v, want [2 3 5 7]", got)
	}
	if tab.Col("ill").Str[1] != "yes" || tab.Col("id").Str[4] != "e" {
		t.Error("label or text cells differ from the file")
	}
}

func TestReadErrorsNameLineAndColumn(t *testing.T) {
	head := "id,age,city,note,income,ill\n"
	row := "a,30,Oslo,x,100,no\n"
	tests := []struct {
		name   string
		in     string
		schema func(*Schema)
		line   int
		column string
		msg    string
	}{
		{"short row", head + row + "b,30,Oslo,x,no\n", nil, 3, "", "row has 5 fields, the schema declares 6"},
		{"long row", head + row + row + "b,30,Oslo,x,1,no,extra\n", nil, 4, "", "7 fields"},
		{"header names", "id,age,town,note,income,ill\n" + row, nil, 1, "city", `header names column 3 "town", the schema "city"`},
		{"header count", "id,age,city\n" + row, nil, 1, "", "header has 3 fields"},
		{"not a number", head + row + "b,3O,Oslo,x,1,no\n", nil, 3, "age", `"3O" is not a number`},
		{"space in number", head + "b, 30,Oslo,x,1,no\n", nil, 2, "age", `" 30" is not a number`},
		{"infinite", head + row + row + "b,30,Oslo,x,Inf,no\n", nil, 4, "income", "not a finite number"},
		{"nan", head + "b,NaN,Oslo,x,1,no\n", nil, 2, "age", "not a finite number"},
		{"label outside classes", head + row + "b,30,Oslo,x,1,maybe\n", nil, 3, "ill", `label "maybe" is not one of the declared classes no, yes`},
		{"empty label", head + row + "b,30,Oslo,x,1,\n", nil, 3, "ill", "empty label"},
		{"no fill declared", head + row + "b,30,Oslo,x,1,no\n" + "c,,Oslo,x,1,no\n", func(s *Schema) { s.Columns[1].Fill = "" }, 4, "age", "declares no fill"},
		{"bad quoting", head + row + "b,30,\"Os\"lo,x,1,no\n", nil, 3, "", "quote"},
		{"after a multi-line field", head + "a,30,\"Os\nlo\",x,1,no\n" + "b,x,Oslo,x,1,no\n", nil, 4, "age", "not a number"},
		{"empty input", "", nil, 1, "", "no header line"},
		{"header only", head, nil, 1, "", "no data rows"},
		{"no rows without header", "", func(s *Schema) { s.Header = false }, 1, "", "no data rows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := smallSchema()
			if tc.schema != nil {
				tc.schema(&s)
			}
			_, err := Read(strings.NewReader(tc.in), s)
			var ce *CellError
			if !errors.As(err, &ce) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want a *CellError wrapping ErrMalformed", err)
			}
			if ce.Line != tc.line || ce.Column != tc.column || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("err = %q (line %d, column %q), want line %d, column %q, saying %q", err, ce.Line, ce.Column, tc.line, tc.column, tc.msg)
			}
		})
	}
}

func TestReadEveryCellEmpty(t *testing.T) {
	_, err := Read(strings.NewReader("id,age,city,note,income,ill\na,,Oslo,x,1,no\n"), smallSchema())
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "column age: every cell is empty") {
		t.Errorf("err = %v", err)
	}
}

func TestSchemaValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Schema)
		msg    string
	}{
		{"no columns", func(s *Schema) { s.Columns = nil }, "no columns"},
		{"unnamed", func(s *Schema) { s.Columns[0].Name = "" }, "column 1 has no name"},
		{"twice", func(s *Schema) { s.Columns[1].Name = "id" }, `"id" declared twice`},
		{"kind", func(s *Schema) { s.Columns[1].Kind = "integer" }, `kind "integer"`},
		{"role", func(s *Schema) { s.Columns[1].Role = "target" }, `role "target"`},
		{"text feature", func(s *Schema) { s.Columns[0].Role = Feature }, "a text column cannot be a feature"},
		{"numeric label", func(s *Schema) { s.Columns[5].Kind = Numeric }, "the label must be categorical"},
		{"label without classes", func(s *Schema) { s.Columns[5].Classes = nil }, "declares no classes"},
		{"repeated class", func(s *Schema) { s.Columns[5].Classes = []string{"no", "no"} }, "listed twice"},
		{"two labels", func(s *Schema) {
			s.Columns[2] = Column{Name: "city", Kind: Categorical, Role: Label, Classes: []string{"x"}}
		}, "2 label columns"},
		{"classes on a feature", func(s *Schema) { s.Columns[2].Classes = []string{"x"} }, "classes are for the label only"},
		{"fill on a category", func(s *Schema) { s.Columns[2].Fill = "median" }, "fill is for numeric columns"},
		{"bad fill", func(s *Schema) { s.Columns[1].Fill = "mode" }, `fill "mode"`},
		{"infinite fill", func(s *Schema) { s.Columns[1].Fill = "+Inf" }, `fill "+Inf"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := smallSchema()
			tc.change(&s)
			err := s.Validate()
			if !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want ErrInvalidSchema saying %q", err, tc.msg)
			}
			if _, err := Read(strings.NewReader("x\n"), s); !errors.Is(err, ErrInvalidSchema) {
				t.Errorf("Read with the schema: err = %v, want ErrInvalidSchema", err)
			}
		})
	}
	if err := smallSchema().Validate(); err != nil {
		t.Errorf("valid schema: %v", err)
	}
}

// FuzzRead feeds arbitrary bytes to the reader: it must never panic, and a table it accepts
// must be consistent.
func FuzzRead(f *testing.F) {
	f.Add([]byte("id,age,city,note,income,ill\na,30,Oslo,x,100,no\nb,,,\"q\"\"\",,yes\n"))
	f.Add([]byte("id,age,city,note,income,ill\r\na,1e3,\"O,slo\",x,-0,no\r\n"))
	f.Add([]byte("\xef\xbb\xbfid,age,city,note,income,ill\na,0x1p3,Oslo,x,1,yes"))
	f.Add([]byte("id,age\n\"unterminated"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tab, err := Read(strings.NewReader(string(in)), smallSchema())
		if err != nil {
			return
		}
		n := tab.Len()
		if n == 0 {
			t.Fatal("accepted a table with no rows")
		}
		for _, c := range tab.Columns {
			if c.Kind == Numeric && len(c.Num) != n || c.Kind != Numeric && len(c.Str) != n || c.Missing != nil && len(c.Missing) != n {
				t.Fatalf("column %s: %d numbers, %d strings, %d missing marks for %d rows", c.Name, len(c.Num), len(c.Str), len(c.Missing), n)
			}
		}
		for _, v := range tab.Col("ill").Str {
			if v != "no" && v != "yes" {
				t.Fatalf("label %q accepted", v)
			}
		}
		for i := 1; i < n; i++ {
			if tab.Line(i) <= tab.Line(i-1) {
				t.Fatalf("line numbers %d then %d", tab.Line(i-1), tab.Line(i))
			}
		}
	})
}
