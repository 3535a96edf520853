package compute

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// torchCNN has unequal sizes wherever two axes could be confused: channels 2 vs filters 3,
// height 9 vs width 7, dense inputs 24 vs outputs 5, so a transposed layout cannot match.
func torchCNN() ModelSpec {
	return ModelSpec{
		Input: []int{2, 9, 7},
		Layers: []LayerSpec{
			{Type: LayerConv2D, Filters: 3, Kernel: 3, Stride: 2, Padding: 1}, // 0 -> [3, 5, 4]
			{Type: LayerReLU},                          // 1
			{Type: LayerMaxPool2D, Size: 2, Stride: 1}, // 2 -> [3, 4, 3]
			{Type: LayerConv2D, Filters: 4, Kernel: 2}, // 3 -> [4, 3, 2]
			{Type: LayerTanh},                          // 4
			{Type: LayerFlatten},                       // 5 -> [24]
			{Type: LayerDropout, Rate: 0.3},            // 6
			{Type: LayerDense, Units: 5},               // 7
			{Type: LayerGELU},                          // 8
			{Type: LayerDense, Units: 3},               // 9
		},
	}
}

// randomize gives every parameter, biases included, a random value through SetTensors.
func randomize(t *testing.T, m *Model, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0))
	ts := m.Tensors()
	for _, x := range ts {
		for i := range x.Data {
			x.Data[i] = float32(rng.NormFloat64() * 0.5)
		}
	}
	if err := m.SetTensors(ts); err != nil {
		t.Fatal(err)
	}
}

func TestTensorsHaveSequentialNamesAndTorchShapes(t *testing.T) {
	m, err := NewModel(torchCNN(), 1)
	if err != nil {
		t.Fatal(err)
	}
	type nameShape struct {
		name  string
		shape []int
	}
	want := []nameShape{
		{"0.weight", []int{3, 2, 3, 3}}, {"0.bias", []int{3}},
		{"3.weight", []int{4, 3, 2, 2}}, {"3.bias", []int{4}},
		{"7.weight", []int{5, 24}}, {"7.bias", []int{5}},
		{"9.weight", []int{3, 5}}, {"9.bias", []int{3}},
	}
	ts := m.Tensors()
	if len(ts) != len(want) {
		t.Fatalf("%d tensors, want %d", len(ts), len(want))
	}
	var flat []float32
	for i, w := range want {
		if ts[i].Name != w.name || !slices.Equal(ts[i].Shape, w.shape) || len(ts[i].Data) != product(w.shape) {
			t.Errorf("tensor %d: %q %v (%d values), want %q %v", i, ts[i].Name, ts[i].Shape, len(ts[i].Data), w.name, w.shape)
		}
		flat = append(flat, ts[i].Data...)
	}
	if !slices.Equal(flat, m.Params()) {
		t.Error("the tensors in order are not the flat parameter vector")
	}
	ts[0].Data[0]++
	if m.Params()[0] == ts[0].Data[0] {
		t.Error("Tensors returned a view into the parameters, not a copy")
	}
}

// torchForward computes one sample's output from exported tensors with PyTorch's definitions
// (Linear: y = W x + b, W [out, in]; Conv2d: cross-correlation over [C, H, W] with W
// [out, in, kh, kw]; MaxPool2d; GELU(approximate="tanh"); Dropout off in eval), in float64
// and by direct indexing, sharing no code with the layers.
func torchForward(t *testing.T, spec ModelSpec, params map[string]NamedTensor, x []float32) []float64 {
	t.Helper()
	shape := slices.Clone(spec.Input)
	v := make([]float64, len(x))
	for i, f := range x {
		v[i] = float64(f)
	}
	param := func(name string) []float32 {
		p, ok := params[name]
		if !ok {
			t.Fatalf("no tensor %q", name)
		}
		return p.Data
	}
	for i, ls := range spec.Layers {
		prefix := strconv.Itoa(i) + "."
		switch ls.Type {
		case LayerDense:
			w, b := param(prefix+"weight"), param(prefix+"bias")
			in, out := shape[0], ls.Units
			y := make([]float64, out)
			for o := range out {
				s := float64(b[o])
				for j := range in {
					s += float64(w[o*in+j]) * v[j]
				}
				y[o] = s
			}
			v, shape = y, []int{out}
		case LayerConv2D:
			w, b := param(prefix+"weight"), param(prefix+"bias")
			c, h, wd := shape[0], shape[1], shape[2]
			k, s, p := ls.Kernel, max(ls.Stride, 1), ls.Padding
			oh, ow := (h+2*p-k)/s+1, (wd+2*p-k)/s+1
			y := make([]float64, ls.Filters*oh*ow)
			for f := range ls.Filters {
				for oy := range oh {
					for ox := range ow {
						sum := float64(b[f])
						for ci := range c {
							for kh := range k {
								for kw := range k {
									iy, ix := oy*s-p+kh, ox*s-p+kw
									if iy < 0 || iy >= h || ix < 0 || ix >= wd {
										continue
									}
									sum += float64(w[((f*c+ci)*k+kh)*k+kw]) * v[(ci*h+iy)*wd+ix]
								}
							}
						}
						y[(f*oh+oy)*ow+ox] = sum
					}
				}
			}
			v, shape = y, []int{ls.Filters, oh, ow}
		case LayerMaxPool2D:
			c, h, wd := shape[0], shape[1], shape[2]
			k, s := ls.Size, ls.Stride
			if s == 0 {
				s = k
			}
			oh, ow := (h-k)/s+1, (wd-k)/s+1
			y := make([]float64, c*oh*ow)
			for ci := range c {
				for oy := range oh {
					for ox := range ow {
						best := math.Inf(-1)
						for ky := range k {
							for kx := range k {
								best = math.Max(best, v[(ci*h+oy*s+ky)*wd+ox*s+kx])
							}
						}
						y[(ci*oh+oy)*ow+ox] = best
					}
				}
			}
			v, shape = y, []int{c, oh, ow}
		case LayerFlatten:
			shape = []int{product(shape)}
		case LayerReLU:
			for j := range v {
				v[j] = math.Max(v[j], 0)
			}
		case LayerTanh:
			for j := range v {
				v[j] = math.Tanh(v[j])
			}
		case LayerGELU:
			for j, a := range v {
				v[j] = 0.5 * a * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(a+0.044715*a*a*a)))
			}
		case LayerDropout:
		default:
			t.Fatalf("layer %d: no reference for %q", i, ls.Type)
		}
	}
	return v
}

