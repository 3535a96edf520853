package tabular

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"unicode/utf8"
)

// Op names a column transform.
type Op string

const (
	// OpDrop removes the column.
	OpDrop Op = "drop"
	// OpPseudonymize replaces each value by a keyed hash of it (HMAC-SHA256, hex, cut to
	// HexChars): equal values stay equal, so records still link, but without the key the
	// original cannot be looked up or guessed by hashing candidates.
	OpPseudonymize Op = "pseudonymize"
	// OpBins turns a numeric column into ranges cut at Edges (Age -> "18-29").
	OpBins Op = "bins"
	// OpPrefix keeps the first Chars characters of each value (cabin "C85" -> deck "C").
	OpPrefix Op = "prefix"
	// OpHierarchy replaces each value by its ancestor Levels steps up Parents.
	OpHierarchy Op = "hierarchy"
	// OpSuppressRare replaces the values seen fewer than MinCount times by SuppressedValue.
	OpSuppressRare Op = "suppress-rare"
	// OpClamp is top and bottom coding: numbers above Max become Max, below Min become Min,
	// so the few extreme (and so identifying) values blend in.
	OpClamp Op = "clamp"
)

// DefaultHexChars is the pseudonym length when HexChars is left at 0: 64 bits, far from
// collisions for tables of millions of distinct values.
const DefaultHexChars = 16

// MinKeyBytes is the shortest pseudonymization key accepted: a short key could be found by
// trying keys against a few known values.
const MinKeyBytes = 16

// DefaultKeyEnv is the environment variable that holds the pseudonymization key when
// Config.KeyEnv is empty.
const DefaultKeyEnv = "TROUPE_PSEUDONYM_KEY"

// Transform is one step applied to one column. Steps run in the order given; a column may
// take several (prefix, then hierarchy). Fields that the op does not use must stay at zero,
// so that a misplaced setting is reported rather than ignored.
type Transform struct {
	Column string `yaml:"column" json:"column"`
	Op     Op     `yaml:"op" json:"op"`
	// HexChars is the pseudonym length in hex digits, 8 to 64 (pseudonymize; 0: DefaultHexChars).
	HexChars int `yaml:"hex_chars,omitempty" json:"hex_chars,omitempty"`
	// Edges are the increasing cut points of bins: value v falls in bin i when
	// Edges[i-1] <= v < Edges[i].
	Edges []float64 `yaml:"edges,omitempty" json:"edges,omitempty"`
	// Labels name the len(Edges)+1 bins; by default "<a", "[a,b)" and ">=z".
	Labels []string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Chars is how many characters prefix keeps.
	Chars int `yaml:"chars,omitempty" json:"chars,omitempty"`
	// Parents are the levels of a hierarchy: Parents[0] maps each value to its parent,
	// Parents[1] each parent to its own parent, and so on. A value with no parent at a level
	// it must climb is an error, so a value nobody planned for is never released as is.
	Parents []map[string]string `yaml:"parents,omitempty" json:"parents,omitempty"`
	// Levels is how many levels hierarchy climbs (0: all of Parents).
	Levels int `yaml:"levels,omitempty" json:"levels,omitempty"`
	// MinCount is the fewest times a value must occur to survive suppress-rare.
	MinCount int `yaml:"min_count,omitempty" json:"min_count,omitempty"`
	// Min and Max bound clamp; at least one is set.
	Min *float64 `yaml:"min,omitempty" json:"min,omitempty"`
	Max *float64 `yaml:"max,omitempty" json:"max,omitempty"`
}

// Config is the anonymization section of a job: the column transforms, applied before any
// row becomes a feature vector, and the k-anonymity target.
type Config struct {
	Transforms []Transform `yaml:"transforms" json:"transforms"`
	// K is the smallest equivalence class wanted over the quasi-identifiers; 0 only reports.
	K int `yaml:"k,omitempty" json:"k,omitempty"`
	// SuppressRows removes the rows of classes smaller than K after the transforms (counted in
	// the report), so that the released table is K-anonymous.
	SuppressRows bool `yaml:"suppress_rows,omitempty" json:"suppress_rows,omitempty"`
	// KeyEnv names the environment variable holding the pseudonymization key (0: DefaultKeyEnv).
	// The key itself never sits in a job file, which is shared and logged.
	KeyEnv string `yaml:"key_env,omitempty" json:"key_env,omitempty"`
}

