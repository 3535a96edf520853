// Command hierarchical sums a vector across processes the way a cluster of multi-GPU machines
// does (docs/gpu.md): the processes of one host sum among themselves first, one process per
// host then joins the ring between hosts, and each host's leader hands the total back to the
// others. Every link between hosts carries one vector per host instead of one per process.
//
// It runs on one machine, standing in HOSTS hosts of PER processes with loopback rings:
//
//	go run ./examples/hierarchical --hosts 2 --per-host 2 --floats 4194304 --rounds 5
//
// The command starts the processes itself (copies of this binary), gives them each other's
// addresses, and checks that every process ends with the exact sum; it prints the time of a
// hierarchical reduction against one flat ring of all the processes, medians over the rounds.
// Only troupe's cluster/collective is used: endpoints, rings, and their all-reduce and
// broadcast. On loopback every link is as fast as every other, so the flat ring is the faster
// there (one reduction instead of three); the hierarchy pays where the links between hosts are
// slower than those within one.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/troupe-ml/troupe/cluster/collective"
)

// plan is what the parent tells each process: where everyone listens, and the work.
type plan struct {
	Hosts, PerHost, Floats, Rounds int
	Local, Global                  []string // per process (index host*PerHost+i): its two endpoints
}

// result is what a process reports back.
type result struct {
	Process             int
	HierarchicalSeconds []float64
	FlatSeconds         []float64
	Checked             int // values compared with the exact sum
}

func main() {
	hosts := flag.Int("hosts", 2, "hosts to stand in for")
	per := flag.Int("per-host", 2, "processes per host")
	floats := flag.Int("floats", 1<<22, "values in the vector summed")
	rounds := flag.Int("rounds", 5, "reductions of each kind")
	child := flag.Int("process", -1, "internal: run as process N of the plan read from stdin")
	flag.Parse()
	var err error
	if *child >= 0 {
		err = runProcess(*child, os.Stdin, os.Stdout)
	} else {
		err = runParent(*hosts, *per, *floats, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hierarchical:", err)
		os.Exit(1)
	}
}

func runParent(hosts, per, floats, rounds int) error {
	if hosts < 1 || per < 1 || floats < 1 || rounds < 1 {
		return errors.New("--hosts, --per-host, --floats and --rounds must be >= 1")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	n := hosts * per
	p := plan{Hosts: hosts, PerHost: per, Floats: floats, Rounds: rounds, Local: make([]string, n), Global: make([]string, n)}
	type proc struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Reader
	}
	procs := make([]proc, n)
	for i := range procs {
		cmd := exec.Command(self, "--process", fmt.Sprint(i))
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
		procs[i] = proc{cmd, in, bufio.NewReader(out)}
		// Each process first says where its two endpoints listen.
		line, err := procs[i].out.ReadString('\n')
		if err != nil {
			return fmt.Errorf("process %d: %w", i, err)
		}
		if _, err := fmt.Sscan(line, &p.Local[i], &p.Global[i]); err != nil {
			return fmt.Errorf("process %d said %q: %w", i, line, err)
		}
	}
	raw, _ := json.Marshal(p)
	for _, pr := range procs {
		fmt.Fprintf(pr.in, "%s\n", raw)
		pr.in.Close()
	}
	var hier, flat []float64
	checked := 0
	for i, pr := range procs {
		var r result
		if err := json.NewDecoder(pr.out).Decode(&r); err != nil {
			return fmt.Errorf("process %d: %w", i, err)
		}
		if err := pr.cmd.Wait(); err != nil {
			return fmt.Errorf("process %d: %w", i, err)
		}
		hier, flat, checked = append(hier, r.HierarchicalSeconds...), append(flat, r.FlatSeconds...), checked+r.Checked
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	fmt.Printf("%d hosts x %d processes, %d floats: every process holds the exact sum (%d values checked)\n", hosts, per, floats, checked)
	fmt.Printf("hierarchical %.1f ms, flat ring %.1f ms (medians over %d rounds and all processes)\n", 1e3*med(hier), 1e3*med(flat), rounds)
	return nil
}

// runProcess is one process: it listens, reads the plan, builds its rings and reduces.
func runProcess(me int, in io.Reader, out io.Writer) error {
	local, err := collective.Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		return err
	}
	defer local.Close()
	global, err := collective.Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		return err
	}
	defer global.Close()
	fmt.Fprintln(out, local.Addr(), global.Addr())
	var p plan
	if err := json.NewDecoder(in).Decode(&p); err != nil {
		return fmt.Errorf("the plan: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, slot := me/p.PerHost, me%p.PerHost
	// The host's ring: its processes, in slot order.
	hostRing, err := local.Connect(ctx, 1, slot, p.Local[host*p.PerHost:(host+1)*p.PerHost])
	if err != nil {
		return fmt.Errorf("host ring: %w", err)
	}
	defer hostRing.Close()
	// The ring between hosts: slot 0 of every host.
	var leaders *collective.Link
	if slot == 0 {
		addrs := make([]string, p.Hosts)
		for h := range addrs {
			addrs[h] = p.Global[h*p.PerHost]
		}
		if leaders, err = global.Connect(ctx, 1, host, addrs); err != nil {
			return fmt.Errorf("ring between hosts: %w", err)
		}
		defer leaders.Close()
	}
	data := make([]float32, p.Floats)
	r := result{Process: me}
	for round := range p.Rounds {
		fill(data, me)
		stamp := collective.Stamp{Generation: 1, Step: int64(round)}
		began := time.Now()
		if err := hostRing.AllReduceSum(stamp, data); err != nil {
			return fmt.Errorf("host sum: %w", err)
		}
		if leaders != nil {
			if err := leaders.AllReduceSum(stamp, data); err != nil {
				return fmt.Errorf("sum between hosts: %w", err)
			}
		}
		if err := hostRing.Broadcast(stamp, data, 0); err != nil {
			return fmt.Errorf("hand-back: %w", err)
		}
		r.HierarchicalSeconds = append(r.HierarchicalSeconds, time.Since(began).Seconds())
		n, err := check(data, p.Hosts*p.PerHost)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		r.Checked += n
	}
	// The same sum over one flat ring of every process, for comparison.
	flat, err := global.Connect(ctx, 2, me, p.Global)
	if err != nil {
		return fmt.Errorf("flat ring: %w", err)
	}
	defer flat.Close()
	for round := range p.Rounds {
		fill(data, me)
		began := time.Now()
		if err := flat.AllReduceSum(collective.Stamp{Generation: 2, Step: int64(round)}, data); err != nil {
			return fmt.Errorf("flat sum: %w", err)
		}
		r.FlatSeconds = append(r.FlatSeconds, time.Since(began).Seconds())
		if _, err := check(data, p.Hosts*p.PerHost); err != nil {
			return fmt.Errorf("flat round %d: %w", round, err)
		}
	}
	return json.NewEncoder(out).Encode(r)
}

// fill gives process me's contribution: small integers, so that any order of summing them is
// exact in float32 and the result can be compared bit for bit.
func fill(data []float32, me int) {
	for j := range data {
		data[j] = float32((me+1)*(j%7) + 1)
	}
}

// check compares data with the sum over n processes of fill: Σ_me ((me+1)(j%7)+1) =
// (j%7)·n(n+1)/2 + n.
func check(data []float32, n int) (int, error) {
	for j, v := range data {
		if want := float32((j%7)*n*(n+1)/2 + n); v != want {
			return j, fmt.Errorf("value %d is %v, want %v", j, v, want)
		}
	}
	return len(data), nil
}
