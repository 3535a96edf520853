// Package tbtest reads TensorBoard event files back for tests, from the format's definition and
// with google.golang.org/protobuf's wire decoder: independent of the hand-written encoder it
// checks.
package tbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// Event is what an event file's record says.
type Event struct {
	WallTime    float64
	Step        int64
	FileVersion string
	Values      map[string]float32 // the summary's simple values by tag
}

func masked(b []byte) uint32 {
	c := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// ReadFile returns the events of an event file, checking every record's two checksums.
func ReadFile(path string) ([]Event, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Event
	for len(raw) > 0 {
		if len(raw) < 12 {
			return out, errors.New("truncated record header")
		}
		n := binary.LittleEndian.Uint64(raw[:8])
		if masked(raw[:8]) != binary.LittleEndian.Uint32(raw[8:12]) {
			return out, fmt.Errorf("record %d: bad length checksum", len(out))
		}
		if uint64(len(raw)-16) < n {
			return out, fmt.Errorf("record %d: %d bytes announced, %d left", len(out), n, len(raw)-16)
		}
		data := raw[12 : 12+n]
		if masked(data) != binary.LittleEndian.Uint32(raw[12+n:]) {
			return out, fmt.Errorf("record %d: bad data checksum", len(out))
		}
		ev, err := decodeEvent(data)
		if err != nil {
			return out, fmt.Errorf("record %d: %w", len(out), err)
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
					return fmt.Errorf("summary field %d", num)
				}
				var tag string
				var val float32
				err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == 1 && typ == protowire.BytesType:
						tag = string(v)
					case num == 2 && typ == protowire.Fixed32Type:
						val = math.Float32frombits(uint32(x))
					default:
						return fmt.Errorf("value field %d type %d", num, typ)
					}
					return nil
				})
				ev.Values[tag] = val
				return err
			})
		default:
			return fmt.Errorf("event field %d type %d", num, typ)
		}
		return nil
	})
	return ev, err
}
