package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var saveTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// randomSnapshot builds a snapshot whose vectors include the awkward floats: NaN with a
// payload, both zeros, infinities and a subnormal.
func randomSnapshot(step int64, nParams int, nBuffers int, seed uint64) *Snapshot {
	rng := rand.New(rand.NewPCG(seed, 1))
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		special := []float32{math.Float32frombits(0x7fc0beef), float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(1)}
		copy(v, special[:min(n, len(special))])
		return v
	}
	s := &Snapshot{
		Step: step, Epoch: int(step / 10), Seed: math.MaxUint64 - seed,
		Meta:      map[string]string{"job": "mnist-mlp", "fingerprint": "abc123"},
		Params:    vec(nParams),
		Optimizer: OptimizerState{Name: "adam", Step: step},
		Extra:     []byte(`{"loss":[0.5,0.25]}`),
	}
	for range nBuffers {
		s.Optimizer.Buffers = append(s.Optimizer.Buffers, vec(nParams))
	}
	return s
}

func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func checkSame(t *testing.T, got, want *Snapshot) {
	t.Helper()
	if got.Step != want.Step || got.Epoch != want.Epoch || got.Seed != want.Seed ||
		got.Optimizer.Name != want.Optimizer.Name || got.Optimizer.Step != want.Optimizer.Step {
		t.Errorf("scalars differ: got step %d epoch %d seed %d opt %q/%d; want %d %d %d %q/%d",
			got.Step, got.Epoch, got.Seed, got.Optimizer.Name, got.Optimizer.Step,
			want.Step, want.Epoch, want.Seed, want.Optimizer.Name, want.Optimizer.Step)
	}
	if !reflect.DeepEqual(got.Meta, want.Meta) || string(got.Extra) != string(want.Extra) {
		t.Errorf("meta/extra differ: got %v %q, want %v %q", got.Meta, got.Extra, want.Meta, want.Extra)
	}
	if !sameBits(got.Params, want.Params) {
		t.Error("params differ bitwise")
	}
	if !slices.EqualFunc(got.Optimizer.Buffers, want.Optimizer.Buffers, sameBits) {
		t.Error("optimizer buffers differ bitwise")
	}
}

func TestSaveLoadRoundTripIsBitExact(t *testing.T) {
	tests := []struct {
		name string
		snap *Snapshot
	}{
		{"adam", randomSnapshot(1234, 1000, 3, 1)},
		{"sgd without buffers", randomSnapshot(7, 10, 0, 2)},
		{"empty params", &Snapshot{Step: 0, Optimizer: OptimizerState{Buffers: [][]float32{{}, {1}}}}},
		{"huge step", randomSnapshot(math.MaxInt64, 3, 1, 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := newDirStore(t)
			m := NewManager(store, 2)
			name, err := m.Save(tc.snap, saveTime)
			if err != nil {
				t.Fatal(err)
			}
			got, loaded, skipped, err := m.LoadLatest()
			if err != nil || loaded != name || len(skipped) > 0 {
				t.Fatalf("LoadLatest = %q, %v, %v; want %q", loaded, skipped, err, name)
			}
			checkSame(t, got, tc.snap)
		})
	}
}

