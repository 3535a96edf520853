package compute

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	image := []int{1, 28, 28}
	cases := []struct {
		name string
		spec ModelSpec
		want string // substring of the error; "" for a valid spec
	}{
		{"mlp", MLP(784, []int{512, 512}, 10), ""},
		{"cnn", smallCNN(), ""},
		{"mse", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "dense", Units: 1}}, Loss: "mse"}, ""},
		{"no input", ModelSpec{Layers: []LayerSpec{{Type: "dense", Units: 2}}}, "input [] must be"},
		{"bad input dim", ModelSpec{Input: []int{1, 0, 3}, Layers: []LayerSpec{{Type: "flatten"}}}, "dimension 1"},
		{"no layers", ModelSpec{Input: []int{3}}, "layers must not be empty"},
		{"bad loss", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "dense", Units: 2}}, Loss: "hinge"}, `loss "hinge"`},
		{"unknown type", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "lstm"}}}, `layer 0 (lstm): type "lstm"`},
		{"missing type", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{}}}, "layer 0 (no type): type must be set"},
		{"dense units", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "dense"}}}, "layer 0 (dense): units must be"},
		{"dense on image", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "dense", Units: 2}}}, "add a flatten layer"},
		{"conv on flat", ModelSpec{Input: []int{9}, Layers: []LayerSpec{{Type: "conv2d", Filters: 1, Kernel: 1}}}, "not [channels, height, width]"},
		{"conv kernel", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "flatten"}, {Type: "dense", Units: 2}, {Type: "relu"}, {Type: "conv2d", Filters: 2}}}, "layer 3 (conv2d): input shape"},
		{"conv kernel zero", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "conv2d", Filters: 2}}}, "layer 0 (conv2d): kernel must be > 0"},
		{"conv kernel too big", ModelSpec{Input: []int{1, 4, 4}, Layers: []LayerSpec{{Type: "conv2d", Filters: 2, Kernel: 7, Padding: 1}}}, "does not fit the padded input 6x6"},
		{"conv filters", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "conv2d", Kernel: 3}}}, "filters must be"},
		{"conv stride", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "conv2d", Filters: 1, Kernel: 3, Stride: -1}}}, "stride must be > 0"},
		{"conv padding", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "conv2d", Filters: 1, Kernel: 3, Padding: 3}}}, "padding must be < kernel"},
		{"conv init", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "conv2d", Filters: 1, Kernel: 3, Init: "zeros"}}}, `init "zeros"`},
		{"pool size", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "maxpool2d"}}}, "layer 0 (maxpool2d): size must be"},
		{"pool too big", ModelSpec{Input: []int{1, 2, 2}, Layers: []LayerSpec{{Type: "maxpool2d", Size: 3}}}, "size must be > 0 and fit"},
		{"dropout rate", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "dropout", Rate: 1}, {Type: "dense", Units: 2}}}, "rate must be in [0, 1)"},
		{"field on wrong layer", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "relu", Units: 4}}}, "layer 0 (relu): units does not apply"},
		{"init on pool", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "maxpool2d", Size: 2, Init: "he"}}}, "init does not apply"},
		{"image output", ModelSpec{Input: image, Layers: []LayerSpec{{Type: "relu"}}}, "output shape [1 28 28] must be flat"},
		{"one class", ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "dense", Units: 1}}}, "at least 2 outputs"},
		{"too big", ModelSpec{Input: []int{1 << 20}, Layers: []LayerSpec{{Type: "dense", Units: 1 << 12}}}, "more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			if _, err := NewModel(tc.spec, 1); !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("NewModel: error %v, want ErrInvalidSpec", err)
			}
		})
	}
}

