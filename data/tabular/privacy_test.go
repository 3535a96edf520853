package tabular

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestMeasureByHand(t *testing.T) {
	tab := people(t)
	raw, err := Measure(tab, PrivacyOptions{K: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Quasi-identifiers age, zip, sex: all six rows differ, so each is its own class.
	if raw.K != 1 || raw.L != 1 || raw.Classes != 6 || raw.ClassesBelowK != 6 || len(raw.RowsBelowK) != 6 || raw.Sensitive != "diag" {
		t.Errorf("raw: %+v", raw)
	}

	cfg := Config{K: 2, SuppressRows: true, Transforms: []Transform{
		{Column: "age", Op: OpBins, Edges: []float64{30}},
		{Column: "zip", Op: OpPrefix, Chars: 3},
		{Column: "sex", Op: OpHierarchy, Parents: []map[string]string{{"F": "*", "M": "*"}}},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gen, _, err := Apply(tab, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Rows become (<30,130,*) x2 with diag flu, flu; (>=30,130,*) with cold; (?,148,*) with hiv;
	// (>=30,148,*) x2 with cold, flu.
	r, err := Measure(gen, PrivacyOptions{K: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.K != 1 || r.L != 1 || r.Classes != 4 || r.ClassesBelowK != 2 || !slices.Equal(r.RowsBelowK, []int{2, 3}) {
		t.Errorf("generalized: %+v", r)
	}
	wantSmallest := []Class{
		{Values: []string{">=30", "130", "*"}, Size: 1, Distinct: 1},
		{Values: []string{"?", "148", "*"}, Size: 1, Distinct: 1},
		{Values: []string{"<30", "130", "*"}, Size: 2, Distinct: 1},
		{Values: []string{">=30", "148", "*"}, Size: 2, Distinct: 2},
	}
	if fmt.Sprint(r.Smallest) != fmt.Sprint(wantSmallest) {
		t.Errorf("smallest classes %v, want %v", r.Smallest, wantSmallest)
	}

	// Over the label instead: ok is y, n in the first class and n, y... counted by hand below.
	byLabel, err := Measure(gen, PrivacyOptions{Sensitive: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	// Labels per class: (<30,130) y,n -> 2; (>=30,130) y; (?,148) n; (>=30,148) y,n -> 2.
	if byLabel.L != 1 || byLabel.Smallest[2].Distinct != 2 || byLabel.Smallest[3].Distinct != 2 {
		t.Errorf("l over the label: %+v", byLabel)
	}

	anon, rep, err := Anonymize(tab, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Suppressing the two singleton classes leaves two classes of two: k = 2, and the first
	// holds flu twice, so l = 1.
	if anon.Len() != 4 || rep.K != 2 || rep.L != 1 || rep.Classes != 2 || rep.SuppressedRows != 2 ||
		!slices.Equal(rep.RowsBelowK, []int{2, 3}) || len(rep.Steps) != 3 {
		t.Errorf("anonymized: %d rows, %+v", anon.Len(), rep)
	}
	if got := []int{anon.Line(0), anon.Line(1), anon.Line(2), anon.Line(3)}; !slices.Equal(got, []int{2, 3, 6, 7}) {
		t.Errorf("kept lines %v, want [2 3 6 7]", got)
	}

	text := rep.String()
	for _, want := range []string{"rows 4, quasi-identifiers age, zip, sex", "equivalence classes 2, k = 2, distinct l = 1 over diag",
		"target k 2: 2 classes, 2 rows below it; 2 rows suppressed", "bins age: 6 cells changed", "2 rows, 1 distinct: <30, 130, *"} {
		if !strings.Contains(text, want) {
			t.Errorf("report text lacks %q:\n%s", want, text)
		}
	}
	js, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back["k"] != 2.0 || back["l"] != 1.0 || back["suppressed_rows"] != 2.0 || back["sensitive"] != "diag" {
		t.Errorf("report JSON: %s", js)
	}
}

func TestMeasureOptions(t *testing.T) {
	tab := people(t)
	for _, tc := range []struct {
		o   PrivacyOptions
		msg string
	}{
		{PrivacyOptions{QuasiIdentifiers: []string{"height"}}, `quasi-identifier "height": no such column`},
		{PrivacyOptions{Sensitive: "wealth"}, `sensitive column "wealth": no such column`},
		{PrivacyOptions{K: -2}, "target k = -2"},
		{PrivacyOptions{QuasiIdentifiers: []string{}}, "no quasi-identifier columns"},
	} {
		if _, err := Measure(tab, tc.o); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Measure(%+v) = %v, want %q", tc.o, err, tc.msg)
		}
	}
	// One column as quasi-identifier: sex F x4, M x2, so k = 2; the men have flu and hiv.
	r, err := Measure(tab, PrivacyOptions{QuasiIdentifiers: []string{"sex"}})
	if err != nil || r.K != 2 || r.L != 2 || r.Classes != 2 {
		t.Errorf("by sex: %+v, %v", r, err)
	}
}

// TestMeasureMatchesBruteForce compares Measure with a direct count on random tables: for
// every row, the rows sharing its quasi-identifiers and their distinct sensitive values.
func TestMeasureMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 1 + rng.IntN(40)
		var b strings.Builder
		b.WriteString("a,b,s,y\n")
		for range n {
			fmt.Fprintf(&b, "%d,%c,%d,%d\n", rng.IntN(3), 'p'+rune(rng.IntN(2+trial%3)), rng.IntN(4), rng.IntN(2))
		}
		s := Schema{Header: true, Columns: []Column{
			{Name: "a", Kind: Numeric, Role: QuasiIdentifier},
			{Name: "b", Kind: Categorical, Role: QuasiIdentifier},
			{Name: "s", Kind: Categorical, Role: Sensitive},
			{Name: "y", Kind: Categorical, Role: Label, Classes: []string{"0", "1"}},
		}}
		tab, err := Read(strings.NewReader(b.String()), s)
		if err != nil {
			t.Fatal(err)
		}
		target := 1 + rng.IntN(5)
		r, err := Measure(tab, PrivacyOptions{K: target})
		if err != nil {
			t.Fatal(err)
		}
		a, bb, sv := tab.Col("a"), tab.Col("b"), tab.Col("s")
		wantK, wantL := n, 99
		var below []int
		for i := range n {
			size, vals := 0, map[string]bool{}
			for j := range n {
				if a.Num[i] == a.Num[j] && bb.Str[i] == bb.Str[j] {
					size++
					vals[sv.Str[j]] = true
				}
			}
			wantK, wantL = min(wantK, size), min(wantL, len(vals))
			if size < target {
				below = append(below, i)
			}
		}
		if r.K != wantK || r.L != wantL || !slices.Equal(r.RowsBelowK, below) && len(below)+len(r.RowsBelowK) > 0 {
			t.Fatalf("trial %d: k %d l %d below %v, brute force k %d l %d below %v\n%s", trial, r.K, r.L, r.RowsBelowK, wantK, wantL, below, b.String())
		}
		kept, dropped, err := SuppressBelowK(tab, nil, target)
		if err != nil {
			t.Fatal(err)
		}
		if dropped != len(below) || kept.Len() != n-len(below) {
			t.Fatalf("trial %d: suppressed %d, kept %d, want %d and %d", trial, dropped, kept.Len(), len(below), n-len(below))
		}
		if kept.Len() > 0 {
			if rk, _ := Measure(kept, PrivacyOptions{}); rk.K < target {
				t.Fatalf("trial %d: after suppression k = %d < %d", trial, rk.K, target)
			}
		}
	}
}
