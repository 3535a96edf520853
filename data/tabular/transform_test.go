package tabular

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// people is a hand-built table for the transform and report tests.
func people(t *testing.T) *Table {
	t.Helper()
	in := "name,age,zip,sex,diag,ok\n" +
		"Ann,17,13053,F,flu,y\n" +
		"Bob,29,13068,M,flu,n\n" +
		"Cat,30,13068,F,cold,y\n" +
		"Dan,,14853,M,hiv,n\n" +
		"Eve,45,14850,F,cold,y\n" +
		"Fay,61,14850,F,flu,n\n"
	s := Schema{Name: "people", Header: true, Columns: []Column{
		{Name: "name", Kind: Text, Role: Kept},
		{Name: "age", Kind: Numeric, Role: QuasiIdentifier, Fill: FillMedian},
		{Name: "zip", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "sex", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "diag", Kind: Categorical, Role: Sensitive},
		{Name: "ok", Kind: Categorical, Role: Label, Classes: []string{"n", "y"}},
	}}
	tab, err := Read(strings.NewReader(in), s)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

var testKey = []byte("0123456789abcdef0123")

func TestApplyEachOp(t *testing.T) {
	tab := people(t)
	cfg := Config{Transforms: []Transform{
		{Column: "name", Op: OpPseudonymize, HexChars: 8},
		{Column: "age", Op: OpBins, Edges: []float64{18, 30, 60}},
		{Column: "zip", Op: OpPrefix, Chars: 4},
		{Column: "zip", Op: OpHierarchy, Levels: 1, Parents: []map[string]string{{"1305": "130**", "1306": "130**", "1485": "148**"}, {"130**": "*", "148**": "*"}}},
		{Column: "diag", Op: OpSuppressRare, MinCount: 2},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out, steps, err := Apply(tab, cfg, testKey)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		// 17 < 18; 29 in [18,30); 30 opens [30,60); the missing age is "?" once binned, not
		// the fill; 61 >= 60.
		"age":  {"<18", "[18,30)", "[30,60)", MissingValue, "[30,60)", ">=60"},
		"zip":  {"130**", "130**", "130**", "148**", "148**", "148**"},
		"diag": {"flu", "flu", "cold", SuppressedValue, "cold", "flu"},
	}
	for col, w := range want {
		if got := out.Col(col).Str; !slices.Equal(got, w) {
			t.Errorf("%s = %q, want %q", col, got, w)
		}
	}
	if out.Col("age").Kind != Categorical || out.Col("age").Num != nil {
		t.Error("binned age is still numeric")
	}
	names := out.Col("name").Str
	if names[0] != Pseudonym(testKey, "Ann", 8) || len(names[0]) != 8 || names[0] == names[1] {
		t.Errorf("pseudonyms %q", names)
	}
	wantSteps := []StepResult{
		{Column: "name", Op: OpPseudonymize, Cells: 6, Values: 6, After: 6},
		{Column: "age", Op: OpBins, Cells: 6, Values: 5, After: 5}, // the filled age equals 30
		{Column: "zip", Op: OpPrefix, Cells: 6, Values: 4, After: 3},
		{Column: "zip", Op: OpHierarchy, Cells: 6, Values: 3, After: 2},
		{Column: "diag", Op: OpSuppressRare, Cells: 1, Values: 3, After: 3},
	}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("steps\n%v\nwant\n%v", steps, wantSteps)
	}
	// The input table is untouched.
	if tab.Col("age").Kind != Numeric || tab.Col("age").Num[3] != 30 || tab.Col("zip").Str[0] != "13053" || tab.Col("name").Str[0] != "Ann" || tab.Col("diag").Str[3] != "hiv" {
		t.Error("Apply changed its input")
	}
}

func TestApplyDropAndClamp(t *testing.T) {
	tab := people(t)
	cfg := Config{Transforms: []Transform{
		{Column: "name", Op: OpDrop},
		{Column: "age", Op: OpClamp, Min: ptr(20), Max: ptr(50)},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out, steps, err := Apply(tab, cfg, nil) // no pseudonym, no key needed
	if err != nil {
		t.Fatal(err)
	}
	if out.Col("name") != nil || len(out.Columns) != 5 {
		t.Error("name not dropped")
	}
	if got := out.Col("age").Num; !slices.Equal(got, []float64{20, 29, 30, 30, 45, 50}) {
		t.Errorf("clamped ages %v", got)
	}
	if steps[1].Cells != 2 {
		t.Errorf("clamp changed %d cells, want 2", steps[1].Cells)
	}
}

func TestPseudonym(t *testing.T) {
	// RFC 4231, test case 2.
	if got := Pseudonym([]byte("Jefe"), "what do ya want for nothing?", 64); got != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Errorf("HMAC-SHA256 = %s", got)
	}
	a := Pseudonym(testKey, "A/5 21171", 12)
	if b := Pseudonym(testKey, "A/5 21171", 12); a != b {
		t.Error("same key and value give different pseudonyms")
	}
	if b := Pseudonym([]byte("another key of 16+ bytes"), "A/5 21171", 12); a == b {
		t.Error("different keys give the same pseudonym")
	}
	if b := Pseudonym(testKey, "A/5 21172", 12); a == b {
		t.Error("different values give the same pseudonym")
	}
}

func TestApplyRefuses(t *testing.T) {
	tab := people(t)
	tests := []struct {
		name string
		step Transform
		key  []byte
		msg  string
	}{
		{"short key", Transform{Column: "name", Op: OpPseudonymize}, []byte("short"), "key of 5 bytes"},
		{"unplanned value", Transform{Column: "sex", Op: OpHierarchy, Parents: []map[string]string{{"F": "*"}}}, nil, `value "M" (line 3) has no parent at level 1`},
		{"no such column", Transform{Column: "height", Op: OpDrop}, nil, "no such column"},
		{"label", Transform{Column: "ok", Op: OpSuppressRare, MinCount: 2}, nil, "the label cannot be transformed"},
		{"bins on categories", Transform{Column: "zip", Op: OpBins, Edges: []float64{1}}, nil, "the column is categorical"},
		{"prefix on numbers", Transform{Column: "age", Op: OpPrefix, Chars: 1}, nil, "the column is numeric"},
		{"hierarchy on text", Transform{Column: "name", Op: OpHierarchy, Parents: []map[string]string{{"Ann": "A"}}}, nil, "hierarchy needs a categorical column"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Transforms: []Transform{tc.step}}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			_, _, err := Apply(tab, cfg, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want it to say %q", err, tc.msg)
			}
		})
	}
	// Kinds follow the steps: after bins, age takes category steps; after a drop, nothing.
	cfg := Config{Transforms: []Transform{
		{Column: "age", Op: OpBins, Edges: []float64{30}},
		{Column: "age", Op: OpSuppressRare, MinCount: 2},
		{Column: "name", Op: OpDrop},
		{Column: "name", Op: OpPseudonymize},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(tab.Schema()); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "transforms[3] (pseudonymize name): the column is dropped") {
		t.Errorf("Check = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"negative k", Config{K: -1}, "k = -1"},
		{"suppression without k", Config{SuppressRows: true}, "suppress_rows needs k >= 2"},
		{"no column", Config{Transforms: []Transform{{Op: OpDrop}}}, "no column"},
		{"unknown op", Config{Transforms: []Transform{{Column: "a", Op: "mask"}}}, `unknown op "mask"`},
		{"stray parameter", Config{Transforms: []Transform{{Column: "a", Op: OpDrop, MinCount: 3}}}, "min_count is not a parameter of drop"},
		{"stray edges", Config{Transforms: []Transform{{Column: "a", Op: OpClamp, Max: ptr(1), Edges: []float64{1}}}}, "edges is not a parameter of clamp"},
		{"short pseudonym", Config{Transforms: []Transform{{Column: "a", Op: OpPseudonymize, HexChars: 4}}}, "hex_chars = 4"},
		{"no edges", Config{Transforms: []Transform{{Column: "a", Op: OpBins}}}, "no edges"},
		{"unsorted edges", Config{Transforms: []Transform{{Column: "a", Op: OpBins, Edges: []float64{30, 18}}}}, "strictly increasing"},
		{"label count", Config{Transforms: []Transform{{Column: "a", Op: OpBins, Edges: []float64{18}, Labels: []string{"young"}}}}, "1 labels for 2 bins"},
		{"repeated label", Config{Transforms: []Transform{{Column: "a", Op: OpBins, Edges: []float64{18}, Labels: []string{"x", "x"}}}}, `label "x" is empty or repeated`},
		{"prefix of nothing", Config{Transforms: []Transform{{Column: "a", Op: OpPrefix}}}, "chars = 0"},
		{"no parents", Config{Transforms: []Transform{{Column: "a", Op: OpHierarchy}}}, "no parents"},
		{"too many levels", Config{Transforms: []Transform{{Column: "a", Op: OpHierarchy, Levels: 2, Parents: []map[string]string{{"x": "y"}}}}}, "levels = 2, the hierarchy has 1"},
		{"empty parent", Config{Transforms: []Transform{{Column: "a", Op: OpHierarchy, Parents: []map[string]string{{"x": ""}}}}}, "values cannot be empty"},
		{"min count 1", Config{Transforms: []Transform{{Column: "a", Op: OpSuppressRare, MinCount: 1}}}, "min_count = 1"},
		{"clamp nothing", Config{Transforms: []Transform{{Column: "a", Op: OpClamp}}}, "neither min nor max"},
		{"clamp inverted", Config{Transforms: []Transform{{Column: "a", Op: OpClamp, Min: ptr(3), Max: ptr(1)}}}, "min 3 > max 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want ErrInvalidConfig saying %q", err, tc.msg)
			}
		})
	}
}

