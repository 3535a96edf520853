package compute

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalidSpec is wrapped by every error ModelSpec.Validate and NewModel
// return for a spec that cannot be built.
var ErrInvalidSpec = errors.New("compute: invalid model spec")

// Layer type names, as a job file spells them.
const (
	LayerDense     = "dense"
	LayerReLU      = "relu"
	LayerGELU      = "gelu"
	LayerTanh      = "tanh"
	LayerDropout   = "dropout"
	LayerConv2D    = "conv2d"
	LayerMaxPool2D = "maxpool2d"
	LayerFlatten   = "flatten"
)

// Loss names.
const (
	LossSoftmaxCrossEntropy = "softmax_cross_entropy"
	LossMSE                 = "mse"
)

// Initializer names. Both draw weights from a uniform distribution (biases
// start at zero): he from U(-√(6/fanIn), √(6/fanIn)), xavier from
// U(-√(6/(fanIn+fanOut)), √(6/(fanIn+fanOut))).
const (
	InitHe     = "he"
	InitXavier = "xavier"
)

// maxParams bounds a model's size so that a mistyped job file fails
// validation instead of exhausting memory.
const maxParams = 1 << 30

// LayerSpec describes one layer. Only the fields of the layer's type may be
// set; Validate rejects the others, which catches a field put on the wrong
// layer.
type LayerSpec struct {
	Type    string  `yaml:"type" json:"type"`                           // dense, relu, gelu, tanh, dropout, conv2d, maxpool2d, flatten
	Units   int     `yaml:"units,omitempty" json:"units,omitempty"`     // dense: outputs
	Filters int     `yaml:"filters,omitempty" json:"filters,omitempty"` // conv2d: output channels
	Kernel  int     `yaml:"kernel,omitempty" json:"kernel,omitempty"`   // conv2d: square kernel side
	Stride  int     `yaml:"stride,omitempty" json:"stride,omitempty"`   // conv2d (default 1), maxpool2d (default size)
	Padding int     `yaml:"padding,omitempty" json:"padding,omitempty"` // conv2d: zero padding on each side
	Size    int     `yaml:"size,omitempty" json:"size,omitempty"`       // maxpool2d: square window side
	Rate    float64 `yaml:"rate,omitempty" json:"rate,omitempty"`       // dropout: probability of dropping a value, in [0, 1)
	Init    string  `yaml:"init,omitempty" json:"init,omitempty"`       // dense, conv2d: he (default) | xavier
}

// ModelSpec is the declarative description of a model, as a job file
// holds it: a per-sample input shape, a chain of layers and a loss.
type ModelSpec struct {
	Input  []int       `yaml:"input" json:"input"` // per-sample shape: [features] or [channels, height, width]
	Layers []LayerSpec `yaml:"layers" json:"layers"`
	Loss   string      `yaml:"loss" json:"loss"` // softmax_cross_entropy (default) | mse
	// GPT, when set, is the whole model (Input and Layers stay empty): a transformer
	// language model whose samples are windows of token ids.
	GPT *GPTSpec `yaml:"gpt,omitempty" json:"gpt,omitempty"`
}

// MLP returns the spec of a multilayer perceptron with ReLU between dense
// layers, softmax cross-entropy loss and He initialization:
// MLP(784, []int{512, 512}, 10) is the default MNIST model.
func MLP(input int, hidden []int, classes int) ModelSpec {
	spec := ModelSpec{Input: []int{input}, Loss: LossSoftmaxCrossEntropy}
	for _, h := range hidden {
		spec.Layers = append(spec.Layers, LayerSpec{Type: LayerDense, Units: h}, LayerSpec{Type: LayerReLU})
	}
	spec.Layers = append(spec.Layers, LayerSpec{Type: LayerDense, Units: classes})
	return spec
}

// Validate reports whether the spec describes a model that can be built:
// known names, sizes in range, and a chain of shapes that fits from the
// input to a flat output. Errors wrap ErrInvalidSpec and name the layer by
// its index in Layers and the offending field, for example
// "layer 3 (conv2d): kernel must be > 0".
func (s ModelSpec) Validate() error {
	_, err := s.plan()
	return err
}