// ErrInvalidConfig is wrapped by every error Config.Validate and Config.Check return.
var ErrInvalidConfig = errors.New("tabular: invalid anonymization config")

func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Validate fills the defaults (HexChars, Levels, KeyEnv) and checks each step on its own:
// known op, its parameters set and sensible, the others at zero. Check then matches the
// steps against a schema.
func (c *Config) Validate() error {
	if c.K < 0 {
		return configErrorf("k = %d, want >= 0", c.K)
	}
	if c.SuppressRows && c.K < 2 {
		return configErrorf("suppress_rows needs k >= 2")
	}
	if c.KeyEnv == "" {
		c.KeyEnv = DefaultKeyEnv
	}
	for i := range c.Transforms {
		if err := c.Transforms[i].validate(); err != nil {
			return configErrorf("transforms[%d] (%s %s): %v", i, c.Transforms[i].Op, c.Transforms[i].Column, err)
		}
	}
	return nil
}

func (t *Transform) validate() error {
	if t.Column == "" {
		return errors.New("no column")
	}
	var used []string // the parameters this op takes
	switch t.Op {
	case OpDrop:
	case OpPseudonymize:
		used = []string{"hex_chars"}
		if t.HexChars == 0 {
			t.HexChars = DefaultHexChars
		}
		if t.HexChars < 8 || t.HexChars > 64 {
			return fmt.Errorf("hex_chars = %d, want 8 to 64", t.HexChars)
		}
	case OpBins:
		used = []string{"edges", "labels"}
		if len(t.Edges) == 0 {
			return errors.New("no edges")
		}
		for i, e := range t.Edges {
			if math.IsNaN(e) || math.IsInf(e, 0) || (i > 0 && e <= t.Edges[i-1]) {
				return fmt.Errorf("edges %v: want finite and strictly increasing", t.Edges)
			}
		}
		if t.Labels != nil {
			if len(t.Labels) != len(t.Edges)+1 {
				return fmt.Errorf("%d labels for %d bins", len(t.Labels), len(t.Edges)+1)
			}
			if err := distinctNames(t.Labels); err != nil {
				return err
			}
		}
	case OpPrefix:
		used = []string{"chars"}
		if t.Chars < 1 {
			return fmt.Errorf("chars = %d, want >= 1", t.Chars)
		}
	case OpHierarchy:
		used = []string{"parents", "levels"}
		if len(t.Parents) == 0 {
			return errors.New("no parents")
		}
		if t.Levels == 0 {
			t.Levels = len(t.Parents)
		}
		if t.Levels < 1 || t.Levels > len(t.Parents) {
			return fmt.Errorf("levels = %d, the hierarchy has %d", t.Levels, len(t.Parents))
		}
		for l, m := range t.Parents[:t.Levels] {
			if len(m) == 0 {
				return fmt.Errorf("parents[%d] is empty", l)
			}
			for v, p := range m {
				if v == "" || p == "" {
					return fmt.Errorf("parents[%d] maps %q to %q: values cannot be empty", l, v, p)
				}
			}
		}
	case OpSuppressRare:
		used = []string{"min_count"}
		if t.MinCount < 2 {
			return fmt.Errorf("min_count = %d, want >= 2", t.MinCount)
		}
	case OpClamp:
		used = []string{"min", "max"}
		if t.Min == nil && t.Max == nil {
			return errors.New("neither min nor max")
		}
		for _, p := range []*float64{t.Min, t.Max} {
			if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
				return errors.New("min and max must be finite")
			}
		}
		if t.Min != nil && t.Max != nil && *t.Min > *t.Max {
			return fmt.Errorf("min %g > max %g", *t.Min, *t.Max)
		}
	default:
		return fmt.Errorf("unknown op %q, want drop, pseudonymize, bins, prefix, hierarchy, suppress-rare or clamp", t.Op)
	}
	set := map[string]bool{
		"hex_chars": t.HexChars != 0, "edges": t.Edges != nil, "labels": t.Labels != nil,
		"chars": t.Chars != 0, "parents": t.Parents != nil, "levels": t.Levels != 0,
		"min_count": t.MinCount != 0, "min": t.Min != nil, "max": t.Max != nil,
	}
	for name, isSet := range set {
		if isSet && !slices.Contains(used, name) {
			return fmt.Errorf("%s is not a parameter of %s", name, t.Op)
		}
	}
	return nil
}

func distinctNames(names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			return fmt.Errorf("label %q is empty or repeated", n)
		}
		seen[n] = true
	}
	return nil
}

