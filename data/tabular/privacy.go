package tabular

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PrivacyOptions choose what Measure looks at. Zero values take the table's roles: the
// quasi-identifier columns, and the sensitive column (or, when there is none, the label).
type PrivacyOptions struct {
	QuasiIdentifiers []string
	Sensitive        string
	// K is the target class size: the report lists the rows of smaller classes.
	K int
	// Smallest is how many of the smallest classes the report shows (0: 5).
	Smallest int
}

// Class is one equivalence class: the rows that share their quasi-identifier values.
type Class struct {
	Values []string `json:"values"`
	Size   int      `json:"size"`
	// Distinct is the number of distinct sensitive values in the class.
	Distinct int `json:"distinct"`
}

// PrivacyReport measures how well a table hides individuals. K-anonymity: every row shares
// its quasi-identifier values with at least K-1 others, so someone who knows those values
// about a person cannot tell which of K rows is theirs. Distinct l-diversity: every such class
// holds at least L different sensitive values, so knowing the class does not tell the
// sensitive value either.
type PrivacyReport struct {
	Rows             int      `json:"rows"`
	QuasiIdentifiers []string `json:"quasi_identifiers"`
	Sensitive        string   `json:"sensitive,omitempty"`
	Classes          int      `json:"classes"`
	// K is the size of the smallest class.
	K int `json:"k"`
	// L is the fewest distinct sensitive values in a class (0 without a sensitive column).
	L int `json:"l"`
	// TargetK is the K asked for; ClassesBelowK and RowsBelowK (row indices of the measured
	// table) are the classes smaller than it and their rows.
	TargetK       int   `json:"target_k,omitempty"`
	ClassesBelowK int   `json:"classes_below_k"`
	RowsBelowK    []int `json:"rows_below_k,omitempty"`
	// SuppressedRows counts the rows removed to reach TargetK (see Anonymize).
	SuppressedRows int `json:"suppressed_rows"`
	// Smallest are a few of the smallest classes, smallest first.
	Smallest []Class `json:"smallest"`
	// Steps are the transforms that produced the table, when it came from Anonymize.
	Steps []StepResult `json:"steps,omitempty"`
}

// Measure computes the k-anonymity and l-diversity of t over its quasi-identifiers.
func Measure(t *Table, o PrivacyOptions) (*PrivacyReport, error) {
	qis, sens, err := privacyColumns(t, o)
	if err != nil {
		return nil, err
	}
	if o.K < 0 {
		return nil, fmt.Errorf("tabular: target k = %d", o.K)
	}
	if o.Smallest == 0 {
		o.Smallest = 5
	}
	r := &PrivacyReport{Rows: t.Len(), TargetK: o.K, RowsBelowK: []int{}}
	for _, s := range qis {
		r.QuasiIdentifiers = append(r.QuasiIdentifiers, s.Name)
	}
	if sens != nil {
		r.Sensitive = sens.Name
	}
	classes, rowClass := equivalenceClasses(t, qis, sens)
	r.Classes = len(classes)
	for i, c := range classes {
		if i == 0 || c.Size < r.K {
			r.K = c.Size
		}
		if sens != nil && (i == 0 || c.Distinct < r.L) {
			r.L = c.Distinct
		}
		if c.Size < o.K {
			r.ClassesBelowK++
		}
	}
	for row, c := range rowClass {
		if classes[c].Size < o.K {
			r.RowsBelowK = append(r.RowsBelowK, row)
		}
	}
	order := make([]int, len(classes))
	for i := range order {
		order[i] = i
	}
	// Smallest first; among equals, the least diverse first, then by values, so the listing
	// is the same on every run.
	slices.SortFunc(order, func(a, b int) int {
		ca, cb := classes[a], classes[b]
		if ca.Size != cb.Size {
			return ca.Size - cb.Size
		}
		if ca.Distinct != cb.Distinct {
			return ca.Distinct - cb.Distinct
		}
		return slices.Compare(ca.Values, cb.Values)
	})
	for _, i := range order[:min(o.Smallest, len(order))] {
		r.Smallest = append(r.Smallest, classes[i])
	}
	return r, nil
}

func privacyColumns(t *Table, o PrivacyOptions) (qis []*Series, sens *Series, err error) {
	names := o.QuasiIdentifiers
	if names == nil {
		names = t.byRole(QuasiIdentifier)
	}
	if len(names) == 0 {
		return nil, nil, errors.New("tabular: no quasi-identifier columns")
	}
	for _, n := range names {
		s := t.Col(n)
		if s == nil {
			return nil, nil, fmt.Errorf("tabular: quasi-identifier %q: no such column", n)
		}
		qis = append(qis, s)
	}
	switch name := o.Sensitive; {
	case name != "":
		if sens = t.Col(name); sens == nil {
			return nil, nil, fmt.Errorf("tabular: sensitive column %q: no such column", name)
		}
	default:
		if names := t.byRole(Sensitive); len(names) > 1 {
			return nil, nil, fmt.Errorf("tabular: %d sensitive columns (%s): name the one to measure", len(names), strings.Join(names, ", "))
		} else if len(names) == 1 {
			sens = t.Col(names[0])
		} else {
			sens = t.label()
		}
	}
	return qis, sens, nil
}

