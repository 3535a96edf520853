package collective

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/cluster"
)

// rankProcessEnv carries a rankJob (as JSON) to a re-executed test binary; TestRankProcess
// does nothing without it.
const rankProcessEnv = "TROUPE_COLLECTIVE_RANK_PROCESS"

// rankJob is what one rank process must do: meet its peers through files in Dir, check one
// all-reduce, run Warmup untimed ones, then Ops timed ones in rounds of at most OpsPerRound,
// each round after a barrier.
type rankJob struct {
	Rank, Size  int
	Dir         string
	Floats      int
	Warmup      int
	Ops         int
	OpsPerRound int
	Key         []byte // cluster key: streams over mutual TLS; nil: plain TCP
}

// rankReport is a rank's own clock for each timed round.
type rankReport struct {
	RoundOps []int
	RoundNs  []int64
}

// rankDeadline bounds rendezvous and connection: a peer that never shows up fails the run.
const rankDeadline = 30 * time.Second

// opsPerRound follows allreduce_gloo.py: about 64 MiB per rank per round, 4 to 32 ops.
func opsPerRound(mib int) int { return max(4, min(32, 64/mib)) }

// BenchmarkAllReduceProcesses measures the ring with every rank in its own OS process, as gloo
// runs, so the two data planes compare on the same footing (BenchmarkAllReduce runs the ranks as
// goroutines of one process, sharing one heap and scheduler). The test binary re-executes itself
// once per rank (TestRankProcess); the ranks meet through address files in a temp dir.
//
// b.N is the number of timed all-reduces; the ranks run them in rounds of opsPerRound(MiB), each
// round started by a barrier (a one-float all-reduce). A round's time is the slowest rank's, as in
// allreduce_gloo.py. The reported ns/op replaces the framework's: it is the sum of the round times
// divided by b.N, so process start, connection, the check op, warmup and barriers are left out.
// busGB/s = bytes * 2(n-1)/n / (ns/op), the NCCL-tests convention gloo's script uses.
func BenchmarkAllReduceProcesses(b *testing.B) { benchProcesses(b, nil) }

// BenchmarkAllReduceProcessesTLS is BenchmarkAllReduceProcesses with the streams over mutual
// TLS, as a cluster with a key runs them.
func BenchmarkAllReduceProcessesTLS(b *testing.B) {
	key, err := cluster.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	benchProcesses(b, key)
}

func benchProcesses(b *testing.B, key []byte) {
	for _, size := range []int{2, 4} {
		for _, mib := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("ranks=%d/MiB=%d", size, mib), func(b *testing.B) {
				job := rankJob{Size: size, Dir: b.TempDir(), Floats: mib << 20 / 4, Warmup: 5,
					Ops: b.N, OpsPerRound: opsPerRound(mib), Key: key}
				reports, err := runRankProcesses(job)
				if err != nil {
					b.Fatal(err)
				}
				roundNs, err := slowestRounds(reports)
				if err != nil {
					b.Fatal(err)
				}
				var total int64
				for _, ns := range roundNs {
					total += ns
				}
				perOp := float64(total) / float64(b.N)
				bus := float64(job.Floats*4) * 2 * float64(size-1) / float64(size) / (perOp / 1e9)
				b.ReportMetric(perOp, "ns/op")
				b.ReportMetric(bus/1e9, "busGB/s")
			})
		}
	}
}

