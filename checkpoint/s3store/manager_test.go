package s3store

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/s3store/s3test"
)

var saveTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func snapshot(step int64, n int) *checkpoint.Snapshot {
	rng := rand.New(rand.NewPCG(uint64(step), 7))
	vec := func() []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		v[0] = math.Float32frombits(0x7fc0beef) // a NaN payload must survive the trip
		return v
	}
	return &checkpoint.Snapshot{
		Step: step, Epoch: int(step / 10), Seed: uint64(step) * 3,
		Meta:      map[string]string{"job": "s3"},
		Params:    vec(),
		Optimizer: checkpoint.OptimizerState{Name: "adam", Step: step, Buffers: [][]float32{vec(), vec()}},
		Extra:     []byte(`{"loss":[1]}`),
	}
}

func bitsOf(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

func checkSame(t *testing.T, got, want *checkpoint.Snapshot) {
	t.Helper()
	if got.Step != want.Step || got.Epoch != want.Epoch || got.Seed != want.Seed ||
		!reflect.DeepEqual(got.Meta, want.Meta) || string(got.Extra) != string(want.Extra) ||
		got.Optimizer.Name != want.Optimizer.Name || got.Optimizer.Step != want.Optimizer.Step {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	if !slices.Equal(bitsOf(got.Params), bitsOf(want.Params)) {
		t.Error("params differ bitwise")
	}
	if len(got.Optimizer.Buffers) != len(want.Optimizer.Buffers) {
		t.Fatalf("%d optimizer buffers, want %d", len(got.Optimizer.Buffers), len(want.Optimizer.Buffers))
	}
	for i := range got.Optimizer.Buffers {
		if !slices.Equal(bitsOf(got.Optimizer.Buffers[i]), bitsOf(want.Optimizer.Buffers[i])) {
			t.Errorf("optimizer buffer %d differs bitwise", i)
		}
	}
}

func TestManagerOnS3KeepsNewest(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Bucket("train"), "runs/mnist")
	m := checkpoint.NewManager(s, 2)
	if _, _, _, err := m.LoadLatest(); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Fatalf("LoadLatest on an empty bucket: %v; want ErrNoCheckpoint", err)
	}
	snaps := map[int64]*checkpoint.Snapshot{}
	for _, step := range []int64{10, 20, 30, 40} {
		snaps[step] = snapshot(step, 5000)
		if _, err := m.Save(snaps[step], saveTime); err != nil {
			t.Fatal(err)
		}
	}
	got, name, skipped, err := m.LoadLatest()
	if err != nil || name != checkpoint.Name(40) || len(skipped) != 0 {
		t.Fatalf("LoadLatest = %q, %v, %v; want %s", name, skipped, err, checkpoint.Name(40))
	}
	checkSame(t, got, snaps[40])

	infos, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	var kept []int64
	for _, in := range infos {
		if !in.Committed || !in.Created.Equal(saveTime) || in.Bytes == 0 {
			t.Errorf("info %+v", in)
		}
		kept = append(kept, in.Step)
	}
	if !slices.Equal(kept, []int64{30, 40}) {
		t.Errorf("kept steps %v, want [30 40]", kept)
	}
	var want []string
	for _, step := range []int64{30, 40} {
		for _, part := range []string{"manifest.json", "optimizer.bin", "params.bin", "state.json"} {
			want = append(want, "runs/mnist/"+checkpoint.Name(step)+"/"+part)
		}
	}
	if keys := rawKeys(t, srv, "train"); !slices.Equal(keys, want) {
		t.Errorf("bucket holds %v, want %v", keys, want)
	}

	// A new process reading the same bucket finds the same checkpoint.
	again, name, _, err := checkpoint.NewManager(open(t, srv, "s3://train?endpoint="+srv.Endpoint, "runs/mnist"), 2).LoadLatest()
	if err != nil || name != checkpoint.Name(40) {
		t.Fatalf("LoadLatest through a second store = %q, %v", name, err)
	}
	checkSame(t, again, snaps[40])
}

// TestManagerOnS3SkipsCorruptObject overwrites one part of the newest checkpoint behind the
// store's back, as bit rot or a stray writer would.
func TestManagerOnS3SkipsCorruptObject(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Bucket("rot"), "")
	m := checkpoint.NewManager(s, 0)
	snaps := map[int64]*checkpoint.Snapshot{}
	for step := int64(1); step <= 3; step++ {
		snaps[step] = snapshot(step, 100)
		if _, err := m.Save(snaps[step], saveTime); err != nil {
			t.Fatal(err)
		}
	}
	key := checkpoint.Name(3) + "/params.bin"
	data, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	rawPut(t, srv, "rot", key, data)

	got, name, skipped, err := m.LoadLatest()
	if err != nil || name != checkpoint.Name(2) {
		t.Fatalf("LoadLatest = %q, %v; want %s", name, err, checkpoint.Name(2))
	}
	checkSame(t, got, snaps[2])
	want := []checkpoint.SkipReport{{Name: checkpoint.Name(3), Reason: "params.bin: sha256 mismatch"}}
	if !slices.Equal(skipped, want) {
		t.Errorf("skipped = %v, want %v", skipped, want)
	}
	if _, err := m.Load(checkpoint.Name(3)); !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Errorf("Load of the damaged checkpoint: %v; want ErrCorrupt", err)
	}
}
