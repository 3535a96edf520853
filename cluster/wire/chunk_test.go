package wire

import (
	"fmt"
	"slices"
	"testing"
)

func TestChunks(t *testing.T) {
	const perMiB = DefaultChunkBytes / 4
	tests := []struct {
		total, chunkBytes int
		want              []Span
	}{
		{0, 0, []Span{}},
		{1, 0, []Span{{0, 1}}},
		{perMiB, 0, []Span{{0, perMiB}}},
		{perMiB + 1, 0, []Span{{0, perMiB}, {perMiB, 1}}},
		{10, 16, []Span{{0, 4}, {4, 4}, {8, 2}}},
		{10, 17, []Span{{0, 4}, {4, 4}, {8, 2}}}, // a partial float rounds down
		{3, 4, []Span{{0, 1}, {1, 1}, {2, 1}}},
		{12, MaxChunkBytes, []Span{{0, 12}}},
	}
	for _, tt := range tests {
		if got := Chunks(tt.total, tt.chunkBytes); !slices.Equal(got, tt.want) {
			t.Errorf("Chunks(%d, %d) = %v, want %v", tt.total, tt.chunkBytes, got, tt.want)
		}
	}
}

func TestChunksCoverAndFit(t *testing.T) {
	for _, total := range []int{1, 999, 1 << 20, 4<<20 + 3, 16 << 20} {
		for _, chunkBytes := range []int{0, 4096, 1<<20 + 2, MaxChunkBytes} {
			next := 0
			for _, s := range Chunks(total, chunkBytes) {
				if s.Offset != next || s.Len <= 0 {
					t.Fatalf("Chunks(%d, %d): span %v after %d", total, chunkBytes, s, next)
				}
				next += s.Len
				// Every chunk must fit in a frame when sent as a StateChunk.
				if chunkBytes == MaxChunkBytes && s.Offset == 0 {
					m := &StateChunk{Header: testHeader(), Part: PartParams, Offset: s.Offset, Total: total, Data: make(Floats, s.Len)}
					if _, err := Encode(m); err != nil {
						t.Fatalf("a chunk of %d floats does not encode: %v", s.Len, err)
					}
				}
			}
			if next != total {
				t.Fatalf("Chunks(%d, %d) cover %d floats", total, chunkBytes, next)
			}
		}
	}
}

func TestChunksPanics(t *testing.T) {
	for _, args := range [][2]int{{-1, 0}, {10, 3}, {10, MaxChunkBytes + 1}} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("Chunks(%d, %d) did not panic", args[0], args[1])
				}
			}()
			Chunks(args[0], args[1])
		})
	}
}