// equivalenceClasses groups the rows by their quasi-identifier values; rowClass[i] is the
// class of row i. Classes come in order of first appearance.
func equivalenceClasses(t *Table, qis []*Series, sens *Series) (classes []Class, rowClass []int) {
	index := map[string]int{}
	seenSens := []map[string]bool{}
	rowClass = make([]int, t.Len())
	var key strings.Builder
	vals := make([]string, len(qis))
	for row := range t.Len() {
		key.Reset()
		for j, s := range qis {
			vals[j] = s.Value(row)
			// Length-prefixed, so no value can forge the boundary between two others.
			key.WriteString(strconv.Itoa(len(vals[j])))
			key.WriteByte(':')
			key.WriteString(vals[j])
		}
		c, ok := index[key.String()]
		if !ok {
			c = len(classes)
			index[key.String()] = c
			classes = append(classes, Class{Values: slices.Clone(vals)})
			seenSens = append(seenSens, map[string]bool{})
		}
		classes[c].Size++
		if sens != nil {
			if v := sens.Value(row); !seenSens[c][v] {
				seenSens[c][v] = true
				classes[c].Distinct++
			}
		}
		rowClass[row] = c
	}
	return classes, rowClass
}

// SuppressBelowK returns t without the rows of classes (over the given quasi-identifiers;
// nil: the table's) smaller than k, and how many rows went. Removing whole classes never
// makes another class smaller, so the result is k-anonymous (or empty).
func SuppressBelowK(t *Table, quasiIdentifiers []string, k int) (*Table, int, error) {
	r, err := Measure(t, PrivacyOptions{QuasiIdentifiers: quasiIdentifiers, K: k})
	if err != nil {
		return nil, 0, err
	}
	if len(r.RowsBelowK) == 0 {
		return t, 0, nil
	}
	keep := make([]int, 0, t.Len()-len(r.RowsBelowK))
	drop := r.RowsBelowK // ascending
	for row := range t.Len() {
		if len(drop) > 0 && drop[0] == row {
			drop = drop[1:]
			continue
		}
		keep = append(keep, row)
	}
	out, err := t.Rows(keep)
	return out, len(r.RowsBelowK), err
}

// Anonymize applies the config's transforms, removes the rows below its K when SuppressRows
// is set, and measures the result. The report's RowsBelowK refer to the table before
// suppression when rows were removed (the result has none below K), so they say which rows
// went. The config must have passed Validate.
func Anonymize(t *Table, c Config, key []byte) (*Table, *PrivacyReport, error) {
	out, steps, err := Apply(t, c, key)
	if err != nil {
		return nil, nil, err
	}
	before, err := Measure(out, PrivacyOptions{K: c.K})
	if err != nil {
		return nil, nil, err
	}
	if !c.SuppressRows || len(before.RowsBelowK) == 0 {
		before.Steps = steps
		return out, before, nil
	}
	kept, n, err := SuppressBelowK(out, nil, c.K)
	if err != nil {
		return nil, nil, err
	}
	if kept.Len() == 0 {
		return nil, nil, fmt.Errorf("tabular: every class is smaller than k = %d: generalize more", c.K)
	}
	r, err := Measure(kept, PrivacyOptions{K: c.K})
	if err != nil {
		return nil, nil, err
	}
	r.SuppressedRows = n
	r.RowsBelowK = before.RowsBelowK
	r.ClassesBelowK = before.ClassesBelowK
	r.Steps = steps
	return kept, r, nil
}

// JSON is the report as indented JSON.
func (r *PrivacyReport) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// String is the report as plain text for a log or a terminal.
func (r *PrivacyReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rows %d, quasi-identifiers %s\n", r.Rows, strings.Join(r.QuasiIdentifiers, ", "))
	fmt.Fprintf(&b, "equivalence classes %d, k = %d", r.Classes, r.K)
	if r.Sensitive != "" {
		fmt.Fprintf(&b, ", distinct l = %d over %s", r.L, r.Sensitive)
	}
	b.WriteByte('\n')
	if r.TargetK > 0 {
		fmt.Fprintf(&b, "target k %d: %d classes, %d rows below it; %d rows suppressed\n", r.TargetK, r.ClassesBelowK, len(r.RowsBelowK), r.SuppressedRows)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "  %s %s: %d cells changed, %d -> %d distinct values\n", s.Op, s.Column, s.Cells, s.Values, s.After)
	}
	fmt.Fprintf(&b, "smallest classes:\n")
	for _, c := range r.Smallest {
		fmt.Fprintf(&b, "  %d rows, %d distinct: %s\n", c.Size, c.Distinct, strings.Join(c.Values, ", "))
	}
	return b.String()
}