func TestShapesAndParams(t *testing.T) {
	cases := []struct {
		spec   ModelSpec
		params int
		out    int
	}{
		{MLP(784, []int{512, 512}, 10), 784*512 + 512 + 512*512 + 512 + 512*10 + 10, 10},
		// 28x28 -conv5 pad2-> 32x28x28 -pool2-> 32x14x14 -conv5 pad2-> 64x14x14 -pool2-> 64x7x7
		{smallCNN(), 32*25 + 32 + 64*32*25 + 64 + 64*7*7*128 + 128 + 128*10 + 10, 10},
		// 1x7x7 -conv3 stride2 pad1-> 2x4x4 -pool3 stride1-> 2x2x2 = 8
		{ModelSpec{Input: []int{1, 7, 7}, Layers: []LayerSpec{{Type: "conv2d", Filters: 2, Kernel: 3, Stride: 2, Padding: 1}, {Type: "maxpool2d", Size: 3, Stride: 1}, {Type: "flatten"}}, Loss: "mse"}, 2*9 + 2, 8},
	}
	for i, tc := range cases {
		m, err := NewModel(tc.spec, 1)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if m.NumParams() != tc.params || m.OutputSize() != tc.out {
			t.Errorf("case %d: %d params, %d outputs; want %d, %d", i, m.NumParams(), m.OutputSize(), tc.params, tc.out)
		}
		n, _ := tc.spec.NumParams()
		if n != tc.params {
			t.Errorf("case %d: ModelSpec.NumParams = %d, want %d", i, n, tc.params)
		}
		var viewTotal int
		for _, v := range m.ParamViews() {
			if v.Offset != viewTotal {
				t.Errorf("case %d: view %s at %d, want %d", i, v.Name, v.Offset, viewTotal)
			}
			viewTotal += product(v.Shape)
		}
		if viewTotal != tc.params {
			t.Errorf("case %d: views cover %d params, want %d", i, viewTotal, tc.params)
		}
	}
}

func TestSpecDefaultsAndJSON(t *testing.T) {
	spec := ModelSpec{Input: []int{1, 8, 8}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 2, Kernel: 3}, {Type: "maxpool2d", Size: 2}, {Type: "flatten"}, {Type: "dense", Units: 3},
	}}
	m, err := NewModel(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Spec()
	if got.Loss != LossSoftmaxCrossEntropy || got.Layers[0].Stride != 1 || got.Layers[0].Init != InitHe || got.Layers[1].Stride != 2 {
		t.Errorf("defaults not filled in: %+v", got)
	}
	if spec.Loss != "" || spec.Layers[0].Stride != 0 {
		t.Errorf("NewModel changed its argument: %+v", spec)
	}
	got.Layers[0].Filters = 99
	if m.Spec().Layers[0].Filters != 2 {
		t.Errorf("Spec returned a view of the model's own spec")
	}
	data, err := json.Marshal(spec.Layers[1])
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"type":"maxpool2d","size":2}` {
		t.Errorf("json: %s", data)
	}
	// The normalized spec builds the same model.
	m2, err := NewModel(m.Spec(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(m.Params(), m2.Params()) {
		t.Errorf("a model rebuilt from Spec() differs")
	}
}

// FuzzValidate checks that no spec makes Validate or NewModel panic, and
// that every spec Validate accepts builds a model whose Predict has the
// promised shape.
func FuzzValidate(f *testing.F) {
	f.Add(uint8(1), uint8(8), uint8(8), []byte{5, 2, 3, 1, 1, 6, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 3, 0, 0, 0})
	f.Add(uint8(0), uint8(0), uint8(12), []byte{0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0})
	types := []string{LayerDense, LayerReLU, LayerGELU, LayerTanh, LayerDropout, LayerConv2D, LayerMaxPool2D, LayerFlatten, "bogus"}
	f.Fuzz(func(t *testing.T, c, h, w uint8, layers []byte) {
		spec := ModelSpec{Input: []int{int(c), int(h), int(w)}}
		if c == 0 {
			spec.Input = []int{int(w)}
		}
		for i := 0; i+5 <= len(layers) && len(spec.Layers) < 8; i += 5 {
			l := layers[i : i+5]
			spec.Layers = append(spec.Layers, LayerSpec{
				Type: types[int(l[0])%len(types)], Units: int(l[1]), Filters: int(l[1]) % 8,
				Kernel: int(l[2]) % 8, Stride: int(l[3]) % 4, Padding: int(l[4]) % 4, Size: int(l[2]) % 4,
				Rate: float64(l[4]%4) / 4,
			})
		}
		n, err := spec.NumParams()
		if err != nil || n > 200000 || product(spec.Input) > 5000 {
			return
		}
		m, err := NewModel(spec, 1)
		if err != nil {
			t.Fatalf("Validate accepted a spec NewModel rejects: %v", err)
		}
		out := m.Predict(make([]float32, 2*m.InputSize()), 2)
		if out.Shape[0] != 2 || out.Shape[1] != m.OutputSize() {
			t.Fatalf("Predict shape %v", out.Shape)
		}
	})
}
