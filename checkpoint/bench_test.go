package checkpoint

import "testing"

// mlpParams is the parameter count of the MNIST MLP 784-784-64-10 class of models (about 670k).
const mlpParams = 784*784 + 784 + 784*64 + 64 + 64*10 + 10

// BenchmarkSave times Save of an MLP snapshot with Adam state (three buffers as long as the
// parameters); MB/s counts the float bytes saved. "dir" includes the fsyncs of DirStore,
// "memory" only encoding and hashing.
func BenchmarkSave(b *testing.B) {
	snap := randomSnapshot(0, mlpParams, 3, 1)
	bytesSaved := int64(4 * mlpParams * (1 + len(snap.Optimizer.Buffers)))
	stores := []struct {
		name  string
		store func(b *testing.B) Store
	}{
		{"dir", func(b *testing.B) Store { s, _ := newDirStore(b); return s }},
		{"memory", func(*testing.B) Store { return newMemStore() }},
	}
	for _, sc := range stores {
		b.Run(sc.name, func(b *testing.B) {
			m := NewManager(sc.store(b), 2)
			b.SetBytes(bytesSaved)
			for b.Loop() {
				if _, err := m.Save(snap, saveTime); err != nil {
					b.Fatal(err)
				}
				snap.Step++
			}
		})
	}
}