func TestSaveLayout(t *testing.T) {
	store, root := newDirStore(t)
	name, err := NewManager(store, 0).Save(randomSnapshot(42, 5, 2, 1), saveTime)
	if err != nil {
		t.Fatal(err)
	}
	if name != "ckpt-000000000042" {
		t.Errorf("name = %q", name)
	}
	files, _ := store.List("")
	want := []string{name + "/manifest.json", name + "/optimizer.bin", name + "/params.bin", name + "/state.json"}
	if !slices.Equal(files, want) {
		t.Errorf("files = %v, want %v", files, want)
	}
	raw, _ := store.Get(name + "/manifest.json")
	var man struct {
		Format  int
		Step    int64
		Created string
		Parts   []struct {
			Name   string
			Bytes  int64
			SHA256 string
		}
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	if man.Format != FormatVersion || man.Step != 42 || man.Created != "2026-03-04T05:06:07Z" || len(man.Parts) != 3 {
		t.Errorf("manifest = %+v", man)
	}
	for _, p := range man.Parts {
		data, err := store.Get(name + "/" + p.Name)
		sum := sha256.Sum256(data)
		if err != nil || int64(len(data)) != p.Bytes || hex.EncodeToString(sum[:]) != p.SHA256 {
			t.Errorf("part %s: %d bytes, sha %x, err %v; manifest says %d, %s", p.Name, len(data), sum, err, p.Bytes, p.SHA256)
		}
		if strings.HasSuffix(p.Name, ".bin") && !strings.HasPrefix(string(data), "TRPCKPT1") {
			t.Errorf("%s does not start with the magic", p.Name)
		}
	}
	if got := tempFiles(t, root); len(got) > 0 {
		t.Errorf("temporary files left: %v", got)
	}
}

func steps(infos []Info) (committed, torn []int64) {
	for _, in := range infos {
		if in.Committed {
			committed = append(committed, in.Step)
		} else {
			torn = append(torn, in.Step)
		}
	}
	return committed, torn
}

func TestSavePrunesBeyondKeep(t *testing.T) {
	tests := []struct {
		name       string
		keep       int
		tornBefore []int64 // uncommitted folders present before the saves
		saves      []int64
		wantKept   []int64
		wantTorn   []int64
	}{
		{"keep 2", 2, nil, []int64{10, 20, 30, 40}, []int64{30, 40}, nil},
		{"keep all", 0, nil, []int64{1, 2, 3}, []int64{1, 2, 3}, nil},
		{"keep 1, going back keeps the newest save", 1, nil, []int64{50, 10}, []int64{10}, nil},
		{"keep 2, going back", 2, nil, []int64{50, 60, 10}, []int64{10, 60}, nil},
		{"stale torn removed, newer torn kept", 3, []int64{5, 100}, []int64{50}, []int64{50}, []int64{100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := newDirStore(t)
			for _, step := range tc.tornBefore {
				if err := store.Put(Name(step)+"/params.bin", encodeVectors([]float32{1})); err != nil {
					t.Fatal(err)
				}
			}
			m := NewManager(store, tc.keep)
			for _, step := range tc.saves {
				if _, err := m.Save(randomSnapshot(step, 4, 1, uint64(step)), saveTime); err != nil {
					t.Fatal(err)
				}
			}
			infos, err := m.List()
			if err != nil {
				t.Fatal(err)
			}
			kept, torn := steps(infos)
			if !slices.Equal(kept, tc.wantKept) || !slices.Equal(torn, tc.wantTorn) {
				t.Errorf("committed %v, torn %v; want %v and %v", kept, torn, tc.wantKept, tc.wantTorn)
			}
		})
	}
}

func TestListInfo(t *testing.T) {
	store, _ := newDirStore(t)
	m := NewManager(store, 0)
	if _, err := m.Save(randomSnapshot(3, 4, 1, 1), saveTime); err != nil {
		t.Fatal(err)
	}
	store.Put(Name(9)+"/params.bin", []byte("x"))
	store.Put("unrelated/file", []byte("y"))
	store.Put("ckpt-12", []byte("not a folder"))
	infos, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("infos = %+v, want 2", infos)
	}
	c, torn := infos[0], infos[1]
	files, _ := store.List(Name(3) + "/")
	var dataBytes int64
	for _, f := range files {
		if !strings.HasSuffix(f, manifestPart) {
			b, _ := store.Get(f)
			dataBytes += int64(len(b))
		}
	}
	if c.Name != Name(3) || !c.Committed || !c.Created.Equal(saveTime) || c.Bytes != dataBytes {
		t.Errorf("committed info = %+v, want bytes %d created %v", c, dataBytes, saveTime)
	}
	if torn.Step != 9 || torn.Committed || !torn.Created.IsZero() {
		t.Errorf("torn info = %+v", torn)
	}
}

// damage describes a way a newest checkpoint can be broken, and the reason LoadLatest must give.
type damage struct {
	name   string
	apply  func(t *testing.T, s Store, ckpt string)
	reason string
}

func rewrite(t *testing.T, s Store, name string, f func([]byte) []byte) {
	t.Helper()
	b, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(name, f(b)); err != nil {
		t.Fatal(err)
	}
}

// resealManifest makes the manifest agree with the parts as they now are, to reach the checks
// behind the digests.
func resealManifest(t *testing.T, s Store, ckpt string) {
	rewrite(t, s, ckpt+"/manifest.json", func(b []byte) []byte {
		var m manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for i, p := range m.Parts {
			data, _ := s.Get(ckpt + "/" + p.Name)
			sum := sha256.Sum256(data)
			m.Parts[i].Bytes, m.Parts[i].SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
		}
		return encodeManifest(&m)
	})
}

