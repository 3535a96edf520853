// Package troupe_test holds the checks that span the module: the layering of its packages.
package troupe_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// stdlibBans are standard packages a pure core must not import directly:
// its decisions must not depend on the clock, the network, files or logs.
// Transitive use is fine (fmt imports os without doing I/O for us).
var stdlibBans = map[string]string{
	"net":       "the pure core does no network I/O; cluster/ does",
	"net/http":  "the pure core does no network I/O; actors/ serves HTTP",
	"os":        "the pure core does no file or process I/O",
	"os/exec":   "the pure core starts no processes",
	"os/signal": "signals are the shell's concern",
	"syscall":   "the pure core makes no system calls",
	"time":      "time is counted in steps and ticks; a clock would make decisions non-deterministic",
	"log":       "the pure core returns values; the shell logs them",
	"log/slog":  "the pure core returns values; the shell logs them",
}

// shellDeps are modules and packages no package below actors/ may reach even
// transitively: they belong to the shell that drives it.
var shellDeps = map[string]string{
	"github.com/asynkron/protoactor-go": "actors are the shell; the core is driven by them, not built on them",
	"github.com/hashicorp/memberlist":   "membership reaches the core as plain events from cluster/",
	"github.com/troupe-ml/troupe":       "this package sits at the bottom of its layer and imports nothing of troupe",
}

const module = "github.com/troupe-ml/troupe"

// layers lists, per package, what it must not depend on (DESIGN.md's layer table, with data/
// and checkpoint/ beside compute: see docs/architecture.md).
var layers = []struct {
	pkg string
	// BadDeps are forbidden anywhere in the dependency graph: package or
	// module path prefix => why.
	BadDeps map[string]string
	// Allow are troupe packages exempt from BadDeps: the layers below this one.
	Allow []string
	// BadImports are forbidden as direct imports: package => why.
	BadImports map[string]string
}{
	{pkg: module + "/sched", BadDeps: shellDeps, BadImports: stdlibBans},
	// internal/parallel (worker goroutines) sits below every layer that computes.
	{pkg: module + "/internal/parallel", BadDeps: shellDeps, BadImports: stdlibBans},
	{pkg: module + "/compute/optim", BadDeps: shellDeps, Allow: []string{module + "/internal/parallel"}, BadImports: stdlibBans},
	{pkg: module + "/compute/prune", BadDeps: shellDeps, BadImports: stdlibBans},
	{pkg: module + "/compute/privacy", BadDeps: shellDeps, BadImports: stdlibBans},
	{pkg: module + "/kernels", BadDeps: shellDeps, Allow: []string{module + "/internal/parallel"}, BadImports: stdlibBans},
	{pkg: module + "/compute", BadDeps: shellDeps, Allow: []string{module + "/kernels", module + "/internal/parallel", module + "/compute/optim"}, BadImports: stdlibBans},
	// data and checkpoint do file I/O (that is their job) but know nothing of the layers around them.
	{pkg: module + "/data", BadDeps: shellDeps},
	{pkg: module + "/data/tabular", BadDeps: shellDeps, Allow: []string{module + "/data"}},
	{pkg: module + "/data/synthetic", BadDeps: shellDeps, Allow: []string{module + "/data"}},
	{pkg: module + "/checkpoint", BadDeps: shellDeps},
	// The wire format and the data plane know bytes and streams, not actors or the layers above.
	{pkg: module + "/cluster/wire", BadDeps: shellDeps},
	{pkg: module + "/cluster/collective", BadDeps: shellDeps},
	// The control-plane transport carries wire frames; it knows nothing of actors' roles or training.
	{pkg: module + "/cluster/transport", BadDeps: map[string]string{
		module + "/actors":  "transport is below the actors",
		module + "/compute": "transport has nothing to compute",
	}},
	// Membership turns gossip into plain events; it knows nothing of actors or training.
	{pkg: module + "/cluster", BadDeps: map[string]string{
		module + "/actors":  "cluster is below the actors: it hands them events",
		module + "/compute": "membership has nothing to compute",
		module + "/cmd":     "the command line drives the cluster, not the reverse",
	}},
	{pkg: module + "/actors", BadDeps: map[string]string{module + "/cmd": "the command line drives the actors, not the reverse"}},
}

// covers reports whether pkg is path or lies under it.
func covers(path, pkg string) bool {
	return pkg == path || strings.HasPrefix(pkg, path+"/")
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// TestLayering enforces the layer table of docs/architecture.md: no arrow runs upwards, and
// the pure packages reach neither clocks, files nor the network.
func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found:", err)
	}
	for _, layer := range layers {
		for _, dep := range goList(t, "-deps", layer.pkg) {
			if dep == layer.pkg {
				continue
			}
			if slices.ContainsFunc(layer.Allow, func(a string) bool { return covers(a, dep) }) {
				continue
			}
			for banned, why := range layer.BadDeps {
				if covers(banned, dep) {
					t.Errorf("%s depends on %s: %s", layer.pkg, dep, why)
				}
			}
		}
		for _, imp := range goList(t, "-f", `{{join .Imports " "}}`, layer.pkg) {
			if why, ok := layer.BadImports[imp]; ok {
				t.Errorf("%s imports %s: %s", layer.pkg, imp, why)
			}
		}
	}
}

// TestDefaultBuildHasNoCUDA: gorgonia.org/cu ends a process whose driver finds no GPU, so only
// the build with -tags cuda may link it.
func TestDefaultBuildHasNoCUDA(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found:", err)
	}
	for _, dep := range goList(t, "-deps", module+"/...") {
		if covers("gorgonia.org/cu", dep) {
			t.Errorf("the default build depends on %s", dep)
		}
	}
	if !slices.ContainsFunc(goList(t, "-tags", "cuda", "-deps", module+"/cmd/troupe"), func(d string) bool { return covers("gorgonia.org/cu", d) }) {
		t.Error("the build with -tags cuda does not link gorgonia.org/cu: the GPU backend is missing from it")
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		path, pkg string
		want      bool
	}{
		{"github.com/hashicorp/memberlist", "github.com/hashicorp/memberlist", true},
		{"github.com/troupe-ml/troupe", "github.com/troupe-ml/troupe/actors", true},
		{"github.com/troupe-ml/troupe", "github.com/troupe-ml/trouperx", false},
		{"net", "net/http", true},
		{"net", "netip", false},
	}
	for _, tc := range tests {
		if got := covers(tc.path, tc.pkg); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.path, tc.pkg, got, tc.want)
		}
	}
}
