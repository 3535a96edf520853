package wire

import "fmt"

// Chunk sizes for vectors split across frames. gRPC refuses a batch of remote messages above
// 4 MiB by default and protoactor batches several messages into one gRPC message, so a chunk
// stays well under that.
const (
	// DefaultChunkBytes is 1 MiB: large enough that per-frame costs vanish against the copy,
	// small enough that a few frames in one batch stay under gRPC's default limit.
	DefaultChunkBytes = 1 << 20
	// MaxChunkBytes keeps an encoded chunk, header included, inside MaxFrameBytes with room
	// to spare.
	MaxChunkBytes = 4 << 20
)

// Span is a half-open range [Offset, Offset+Len) of a flat vector, counted in floats.
type Span struct {
	Offset int
	Len    int
}

// Chunks splits a vector of total floats into consecutive spans of at most chunkBytes bytes
// each (the last may be shorter); chunkBytes <= 0 means DefaultChunkBytes. The spans cover
// the vector exactly, in order; a vector of zero floats has no spans.
//
// A negative total, or chunkBytes above MaxChunkBytes or below one float, is a programmer
// error and panics.
func Chunks(total, chunkBytes int) []Span {
	if chunkBytes <= 0 {
		chunkBytes = DefaultChunkBytes
	}
	if total < 0 || chunkBytes < 4 || chunkBytes > MaxChunkBytes {
		panic(fmt.Sprintf("wire: Chunks(total=%d, chunkBytes=%d): want total >= 0 and 4 <= chunkBytes <= %d",
			total, chunkBytes, MaxChunkBytes))
	}
	per := chunkBytes / 4
	spans := make([]Span, 0, (total+per-1)/per)
	for off := 0; off < total; off += per {
		spans = append(spans, Span{Offset: off, Len: min(per, total-off)})
	}
	return spans
}
