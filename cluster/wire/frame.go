package wire

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// protoactor remote sends only protobuf messages and finds the type of a received one by its
// full name in protobuf's global registry. BytesValue is a well-known type, registered there
// by its package's init, so it needs no generated code of ours: a frame travels as its Value.
var _ proto.Message = (*wrapperspb.BytesValue)(nil)

// Frame encodes m and wraps the bytes in the protobuf message a remote send carries. The
// result is owned by the caller.
func Frame(m Message) (*wrapperspb.BytesValue, error) {
	b, err := Encode(m)
	if err != nil {
		return nil, err
	}
	return &wrapperspb.BytesValue{Value: b}, nil
}

// Unframe decodes the message inside a received BytesValue. The message shares no memory
// with f. A nil f is malformed.
func Unframe(f *wrapperspb.BytesValue) (Message, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: nil frame", ErrMalformed)
	}
	return Decode(f.GetValue())
}