// Check matches the steps against a schema, following each column's kind through the steps:
// the column exists and was not dropped by an earlier step, the op fits its kind (bins and
// clamp take numbers, the others categories or text), and the label is left alone, since
// changing it would change what the model learns. Call Validate first.
func (c *Config) Check(s Schema) error {
	kinds := map[string]Kind{}
	for _, col := range s.Columns {
		if col.Role != Dropped {
			kinds[col.Name] = col.Kind
		}
	}
	for i, t := range c.Transforms {
		col, ok := s.column(t.Column)
		kind, present := kinds[t.Column]
		if !ok || !present {
			why := "no such column"
			if ok {
				why = "the column is dropped"
			}
			return configErrorf("transforms[%d] (%s %s): %s", i, t.Op, t.Column, why)
		}
		if col.Role == Label {
			return configErrorf("transforms[%d] (%s %s): the label cannot be transformed", i, t.Op, t.Column)
		}
		numeric := t.Op == OpBins || t.Op == OpClamp
		if t.Op != OpDrop && numeric != (kind == Numeric) {
			return configErrorf("transforms[%d] (%s %s): the column is %s at this step", i, t.Op, t.Column, kind)
		}
		if t.Op == OpHierarchy && kind != Categorical {
			return configErrorf("transforms[%d] (%s %s): hierarchy needs a categorical column", i, t.Op, t.Column)
		}
		switch t.Op {
		case OpDrop:
			delete(kinds, t.Column)
		case OpBins:
			kinds[t.Column] = Categorical
		}
	}
	return nil
}

// NeedsKey reports whether a step pseudonymizes, and so whether Apply needs a key.
func (c *Config) NeedsKey() bool {
	return slices.ContainsFunc(c.Transforms, func(t Transform) bool { return t.Op == OpPseudonymize })
}

// Key reads the pseudonymization key from the environment variable KeyEnv and checks its
// length. Call Validate first.
func (c *Config) Key() ([]byte, error) {
	v := os.Getenv(c.KeyEnv)
	if v == "" {
		return nil, fmt.Errorf("tabular: pseudonymization key: %s is not set", c.KeyEnv)
	}
	if len(v) < MinKeyBytes {
		return nil, fmt.Errorf("tabular: pseudonymization key in %s has %d bytes, want at least %d", c.KeyEnv, len(v), MinKeyBytes)
	}
	return []byte(v), nil
}

// StepResult says what one step changed, for the anonymization report.
type StepResult struct {
	Column string `json:"column"`
	Op     Op     `json:"op"`
	// Cells is the number of cells whose value changed.
	Cells int `json:"cells"`
	// Values is the number of distinct values before the step, After the number after it.
	Values int `json:"values"`
	After  int `json:"after"`
}

// Apply runs the steps over a copy of t and returns it with what each step did; t is left
// as it was. key is needed when a step pseudonymizes (see Key). The config must have passed
// Validate; Apply runs Check against t's schema itself.
func Apply(t *Table, c Config, key []byte) (*Table, []StepResult, error) {
	if err := c.Check(t.Schema()); err != nil {
		return nil, nil, err
	}
	if c.NeedsKey() && len(key) < MinKeyBytes {
		return nil, nil, fmt.Errorf("tabular: pseudonymization key of %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	out := &Table{Name: t.Name, lines: t.lines, Columns: slices.Clone(t.Columns)}
	copied := map[string]bool{}
	var results []StepResult
	for i, step := range c.Transforms {
		j := slices.IndexFunc(out.Columns, func(s *Series) bool { return s.Name == step.Column })
		if step.Op == OpDrop {
			results = append(results, StepResult{Column: step.Column, Op: step.Op, Cells: out.Len(), Values: distinct(out.Columns[j]), After: 0})
			out.Columns = slices.Delete(out.Columns, j, j+1)
			continue
		}
		if !copied[step.Column] {
			out.Columns[j] = out.Columns[j].clone()
			copied[step.Column] = true
		}
		s := out.Columns[j]
		res := StepResult{Column: step.Column, Op: step.Op, Values: distinct(s)}
		var err error
		switch step.Op {
		case OpPseudonymize:
			res.Cells, err = pseudonymize(s, key, step.HexChars, out)
		case OpBins:
			res.Cells = bin(s, step.Edges, step.Labels)
		case OpPrefix:
			res.Cells = prefix(s, step.Chars)
		case OpHierarchy:
			res.Cells, err = climb(s, step.Parents[:step.Levels], out)
		case OpSuppressRare:
			res.Cells = suppressRare(s, step.MinCount)
		case OpClamp:
			res.Cells = clamp(s, step.Min, step.Max)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("tabular: transforms[%d] (%s %s): %w", i, step.Op, step.Column, err)
		}
		res.After = distinct(s)
		results = append(results, res)
	}
	return out, results, nil
}

func distinct(s *Series) int {
	seen := map[string]struct{}{}
	for i := range max(len(s.Num), len(s.Str)) {
		seen[s.Value(i)] = struct{}{}
	}
	return len(seen)
}

// isMarker reports whether v stands for no value: pseudonyms, prefixes and hierarchies leave
// such cells alone.
func isMarker(s *Series, i int) bool {
	v := s.Str[i]
	return s.missing(i) || v == MissingValue || v == SuppressedValue || v == ""
}

// Pseudonym is the keyed pseudonym of value: the first hexChars hex digits of
// HMAC-SHA256(key, value). It depends on nothing else, so the same value in another column
// or another file, pseudonymized with the same key, links; with another key it does not.
func Pseudonym(key []byte, value string, hexChars int) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))[:hexChars]
}

