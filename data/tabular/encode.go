package tabular

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/troupe-ml/troupe/data"
)

// Encoder turns rows into model inputs. It is fitted on the training rows only, so nothing
// about the test rows (their mean, a category only they hold) leaks into the inputs.
//
// Numeric feature and quasi-identifier columns become one standardized value each,
// (v - mean) / std; categorical ones become one-hot blocks over the values seen in training,
// sorted, with unseen values all zeros. Text, kept and sensitive columns are not inputs.
type Encoder struct {
	// Features names each input value: the column, or column=value for a one-hot slot.
	Features []string
	// Classes are the label's classes; label i is Classes[i].
	Classes []string
	label   string
	cols    []encodedColumn
}

type encodedColumn struct {
	name      string
	kind      Kind
	offset    int
	mean, std float64        // numeric
	vocab     map[string]int // categorical: value -> slot
}

// ErrSchemaMismatch is returned when a table's columns differ from the ones an encoder was
// fitted on.
var ErrSchemaMismatch = errors.New("tabular: table does not match the encoder")

// Fit builds an encoder from the given rows of t (normally the training rows). t needs a
// label column and at least one input column.
func Fit(t *Table, rows []int) (*Encoder, error) {
	lab := t.label()
	if lab == nil {
		return nil, errors.New("tabular: the table has no label column")
	}
	if len(rows) == 0 {
		return nil, errors.New("tabular: no rows to fit the encoder on")
	}
	for k, r := range rows {
		if r < 0 || r >= t.Len() {
			return nil, fmt.Errorf("tabular: rows[%d] = %d, table has %d rows", k, r, t.Len())
		}
	}
	e := &Encoder{Classes: slices.Clone(lab.Classes), label: lab.Name}
	for _, s := range t.Columns {
		if s.Role != Feature && s.Role != QuasiIdentifier {
			continue
		}
		c := encodedColumn{name: s.Name, kind: s.Kind, offset: len(e.Features)}
		switch s.Kind {
		case Numeric:
			var sum, sq float64
			for _, r := range rows {
				sum += s.Num[r]
			}
			c.mean = sum / float64(len(rows))
			for _, r := range rows {
				d := s.Num[r] - c.mean
				sq += d * d
			}
			c.std = math.Sqrt(sq / float64(len(rows)))
			if c.std == 0 {
				c.std = 1 // a constant column encodes as zeros rather than dividing by zero
			}
			e.Features = append(e.Features, s.Name)
		case Categorical:
			var values []string
			seen := map[string]bool{}
			for _, r := range rows {
				if v := s.Str[r]; !seen[v] {
					seen[v] = true
					values = append(values, v)
				}
			}
			slices.Sort(values)
			c.vocab = make(map[string]int, len(values))
			for i, v := range values {
				c.vocab[v] = i
				e.Features = append(e.Features, s.Name+"="+v)
			}
		default:
			return nil, fmt.Errorf("tabular: column %s: a %s column cannot be an input", s.Name, s.Kind)
		}
		e.cols = append(e.cols, c)
	}
	if len(e.Features) == 0 {
		return nil, errors.New("tabular: no feature or quasi-identifier columns to encode")
	}
	return e, nil
}

// Dim is the number of values per encoded row.
func (e *Encoder) Dim() int { return len(e.Features) }

// NumClasses is the number of label classes.
func (e *Encoder) NumClasses() int { return len(e.Classes) }

// Encode turns the given rows of t into a Matrix. t must have the columns the encoder was
// fitted on, with the same kinds and label classes.
func (e *Encoder) Encode(t *Table, rows []int) (*Matrix, error) {
	lab := t.Col(e.label)
	if lab == nil || lab.Role != Label || !slices.Equal(lab.Classes, e.Classes) {
		return nil, fmt.Errorf("%w: label %s", ErrSchemaMismatch, e.label)
	}
	src := make([]*Series, len(e.cols))
	for i, c := range e.cols {
		if src[i] = t.Col(c.name); src[i] == nil || src[i].Kind != c.kind {
			return nil, fmt.Errorf("%w: column %s", ErrSchemaMismatch, c.name)
		}
	}
	classOf := make(map[string]int32, len(e.Classes))
	for i, c := range e.Classes {
		classOf[c] = int32(i)
	}
	dim := e.Dim()
	m := &Matrix{Name: t.Name, Dim: dim, NumClasses: len(e.Classes), Features: e.Features,
		X: make([]float32, len(rows)*dim), Labels: make([]int32, len(rows))}
	for k, r := range rows {
		if r < 0 || r >= t.Len() {
			return nil, fmt.Errorf("tabular: rows[%d] = %d, table has %d rows", k, r, t.Len())
		}
		x := m.X[k*dim : (k+1)*dim]
		for i, c := range e.cols {
			s := src[i]
			if c.kind == Numeric {
				x[c.offset] = float32((s.Num[r] - c.mean) / c.std)
			} else if slot, ok := c.vocab[s.Str[r]]; ok {
				x[c.offset+slot] = 1
			}
		}
		cl, ok := classOf[lab.Str[r]]
		if !ok {
			return nil, fmt.Errorf("%w: line %d: label %s is not a class", ErrSchemaMismatch, t.Line(r), quote(lab.Str[r]))
		}
		m.Labels[k] = cl
	}
	return m, nil
}