var damages = []damage{
	{"truncated part", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/params.bin", func(b []byte) []byte { return b[:len(b)-3] })
	}, "params.bin: size"},
	{"flipped byte", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/optimizer.bin", func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	}, "optimizer.bin: sha256 mismatch"},
	{"missing manifest", func(t *testing.T, s Store, c string) { s.Delete(c + "/manifest.json") }, "manifest.json missing (torn write)"},
	{"manifest points at missing part", func(t *testing.T, s Store, c string) { s.Delete(c + "/state.json") }, "state.json: missing (listed in manifest.json)"},
	{"garbage manifest", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/manifest.json", func([]byte) []byte { return []byte("{\"format\": 1, \"parts\": [") })
	}, "manifest.json: invalid JSON"},
	{"manifest of another step", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/manifest.json", func(b []byte) []byte { return []byte(strings.Replace(string(b), `"step": 3`, `"step": 4`, 1)) })
	}, "manifest.json: step 4 does not match"},
	{"future format", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/manifest.json", func(b []byte) []byte { return []byte(strings.Replace(string(b), `"format": 1`, `"format": 2`, 1)) })
	}, "manifest.json: format version 2"},
	{"hostile params header behind a valid digest", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/params.bin", func(b []byte) []byte { b[12] = 0xff; b[19] = 0x7f; return b })
		resealManifest(t, s, c)
	}, "params.bin: vector 0 claims"},
	{"state disagrees with optimizer.bin", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/optimizer.bin", func([]byte) []byte { return encodeVectors([]float32{1}) })
		resealManifest(t, s, c)
	}, "optimizer.bin: buffer lengths differ from state.json's [4 4]"},
	{"garbage state", func(t *testing.T, s Store, c string) {
		rewrite(t, s, c+"/state.json", func([]byte) []byte { return []byte("null") })
		resealManifest(t, s, c)
	}, "state.json: format version 0"},
}

// savedSteps saves the checkpoints of steps 1, 2 and 3 and returns the snapshots by step.
func savedSteps(t *testing.T, m *Manager) map[int64]*Snapshot {
	snaps := map[int64]*Snapshot{}
	for step := int64(1); step <= 3; step++ {
		snaps[step] = randomSnapshot(step, 4, 2, uint64(step))
		if _, err := m.Save(snaps[step], saveTime); err != nil {
			t.Fatal(err)
		}
	}
	return snaps
}

func TestLoadLatestFallsBackOverDamage(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			store, _ := newDirStore(t)
			m := NewManager(store, 0)
			snaps := savedSteps(t, m)
			d.apply(t, store, Name(3))
			got, name, skipped, err := m.LoadLatest()
			if err != nil || name != Name(2) {
				t.Fatalf("LoadLatest = %q, %v; want %s", name, err, Name(2))
			}
			checkSame(t, got, snaps[2])
			if len(skipped) != 1 || skipped[0].Name != Name(3) || !strings.Contains(skipped[0].Reason, d.reason) {
				t.Errorf("skipped = %v, want one report for %s saying %q", skipped, Name(3), d.reason)
			}
		})
	}
}

func TestLoadLatestSkipsEveryBrokenCheckpoint(t *testing.T) {
	store, _ := newDirStore(t)
	m := NewManager(store, 0)
	snaps := savedSteps(t, m)
	damages[1].apply(t, store, Name(3))
	damages[2].apply(t, store, Name(2))
	got, name, skipped, err := m.LoadLatest()
	if err != nil || name != Name(1) {
		t.Fatalf("LoadLatest = %q, %v; want %s", name, err, Name(1))
	}
	checkSame(t, got, snaps[1])
	if len(skipped) != 2 || skipped[0].Name != Name(3) || skipped[1].Name != Name(2) {
		t.Errorf("skipped = %v, want reports for steps 3 then 2", skipped)
	}

	damages[0].apply(t, store, Name(1))
	if _, _, skipped, err := m.LoadLatest(); !errors.Is(err, ErrNoCheckpoint) || len(skipped) != 3 {
		t.Errorf("all broken: skipped %v, err %v; want 3 reports and ErrNoCheckpoint", skipped, err)
	}
	empty, _ := newDirStore(t)
	if _, _, skipped, err := NewManager(empty, 1).LoadLatest(); !errors.Is(err, ErrNoCheckpoint) || skipped != nil {
		t.Errorf("empty store: skipped %v, err %v; want ErrNoCheckpoint", skipped, err)
	}
}

// faultyStore fails Put or Get of names with a given suffix, standing for a crash or an
// unreachable disk at that point.
type faultyStore struct {
	Store
	failPut, failGet string
}

var errInjected = errors.New("injected failure")

func (f *faultyStore) Put(name string, data []byte) error {
	if f.failPut != "" && strings.HasSuffix(name, f.failPut) {
		return errInjected
	}
	return f.Store.Put(name, data)
}

func (f *faultyStore) Get(name string) ([]byte, error) {
	if f.failGet != "" && strings.HasSuffix(name, f.failGet) {
		return nil, errInjected
	}
	return f.Store.Get(name)
}

