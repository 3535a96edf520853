package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestRoundTripEveryKind(t *testing.T) {
	seen := map[Kind]bool{}
	for name, m := range validMessages() {
		t.Run(name, func(t *testing.T) {
			frame := mustEncode(t, m)
			if frame[0] != Version || Kind(frame[1]) != m.Kind() {
				t.Fatalf("prefix %#x %#x, want version %d kind %v", frame[0], frame[1], Version, m.Kind())
			}
			got, err := Decode(frame)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !sameMessage(got, m) {
				t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", got, m)
			}
		})
		seen[m.Kind()] = true
	}
	for k := Kind(1); newMessage(k) != nil; k++ {
		if !seen[k] {
			t.Errorf("no round-trip case for %v", k)
		}
	}
}

func TestFloatsSurviveBitExact(t *testing.T) {
	want := specialFloats()
	got, err := Decode(mustEncode(t, &ReduceChunk{Op: OpAllGather, Data: want}))
	if err != nil {
		t.Fatal(err)
	}
	data := got.(*ReduceChunk).Data
	for i := range want {
		if math.Float32bits(data[i]) != math.Float32bits(want[i]) {
			t.Errorf("float %d: bits %#08x, want %#08x", i, math.Float32bits(data[i]), math.Float32bits(want[i]))
		}
	}
}

func TestFloatsAreOneBinOfLittleEndianBytes(t *testing.T) {
	f := Floats{1, -2.5, float32(math.Inf(1))}
	b, err := msgpack.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xc4, 12}
	for _, v := range f {
		want = binary.LittleEndian.AppendUint32(want, math.Float32bits(v))
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
}

func TestDecodeDoesNotAliasFrame(t *testing.T) {
	m := &StateChunk{Header: testHeader(), Part: PartParams, Total: 64, Data: randomFloats(64, 3)}
	frame := mustEncode(t, m)
	got, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	for i := range frame {
		frame[i] = 0xff
	}
	if !sameMessage(got, m) {
		t.Fatal("overwriting the frame changed the decoded message")
	}
	spec := &JobSpec{YAML: []byte("a: 1")}
	frame = mustEncode(t, spec)
	gotSpec, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	clear(frame)
	if string(gotSpec.(*JobSpec).YAML) != "a: 1" {
		t.Fatal("clearing the frame changed the decoded job spec")
	}
}

