package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/notice"
)

// nodeFlags are the settings of `troupe node`: the training flags, and where the node sits in
// the cluster.
type nodeFlags struct {
	trainFlags
	clusterFlags
	jobFile   string
	minNodes  int
	leaveWait time.Duration
	joinWait  time.Duration
	drainWait time.Duration
	notice    noticeFlags
}

// noticeFlags say where a node hears of its machine's preemption.
type noticeFlags struct {
	provider string
	url      string
	interval time.Duration
}

// clusterFlags say where a process sits in a cluster: `node` and `status` share them.
type clusterFlags struct {
	bind      string
	advertise string
	join      []string
	keyFile   string
	insecure  bool
	gossip    string
}

func (f *clusterFlags) define(fl *pflag.FlagSet, bind string) {
	fl.StringVar(&f.bind, "bind", bind, "gossip address to listen on (HOST:PORT; port 0 picks one); the control and data planes listen on the same host")
	fl.StringVar(&f.advertise, "advertise", "", "host other nodes reach this one at, when it differs from the bind host")
	fl.StringSliceVar(&f.join, "join", nil, "join the cluster through this member's gossip address (HOST:PORT; repeat or separate with commas)")
	fl.StringVar(&f.keyFile, "key-file", "", "file holding the cluster key in base64 (default: $"+cluster.KeyEnv+")")
	fl.BoolVar(&f.insecure, "insecure", false, "allow a non-loopback address without a cluster key: traffic in the clear, anyone may join")
	fl.StringVar(&f.gossip, "gossip", "auto", "failure-detection timings: lan, local (loopback, sub-second) or auto (local on loopback)")
}

// localFlags are the job flags a joiner may give: they say where this node trains, finds its
// data and writes its checkpoints, not what the cluster trains.
var localFlags = map[string]bool{"device": true, "data-dir": true, "checkpoint": true, "checkpoint-dir": true, "checkpoint-every": true, "keep": true,
	"keep-every": true, "overwrite": true}