// NumParams returns the number of parameters a model built from s holds.
func (s ModelSpec) NumParams() (int, error) {
	p, err := s.plan()
	if err != nil {
		return 0, err
	}
	return p.numParams, nil
}

// layerPlan is one validated layer with its defaults filled in and the
// per-sample shapes around it.
type layerPlan struct {
	spec      LayerSpec
	in, out   []int
	numParams int
	prefix    string // of its parameter tensors' names
}

type modelPlan struct {
	spec      ModelSpec // a deep copy with defaults filled in
	layers    []layerPlan
	numParams int
	// inSize values per sample go in; rows·outSize logits come out, rows of outSize
	// (a GPT's rows are its positions, the other models have one).
	inSize, outSize, rows int
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// plan validates s and works out every layer's shapes and parameter count.
func (s ModelSpec) plan() (modelPlan, error) {
	if s.GPT != nil {
		return planGPT(s)
	}
	p := modelPlan{spec: ModelSpec{Input: slices.Clone(s.Input), Loss: s.Loss}}
	switch p.spec.Loss {
	case "":
		p.spec.Loss = LossSoftmaxCrossEntropy
	case LossSoftmaxCrossEntropy, LossMSE:
	default:
		return modelPlan{}, invalidf("loss %q is not one of %s, %s", s.Loss, LossSoftmaxCrossEntropy, LossMSE)
	}
	if len(s.Input) != 1 && len(s.Input) != 3 {
		return modelPlan{}, invalidf("input %v must be [features] or [channels, height, width]", s.Input)
	}
	for i, d := range s.Input {
		if d <= 0 || d > maxParams {
			return modelPlan{}, invalidf("input %v: dimension %d must be in 1..%d", s.Input, i, maxParams)
		}
	}
	if len(s.Layers) == 0 {
		return modelPlan{}, invalidf("layers must not be empty")
	}
	shape := p.spec.Input
	for i, ls := range s.Layers {
		lp, err := planLayer(ls, shape)
		if err != nil {
			name := ls.Type
			if name == "" {
				name = "no type"
			}
			return modelPlan{}, invalidf("layer %d (%s): %v", i, name, err)
		}
		p.numParams += lp.numParams
		if p.numParams > maxParams {
			return modelPlan{}, invalidf("layer %d (%s): the model would hold more than %d parameters", i, ls.Type, maxParams)
		}
		lp.prefix = fmt.Sprintf("layers.%d.", i)
		p.layers = append(p.layers, lp)
		p.spec.Layers = append(p.spec.Layers, lp.spec)
		shape = lp.out
	}
	if len(shape) != 1 {
		return modelPlan{}, invalidf("output shape %v must be flat: end with a flatten or dense layer", shape)
	}
	if p.spec.Loss == LossSoftmaxCrossEntropy && shape[0] < 2 {
		return modelPlan{}, invalidf("%s needs at least 2 outputs, the model has %d", LossSoftmaxCrossEntropy, shape[0])
	}
	p.inSize, p.outSize, p.rows = product(p.spec.Input), shape[0], 1
	return p, nil
}

// planLayer checks one layer against its input shape. Its errors name the
// field; plan adds the layer.
func planLayer(ls LayerSpec, in []int) (layerPlan, error) {
	lp := layerPlan{spec: ls, in: in}
	var allowed []string
	switch ls.Type {
	case LayerDense:
		allowed = []string{"units", "init"}
		if len(in) != 1 {
			return lp, fmt.Errorf("input shape %v is not flat: add a flatten layer before it", in)
		}
		if ls.Units <= 0 || ls.Units > maxParams {
			return lp, fmt.Errorf("units must be in 1..%d, got %d", maxParams, ls.Units)
		}
		lp.out = []int{ls.Units}
		lp.numParams = in[0]*ls.Units + ls.Units
	case LayerConv2D:
		allowed = []string{"filters", "kernel", "stride", "padding", "init"}
		if len(in) != 3 {
			return lp, fmt.Errorf("input shape %v is not [channels, height, width]", in)
		}
		if lp.spec.Stride == 0 {
			lp.spec.Stride = 1
		}
		padded := []int{in[1] + 2*max(ls.Padding, 0), in[2] + 2*max(ls.Padding, 0)}
		switch {
		case ls.Filters <= 0 || ls.Filters > maxParams:
			return lp, fmt.Errorf("filters must be in 1..%d, got %d", maxParams, ls.Filters)
		case lp.spec.Stride < 0:
			return lp, fmt.Errorf("stride must be > 0, got %d", ls.Stride)
		case ls.Padding < 0:
			return lp, fmt.Errorf("padding must be >= 0, got %d", ls.Padding)
		case ls.Kernel <= 0:
			return lp, fmt.Errorf("kernel must be > 0, got %d", ls.Kernel)
		case ls.Kernel > padded[0] || ls.Kernel > padded[1]:
			return lp, fmt.Errorf("kernel %d does not fit the padded input %dx%d", ls.Kernel, padded[0], padded[1])
		case ls.Padding >= ls.Kernel:
			return lp, fmt.Errorf("padding must be < kernel, got %d", ls.Padding)
		}
		k, s, pad := ls.Kernel, lp.spec.Stride, ls.Padding
		lp.out = []int{ls.Filters, (in[1]+2*pad-k)/s + 1, (in[2]+2*pad-k)/s + 1}
		fanIn := in[0] * k * k
		if fanIn > maxParams/ls.Filters {
			return lp, fmt.Errorf("filters×channels×kernel² is more than %d parameters", maxParams)
		}
		lp.numParams = ls.Filters*fanIn + ls.Filters
	case LayerMaxPool2D:
		allowed = []string{"size", "stride"}
		if len(in) != 3 {
			return lp, fmt.Errorf("input shape %v is not [channels, height, width]", in)
		}
		if lp.spec.Stride == 0 {
			lp.spec.Stride = ls.Size
		}
		switch {
		case ls.Size <= 0 || ls.Size > in[1] || ls.Size > in[2]:
			return lp, fmt.Errorf("size must be > 0 and fit the input %v, got %d", in, ls.Size)
		case lp.spec.Stride < 0:
			return lp, fmt.Errorf("stride must be > 0, got %d", ls.Stride)
		}
		s := lp.spec.Stride
		lp.out = []int{in[0], (in[1]-ls.Size)/s + 1, (in[2]-ls.Size)/s + 1}
	case LayerDropout:
		allowed = []string{"rate"}
		if !(ls.Rate >= 0 && ls.Rate < 1) {
			return lp, fmt.Errorf("rate must be in [0, 1), got %v", ls.Rate)
		}
		lp.out = in
	case LayerFlatten:
		lp.out = []int{product(in)}
	case LayerReLU, LayerGELU, LayerTanh:
		lp.out = in
	case "":
		return lp, fmt.Errorf("type must be set")
	default:
		return lp, fmt.Errorf("type %q is not one of dense, relu, gelu, tanh, dropout, conv2d, maxpool2d, flatten", ls.Type)
	}
	if slices.Contains(allowed, "init") {
		switch lp.spec.Init {
		case "":
			lp.spec.Init = InitHe
		case InitHe, InitXavier:
		default:
			return lp, fmt.Errorf("init %q is not one of %s, %s", ls.Init, InitHe, InitXavier)
		}
	}
	for _, f := range setFields(ls) {
		if !slices.Contains(allowed, f) {
			return lp, fmt.Errorf("%s does not apply to this layer type", f)
		}
	}
	return lp, nil
}

// setFields lists the yaml names of the optional fields ls sets.
func setFields(ls LayerSpec) []string {
	var fields []string
	add := func(set bool, name string) {
		if set {
			fields = append(fields, name)
		}
	}
	add(ls.Units != 0, "units")
	add(ls.Filters != 0, "filters")
	add(ls.Kernel != 0, "kernel")
	add(ls.Stride != 0, "stride")
	add(ls.Padding != 0, "padding")
	add(ls.Size != 0, "size")
	add(ls.Rate != 0, "rate")
	add(ls.Init != "", "init")
	return fields
}

func product(shape []int) int {
	p := 1
	for _, d := range shape {
		p *= d
	}
	return p
}
