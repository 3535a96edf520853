package wire

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// plainReduceChunk is ReduceChunk as msgpack encodes it without Floats: one float at a time.
type plainReduceChunk struct {
	Op         Op        `msgpack:"op"`
	Round      int       `msgpack:"round"`
	ChunkIndex int       `msgpack:"chunk"`
	Offset     int       `msgpack:"off"`
	Data       []float32 `msgpack:"data"`
}

// vectorSizes are the vectors the codec benchmarks move, in bytes. A vector above
// DefaultChunkBytes goes as several chunks, as a node sends it; both codecs get the same chunks.
var vectorSizes = []int{1 << 20, 16 << 20}

func chunksOf(v Floats) []*ReduceChunk {
	var out []*ReduceChunk
	for i, s := range Chunks(len(v), DefaultChunkBytes) {
		out = append(out, &ReduceChunk{Header: testHeader(), Op: OpReduceScatter, ChunkIndex: i,
			Offset: s.Offset, Data: v[s.Offset : s.Offset+s.Len]})
	}
	return out
}

func plain(c *ReduceChunk) plainReduceChunk {
	return plainReduceChunk{Op: c.Op, Round: c.Round, ChunkIndex: c.ChunkIndex, Offset: c.Offset, Data: c.Data}
}

func BenchmarkEncode(b *testing.B) {
	for _, size := range vectorSizes {
		chunks := chunksOf(randomFloats(size/4, 5))
		b.Run(fmt.Sprintf("%dMiB/wire", size>>20), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, c := range chunks {
					if _, err := Encode(c); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("%dMiB/msgpack", size>>20), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, c := range chunks {
					if _, err := msgpack.Marshal(plain(c)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, size := range vectorSizes {
		var frames, plainFrames [][]byte
		for _, c := range chunksOf(randomFloats(size/4, 6)) {
			frames = append(frames, mustEncode(b, c))
			p, err := msgpack.Marshal(plain(c))
			if err != nil {
				b.Fatal(err)
			}
			plainFrames = append(plainFrames, p)
		}
		b.Run(fmt.Sprintf("%dMiB/wire", size>>20), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, f := range frames {
					if _, err := Decode(f); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("%dMiB/msgpack", size>>20), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, f := range plainFrames {
					var c plainReduceChunk
					if err := msgpack.Unmarshal(f, &c); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkFloatsCopy compares the two ways of moving floats to and from the wire: the native
// path reinterprets memory (little-endian hosts only), the portable one converts each value.
func BenchmarkFloatsCopy(b *testing.B) {
	f := randomFloats(DefaultChunkBytes/4, 7)
	paths := []struct {
		name  string
		write func(*msgpack.Encoder, []float32) error
		read  func(*msgpack.Decoder, []float32) error
	}{
		{"native", writeFloatsNative, readFloatsNative},
		{"portable", writeFloatsPortable, readFloatsPortable},
	}
	for _, p := range paths {
		b.Run(p.name+"/write", func(b *testing.B) {
			var buf bytes.Buffer
			buf.Grow(4 * len(f))
			enc := msgpack.NewEncoder(&buf)
			b.SetBytes(int64(4 * len(f)))
			for b.Loop() {
				buf.Reset()
				if err := p.write(enc, f); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/read", func(b *testing.B) {
			src := asBytes(f)
			dst := make([]float32, len(f))
			r := bytes.NewReader(src)
			dec := msgpack.NewDecoder(r)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				r.Reset(src)
				if err := p.read(dec, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
