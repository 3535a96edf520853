package tabular

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Kind says how the cells of a column are parsed and how they reach a model.
type Kind string

const (
	// Numeric cells hold finite decimal numbers; they are standardized when encoded.
	Numeric Kind = "numeric"
	// Categorical cells hold one value of a finite set; they are one-hot encoded.
	Categorical Kind = "categorical"
	// Text cells hold identifiers or free text (names, ticket numbers). They are carried,
	// pseudonymized or dropped, never encoded: a model would only memorize them.
	Text Kind = "text"
)

// Role says what a column is for. The anonymization report and the encoder pick their columns
// by role, so declaring the roles once keeps the two consistent.
type Role string

const (
	// Feature columns are model inputs.
	Feature Role = "feature"
	// QuasiIdentifier columns are model inputs that, combined, could single a person out
	// (age, sex, class): k-anonymity is measured over them.
	QuasiIdentifier Role = "quasi-identifier"
	// Sensitive columns hold what must not be learnt about a person; l-diversity is measured
	// over one of them. They are not model inputs.
	Sensitive Role = "sensitive"
	// Label is the class to predict; a table has at most one. When no column is Sensitive, the
	// label is the sensitive attribute of the report.
	Label Role = "label"
	// Kept columns are carried through (and may be pseudonymized) but feed neither the model
	// nor the report: identifiers someone may need to link records later.
	Kept Role = "kept"
	// Dropped columns are checked for shape and then discarded while reading.
	Dropped Role = "dropped"
)

// Markers that stand for a cell in place of its value. They are ordinary categories to the
// encoder, so a model may still learn from "unknown" or "too rare to show".
const (
	// MissingValue is what an empty categorical cell becomes, and an empty numeric cell once
	// a transform has turned the column into categories.
	MissingValue = "?"
	// SuppressedValue replaces a value that a transform hid (a rare category, the top of a
	// hierarchy).
	SuppressedValue = "*"
)

// Fills for empty numeric cells, besides a literal number.
const (
	FillMedian = "median"
	FillMean   = "mean"
)

// Column declares one column of a table.
type Column struct {
	Name string `yaml:"name" json:"name"`
	Kind Kind   `yaml:"kind" json:"kind"`
	Role Role   `yaml:"role" json:"role"`
	// Fill is what an empty numeric cell becomes: "median" or "mean" of the column's other
	// cells (computed on the data and recorded in Series.FillValue), or a number. Left empty,
	// an empty cell is an error: missing values are only accepted where declared.
	Fill string `yaml:"fill,omitempty" json:"fill,omitempty"`
	// Classes lists the values of the label column; a class's index is its position, so the
	// encoding does not depend on which values a file happens to hold.
	Classes []string `yaml:"classes,omitempty" json:"classes,omitempty"`
}

// Schema declares the columns of a CSV file, in file order.
type Schema struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Header says the first line names the columns; the names must then equal the schema's,
	// in order, which catches a file whose columns moved.
	Header  bool     `yaml:"header" json:"header"`
	Columns []Column `yaml:"columns" json:"columns"`
}

// ErrInvalidSchema is wrapped by every error Schema.Validate returns.
var ErrInvalidSchema = errors.New("tabular: invalid schema")

func schemaErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSchema, fmt.Sprintf(format, args...))
}

// Validate checks that the schema can be read and encoded: unique names, known kinds and
// roles, fills only on numeric columns, at most one label, categorical and with its classes,
// and no text column as a model input.
func (s Schema) Validate() error {
	if len(s.Columns) == 0 {
		return schemaErrorf("no columns")
	}
	seen := make(map[string]bool, len(s.Columns))
	labels := 0
	for i, c := range s.Columns {
		if c.Name == "" {
			return schemaErrorf("column %d has no name", i+1)
		}
		if seen[c.Name] {
			return schemaErrorf("column %q declared twice", c.Name)
		}
		seen[c.Name] = true
		if err := c.validate(); err != nil {
			return err
		}
		if c.Role == Label {
			labels++
		}
	}
	if labels > 1 {
		return schemaErrorf("%d label columns, want at most one", labels)
	}
	return nil
}

func (c Column) validate() error {
	switch c.Kind {
	case Numeric, Categorical, Text:
	default:
		return schemaErrorf("column %q: kind %q, want numeric, categorical or text", c.Name, c.Kind)
	}
	switch c.Role {
	case Feature, QuasiIdentifier:
		if c.Kind == Text {
			return schemaErrorf("column %q: a text column cannot be a %s (declare it categorical, or kept)", c.Name, c.Role)
		}
	case Label:
		if c.Kind != Categorical {
			return schemaErrorf("column %q: the label must be categorical", c.Name)
		}
		if len(c.Classes) == 0 {
			return schemaErrorf("column %q: the label declares no classes", c.Name)
		}
		classes := make(map[string]bool, len(c.Classes))
		for _, v := range c.Classes {
			if v == "" || classes[v] {
				return schemaErrorf("column %q: class %q is empty or listed twice", c.Name, v)
			}
			classes[v] = true
		}
	case Sensitive, Kept, Dropped:
	default:
		return schemaErrorf("column %q: role %q, want feature, quasi-identifier, sensitive, label, kept or dropped", c.Name, c.Role)
	}
	if len(c.Classes) > 0 && c.Role != Label {
		return schemaErrorf("column %q: classes are for the label only", c.Name)
	}
	if c.Fill != "" {
		if c.Kind != Numeric {
			return schemaErrorf("column %q: fill is for numeric columns (empty categorical cells become %q)", c.Name, MissingValue)
		}
		if _, err := literalFill(c.Fill); err != nil && c.Fill != FillMedian && c.Fill != FillMean {
			return schemaErrorf("column %q: fill %q, want median, mean or a finite number", c.Name, c.Fill)
		}
	}
	return nil
}

func literalFill(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, errors.New("not finite")
	}
	return v, nil
}

// column returns the declared column named name.
func (s Schema) column(name string) (Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}