func newNodeCommand(stdout, stderr io.Writer) *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "node --bind HOST:PORT (--job JOB.yaml | --join HOST:PORT)",
		Short: "Run a peer: start a job on a cluster, or join the job a cluster trains",
		Long: `Run this process as a peer of an elastic cluster. With --job it starts the job and
waits for --min-nodes ready nodes before step 0; with --join it joins any member and
takes the job from the cluster. Nodes may join, leave (SIGTERM or SIGINT: a graceful
leave that finishes the step in flight) or die at any time; the others go on from the
highest step a survivor completed. Every node exits 0 when the job is complete.

Traffic between nodes is encrypted and authenticated with the cluster key (--key-file or
$` + cluster.KeyEnv + `, base64 of 16, 24 or 32 bytes). Without a key a node binds to loopback
only, unless --insecure says otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNode(cmd, &f, stdout, stderr)
		},
	}
	f.defineJobFlags(cmd.Flags())
	f.defineOutputFlags(cmd.Flags())
	fl := cmd.Flags()
	fl.BoolVar(&f.noCheckpoint, "no-checkpoint", false, "write no checkpoints")
	f.clusterFlags.define(fl, "127.0.0.1:7946")
	fl.StringVar(&f.jobFile, "job", "", "start this job (a YAML job file)")
	fl.IntVar(&f.minNodes, "min-nodes", 1, "with --job: ready nodes, this one included, to wait for before step 0")
	fl.DurationVar(&f.leaveWait, "leave-timeout", 2*time.Second, "how long a graceful leave waits for the cluster to hear of it")
	fl.DurationVar(&f.joinWait, "join-timeout", defaultJoinWait, "with --join: give up (exit 1) when no member hands over the job within this time (0: wait for ever)")
	fl.DurationVar(&f.drainWait, "drain-timeout", 10*time.Second, "on a signal or a preemption notice: how long the step in flight may take before it is abandoned")
	fl.StringVar(&f.notice.provider, "preemption", "", "watch the cloud's preemption notices: aws (spot instance-action, IMDSv2), gcp or azure (Scheduled Events)")
	fl.StringVar(&f.notice.url, "metadata-url", "", "base URL of the instance metadata service (default: the provider's link-local address)")
	fl.DurationVar(&f.notice.interval, "notice-interval", notice.DefaultInterval, "how often to poll for a preemption notice")
	return cmd
}

// nodeSummary is the --json output of a node: the training summary and the node's history in
// the cluster.
type nodeSummary struct {
	summary
	NodeID       string `json:"node_id"`
	Incarnations int    `json:"incarnations"`
	Generations  int    `json:"generations"`
	Generation   uint64 `json:"generation"`
	WorldSize    int    `json:"world_size"`
	Joins        int    `json:"joins"`
	Departures   int    `json:"departures"`
	StepsRedone  int64  `json:"steps_redone"`
	Left         bool   `json:"left"`                // left the cluster before the job was complete
	Preempted    bool   `json:"preempted"`           // a preemption notice made it leave
	NoticeAt     string `json:"notice_at,omitempty"` // when the notice came (RFC 3339)
	Deadline     string `json:"deadline,omitempty"`  // when the machine goes away, as the notice says
	// Frames the control plane dropped: undecodable, or from a sender that is not the
	// member (or the incarnation) it names.
	MalformedFrames uint64 `json:"malformed_frames"`
	ForeignFrames   uint64 `json:"foreign_frames"`
}

// gossipConfig turns the flags into the membership's configuration.
func (f *clusterFlags) gossipConfig() (cluster.Config, error) {
	host, portText, err := net.SplitHostPort(f.bind)
	if err != nil {
		return cluster.Config{}, fmt.Errorf("--bind %q: %w", f.bind, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return cluster.Config{}, fmt.Errorf("--bind %q: bad port", f.bind)
	}
	ip := net.ParseIP(host)
	var cfg cluster.Config
	switch f.gossip {
	case "local":
		cfg = cluster.LocalConfig()
	case "lan":
		cfg = cluster.DefaultConfig()
	case "auto":
		cfg = cluster.DefaultConfig()
		if ip != nil && ip.IsLoopback() {
			cfg = cluster.LocalConfig()
		}
	default:
		return cluster.Config{}, fmt.Errorf("--gossip must be lan, local or auto, got %q", f.gossip)
	}
	cfg.BindAddr, cfg.BindPort, cfg.AdvertiseAddr = host, port, f.advertise
	cfg.KeyFile, cfg.Insecure = f.keyFile, f.insecure
	cfg.Seeds = f.join
	return cfg, nil
}

// check rejects flag combinations that cannot work.
func (f *nodeFlags) check(cmd *cobra.Command) error {
	switch {
	case f.jobFile == "" && len(f.join) == 0:
		return errors.New("give --job JOB.yaml to start a job, or --join HOST:PORT to join one")
	case f.jobFile != "" && len(f.join) > 0:
		return errors.New("--job starts a cluster and --join joins one: give one of them")
	case f.minNodes < 1:
		return fmt.Errorf("--min-nodes must be >= 1, got %d", f.minNodes)
	case cmd.Flags().Changed("min-nodes") && f.jobFile == "":
		return errors.New("--min-nodes is for the node that starts the job (--job)")
	case f.leaveWait <= 0:
		return fmt.Errorf("--leave-timeout must be > 0, got %s", f.leaveWait)
	case f.joinWait < 0:
		return fmt.Errorf("--join-timeout must be >= 0, got %s", f.joinWait)
	case f.drainWait <= 0:
		return fmt.Errorf("--drain-timeout must be > 0, got %s", f.drainWait)
	case f.notice.interval <= 0:
		return fmt.Errorf("--notice-interval must be > 0, got %s", f.notice.interval)
	}
	if f.jobFile == "" {
		for name := range f.overrides {
			if cmd.Flags().Changed(name) && !localFlags[name] {
				return fmt.Errorf("--%s: a joining node trains the cluster's job; give it to the node started with --job", name)
			}
		}
	}
	return nil
}

func runNode(cmd *cobra.Command, f *nodeFlags, stdout, stderr io.Writer) (err error) {
	if err := f.check(cmd); err != nil {
		return err
	}
	ctx, drain := context.WithCancel(cmd.Context())
	defer drain()
	cfg, err := f.gossipConfig()
	if err != nil {
		return err
	}
	var job actors.Job
	known := f.jobFile != ""
	if known {
		if job, err = actors.LoadJob(f.jobFile); err != nil {
			return err
		}
		if err := f.apply(cmd, &job); err != nil {
			return err
		}
		if !cmd.Flags().Changed("resume") {
			// A fleet restarted after losing every node goes on where it stopped.
			job.Checkpoint.Resume = job.Checkpoint.Dir != ""
		}
	}
	log, display := f.outputs(stderr)
	out := nodeSummary{}
	var noticeMu sync.Mutex // guards out's notice fields, written by the watcher
	if f.notice.provider != "" {
		notices, err := notice.Watch(ctx, notice.Config{Provider: f.notice.provider, BaseURL: f.notice.url,
			Interval: f.notice.interval, Logger: log.With("part", "notice")})
		if err != nil {
			return fmt.Errorf("--preemption: %w", err)
		}
		go func() {
			n, ok := <-notices
			if !ok {
				return
			}
			noticeMu.Lock()
			out.Preempted, out.NoticeAt = true, time.Now().UTC().Format(time.RFC3339Nano)
			if !n.Deadline.IsZero() {
				out.Deadline = n.Deadline.UTC().Format(time.RFC3339Nano)
			}
			noticeMu.Unlock()
			log.Warn("preemption notice: draining", "provider", n.Provider, "deadline", n.Deadline, "detail", n.Detail)
			drain() // as a SIGTERM: leave after the step in flight
		}()
	}
	var res *actors.Result
	peer, err := actors.StartPeer(actors.PeerConfig{Gossip: cfg, Logger: log})
	if err != nil {
		return err
	}
	defer peer.Close()
	var m *metrics // one set across incarnations: a scraper sees one process
	if f.metricsAddr != "" {
		m = newMetrics()
		stop, err := m.serve(f.metricsAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	stopProfile, err := f.profile()
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProfile(); perr != nil && err == nil {
			err = perr
		}
	}()
	tb, err := openTensorBoard(f.tensorboard, log) // one file across incarnations, as the metrics
	if err != nil {
		return err
	}
	defer func() {
		if cerr := tb.close(); cerr != nil {
			log.Warn("closing the TensorBoard file", "err", cerr)
		}
	}()
	board, err := f.serveDashboard(log) // one page across incarnations too
	if err != nil {
		return err
	}
	defer board.close()
	for {
		out.Incarnations++
		out.NodeID = string(peer.ID())
		log.Info("node up", "id", peer.ID(), "gossip", peer.GossipAddr())
		if !known {
			if job, err = fetchJob(ctx, peer, f, cmd, log); err != nil {
				if ctx.Err() != nil && errors.Is(err, context.Canceled) {
					log.Info("stopped before joining: nothing to hand over")
					return nil // a signal or a notice: leaving is what was asked
				}
				return err
			}
			known = true
		}
		if err := peer.ServeJob(job); err != nil {
			return err
		}
		drainedCh, leaving := make(chan struct{}, 1), make(chan struct{})
		go func() {
			// A signal or a notice: once the step in flight is in, tell the cluster, so
			// that the others form a world without this node and lose no step.
			select {
			case <-drainedCh:
				_ = peer.Leave(f.leaveWait)
			case <-leaving:
			}
		}()
		var params int
		opts := actors.Options{
			Logger:    log,
			Peer:      peer,
			Genesis:   f.jobFile != "" && out.Incarnations == 1,
			MinNodes:  f.minNodes,
			StopGrace: f.drainWait,
			OnDrained: func(int64) {
				select {
				case drainedCh <- struct{}{}:
				default:
				}
			},
			OnStart: func(s actors.Start) {
				params = s.Params
				if out.Incarnations == 1 {
					display.start(s)
				}
			},
			OnStep:       display.step,
			OnEpoch:      display.epoch,
			OnCheckpoint: display.checkpoint,
			OnWorld: func(w actors.WorldInfo) {
				log.Info("training in a new world", "generation", w.Generation, "rank", w.Rank, "members", len(w.Members),
					"start_step", w.StartStep, "joins", w.Joins, "departures", w.Departures)
			},
		}
		if m != nil {
			m.hook(&opts)
		}
		tb.hook(&opts)
		board.hook(&opts)
		res, err = actors.Run(ctx, job, opts)
		close(leaving)
		if res != nil {
			out.summary = newSummary(res, params)
			out.Generations += res.Generations
			out.Joins += res.Joins
			out.Departures += res.Departures
			out.StepsRedone += res.StepsRedone
			out.Generation, out.WorldSize = res.Generation, res.WorldSize
		}
		if errors.Is(err, actors.ErrLeftOut) && ctx.Err() == nil {
			// Frozen or cut off past the failure timeout: the world went on. Come back
			// as a new node, through the members this one knew.
			seeds := append(peer.GossipAddrs(), f.join...)
			log.Warn("rejoining as a new incarnation", "seeds", seeds)
			if err := peer.Rejoin(seeds); err != nil {
				return err
			}
			continue
		}
		if err != nil && res == nil {
			display.stop()
			return err
		}
		break
	}
	display.stop()
	out.Left = res.Interrupted
	st := peer.TransportStats()
	out.MalformedFrames, out.ForeignFrames = st.Malformed+st.Foreign, peer.Spoofed()
	if werr := writeLossLog(f.lossLog, res); werr != nil && err == nil {
		err = werr
	}
	noticeMu.Lock()
	final := out
	noticeMu.Unlock()
	if perr := report(stdout, f.json, final, printNodeSummary); perr != nil && err == nil {
		err = perr
	}
	return err
}

// fetchJob waits for a member to hand over the job, then writes this node's local flags over it.
// defaultJoinWait is how long a joiner waits for the job by default: long enough for a fleet
// booting together, short enough that a joiner whose seed is gone says so and exits.
const defaultJoinWait = 5 * time.Minute

// joinReminder is how often a joiner that has no job yet says what it is waiting for.
const joinReminder = 5 * time.Second

func fetchJob(ctx context.Context, peer *actors.Peer, f *nodeFlags, cmd *cobra.Command, log *slog.Logger) (actors.Job, error) {
	log.Info("asking the cluster for its job", "seeds", f.join, "timeout", f.joinWait)
	if f.joinWait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.joinWait)
		defer cancel()
	}
	began := time.Now()
	stopReminding := make(chan struct{})
	reminded := make(chan struct{})
	go func() {
		defer close(reminded)
		tick := time.NewTicker(joinReminder)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				log.Warn("still waiting for a member to hand over the job", "waited", time.Since(began).Round(time.Second),
					"members_known", len(peer.Members()), "seeds", f.join)
			case <-stopReminding:
				return
			}
		}
	}()
	job, err := peer.FetchJob(ctx)
	close(stopReminding)
	<-reminded
	if errors.Is(err, actors.ErrNoJob) && errors.Is(err, context.DeadlineExceeded) {
		return actors.Job{}, fmt.Errorf("%w within --join-timeout %s (members known: %d, seeds %v): is the node that started the job with --job up?",
			actors.ErrNoJob, f.joinWait, len(peer.Members()), f.join)
	}
	if err != nil {
		return actors.Job{}, err
	}
	if err := f.apply(cmd, &job); err != nil {
		return actors.Job{}, err
	}
	log.Info("got the job", "job", job.Name, "fingerprint", job.Fingerprint())
	return job, nil
}

func printNodeSummary(w io.Writer, s nodeSummary) {
	printSummary(w, s.summary)
	fmt.Fprintf(w, "  node %s: %d worlds (last: generation %d, %d members), %d joins, %d departures, %d steps redone\n",
		s.NodeID, s.Generations, s.Generation, s.WorldSize, s.Joins, s.Departures, s.StepsRedone)
	if s.Left {
		fmt.Fprintln(w, "  left the cluster before the job was complete")
	}
	fmt.Fprintf(w, "  final parameters sha256 %s\n", s.ParamsSHA256)
}