func pseudonymize(s *Series, key []byte, hexChars int, t *Table) (int, error) {
	of := map[string]string{}   // value -> pseudonym
	back := map[string]string{} // pseudonym -> value, to catch two values cut to one
	changed := 0
	for i, v := range s.Str {
		if isMarker(s, i) {
			continue
		}
		p, ok := of[v]
		if !ok {
			p = Pseudonym(key, v, hexChars)
			if _, clash := back[p]; clash {
				return 0, fmt.Errorf("the value on line %d shares its pseudonym with another value; use more hex_chars", t.Line(i))
			}
			of[v], back[p] = p, v
		}
		s.Str[i] = p
		changed++
	}
	return changed, nil
}

func bin(s *Series, edges []float64, labels []string) int {
	if labels == nil {
		labels = make([]string, len(edges)+1)
		labels[0] = "<" + formatNum(edges[0])
		for i := 1; i < len(edges); i++ {
			labels[i] = "[" + formatNum(edges[i-1]) + "," + formatNum(edges[i]) + ")"
		}
		labels[len(edges)] = ">=" + formatNum(edges[len(edges)-1])
	}
	s.Str = make([]string, len(s.Num))
	for i, v := range s.Num {
		if s.missing(i) {
			s.Str[i] = MissingValue
			continue
		}
		// sort.SearchFloat64s finds the first edge >= v; a value equal to an edge opens the
		// next bin.
		b := sort.SearchFloat64s(edges, v)
		if b < len(edges) && edges[b] == v {
			b++
		}
		s.Str[i] = labels[b]
	}
	s.Num = nil
	s.Kind = Categorical
	s.Fill = ""
	s.FillValue = 0
	return len(s.Str)
}

func prefix(s *Series, chars int) int {
	changed := 0
	for i, v := range s.Str {
		if isMarker(s, i) || utf8.RuneCountInString(v) <= chars {
			continue
		}
		n := 0
		for k := range v {
			if n == chars {
				s.Str[i] = v[:k]
				break
			}
			n++
		}
		changed++
	}
	return changed
}

func climb(s *Series, levels []map[string]string, t *Table) (int, error) {
	changed := 0
	for i, v := range s.Str {
		if isMarker(s, i) {
			continue
		}
		w := v
		for l, parents := range levels {
			p, ok := parents[w]
			if !ok {
				return 0, fmt.Errorf("value %s (line %d) has no parent at level %d", quote(w), t.Line(i), l+1)
			}
			w = p
		}
		if w != v {
			s.Str[i] = w
			changed++
		}
	}
	return changed, nil
}

func suppressRare(s *Series, minCount int) int {
	count := map[string]int{}
	for _, v := range s.Str {
		count[v]++
	}
	changed := 0
	for i, v := range s.Str {
		if count[v] < minCount && v != SuppressedValue {
			s.Str[i] = SuppressedValue
			changed++
		}
	}
	return changed
}

func clamp(s *Series, lo, hi *float64) int {
	changed := 0
	for i, v := range s.Num {
		w := v
		if lo != nil && w < *lo {
			w = *lo
		}
		if hi != nil && w > *hi {
			w = *hi
		}
		if w != v {
			s.Num[i] = w
			changed++
		}
	}
	return changed
}