func TestInterruptedSaveKeepsPreviousCheckpoint(t *testing.T) {
	tests := []struct {
		name    string
		step    int64 // of the interrupted save, after steps 1..3 were saved
		failPut string
		want    int64
		reason  string
	}{
		{"dies before the manifest", 4, "manifest.json", 3, "manifest.json missing (torn write)"},
		{"dies rewriting the same step", 3, "optimizer.bin", 2, "manifest.json missing (torn write)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := newDirStore(t)
			store := &faultyStore{Store: dir}
			m := NewManager(store, 0)
			snaps := savedSteps(t, m)
			store.failPut = tc.failPut
			if _, err := m.Save(randomSnapshot(tc.step, 4, 2, 99), saveTime); !errors.Is(err, errInjected) {
				t.Fatalf("Save err = %v, want the injected failure", err)
			}
			got, name, skipped, err := m.LoadLatest()
			if err != nil || name != Name(tc.want) {
				t.Fatalf("LoadLatest = %q, %v; want %s", name, err, Name(tc.want))
			}
			checkSame(t, got, snaps[tc.want])
			if len(skipped) != 1 || skipped[0].Reason != tc.reason {
				t.Errorf("skipped = %v, want one saying %q", skipped, tc.reason)
			}
		})
	}
}

func TestLoadLatestReturnsStorageFailures(t *testing.T) {
	dir, _ := newDirStore(t)
	store := &faultyStore{Store: dir}
	m := NewManager(store, 0)
	savedSteps(t, m)
	store.failGet = Name(3) + "/params.bin"
	if _, name, _, err := m.LoadLatest(); !errors.Is(err, errInjected) {
		t.Errorf("LoadLatest = %q, %v; want the storage error, not a fallback", name, err)
	}
}

func TestSaveRejectsBadSnapshots(t *testing.T) {
	m := NewManager(&faultyStore{}, 1) // a nil inner store: nothing may reach it
	for _, s := range []*Snapshot{nil, {Step: -1}} {
		if _, err := m.Save(s, saveTime); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("Save(%v): err = %v, want ErrBadSnapshot", s, err)
		}
	}
}

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		step int64
		ok   bool
	}{
		{"ckpt-000000000042", 42, true},
		{"ckpt-1234567890123", 1234567890123, true},
		{"ckpt-42", 0, false},
		{"ckpt-0000000000042", 0, false}, // not the canonical spelling
		{"ckpt-00000000004x", 0, false},
		{"ckpt--00000000042", 0, false},
		{"ckpt-99999999999999999999", 0, false},
		{"other-000000000042", 0, false},
	} {
		if step, ok := parseName(tc.name); step != tc.step || ok != tc.ok {
			t.Errorf("parseName(%q) = %d, %v; want %d, %v", tc.name, step, ok, tc.step, tc.ok)
		}
	}
}

func TestClearDeletesEveryCheckpoint(t *testing.T) {
	store, _ := newDirStore(t)
	if err := store.Put(Name(99)+"/params.bin", encodeVectors([]float32{1})); err != nil { // a torn one
		t.Fatal(err)
	}
	if err := store.Put("notes.txt", []byte("not a checkpoint")); err != nil {
		t.Fatal(err)
	}
	m := NewManager(store, 0)
	for _, step := range []int64{10, 20} {
		if _, err := m.Save(randomSnapshot(step, 4, 1, uint64(step)), saveTime); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Clear(); err != nil {
		t.Fatal(err)
	}
	if infos, err := m.List(); err != nil || len(infos) != 0 {
		t.Fatalf("after Clear: %v, %v", infos, err)
	}
	if _, err := store.Get("notes.txt"); err != nil {
		t.Fatalf("Clear deleted a file that is not a checkpoint: %v", err)
	}
}

// Retention: the newest keep checkpoints, and every milestone besides.
func TestKeepEverySparesMilestones(t *testing.T) {
	store, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(store, 2).KeepEvery(100)
	for step := int64(25); step <= 300; step += 25 {
		snap := &Snapshot{Step: step, Params: []float32{float32(step)}, Generation: uint64(step / 100), World: []string{"a", "b"}}
		if _, err := m.Save(snap, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, info := range infos {
		steps = append(steps, info.Step)
	}
	if want := []int64{100, 200, 275, 300}; !slices.Equal(steps, want) {
		t.Fatalf("kept steps %v, want %v", steps, want)
	}
	got, err := m.Load(Name(200))
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 || !slices.Equal(got.World, []string{"a", "b"}) {
		t.Fatalf("generation %d, world %v: want the ones saved", got.Generation, got.World)
	}
}
