package actors

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/collective"
)

// A peer alone is a world of one: it must train exactly like the in-process run, bit for bit
// (nothing is reduced, and its state broadcast has no one to send to). This is the only test
// in this package with a transport, since a second one in a process races in gRPC.
func TestPeerAloneTrainsLikeTrain(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Checkpoint = CheckpointSpec{}
	ref := mustRun(t, context.Background(), job, Options{})

	gossip := cluster.LocalConfig()
	peer, err := StartPeer(PeerConfig{Gossip: gossip})
	if err != nil {
		t.Fatal(err)
	}
	var worlds []WorldInfo
	res, err := Run(context.Background(), job, Options{Peer: peer, Genesis: true, MinNodes: 1,
		OnWorld: func(w WorldInfo) { worlds = append(worlds, w) }})
	if cerr := peer.Close(); cerr != nil {
		t.Errorf("close: %v", cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.ParamsSHA256 != ref.ParamsSHA256 || !sameBits(res.Losses, ref.Losses) {
		t.Fatalf("a peer alone trained to %s, the in-process run to %s", res.ParamsSHA256, ref.ParamsSHA256)
	}
	if len(worlds) != 1 || worlds[0].Generation != 1 || worlds[0].Rank != 0 || len(worlds[0].Members) != 1 ||
		res.Generations != 1 || res.StepsRedone != 0 {
		t.Fatalf("worlds %+v, result %d worlds, %d redone: want one world of one", worlds, res.Generations, res.StepsRedone)
	}
	if st := peer.board.snapshot(); !st.Finished || st.Step != res.Steps || st.Job != job.Name || st.TotalSteps != res.Steps {
		t.Fatalf("status after the run: %+v", st)
	}
}

// The state a world starts from travels as one vector: a replica that installs another's
// encoded state holds exactly its parameters, optimizer state, cursor and epoch figures.
func TestStateTransferIsExact(t *testing.T) {
	job := smallJob(t)
	sets, err := loadData(job)
	if err != nil {
		t.Fatal(err)
	}
	src, err := newReplica(job, sets)
	if err != nil {
		t.Fatal(err)
	}
	// Give the source a state no fresh replica has: some Adam steps and odd values.
	grads := make([]float32, len(src.model.Params()))
	for i := range grads {
		grads[i] = float32(i%7) - 3
	}
	for range 3 {
		src.opt.Step(src.model.Params(), grads, 0.01)
	}
	src.model.Params()[0] = float32(math.NaN())
	src.step, src.epoch = 37, epochStats{LossSum: 12.5, Correct: 300, Samples: 450}

	dst, err := newReplica(job, sets)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.installState(src.encodeState()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(bitsOf(dst.model.Params()), bitsOf(src.model.Params())) || dst.step != 37 || dst.epoch != src.epoch {
		t.Fatal("the installed state differs from the source's")
	}
	ss, ds := src.opt.State(), dst.opt.State()
	if ss.Step != ds.Step || !reflect.DeepEqual(ss.Buffers, ds.Buffers) {
		t.Fatalf("optimizer state: step %d/%d, buffers equal %v", ss.Step, ds.Step, reflect.DeepEqual(ss.Buffers, ds.Buffers))
	}

	before := dst.encodeState()
	for _, bad := range [][]float32{before[:len(before)-1], append(before, 0), cursorAt(before, -1), cursorAt(before, dst.totalSteps+1)} {
		if err := dst.installState(bad); err == nil {
			t.Fatal("a malformed state was installed")
		}
	}
	if !reflect.DeepEqual(bitsOf(dst.encodeState()), bitsOf(before)) {
		t.Fatal("a rejected state changed the replica")
	}
}

func bitsOf(f []float32) []uint32 {
	out := make([]uint32, len(f))
	for i, v := range f {
		out[i] = math.Float32bits(v)
	}
	return out
}

// cursorAt returns a copy of an encoded state with its cursor replaced.
func cursorAt(state []float32, step int64) []float32 {
	out := append([]float32(nil), state...)
	out[0], out[1] = math.Float32frombits(uint32(step)), math.Float32frombits(uint32(uint64(step)>>32))
	return out
}

// A joiner gets the job the cluster trains, not where the sender keeps its data or checkpoints.
func TestSharedJobRoundTrips(t *testing.T) {
	job := smallJob(t)
	job.Data.Dir = "/data/mnist"
	raw, err := sharedJob(job)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSharedJob(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	want := job
	want.Data.Dir, want.Checkpoint = "", CheckpointSpec{Keep: 3}
	if !reflect.DeepEqual(got, want) || got.Fingerprint() != job.Fingerprint() {
		t.Fatalf("job after the hand-over:\n%+v\nwant\n%+v", got, want)
	}
}

// A world's connect waits for members that may never come; a newer world breaks it off.
func TestSupersededConnectReturns(t *testing.T) {
	defer goleak.VerifyNone(t)
	ep, err := collective.Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	silent, err := collective.Listen("127.0.0.1:0", nil, nil) // listens, never connects back
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	plane := &dataPlane{endpoint: ep}
	plane.supersede(4)
	done := make(chan error, 1)
	go func() {
		_, err := plane.connect(4, 0, []string{ep.Addr(), silent.Addr()})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("connect returned before its world was superseded: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	plane.supersede(5)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a superseded connect succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connect still waiting after its world was superseded")
	}
	if _, err := plane.connect(4, 0, []string{ep.Addr()}); !errors.Is(err, errSuperseded) {
		t.Fatalf("connect to an older world: %v, want errSuperseded", err)
	}
	plane.close()
	if _, err := plane.connect(5, 0, []string{ep.Addr()}); !errors.Is(err, errSuperseded) {
		t.Fatalf("connect after close: %v, want errSuperseded", err)
	}
}

// The status rate counts the samples of the steps inside its window over the window's span.
func TestStatusBoardRate(t *testing.T) {
	var b statusBoard
	for i := range rateWindow + 5 {
		b.step(&StepDone{Stamp: Stamp{Step: int64(i)}, Samples: 100, Loss: 0.5})
		time.Sleep(2 * time.Millisecond)
	}
	st := b.snapshot()
	// 31 steps of 100 samples over about 31 sleeps of 2 ms: ~50,000/s, less on a slow host.
	if st.SamplesPerSecond <= 0 || st.SamplesPerSecond > 51000 || st.Step != rateWindow+5 || st.Loss != 0.5 {
		t.Fatalf("status %+v", st)
	}
}
