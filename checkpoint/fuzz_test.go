package checkpoint

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func FuzzDecodeParams(f *testing.F) {
	f.Add(encodeVectors([]float32{1, 2, 3}))
	f.Add(encodeVectors())
	f.Add(encodeVectors([]float32{}, []float32{-1}, []float32{0.5, 7}))
	f.Add([]byte("TRPCKPT1\xff\xff\xff\xff"))
	f.Add([]byte("TRPCKPT1\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x3f"))
	f.Fuzz(func(t *testing.T, in []byte) {
		vs, err := decodeVectors(in)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes: the format has one spelling per value.
		if !bytes.Equal(encodeVectors(vs...), in) {
			t.Fatalf("re-encoding %d vectors differs from the input", len(vs))
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add(encodeManifest(&manifest{FormatVersion: 1, Step: 7, Created: "2026-01-02T03:04:05Z", Parts: []partSum{
		{paramsPart, 10, fmt.Sprintf("%064x", 1)}, {optimizerPart, 0, fmt.Sprintf("%064x", 2)}, {statePart, 3, fmt.Sprintf("%064x", 3)},
	}}))
	f.Add([]byte(`{"format":1,"parts":[{"name":"params.bin","bytes":-1}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, created, err := decodeManifest(in)
		if err != nil {
			return
		}
		if m.FormatVersion != FormatVersion || created.Format(time.RFC3339) == "" || len(m.Parts) != len(dataParts) {
			t.Fatalf("accepted manifest %+v", m)
		}
		for _, name := range dataParts {
			if p, ok := m.part(name); !ok || p.Bytes < 0 || len(p.SHA256) != 64 {
				t.Fatalf("accepted part %q as %+v", name, p)
			}
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState(randomSnapshot(5, 3, 2, 1)))
	f.Add(encodeState(&Snapshot{}))
	f.Add([]byte(`{"format":1,"optimizer":{"buffer_lengths":[-1]}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := decodeState(in)
		if err != nil {
			return
		}
		if st.Step < 0 || st.ParamsLen < 0 || st.FormatVersion != FormatVersion {
			t.Fatalf("accepted state %+v", st)
		}
	})
}

// FuzzLoad puts fuzzed bytes in place of a checkpoint's parts, with the manifest resealed so
// the decoders behind the digests are reached, and checks that Load never panics and that
// whatever it accepts agrees with itself.
func FuzzLoad(f *testing.F) {
	good := randomSnapshot(8, 3, 2, 1)
	f.Add(encodeVectors(good.Params), encodeVectors(good.Optimizer.Buffers...), encodeState(good))
	f.Add([]byte("TRPCKPT1"), []byte{}, []byte(`{"format":1,"step":8,"params_len":0}`))
	f.Fuzz(func(t *testing.T, params, optimizer, stateJSON []byte) {
		store := newMemStore()
		m := NewManager(store, 0)
		name := Name(8)
		store.Put(name+"/"+paramsPart, params)
		store.Put(name+"/"+optimizerPart, optimizer)
		store.Put(name+"/"+statePart, stateJSON)
		man := &manifest{FormatVersion: FormatVersion, Step: 8, Created: time.Unix(0, 0).UTC().Format(time.RFC3339), Parts: []partSum{}}
		for _, p := range dataParts {
			man.Parts = append(man.Parts, partSum{Name: p, SHA256: fmt.Sprintf("%064x", 0)})
		}
		store.Put(name+"/"+manifestPart, encodeManifest(man))
		resealManifest(t, store, name)
		s, err := m.Load(name)
		if err != nil {
			return
		}
		if s.Step != 8 || !bytes.Equal(encodeVectors(s.Params), params) || !bytes.Equal(encodeVectors(s.Optimizer.Buffers...), optimizer) {
			t.Fatalf("accepted step %d with vectors that do not re-encode to the parts", s.Step)
		}
	})
}