// Matrix is an encoded table: row i is X[i*Dim : (i+1)*Dim] with label Labels[i]. It is
// read-only once built, so any number of goroutines may Gather from it.
type Matrix struct {
	Name       string
	Dim        int
	NumClasses int
	Features   []string
	X          []float32
	Labels     []int32
}

// Len is the number of rows.
func (m *Matrix) Len() int { return len(m.Labels) }

// SampleSize is the number of values per row, Dim: the name a training loop's data sets share.
func (m *Matrix) SampleSize() int { return m.Dim }

// Gather copies the rows idx into caller-owned buffers: row idx[k] into
// x[k*Dim : (k+1)*Dim] and its label into labels[k], like data.Dataset.Gather. It needs
// len(x) == len(idx)*Dim and len(labels) == len(idx), checks every index before writing, and
// allocates nothing. Errors wrap data.ErrBufferLength and data.ErrIndexOutOfRange.
func (m *Matrix) Gather(idx []int32, x []float32, labels []int32) error {
	if len(x) != len(idx)*m.Dim {
		return fmt.Errorf("%w: x holds %d values, want %d rows x %d = %d", data.ErrBufferLength, len(x), len(idx), m.Dim, len(idx)*m.Dim)
	}
	if len(labels) != len(idx) {
		return fmt.Errorf("%w: labels holds %d values, want %d", data.ErrBufferLength, len(labels), len(idx))
	}
	n := m.Len()
	if len(m.X) != n*m.Dim {
		return fmt.Errorf("tabular: %s: %d values for %d rows of %d", m.Name, len(m.X), n, m.Dim)
	}
	for k, i := range idx {
		if i < 0 || int(i) >= n {
			return fmt.Errorf("%w: idx[%d] = %d, %s has %d rows", data.ErrIndexOutOfRange, k, i, m.Name, n)
		}
	}
	for k, i := range idx {
		copy(x[k*m.Dim:(k+1)*m.Dim], m.X[int(i)*m.Dim:(int(i)+1)*m.Dim])
		labels[k] = m.Labels[i]
	}
	return nil
}

// Split shuffles the row indices 0..n-1 with a generator seeded by seed and cuts off
// round(n*testFraction) of them as the test rows; both parts come back in ascending order.
// The same n, fraction and seed give the same split on every machine.
func Split(n int, testFraction float64, seed uint64) (train, test []int, err error) {
	if !(testFraction > 0 && testFraction < 1) {
		return nil, nil, fmt.Errorf("tabular: test fraction %g, want in (0, 1)", testFraction)
	}
	nTest := int(math.Round(float64(n) * testFraction))
	if nTest < 1 || nTest >= n {
		return nil, nil, fmt.Errorf("tabular: %d rows cannot be split %g for testing", n, testFraction)
	}
	rng := rand.New(rand.NewPCG(seed, 0x74616273706c6974)) // second word: "tabsplit"
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	test, train = perm[:nTest], perm[nTest:]
	slices.Sort(test)
	slices.Sort(train)
	return train, test, nil
}

// EncodeSplit splits t by seed, fits an encoder on the training rows and encodes both parts:
// the usual way to turn a table into a training and a test set.
func EncodeSplit(t *Table, testFraction float64, seed uint64) (train, test *Matrix, enc *Encoder, err error) {
	trainRows, testRows, err := Split(t.Len(), testFraction, seed)
	if err != nil {
		return nil, nil, nil, err
	}
	if enc, err = Fit(t, trainRows); err != nil {
		return nil, nil, nil, err
	}
	if train, err = enc.Encode(t, trainRows); err != nil {
		return nil, nil, nil, err
	}
	if test, err = enc.Encode(t, testRows); err != nil {
		return nil, nil, nil, err
	}
	return train, test, enc, nil
}
