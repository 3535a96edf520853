package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/data"
)

// The fleet examples (docs/spot-fleets.md) are copied onto machines as they are, where a flag
// that no longer exists stops every node. These tests parse each troupe command line in them
// with the flag set the real commands build, so renaming a flag fails here first.

const examplesDir = "../../examples"

var fleetScripts = []string{"aws/user-data.sh", "gcp/startup.sh"}

// troupeCall is one `troupe node` or `troupe status` command line found in an example.
type troupeCall struct {
	where string
	args  []string // after the subcommand
	cmd   *cobra.Command
}

func (c troupeCall) duration(tb testing.TB, name string) time.Duration {
	tb.Helper()
	d, err := c.cmd.Flags().GetDuration(name)
	if err != nil {
		tb.Fatalf("%s: --%s: %v", c.where, name, err)
	}
	return d
}

// parseTroupe parses a troupe command line (argv after "troupe") with the flags of the real
// subcommand, as the binary would.
func parseTroupe(argv []string, where string) (troupeCall, error) {
	if len(argv) == 0 {
		return troupeCall{}, fmt.Errorf("%s: troupe without a subcommand", where)
	}
	var cmd *cobra.Command
	switch argv[0] {
	case "node":
		cmd = newNodeCommand(io.Discard, io.Discard)
	case "status":
		cmd = newStatusCommand(io.Discard, io.Discard)
	default:
		return troupeCall{}, fmt.Errorf("%s: troupe %s: not a subcommand the examples should run", where, argv[0])
	}
	call := troupeCall{where: where, args: argv[1:], cmd: cmd}
	if err := cmd.ParseFlags(call.args); err != nil {
		return call, fmt.Errorf("%s: troupe %s %s: %w", where, argv[0], strings.Join(call.args, " "), err)
	}
	if rest := cmd.Flags().Args(); len(rest) > 0 {
		return call, fmt.Errorf("%s: troupe %s takes no arguments, got %q", where, argv[0], rest)
	}
	if argv[0] != "node" {
		return call, nil
	}
	fl := cmd.Flags()
	switch {
	case fl.Changed("job") == fl.Changed("join"):
		return call, fmt.Errorf("%s: troupe node needs exactly one of --job and --join", where)
	case fl.Changed("min-nodes") && !fl.Changed("job"):
		return call, fmt.Errorf("%s: --min-nodes is for the node started with --job", where)
	case !fl.Changed("bind"):
		// The default binds to loopback: a fleet's nodes would never reach each other.
		return call, fmt.Errorf("%s: troupe node without --bind listens on loopback only", where)
	}
	return call, nil
}

// troupeCalls finds the troupe command lines of a shell script.
func troupeCalls(script, where string) ([]troupeCall, error) {
	cmds, err := shellCommands(script)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var calls []troupeCall
	var errs []error
	for _, words := range cmds {
		for i := 0; i+1 < len(words); i++ {
			if path.Base(words[i]) != "troupe" || (words[i+1] != "node" && words[i+1] != "status") {
				continue
			}
			call, err := parseTroupe(words[i+1:], where)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			calls = append(calls, call)
			break
		}
	}
	return calls, errors.Join(errs...)
}

func readExample(tb testing.TB, name string) string {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(raw)
}

// checkSyntax runs the shell's own parser over a script, when that shell is installed.
func checkSyntax(t *testing.T, shell, script, where string) {
	t.Helper()
	bin, err := exec.LookPath(shell)
	if err != nil {
		t.Logf("%s: no %s here to check the syntax with", where, shell)
		return
	}
	cmd := exec.Command(bin, "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: %s -n: %v\n%s", where, shell, err, out)
	}
}

// drainBudget is what a node needs between SIGTERM and its exit, at the least: the step in
// flight up to --drain-timeout, then the graceful leave up to --leave-timeout.
func drainBudget(tb testing.TB, c troupeCall) time.Duration {
	return c.duration(tb, "drain-timeout") + c.duration(tb, "leave-timeout")
}

