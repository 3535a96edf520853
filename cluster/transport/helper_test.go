package transport

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/wire"
)

// Two remotes in one process race on grpc's global logger, so every peer a
// test needs runs in a child process: the test binary itself, re-executed
// to run TestHelperProcess with these variables set. The child prints
// "addr ADDRESS" once it listens, acts according to its mode, and closes
// its transport and exits when its stdin closes.
const (
	envMode   = "TROUPE_TRANSPORT_HELPER" // one of the helper modes below
	envKey    = "TROUPE_TRANSPORT_KEY"    // cluster key, base64
	envParent = "TROUPE_TRANSPORT_PARENT" // the test's own transport address
	envLabel  = "TROUPE_TRANSPORT_LABEL"  // Header.From of what the helper sends
	envTest   = "TROUPE_TRANSPORT_TEST"   // the test a child process runs for real
)

// inOwnProcess runs the calling test in a child process and reports false,
// or reports true inside that child. Every protoactor remote Start writes
// grpc's global logger, which grpc goroutines of an earlier, closed
// transport have read without synchronising with that write: -race reports
// it. So each test that starts a transport gets a process of its own.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envTest) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), envTest+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a child process: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("in a child process:\n%s", out)
	}
	return false
}

// Helper modes.
const (
	// modeReply answers each ReduceChunk with an Ack whose Cursor is the
	// chunk index (a throughput sink), and echoes every other message.
	modeReply = "reply"
	// modeSend sends one StepDone, prints "sent" and idles.
	modeSend = "send"
	// modeGarble sends, through the raw actor system, a BytesValue that is
	// not a frame, then a message that is not a BytesValue, then one valid
	// StepDone, and prints "sent". Delivery to one address is in order, so
	// the StepDone arrives last.
	modeGarble = "garble"
)

// garbage is a BytesValue payload wire rejects: version 1, kind 6
// (ReduceChunk), then bytes that are no msgpack header.
var garbage = []byte{1, 6, 0xc1, 0xff, 0x00}

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envMode)
	if mode == "" {
		t.Skip("runs only as a child process of this package's tests")
	}
	err := runHelper(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(mode string) error {
	key, err := base64.StdEncoding.DecodeString(os.Getenv(envKey))
	if err != nil {
		return err
	}
	server, client, err := cluster.TLSConfigs(key, "helper-"+mode)
	if err != nil {
		return err
	}
	parent, label := os.Getenv(envParent), os.Getenv(envLabel)
	var tr *Transport
	started := make(chan struct{}) // orders the assignment of tr before its use in reply
	reply := func(d Delivery) {
		<-started
		var out wire.Message = d.Message
		if c, ok := d.Message.(*wire.ReduceChunk); ok {
			out = &wire.Ack{Header: wire.Header{From: label}, Cursor: int64(c.ChunkIndex)}
		}
		if err := tr.Send(d.From, out); err != nil {
			fmt.Fprintln(os.Stderr, "helper: reply:", err)
		}
	}
	tr, err = Start(Config{TLS: TLS{Server: server, Client: client}, Handler: reply})
	if err != nil {
		return err
	}
	defer tr.Close()
	close(started)
	tr.SetPeers([]string{parent})
	fmt.Printf("addr %s\n", tr.Address())

	stepDone := &wire.StepDone{Header: wire.Header{From: label, Step: 1}, Samples: 1}
	switch mode {
	case modeReply:
	case modeSend:
		if err := tr.Send(parent, stepDone); err != nil {
			return err
		}
		fmt.Println("sent")
	case modeGarble:
		target := actor.NewPID(parent, InboxName)
		tr.system.Root.RequestWithCustomSender(target, &wrapperspb.BytesValue{Value: garbage}, tr.inbox)
		tr.system.Root.Send(target, wrapperspb.String("not a frame"))
		if err := tr.Send(parent, stepDone); err != nil {
			return err
		}
		fmt.Println("sent")
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	_, err = io.Copy(io.Discard, os.Stdin) // until the test closes our stdin
	return err
}

// helper is a child process running TestHelperProcess.
type helper struct {
	addr  string
	lines chan string // stdout lines after the address
	stdin io.Closer
	cmd   *exec.Cmd
}

// startHelper starts a helper in mode holding key, pointed at parent, and
// waits for its address. It is stopped when tb ends.
func startHelper(tb testing.TB, mode string, key []byte, parent, label string) *helper {
	tb.Helper()
	h := launchHelper(tb, mode, key, parent, label)
	tb.Cleanup(h.stop)
	return h
}

// launchHelper is startHelper for a helper that outlives tb; the caller
// stops it.
func launchHelper(tb testing.TB, mode string, key []byte, parent, label string) *helper {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(),
		envMode+"="+mode, envKey+"="+base64.StdEncoding.EncodeToString(key),
		envParent+"="+parent, envLabel+"="+label)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	h := &helper{lines: make(chan string, 16), stdin: stdin, cmd: cmd}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	line := h.next(tb, 20*time.Second)
	addr, ok := strings.CutPrefix(line, "addr ")
	if !ok {
		h.kill()
		tb.Fatalf("helper %s: first line %q, want its address", mode, line)
	}
	h.addr = addr
	return h
}

// next returns the helper's next stdout line, failing tb after timeout.
func (h *helper) next(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			tb.Fatal("helper exited early")
		}
		return line
	case <-time.After(timeout):
		tb.Fatalf("no line from helper within %v", timeout)
	}
	return ""
}

// kill ends the helper at once, as a crash would.
func (h *helper) kill() { h.cmd.Process.Kill() }

// stop closes the helper's stdin and waits for it to exit, killing it if it
// takes longer than its transport's Close can.
func (h *helper) stop() {
	h.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}