// TestExportedTensorsComputeTheModelInTorchSemantics proves the layouts: outputs computed
// by hand from the exported tensors, as PyTorch defines its layers, match the model's own.
func TestExportedTensorsComputeTheModelInTorchSemantics(t *testing.T) {
	mlp := MLP(12, []int{7}, 4)
	mlp.Layers = slices.Insert(mlp.Layers, 2, LayerSpec{Type: LayerDropout, Rate: 0.5}, LayerSpec{Type: LayerDense, Units: 6}, LayerSpec{Type: LayerTanh})
	for _, tc := range []struct {
		name string
		spec ModelSpec
	}{{"cnn", torchCNN()}, {"mlp", mlp}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewModel(tc.spec, 3)
			if err != nil {
				t.Fatal(err)
			}
			randomize(t, m, 11)
			params := map[string]NamedTensor{}
			for _, x := range m.Tensors() {
				params[x.Name] = x
			}
			const n = 5
			rng := rand.New(rand.NewPCG(5, 5))
			x := make([]float32, n*m.InputSize())
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			got := m.Predict(x, n)
			worst := 0.0
			for s := range n {
				want := torchForward(t, m.Spec(), params, x[s*m.InputSize():(s+1)*m.InputSize()])
				row := got.Row(s)
				if len(want) != len(row) {
					t.Fatalf("reference has %d outputs, the model %d", len(want), len(row))
				}
				for j := range want {
					d := math.Abs(float64(row[j]) - want[j])
					worst = max(worst, d/(1+math.Abs(want[j])))
				}
			}
			if worst > 1e-5 {
				t.Fatalf("model and torch-semantics reference differ by %.3g (relative)", worst)
			}
			t.Logf("largest relative difference %.3g over %d samples", worst, n)
		})
	}
}

func TestSetTensorsRoundTripsAndRejectsMismatches(t *testing.T) {
	src, err := NewModel(torchCNN(), 1)
	if err != nil {
		t.Fatal(err)
	}
	randomize(t, src, 2)
	dst, err := NewModel(torchCNN(), 9)
	if err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(dst.Params())
	without := func(name string) []NamedTensor {
		return slices.DeleteFunc(src.Tensors(), func(x NamedTensor) bool { return x.Name == name })
	}
	reshaped := func(name string, shape []int, n int) []NamedTensor {
		ts := src.Tensors()
		for i := range ts {
			if ts[i].Name == name {
				ts[i].Shape, ts[i].Data = shape, make([]float32, n)
			}
		}
		return ts
	}
	for _, tc := range []struct {
		name    string
		tensors []NamedTensor
		want    string
	}{
		{"missing", without("7.bias"), `"7.bias" (shape [5]) is missing`},
		{"extra", append(src.Tensors(), NamedTensor{Name: "1.weight", Shape: []int{1}, Data: []float32{0}}), `"1.weight" is not a parameter`},
		{"troupe name", append(without("0.weight"), NamedTensor{Name: "layers.0.weight", Shape: []int{3, 2, 3, 3}, Data: make([]float32, 54)}), `"0.weight" (shape [3 2 3 3]) is missing`},
		{"transposed", reshaped("7.weight", []int{24, 5}, 120), `"7.weight" has shape [24 5], the model needs [5 24]`},
		{"short data", reshaped("9.bias", []int{3}, 2), `"9.bias" holds 2 values`},
		{"twice", append(src.Tensors(), src.Tensors()[0]), `"0.weight" is given twice`},
	} {
		err := dst.SetTensors(tc.tensors)
		if !errors.Is(err, ErrTensorMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrTensorMismatch mentioning %s", tc.name, err, tc.want)
		}
		if !slices.Equal(dst.Params(), before) {
			t.Fatalf("%s: a rejected SetTensors changed the parameters", tc.name)
		}
	}
	shuffled := src.Tensors()
	slices.Reverse(shuffled)
	if err := dst.SetTensors(shuffled); err != nil {
		t.Fatal(err)
	}
	for i, v := range src.Params() {
		if math.Float32bits(dst.Params()[i]) != math.Float32bits(v) {
			t.Fatalf("parameter %d: %v after SetTensors, want %v", i, dst.Params()[i], v)
		}
	}
}