// runRankProcesses starts one process per rank and returns each rank's report. The first
// process to fail stops the others, so a broken ring does not hang the benchmark.
func runRankProcesses(job rankJob) ([]rankReport, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make([]error, job.Size)
	var wg sync.WaitGroup
	for r := range job.Size {
		rj := job
		rj.Rank = r
		env, err := json.Marshal(rj)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRankProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), rankProcessEnv+"="+string(env))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("rank %d: %w", r, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Wait(); err != nil {
				if ctx.Err() == nil {
					errs[r] = fmt.Errorf("rank %d: %w\n%s", r, err, out.Bytes())
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	reports := make([]rankReport, job.Size)
	for r := range reports {
		raw, err := os.ReadFile(filepath.Join(job.Dir, "report-"+strconv.Itoa(r)))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &reports[r]); err != nil {
			return nil, fmt.Errorf("rank %d report: %w", r, err)
		}
	}
	return reports, nil
}

// slowestRounds returns, for each round, the time of the slowest rank. All ranks must have run
// the same rounds.
func slowestRounds(reports []rankReport) ([]int64, error) {
	want := reports[0].RoundOps
	slowest := make([]int64, len(want))
	for r, rep := range reports {
		if !slices.Equal(rep.RoundOps, want) || len(rep.RoundNs) != len(want) {
			return nil, fmt.Errorf("rank %d ran rounds %v (%d times), rank 0 ran %v",
				r, rep.RoundOps, len(rep.RoundNs), want)
		}
		for i, ns := range rep.RoundNs {
			slowest[i] = max(slowest[i], ns)
		}
	}
	return slowest, nil
}

func TestSlowestRoundsTakesTheMaxPerRound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reports []rankReport
		want    []int64
		fails   bool
	}{
		{"one rank", []rankReport{{[]int{4}, []int64{7}}}, []int64{7}, false},
		{"max per round", []rankReport{{[]int{4, 4, 1}, []int64{5, 9, 2}}, {[]int{4, 4, 1}, []int64{6, 3, 2}}}, []int64{6, 9, 2}, false},
		{"different rounds", []rankReport{{[]int{4, 4}, []int64{1, 1}}, {[]int{4}, []int64{1}}}, nil, true},
		{"missing time", []rankReport{{[]int{4, 4}, []int64{1, 1}}, {[]int{4, 4}, []int64{1}}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := slowestRounds(tc.reports)
			if (err != nil) != tc.fails {
				t.Fatalf("error %v, want failure %v", err, tc.fails)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRankProcess is one rank of BenchmarkAllReduceProcesses when the test binary is
// re-executed with rankProcessEnv set; in a normal test run it is skipped.
func TestRankProcess(t *testing.T) {
	raw := os.Getenv(rankProcessEnv)
	if raw == "" {
		t.Skip("runs only as a rank process of BenchmarkAllReduceProcesses")
	}
	var job rankJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		t.Fatalf("%s: %v", rankProcessEnv, err)
	}
	rep, err := runRank(job)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(job.Dir, "report-"+strconv.Itoa(job.Rank)), out); err != nil {
		t.Fatal(err)
	}
}

func runRank(job rankJob) (rankReport, error) {
	var server, client *tls.Config
	if job.Key != nil {
		var err error
		if server, client, err = cluster.TLSConfigs(job.Key, "rank-"+strconv.Itoa(job.Rank)); err != nil {
			return rankReport{}, err
		}
	}
	ep, err := Listen("127.0.0.1:0", server, client)
	if err != nil {
		return rankReport{}, err
	}
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), rankDeadline)
	defer cancel()
	addrs, err := rendezvous(ctx, job.Dir, job.Rank, job.Size, ep.Addr())
	if err != nil {
		return rankReport{}, err
	}
	link, err := ep.Connect(ctx, 1, job.Rank, addrs)
	if err != nil {
		return rankReport{}, err
	}
	defer link.Close()

	var step int64
	reduce := func(data []float32) error {
		step++
		return link.AllReduceSum(Stamp{Generation: 1, Step: step}, data)
	}
	data := make([]float32, job.Floats)
	fill(data, 1)
	if err := reduce(data); err != nil {
		return rankReport{}, err
	}
	for i, v := range data {
		if v != float32(job.Size) {
			return rankReport{}, fmt.Errorf("check all-reduce: element %d is %v, want %d", i, v, job.Size)
		}
	}
	for range job.Warmup {
		if err := reduce(data); err != nil {
			return rankReport{}, err
		}
	}
	var rep rankReport
	barrier := make([]float32, 1)
	for left := job.Ops; left > 0; {
		ops := min(left, job.OpsPerRound)
		left -= ops
		fill(data, 1) // each op multiplies by Size: start every round from ones to stay finite
		if err := reduce(barrier); err != nil {
			return rankReport{}, err
		}
		start := time.Now()
		for range ops {
			if err := reduce(data); err != nil {
				return rankReport{}, err
			}
		}
		rep.RoundOps = append(rep.RoundOps, ops)
		rep.RoundNs = append(rep.RoundNs, time.Since(start).Nanoseconds())
	}
	// A last barrier keeps every rank's streams open until all have finished their timed rounds.
	return rep, reduce(barrier)
}

func fill(data []float32, v float32) {
	for i := range data {
		data[i] = v
	}
}

// rendezvous publishes this rank's address as dir/addr-<rank> and waits for every rank's.
// Processes share no channel to wait on, so it polls the directory until the deadline.
func rendezvous(ctx context.Context, dir string, rank, size int, addr string) ([]string, error) {
	if err := writeFileAtomic(filepath.Join(dir, "addr-"+strconv.Itoa(rank)), []byte(addr)); err != nil {
		return nil, err
	}
	addrs := make([]string, size)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		missing := 0
		for r := range addrs {
			if addrs[r] != "" {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, "addr-"+strconv.Itoa(r)))
			switch {
			case err == nil:
				addrs[r] = string(raw)
			case errors.Is(err, os.ErrNotExist):
				missing++
			default:
				return nil, err
			}
		}
		if missing == 0 {
			return addrs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rendezvous: %d of %d ranks missing: %w", missing, size, ctx.Err())
		case <-tick.C:
		}
	}
}

// writeFileAtomic writes through a temporary file and a rename, so a reader polling for name
// sees either nothing or the whole content.
func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