func TestSpotExampleScripts(t *testing.T) {
	stopTimeout := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)$`)
	for _, name := range fleetScripts {
		t.Run(name, func(t *testing.T) {
			script := readExample(t, name)
			checkSyntax(t, "bash", script, name)
			calls, err := troupeCalls(script, name)
			if err != nil {
				t.Fatal(err)
			}
			var starts, joins int
			for _, c := range calls {
				if !c.cmd.Flags().Changed("key-file") {
					t.Errorf("%s: troupe %s without --key-file: a node off loopback refuses to start without the key", name, strings.Join(c.args, " "))
				}
				if c.cmd.Flags().Changed("job") {
					starts++
				}
				if c.cmd.Flags().Changed("join") {
					joins++
				}
			}
			if starts == 0 || joins == 0 {
				t.Fatalf("%s: %d command lines start the job and %d join it: want both kinds", name, starts, joins)
			}
			m := stopTimeout.FindStringSubmatch(script)
			if m == nil {
				t.Fatalf("%s: no TimeoutStopSec= in the systemd unit", name)
			}
			stop, _ := strconv.Atoi(m[1])
			for _, c := range calls {
				if need := drainBudget(t, c); time.Duration(stop)*time.Second <= need {
					t.Errorf("%s: TimeoutStopSec=%d does not cover --drain-timeout plus --leave-timeout (%s)", name, stop, need)
				}
			}
			if !strings.Contains(script, data.MNISTDirEnv+"=") {
				t.Errorf("%s: does not set %s, where the nodes find MNIST", name, data.MNISTDirEnv)
			}
			t.Logf("%s: %d troupe command lines, TimeoutStopSec=%d", name, len(calls), stop)
		})
	}
}

// k8sObject holds the parts of a Kubernetes object the checks read.
type k8sObject struct {
	APIVersion string                `yaml:"apiVersion"`
	Kind       string                `yaml:"kind"`
	Metadata   struct{ Name string } `yaml:"metadata"`
	Data       map[string]string     `yaml:"data"`
	Spec       struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer
				Volumes                       []struct {
					Name      string
					ConfigMap *struct{ Name string } `yaml:"configMap"`
				}
			}
		}
	}
}

type k8sContainer struct {
	Name    string
	Command []string
	Args    []string
	Env     []struct {
		Name      string
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// calls finds the troupe command lines a container runs: a shell script (sh -c), or troupe's
// own arguments (the image's entrypoint is troupe).
func (c k8sContainer) calls(t *testing.T, where string) []troupeCall {
	t.Helper()
	argv := append(append([]string{}, c.Command...), c.Args...)
	switch {
	case len(argv) >= 3 && (path.Base(argv[0]) == "sh" || path.Base(argv[0]) == "bash") && argv[1] == "-c":
		checkSyntax(t, path.Base(argv[0]), argv[2], where)
		calls, err := troupeCalls(argv[2], where)
		if err != nil {
			t.Fatal(err)
		}
		return calls
	case len(argv) > 0 && path.Base(argv[0]) == "troupe":
		argv = argv[1:]
	case len(c.Command) > 0:
		return nil
	}
	call, err := parseTroupe(argv, where)
	if err != nil {
		t.Fatal(err)
	}
	return []troupeCall{call}
}

func TestSpotExampleManifest(t *testing.T) {
	const name = "kubernetes/troupe.yaml"
	dec := yaml.NewDecoder(strings.NewReader(readExample(t, name)))
	var objects []k8sObject
	for i := 0; ; i++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		var obj k8sObject
		if err := node.Decode(&obj); err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		if obj.APIVersion == "" || obj.Kind == "" || obj.Metadata.Name == "" {
			t.Fatalf("%s: document %d has no apiVersion, kind or metadata.name", name, i)
		}
		objects = append(objects, obj)
	}
	configMaps := map[string]k8sObject{}
	kinds := map[string]int{}
	for _, o := range objects {
		kinds[o.Kind]++
		if o.Kind == "ConfigMap" {
			configMaps[o.Metadata.Name] = o
		}
	}
	if kinds["StatefulSet"] != 1 || kinds["Service"] != 1 || kinds["ConfigMap"] != 1 {
		t.Fatalf("%s: objects %v: want a StatefulSet, a Service and a ConfigMap", name, kinds)
	}
	for _, o := range objects {
		if o.Kind != "StatefulSet" {
			continue
		}
		pod := o.Spec.Template.Spec
		where := name + ": StatefulSet " + o.Metadata.Name
		if pod.TerminationGracePeriodSeconds == nil {
			t.Fatalf("%s: no terminationGracePeriodSeconds (Kubernetes' default is 30 s)", where)
		}
		grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		var calls []troupeCall
		for _, c := range pod.Containers {
			cc := c.calls(t, where+" container "+c.Name)
			if len(cc) == 0 {
				continue
			}
			calls = append(calls, cc...)
			key := false
			for _, e := range c.Env {
				key = key || (e.Name == cluster.KeyEnv && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil)
			}
			if !key {
				t.Errorf("%s container %s: no %s from a Secret, and the nodes bind off loopback", where, c.Name, cluster.KeyEnv)
			}
			for _, call := range cc {
				if !call.cmd.Flags().Changed("job") {
					continue
				}
				// The job file must be a key of a ConfigMap mounted where --job looks, and a
				// job troupe accepts.
				job, _ := call.cmd.Flags().GetString("job")
				found := false
				for _, m := range c.VolumeMounts {
					if m.MountPath != path.Dir(job) {
						continue
					}
					for _, v := range pod.Volumes {
						if v.Name != m.Name || v.ConfigMap == nil {
							continue
						}
						raw, ok := configMaps[v.ConfigMap.Name].Data[path.Base(job)]
						if !ok {
							continue
						}
						found = true
						if _, err := actors.ParseJob([]byte(raw)); err != nil {
							t.Errorf("%s: the job in ConfigMap %s: %v", where, v.ConfigMap.Name, err)
						}
					}
				}
				if !found {
					t.Errorf("%s container %s: --job %s is in no mounted ConfigMap of this manifest", where, c.Name, job)
				}
			}
		}
		var starts, joins int
		for _, c := range calls {
			if need := drainBudget(t, c); grace <= need {
				t.Errorf("%s: terminationGracePeriodSeconds %s does not exceed --drain-timeout plus --leave-timeout (%s) of troupe %s",
					where, grace, need, strings.Join(c.args, " "))
			}
			if c.cmd.Flags().Changed("job") {
				starts++
			} else {
				joins++
			}
		}
		if starts == 0 || joins == 0 {
			t.Fatalf("%s: %d command lines start the job and %d join it: want both kinds", where, starts, joins)
		}
		t.Logf("%s: %d troupe command lines, grace %s, drain %s", where, len(calls), grace, calls[0].duration(t, "drain-timeout"))
	}
}

func TestSpotExampleDockerfile(t *testing.T) {
	const name = "kubernetes/Dockerfile"
	df := readExample(t, name)
	for _, want := range []string{"./cmd/troupe", data.MNISTModule, data.MNISTDirEnv + "=", `ENTRYPOINT ["troupe"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("%s: does not mention %s", name, want)
		}
	}
	if _, err := os.Stat("../../cmd/troupe"); err != nil {
		t.Errorf("%s builds ./cmd/troupe: %v", name, err)
	}
}