func TestEncodeDoesNotModifyMessage(t *testing.T) {
	for name, m := range validMessages() {
		before := mustEncode(t, m)
		after := mustEncode(t, m)
		if !bytes.Equal(before, after) {
			t.Errorf("%s: encoding twice gave different frames", name)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	long := strings.Repeat("x", MaxStringBytes+1)
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"negative step", &Ack{Header: Header{Step: -1}}, ErrMalformed},
		{"long sender", &Ack{Header: Header{From: long}}, ErrTooLarge},
		{"negative cursor", &Ack{Cursor: -1}, ErrMalformed},
		{"empty member", &Propose{World: World{Members: []string{"a", ""}}}, ErrMalformed},
		{"long member", &Commit{World: World{Members: []string{long}}}, ErrTooLarge},
		{"too many members", &Commit{World: World{Members: make([]string, MaxMembers+1)}}, ErrTooLarge},
		{"negative start", &Commit{World: World{StartStep: -5}}, ErrMalformed},
		{"long address", &JoinRequest{Address: long}, ErrTooLarge},
		{"negative rank", &StepDone{Rank: -1}, ErrMalformed},
		{"no op", &ReduceChunk{}, ErrMalformed},
		{"unknown op", &ReduceChunk{Op: 9}, ErrMalformed},
		{"negative offset", &ReduceChunk{Op: OpAllGather, Offset: -1}, ErrMalformed},
		{"negative round", &ReduceChunk{Op: OpAllGather, Round: -1}, ErrMalformed},
		{"too many floats", &ReduceChunk{Op: OpAllGather, Data: make(Floats, MaxFloats+1)}, ErrTooLarge},
		{"frame too large", &ReduceChunk{Op: OpAllGather, Data: make(Floats, MaxFloats)}, ErrTooLarge},
		{"no part", &StateChunk{}, ErrMalformed},
		{"past total", &StateChunk{Part: PartParams, Offset: 8, Total: 10, Data: make(Floats, 3)}, ErrMalformed},
		{"offset past total", &StateChunk{Part: PartParams, Offset: 11, Total: 10}, ErrMalformed},
		{"overflowing offset", &StateChunk{Part: PartParams, Offset: math.MaxInt, Total: math.MaxInt, Data: make(Floats, 2)}, ErrMalformed},
		{"negative total", &StateChunk{Part: PartParams, Total: -1}, ErrMalformed},
		{"buffer for params", &StateChunk{Part: PartParams, Buffer: 1}, ErrMalformed},
		{"cursor with floats", &StateChunk{Part: PartCursor, Total: 1, Data: Floats{1}}, ErrMalformed},
		{"cursor on params", &StateChunk{Part: PartParams, Cursor: 3}, ErrMalformed},
		{"huge job spec", &JobSpec{YAML: make([]byte, MaxFrameBytes)}, ErrTooLarge},
		{"long fingerprint", &JobSpec{Fingerprint: long}, ErrTooLarge},
		{"long receiver", &CatchUp{Header: Header{To: long}}, ErrTooLarge},
		{"long proposer", &Prepare{Ballot: Ballot{Proposer: long}}, ErrTooLarge},
		{"long accepted proposer", &Accepted{Ballot: Ballot{Proposer: long}}, ErrTooLarge},
		{"long promised proposer", &Nack{Promised: Ballot{Proposer: long}}, ErrTooLarge},
		{"cursor below none", &Promise{Cursor: NoCursor - 1}, ErrMalformed},
		{"long accepted-ballot proposer", &Promise{AcceptedBallot: Ballot{Proposer: long}}, ErrTooLarge},
		{"empty member in accepted world", &Promise{Accepted: &World{Members: []string{""}}}, ErrMalformed},
		{"start below none", &Accept{World: World{StartStep: NoCursor - 1}}, ErrMalformed},
		{"long coordinator", &Accept{World: World{Coordinator: long}}, ErrTooLarge},
		{"long source", &Commit{World: World{Source: long}}, ErrTooLarge},
		{"empty voter", &Commit{Voters: []string{"a", ""}}, ErrMalformed},
		{"long voter", &Commit{Voters: []string{long}}, ErrTooLarge},
		{"too many voters", &Commit{Voters: make([]string, MaxMembers+1)}, ErrTooLarge},
		{"negative deadline", &Leaving{Deadline: -1}, ErrMalformed},
		{"negative total steps", &Status{TotalSteps: -1}, ErrMalformed},
		{"negative epoch", &Status{Epoch: -1}, ErrMalformed},
		{"job request from a long sender", &JobRequest{Header: Header{From: long}}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Encode: %v, want %v", err, tt.want)
			}
		})
	}
}

