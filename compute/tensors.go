package compute

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrTensorMismatch is wrapped by SetTensors' errors: the tensors given are not those of the
// model.
var ErrTensorMismatch = errors.New("compute: tensors do not match the model")

// NamedTensor is one parameter tensor under the name PyTorch gives it in the equivalent
// torch.nn.Sequential: layer i of the spec (activations, dropout, pooling and flatten count
// too) holds "i.weight" and "i.bias".
type NamedTensor struct {
	Name  string
	Shape []int // Linear weight [out, in]; Conv2d weight [out_channels, in_channels, kh, kw]; bias [out]
	Data  []float32
}

// sequentialName maps a ParamView name, "layers.<i>.<kind>", to torch's "<i>.<kind>".
func sequentialName(view string) string { return strings.TrimPrefix(view, "layers.") }

// Tensors returns copies of the model's parameters in Params order, named and shaped as in
// the torch.nn.Sequential built from the same layers. troupe stores dense and conv2d weights
// in PyTorch's layouts already (Linear [out, in], Conv2d [out, in, kh, kw] over NCHW data),
// so the values are the flat vector cut into pieces, nothing transposed.
//
// A GPT's tensors carry nanoGPT's names and layouts, and, as its state_dict does, the tied
// output projection a second time under lmHeadName.
func (m *Model) Tensors() []NamedTensor {
	out := make([]NamedTensor, len(m.views))
	for i, v := range m.views {
		n := product(v.Shape)
		out[i] = NamedTensor{
			Name:  sequentialName(v.Name),
			Shape: slices.Clone(v.Shape),
			Data:  slices.Clone(m.params[v.Offset : v.Offset+n]),
		}
	}
	if m.plan.spec.GPT != nil {
		wte := out[0]
		out = append(out, NamedTensor{Name: lmHeadName, Shape: slices.Clone(wte.Shape), Data: slices.Clone(wte.Data)})
	}
	return out
}

// lmHeadName is the output projection of a GPT, which troupe ties to the token embedding.
const lmHeadName = "lm_head.weight"

// SetTensors copies tensors, named as Tensors names them and in any order, into the
// parameters. Every parameter tensor must be given exactly once with its exact shape, and
// nothing else: the error names the first tensor that is missing, extra, repeated or
// misshapen, and the parameters are left untouched.
func (m *Model) SetTensors(tensors []NamedTensor) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrTensorMismatch, fmt.Sprintf(format, args...))
	}
	byName := make(map[string]NamedTensor, len(tensors))
	for _, t := range tensors {
		if _, dup := byName[t.Name]; dup {
			return bad("tensor %q is given twice", t.Name)
		}
		byName[t.Name] = t
	}
	if head, ok := byName[lmHeadName]; ok && m.plan.spec.GPT != nil {
		// Optional, as a state_dict with tied weights has it: it must be the embedding.
		wte := byName[sequentialName(m.views[0].Name)]
		if !slices.Equal(head.Shape, wte.Shape) || !slices.Equal(head.Data, wte.Data) {
			return bad("tensor %q differs from %q: troupe ties the output projection to the token embedding", lmHeadName, m.views[0].Name)
		}
		delete(byName, lmHeadName)
		tensors = slices.DeleteFunc(slices.Clone(tensors), func(t NamedTensor) bool { return t.Name == lmHeadName })
	}
	expected := make(map[string]bool, len(m.views))
	for _, v := range m.views {
		name := sequentialName(v.Name)
		expected[name] = true
		t, ok := byName[name]
		if !ok {
			return bad("tensor %q (shape %v) is missing", name, v.Shape)
		}
		if !slices.Equal(t.Shape, v.Shape) {
			return bad("tensor %q has shape %v, the model needs %v", name, t.Shape, v.Shape)
		}
		if len(t.Data) != product(v.Shape) {
			return bad("tensor %q holds %d values, its shape %v needs %d", name, len(t.Data), v.Shape, product(v.Shape))
		}
	}
	for _, t := range tensors {
		if !expected[t.Name] {
			return bad("tensor %q is not a parameter of this model (it has %s)", t.Name, m.tensorNames())
		}
	}
	for _, v := range m.views {
		copy(m.params[v.Offset:], byName[sequentialName(v.Name)].Data)
	}
	return nil
}

// tensorNames lists the model's tensor names for an error message.
func (m *Model) tensorNames() string {
	names := make([]string, len(m.views))
	for i, v := range m.views {
		names[i] = sequentialName(v.Name)
	}
	if len(names) == 0 {
		return "no parameters"
	}
	return strings.Join(names, ", ")
}