// The checks above pass only as long as they can fail: the parser rejects what the binary
// rejects, and finds command lines however the scripts spell them.
func TestSpotExampleChecker(t *testing.T) {
	for _, bad := range []string{
		"troupe node --bind 10.0.0.1:7946 --join 10.0.0.2:7946 --no-such-flag",
		"troupe node --bind 10.0.0.1:7946 --join 10.0.0.2:7946 --drain-timeout ten",
		"troupe node --join 10.0.0.2:7946",
		"troupe node --bind 10.0.0.1:7946 --job j.yaml --join 10.0.0.2:7946",
		"troupe node --bind 10.0.0.1:7946 --join 10.0.0.2:7946 stray",
		"exec /usr/local/bin/troupe node --bind \"$ip:7946\" \\\n  --join x:1 --bogus 2>/dev/null &",
		"( set -a; exec troupe node --bind 10.0.0.1:7946 --job j.yaml --min-nodes three )",
	} {
		if _, err := troupeCalls(bad, "test"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	script := "cat >f <<'EOF'\ntroupe node --not-parsed\nEOF\n" +
		"x=\"$(echo a) b\" # troupe node --in-a-comment\n" +
		"trap 'troupe node --quoted' TERM\n" +
		"exec troupe node --bind \"${POD_IP}:7946\" \\\n  --join troupe:7946 --drain-timeout=20s >/dev/null 2>&1 &\n"
	calls, err := troupeCalls(script, "test")
	if err != nil || len(calls) != 1 {
		t.Fatalf("found %d command lines (%v), want 1", len(calls), err)
	}
	if d := calls[0].duration(t, "drain-timeout"); d != 20*time.Second {
		t.Fatalf("--drain-timeout read as %s, want 20s", d)
	}
	if bind, _ := calls[0].cmd.Flags().GetString("bind"); bind != "${POD_IP}:7946" {
		t.Fatalf("--bind read as %q", bind)
	}
}

// shellCommands splits a POSIX shell script into simple commands, each a list of words with
// quotes removed and expansions left as written. It skips comments and here-document bodies;
// operators (; & | && || ( ) and newlines) end a command, and redirections are dropped. That is
// enough to find command lines and their arguments in the examples, not a shell.
func shellCommands(src string) ([][]string, error) {
	lx := &shellLexer{src: src}
	var cmds [][]string
	var cur []string
	for {
		tok, err := lx.next()
		if err != nil {
			return nil, err
		}
		switch tok.kind {
		case tokEOF:
			if len(cur) > 0 {
				cmds = append(cmds, cur)
			}
			return cmds, nil
		case tokWord:
			cur = append(cur, tok.text)
		case tokOp:
			if len(cur) > 0 {
				cmds = append(cmds, cur)
			}
			cur = nil
		}
	}
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokOp
	tokRedirect
)

type shellToken struct {
	kind tokKind
	text string
}

type shellLexer struct {
	src      string
	i        int
	heredocs []heredoc // bodies that start after the next newline
}

type heredoc struct {
	delim     string
	stripTabs bool
}

func (lx *shellLexer) peek(off int) byte {
	if lx.i+off < len(lx.src) {
		return lx.src[lx.i+off]
	}
	return 0
}

func (lx *shellLexer) next() (shellToken, error) {
	for {
		switch c := lx.peek(0); {
		case lx.i >= len(lx.src):
			return shellToken{kind: tokEOF}, nil
		case c == ' ' || c == '\t' || c == '\r':
			lx.i++
		case c == '\\' && lx.peek(1) == '\n':
			lx.i += 2
		case c == '#':
			for lx.i < len(lx.src) && lx.src[lx.i] != '\n' {
				lx.i++
			}
		case c == '\n':
			lx.i++
			if err := lx.skipHeredocs(); err != nil {
				return shellToken{}, err
			}
			return shellToken{kind: tokOp, text: "\n"}, nil
		case c == ';' || c == '(' || c == ')':
			lx.i++
			return shellToken{kind: tokOp, text: string(c)}, nil
		case (c == '&' || c == '|') && lx.peek(1) == c:
			lx.i += 2
			return shellToken{kind: tokOp, text: string(c) + string(c)}, nil
		case c == '&' && lx.peek(1) == '>':
			lx.i++
			return lx.redirect()
		case c == '&' || c == '|':
			lx.i++
			return shellToken{kind: tokOp, text: string(c)}, nil
		case c == '<' || c == '>':
			return lx.redirect()
		case c >= '0' && c <= '9':
			j := lx.i
			for j < len(lx.src) && lx.src[j] >= '0' && lx.src[j] <= '9' {
				j++
			}
			if j < len(lx.src) && (lx.src[j] == '<' || lx.src[j] == '>') {
				lx.i = j
				return lx.redirect()
			}
			return lx.word()
		default:
			return lx.word()
		}
	}
}

// redirect reads a redirection operator and its target, registering here-documents.
func (lx *shellLexer) redirect() (shellToken, error) {
	var op string
	for _, o := range []string{"<<<", "<<-", "<<", ">>", ">&", "<&", ">|", "<>", ">", "<"} {
		if strings.HasPrefix(lx.src[lx.i:], o) {
			op = o
			break
		}
	}
	lx.i += len(op)
	for lx.peek(0) == ' ' || lx.peek(0) == '\t' {
		lx.i++
	}
	target, err := lx.word()
	if err != nil {
		return shellToken{}, err
	}
	if target.text == "" {
		return shellToken{}, fmt.Errorf("redirection %s without a target at byte %d", op, lx.i)
	}
	if op == "<<" || op == "<<-" {
		lx.heredocs = append(lx.heredocs, heredoc{delim: target.text, stripTabs: op == "<<-"})
	}
	return shellToken{kind: tokRedirect, text: op + target.text}, nil
}

// skipHeredocs passes over the bodies of the here-documents opened on the line just ended.
func (lx *shellLexer) skipHeredocs() error {
	for _, h := range lx.heredocs {
		for {
			if lx.i >= len(lx.src) {
				return fmt.Errorf("here-document %q is not closed", h.delim)
			}
			end := strings.IndexByte(lx.src[lx.i:], '\n')
			line := lx.src[lx.i:]
			if end >= 0 {
				line = lx.src[lx.i : lx.i+end]
				lx.i += end + 1
			} else {
				lx.i = len(lx.src)
			}
			if h.stripTabs {
				line = strings.TrimLeft(line, "\t")
			}
			if line == h.delim {
				break
			}
		}
	}
	lx.heredocs = nil
	return nil
}

// word reads one word, removing quotes and keeping expansions as written.
func (lx *shellLexer) word() (shellToken, error) {
	var b strings.Builder
	for lx.i < len(lx.src) {
		c := lx.src[lx.i]
		switch {
		case strings.IndexByte(" \t\r\n;&|()<>", c) >= 0:
			return shellToken{kind: tokWord, text: b.String()}, nil
		case c == '\\':
			if lx.peek(1) != '\n' && lx.i+1 < len(lx.src) {
				b.WriteByte(lx.src[lx.i+1])
			}
			lx.i += 2
		case c == '\'':
			end := strings.IndexByte(lx.src[lx.i+1:], '\'')
			if end < 0 {
				return shellToken{}, fmt.Errorf("unclosed ' at byte %d", lx.i)
			}
			b.WriteString(lx.src[lx.i+1 : lx.i+1+end])
			lx.i += end + 2
		case c == '"':
			lx.i++
			if err := lx.doubleQuoted(&b); err != nil {
				return shellToken{}, err
			}
		case c == '$' && (lx.peek(1) == '(' || lx.peek(1) == '{'):
			if err := lx.expansion(&b); err != nil {
				return shellToken{}, err
			}
		case c == '`':
			end := strings.IndexByte(lx.src[lx.i+1:], '`')
			if end < 0 {
				return shellToken{}, fmt.Errorf("unclosed ` at byte %d", lx.i)
			}
			b.WriteString(lx.src[lx.i : lx.i+end+2])
			lx.i += end + 2
		default:
			b.WriteByte(c)
			lx.i++
		}
	}
	return shellToken{kind: tokWord, text: b.String()}, nil
}

// doubleQuoted reads up to the closing double quote (the opening one already read).
func (lx *shellLexer) doubleQuoted(b *strings.Builder) error {
	start := lx.i
	for lx.i < len(lx.src) {
		c := lx.src[lx.i]
		switch {
		case c == '"':
			lx.i++
			return nil
		case c == '\\' && strings.IndexByte("\"\\$`\n", lx.peek(1)) >= 0 && lx.peek(1) != 0:
			if lx.peek(1) != '\n' {
				b.WriteByte(lx.src[lx.i+1])
			}
			lx.i += 2
		case c == '$' && (lx.peek(1) == '(' || lx.peek(1) == '{'):
			if err := lx.expansion(b); err != nil {
				return err
			}
		default:
			b.WriteByte(c)
			lx.i++
		}
	}
	return fmt.Errorf("unclosed \" at byte %d", start-1)
}

// expansion copies a $(...) or ${...} as written, nested quotes and parentheses included.
func (lx *shellLexer) expansion(b *strings.Builder) error {
	start := lx.i
	open, closing := lx.src[lx.i+1], byte(')')
	if open == '{' {
		closing = '}'
	}
	depth := 0
	for lx.i += 1; lx.i < len(lx.src); lx.i++ {
		switch c := lx.src[lx.i]; c {
		case open:
			depth++
		case closing:
			depth--
			if depth == 0 {
				lx.i++
				b.WriteString(lx.src[start:lx.i])
				return nil
			}
		case '\\':
			lx.i++
		case '\'', '"':
			end := strings.IndexByte(lx.src[lx.i+1:], c)
			if end < 0 {
				return fmt.Errorf("unclosed %c in the expansion at byte %d", c, start)
			}
			lx.i += end + 1
		}
	}
	return fmt.Errorf("unclosed expansion at byte %d: %s", start, bytes.TrimSpace([]byte(lx.src[start:min(len(lx.src), start+40)])))
}