// body encodes the msgpack values of a frame's header and body, in order.
func body(t testing.TB, values ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, v := range values {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func prefixed(k Kind, rest ...[]byte) []byte {
	return append([]byte{Version, byte(k)}, bytes.Join(rest, nil)...)
}

func TestDecodeHostileFrames(t *testing.T) {
	hdr := []any{1, 2, 3, "n", "m"}
	valid := mustEncode(t, &ReduceChunk{Header: testHeader(), Op: OpAllGather, Data: Floats{1, 2}})
	// raw builds the bytes of a msgpack value by hand, for lengths the encoder would not write.
	raw := func(b ...byte) []byte { return b }
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"version only", []byte{Version}, ErrMalformed},
		{"old version", append([]byte{0}, valid[1:]...), ErrVersion},
		{"newer version", append([]byte{Version + 1}, valid[1:]...), ErrVersion},
		{"kind zero", prefixed(0, valid[2:]), ErrUnknownKind},
		{"kind from the future", prefixed(200, valid[2:]), ErrUnknownKind},
		{"prefix only", prefixed(KindAck), ErrMalformed},
		{"trailing byte", append(bytes.Clone(valid), 0), ErrMalformed},
		{"trailing value", append(bytes.Clone(valid), body(t, map[string]any{})...), ErrMalformed},
		{"no body", prefixed(KindAck, body(t, hdr)), ErrMalformed},
		{"body not a map", prefixed(KindAck, body(t, hdr, []int{1})), ErrMalformed},
		{"body nil", prefixed(KindAck, body(t, hdr, nil)), ErrMalformed},
		{"header not an array", prefixed(KindAck, body(t, map[string]any{}, map[string]any{})), ErrMalformed},
		{"header too short", prefixed(KindAck, body(t, []any{1, 2, 3}, map[string]any{})), ErrMalformed},
		{"header too long", prefixed(KindAck, body(t, []any{1, 2, 3, "n", "m", 6}, map[string]any{})), ErrMalformed},
		{"header of version 1", prefixed(KindAck, body(t, []any{1, 2, 3, "n"}, map[string]any{})), ErrMalformed},
		{"header wrong types", prefixed(KindAck, body(t, []any{"g", 2, 3, "n", "m"}, map[string]any{})), ErrMalformed},
		{"receiver not a string", prefixed(KindAck, body(t, []any{1, 2, 3, "n", 5}, map[string]any{})), ErrMalformed},
		{"negative step", prefixed(KindAck, body(t, []any{1, -2, 3, "n", "m"}, map[string]any{})), ErrMalformed},
		{"unknown field", prefixed(KindAck, body(t, hdr, map[string]any{"bogus": 1})), ErrMalformed},
		{"field of wrong type", prefixed(KindAck, body(t, hdr, map[string]any{"cursor": "x"})), ErrMalformed},
		{"negative offset", prefixed(KindReduceChunk, body(t, hdr, map[string]any{"op": 1, "off": -4})), ErrMalformed},
		{"negative cursor", prefixed(KindJoinRequest, body(t, hdr, map[string]any{"cursor": -1})), ErrMalformed},
		{"chunk past total", prefixed(KindStateChunk, body(t, hdr, map[string]any{"part": 1, "off": 1, "total": 2, "data": []byte{0, 0, 0, 0, 0, 0, 0, 0}})), ErrMalformed},
		{"unknown part", prefixed(KindStateChunk, body(t, hdr, map[string]any{"part": 77})), ErrMalformed},
		{"floats as msgpack array", prefixed(KindReduceChunk, body(t, hdr, map[string]any{"op": 1, "data": []float32{1, 2}})), ErrMalformed},
		{"floats bin of 7 bytes", prefixed(KindReduceChunk, body(t, hdr, map[string]any{"op": 1, "data": make([]byte, 7)})), ErrMalformed},
		{"floats as string", prefixed(KindReduceChunk, body(t, hdr, map[string]any{"op": 1, "data": "abcd"})), ErrMalformed},
		{"bin32 claims 4 GiB", prefixed(KindJobSpec, body(t, hdr), raw(0x81, 0xa4, 'y', 'a', 'm', 'l', 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2)), ErrTooLarge},
		{"bin claims more than left", prefixed(KindJobSpec, body(t, hdr), raw(0x81, 0xa4, 'y', 'a', 'm', 'l', 0xc5, 0x10, 0x00, 1, 2)), ErrMalformed},
		{"array32 claims 4G members", prefixed(KindCommit, body(t, hdr), raw(0x81, 0xa5, 'w', 'o', 'r', 'l', 'd', 0x81, 0xa7, 'm', 'e', 'm', 'b', 'e', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff)), ErrTooLarge},
		{"array claims more than left", prefixed(KindCommit, body(t, hdr), raw(0x81, 0xa5, 'w', 'o', 'r', 'l', 'd', 0x81, 0xa7, 'm', 'e', 'm', 'b', 'e', 'r', 's', 0xdc, 0x10, 0x00, 0xa1, 'a')), ErrMalformed},
		{"str32 claims 4 GiB", prefixed(KindAck, raw(0x95, 1, 2, 3, 0xdb, 0xff, 0xff, 0xff, 0xff, 'n')), ErrTooLarge},
		{"receiver str32 claims 4 GiB", prefixed(KindAck, raw(0x95, 1, 2, 3, 0xa1, 'n', 0xdb, 0xff, 0xff, 0xff, 0xff, 'm')), ErrTooLarge},
		{"long sender", prefixed(KindAck, body(t, []any{1, 2, 3, strings.Repeat("n", MaxStringBytes+1), "m"}, map[string]any{})), ErrTooLarge},
		{"long receiver", prefixed(KindAck, body(t, []any{1, 2, 3, "n", strings.Repeat("m", MaxStringBytes+1)}, map[string]any{})), ErrTooLarge},
		{"voters array32 claims 4G", prefixed(KindCommit, body(t, hdr), raw(0x81, 0xa6, 'v', 'o', 't', 'e', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff)), ErrTooLarge},
		{"voters claim more than left", prefixed(KindCommit, body(t, hdr), raw(0x81, 0xa6, 'v', 'o', 't', 'e', 'r', 's', 0xdc, 0x00, 0x03, 0xa1, 'a')), ErrMalformed},
		{"empty voter", prefixed(KindCommit, body(t, hdr, map[string]any{"voters": []string{""}})), ErrMalformed},
		{"accepted world claims 4G members", prefixed(KindPromise, body(t, hdr), raw(0x81, 0xa8, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd', 0x81, 0xa7, 'm', 'e', 'm', 'b', 'e', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff)), ErrTooLarge},
		{"accepted world not a map", prefixed(KindPromise, body(t, hdr, map[string]any{"accepted": "w"})), ErrMalformed},
		{"cursor below none", prefixed(KindPromise, body(t, hdr, map[string]any{"cursor": -2})), ErrMalformed},
		{"start below none", prefixed(KindAccept, body(t, hdr, map[string]any{"world": map[string]any{"start": -2}})), ErrMalformed},
		{"ballot not a map", prefixed(KindPrepare, body(t, hdr, map[string]any{"ballot": 3})), ErrMalformed},
		{"unknown ballot field", prefixed(KindNack, body(t, hdr, map[string]any{"promised": map[string]any{"n": 1, "round": 2}})), ErrMalformed},
		{"proposer str32 claims 4 GiB", prefixed(KindAccepted, body(t, hdr), raw(0x81, 0xa6, 'b', 'a', 'l', 'l', 'o', 't', 0x81, 0xa2, 'b', 'y', 0xdb, 0xff, 0xff, 0xff, 0xff)), ErrTooLarge},
		{"long coordinator", prefixed(KindCommit, body(t, hdr, map[string]any{"world": map[string]any{"coord": strings.Repeat("c", MaxStringBytes+1)}})), ErrTooLarge},
		{"fingerprint str32 claims 4 GiB", prefixed(KindJobSpec, body(t, hdr), raw(0x81, 0xa2, 'f', 'p', 0xdb, 0xff, 0xff, 0xff, 0xff)), ErrTooLarge},
		{"negative deadline", prefixed(KindLeaving, body(t, hdr, map[string]any{"deadline": -1})), ErrMalformed},
		{"field of another kind", prefixed(KindCatchUp, body(t, hdr, map[string]any{"gen": 1})), ErrMalformed},
		{"map32 claims 4G pairs", prefixed(KindAck, body(t, hdr), raw(0xdf, 0xff, 0xff, 0xff, 0xff)), ErrTooLarge},
		{"truncated length", prefixed(KindAck, body(t, hdr), raw(0xde, 0x00)), ErrMalformed},
		{"truncated number", prefixed(KindAck, raw(0x91, 0xcf, 1, 2)), ErrMalformed},
		{"ext value", prefixed(KindAck, body(t, hdr), raw(0x81, 0xa6, 'c', 'u', 'r', 's', 'o', 'r', 0xd4, 1, 0)), ErrMalformed},
		{"never-used code", prefixed(KindAck, body(t, hdr), raw(0x81, 0xa6, 'c', 'u', 'r', 's', 'o', 'r', 0xc1)), ErrMalformed},
		{"nested too deep", prefixed(KindAck, body(t, hdr, map[string]any{"cursor": [][][][]int{{{{1}}}}})), ErrMalformed},
		{"frame above the limit", append(bytes.Clone(valid), make([]byte, MaxFrameBytes)...), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, %v; want error %v", m, err, tt.want)
			}
			if m != nil {
				t.Fatalf("Decode returned a message with error %v", err)
			}
			t.Log(err)
		})
	}
}

func TestDecodeRejectsEveryTruncation(t *testing.T) {
	for name, m := range validMessages() {
		frame := mustEncode(t, m)
		for n := range len(frame) {
			if _, err := Decode(frame[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s cut to %d of %d bytes: %v, want ErrMalformed", name, n, len(frame), err)
			}
		}
	}
}

// allocatedBy returns the bytes allocated while f runs.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// hostileMembers is a Commit body whose members array claims a million elements and holds none.
func hostileMembers() []byte {
	return []byte{
		0x81, 0xa5, 'w', 'o', 'r', 'l', 'd', // {"world":
		0x81, 0xa7, 'm', 'e', 'm', 'b', 'e', 'r', 's', // {"members":
		0xdd, 0x00, 0x0f, 0x42, 0x40, // array32 of 1,000,000 elements, none present
	}
}

func TestMsgpackTrustsLengthPrefixes(t *testing.T) {
	// Why Decode scans a frame before handing it to msgpack: msgpack sizes a slice by its
	// length prefix, before reading a single element.
	hostile := hostileMembers()
	got := allocatedBy(func() {
		var c Commit
		_ = msgpack.Unmarshal(hostile, &c)
	})
	if got < 1<<20 {
		t.Skipf("msgpack allocated only %d bytes for a 14-byte body: it no longer trusts length prefixes", got)
	}
	t.Logf("msgpack alone allocated %d bytes for a %d-byte body", got, len(hostile))
}

func TestHostileLengthsAllocateLittle(t *testing.T) {
	hdr := []any{1, 2, 3, "n", "m"}
	frames := map[string][]byte{
		"members":  prefixed(KindCommit, body(t, hdr), hostileMembers()),
		"voters":   prefixed(KindCommit, body(t, hdr), []byte{0x81, 0xa6, 'v', 'o', 't', 'e', 'r', 's', 0xdd, 0x00, 0x00, 0xff, 0xff}),
		"accepted": prefixed(KindPromise, body(t, hdr), []byte{0x81, 0xa8, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd', 0x81, 0xa7, 'm', 'e', 'm', 'b', 'e', 'r', 's', 0xdd, 0x00, 0x00, 0xff, 0xff}),
		"bin":      prefixed(KindJobSpec, body(t, hdr), []byte{0x81, 0xa4, 'y', 'a', 'm', 'l', 0xc6, 0x7f, 0xff, 0xff, 0xff}),
	}
	for name, frame := range frames {
		var err error
		got := allocatedBy(func() { _, err = Decode(frame) })
		if err == nil {
			t.Fatalf("%s: hostile frame decoded", name)
		}
		if got > 64<<10 {
			t.Errorf("%s: Decode of a %d-byte frame allocated %d bytes", name, len(frame), got)
		}
	}
}

func TestPeekHeader(t *testing.T) {
	m := &ReduceChunk{Header: testHeader(), Op: OpReduceScatter, Data: randomFloats(10, 4)}
	kind, h, err := PeekHeader(mustEncode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if kind != KindReduceChunk || h != m.Header {
		t.Fatalf("PeekHeader = %v %+v, want %v %+v", kind, h, KindReduceChunk, m.Header)
	}
	if _, _, err := PeekHeader([]byte{Version + 1, byte(KindAck)}); !errors.Is(err, ErrVersion) {
		t.Fatalf("PeekHeader of a future version: %v", err)
	}
}

// TestFrameCrossesProtoactorRemote follows what protoactor remote does with a message: it
// marshals it with proto.Marshal, sends proto.MessageName as the type name, and the receiver
// finds the type by that name in protobuf's global registry and unmarshals a new instance.
func TestFrameCrossesProtoactorRemote(t *testing.T) {
	m := &ReduceChunk{Header: testHeader(), Op: OpAllGather, Data: specialFloats()}
	f, err := Frame(m)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	name := proto.MessageName(f)
	if name != "google.protobuf.BytesValue" {
		t.Fatalf("type name %q", name)
	}
	typ, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	if err != nil {
		t.Fatalf("the receiver cannot find %q: %v", name, err)
	}
	received := typ.New().Interface()
	if err := proto.Unmarshal(payload, received); err != nil {
		t.Fatal(err)
	}
	got, err := Unframe(received.(*wrapperspb.BytesValue))
	if err != nil {
		t.Fatal(err)
	}
	if !sameMessage(got, m) {
		t.Fatalf("message changed crossing the frame: %+v", got)
	}
	if _, err := Unframe(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Unframe(nil) = %v", err)
	}
}

func TestEveryKindHasAName(t *testing.T) {
	for k := Kind(1); newMessage(k) != nil; k++ {
		if name := k.String(); strings.HasPrefix(name, "Kind(") || name != fmt.Sprintf("%T", newMessage(k))[len("*wire."):] {
			t.Errorf("kind %d is named %q, its type is %T", k, name, newMessage(k))
		}
	}
}

func TestEnumStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{KindPropose.String(), "Propose"},
		{KindJobSpec.String(), "JobSpec"},
		{KindPromise.String(), "Promise"},
		{KindLeaving.String(), "Leaving"},
		{Kind(0).String(), "Kind(0)"},
		{Kind(99).String(), "Kind(99)"},
		{OpReduceScatter.String(), "ReduceScatter"},
		{OpAllGather.String(), "AllGather"},
		{Op(3).String(), "Op(3)"},
		{PartOptimizer.String(), "Optimizer"},
		{Part(0).String(), "Part(0)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}