func TestConfigDefaultsAndKey(t *testing.T) {
	cfg := Config{Transforms: []Transform{
		{Column: "a", Op: OpPseudonymize},
		{Column: "b", Op: OpHierarchy, Parents: []map[string]string{{"x": "y"}, {"y": "*"}}},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Transforms[0].HexChars != DefaultHexChars || cfg.Transforms[1].Levels != 2 || cfg.KeyEnv != DefaultKeyEnv || !cfg.NeedsKey() {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	cfg.KeyEnv = "TABULAR_TEST_KEY"
	t.Setenv("TABULAR_TEST_KEY", "")
	if _, err := cfg.Key(); err == nil || !strings.Contains(err.Error(), "TABULAR_TEST_KEY is not set") {
		t.Errorf("unset key: %v", err)
	}
	t.Setenv("TABULAR_TEST_KEY", "too short")
	if _, err := cfg.Key(); err == nil || !strings.Contains(err.Error(), "has 9 bytes") {
		t.Errorf("short key: %v", err)
	}
	t.Setenv("TABULAR_TEST_KEY", string(testKey))
	if k, err := cfg.Key(); err != nil || string(k) != string(testKey) {
		t.Errorf("Key() = %q, %v", k, err)
	}
}

// TestConfigFromJobFile decodes the section as a job file would hold it, in YAML and JSON.
func TestConfigFromJobFile(t *testing.T) {
	const doc = `
k: 5
suppress_rows: true
key_env: MY_KEY
transforms:
  - {column: Name, op: drop}
  - {column: Ticket, op: pseudonymize, hex_chars: 12}
  - {column: Age, op: bins, edges: [18, 30, 45, 60], labels: [0-17, 18-29, 30-44, 45-59, 60+]}
  - {column: Parch, op: clamp, max: 2}
  - {column: Cabin, op: prefix, chars: 1}
  - column: Cabin
    op: hierarchy
    levels: 1
    parents:
      - {A: A-C, B: A-C, C: A-C}
      - {A-C: "*"}
  - {column: Embarked, op: suppress-rare, min_count: 10}
`
	var fromYAML Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := fromYAML.Validate(); err != nil {
		t.Fatal(err)
	}
	if fromYAML.K != 5 || !fromYAML.SuppressRows || fromYAML.KeyEnv != "MY_KEY" || len(fromYAML.Transforms) != 7 ||
		*fromYAML.Transforms[3].Max != 2 || fromYAML.Transforms[2].Labels[4] != "60+" || fromYAML.Transforms[5].Parents[1]["A-C"] != "*" {
		t.Errorf("decoded %+v", fromYAML)
	}
	js, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON Config
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	js2, _ := json.Marshal(fromJSON)
	if string(js) != string(js2) {
		t.Errorf("JSON round trip differs:\n%s\n%s", js, js2)
	}
	if !strings.Contains(string(js), `"op":"suppress-rare","min_count":10`) {
		t.Errorf("JSON form: %s", js)
	}
}
