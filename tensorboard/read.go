package tensorboard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// The reader decodes with google.golang.org/protobuf's wire functions, not with the hand-written
// encoder's knowledge of its own output, so the tests that read files back check the encoder
// against the format rather than against itself. Files from TensorBoard's other writers hold
// events of other kinds (images, histograms, graphs): their fields are skipped.

// Event is what an event file's record says.
type Event struct {
	WallTime    float64
	Step        int64
	FileVersion string
	Values      map[string]float32 // the summary's simple values by tag
}

// ErrCorrupt marks an event file that is not one: a bad checksum, a truncated record, a
// message that does not decode.
var ErrCorrupt = errors.New("tensorboard: corrupt event file")

// ReadFile returns the events of an event file (see Parse).
func ReadFile(path string) ([]Event, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	events, err := Parse(raw)
	if err != nil {
		return events, fmt.Errorf("%s: %w", path, err)
	}
	return events, nil
}

// Parse returns the events of an event file's bytes, checking both checksums of every record.
// It returns the events before the first bad record with an error wrapping ErrCorrupt; a file
// that a writer is still appending to may end in a partial record, which reads as truncated.
func Parse(raw []byte) ([]Event, error) {
	var out []Event
	for len(raw) > 0 {
		if len(raw) < 16 {
			return out, fmt.Errorf("%w: record %d truncated (%d bytes)", ErrCorrupt, len(out), len(raw))
		}
		n := binary.LittleEndian.Uint64(raw[:8])
		if MaskedCRC(raw[:8]) != binary.LittleEndian.Uint32(raw[8:12]) {
			return out, fmt.Errorf("%w: record %d: bad length checksum", ErrCorrupt, len(out))
		}
		if n > uint64(len(raw)-16) {
			return out, fmt.Errorf("%w: record %d: %d bytes announced, %d left", ErrCorrupt, len(out), n, len(raw)-16)
		}
		data := raw[12 : 12+n]
		if MaskedCRC(data) != binary.LittleEndian.Uint32(raw[12+n:]) {
			return out, fmt.Errorf("%w: record %d: bad data checksum", ErrCorrupt, len(out))
		}
		ev, err := decodeEvent(data)
		if err != nil {
			return out, fmt.Errorf("%w: record %d: %w", ErrCorrupt, len(out), err)
		}
		out = append(out, ev)
		raw = raw[16+n:]
	}
	return out, nil
}

// fields calls fn for every field of a message, with its number, type and raw value.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("field %d: wire type %d", num, typ)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func decodeEvent(b []byte) (Event, error) {
	ev := Event{Values: map[string]float32{}}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			ev.WallTime = math.Float64frombits(x)
		case num == 2 && typ == protowire.VarintType:
			ev.Step = int64(x)
		case num == 3 && typ == protowire.BytesType:
			ev.FileVersion = string(v)
		case num == 5 && typ == protowire.BytesType: // Summary
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 || typ != protowire.BytesType {
					return nil
				}
				var tag string
				var val float32
				simple := false
				err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == 1 && typ == protowire.BytesType:
						tag = string(v)
					case num == 2 && typ == protowire.Fixed32Type:
						val, simple = math.Float32frombits(uint32(x)), true
					}
					return nil // an image, a histogram, a tensor: not a scalar
				})
				if simple {
					ev.Values[tag] = val
				}
				return err
			})
		}
		return nil // another kind of event, or a field this reader does not need
	})
	return ev, err
}
