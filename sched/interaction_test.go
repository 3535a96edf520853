package sched

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestInteraction runs the scripts in testdata over a fleet with a perfect
// network. Commands:
//
//	start N            node 1 starts the job and waits for N nodes; 2..N join
//	add ID             a new node joins
//	fail IDs [hold]    nodes (1,2: at once) crash; hold: deliver nothing yet
//	leave IDs [hold]   nodes depart gracefully and go once it is decided
//	vanish IDs [hold]  nodes leave the cluster without a departure decided
//	partition 1,2|3,4  cut the network into sides
//	heal               reconnect every side
//	tick N             N ticks, delivering messages after each
//	deliver [N]        run the network until quiet, or deliver only N messages
//	step               the trainable world, if any, completes a step
//	world              every node's committed world
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		f := newFleet(t, nil)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := ""
			if len(d.CmdArgs) > 0 {
				arg = d.CmdArgs[0].Key
			}
			switch d.Cmd {
			case "start":
				count := atoi(t, arg)
				f.minNodes = count
				f.spawn("1", true)
				for i := 2; i <= count; i++ {
					f.spawn(NodeID(strconv.Itoa(i)), false)
				}
				f.deliver()
			case "add":
				f.spawn(NodeID(arg), false)
				f.deliver()
			case "fail", "vanish":
				for _, id := range strings.Split(arg, ",") {
					f.crash(NodeID(id), d.Cmd == "vanish")
				}
				if !d.HasArg("hold") {
					f.deliver()
				}
			case "leave":
				for _, id := range strings.Split(arg, ",") {
					f.depart(NodeID(id))
				}
				if !d.HasArg("hold") {
					f.deliver()
					f.goDeparted(true)
					f.deliver()
				}
				went := strings.Join(f.went, "\n")
				f.went = nil
				return went + "\n" + f.show()
			case "partition":
				var groups [][]NodeID
				for _, side := range strings.Split(arg, "|") {
					var g []NodeID
					for _, id := range strings.Split(side, ",") {
						g = append(g, NodeID(id))
					}
					groups = append(groups, g)
				}
				f.partition(groups)
				f.deliver()
			case "heal":
				f.heal()
				f.deliver()
			case "tick":
				f.tick(atoi(t, arg))
			case "deliver":
				if arg != "" {
					f.deliverSome(atoi(t, arg))
				} else {
					f.deliver()
				}
			case "step":
				if !f.step(1 << 30) {
					return "no world can train\n"
				}
				f.checkHistory()
				return fmt.Sprintf("step done (%d so far)\n", f.steps)
			case "world":
			default:
				t.Fatalf("unknown command %q", d.Cmd)
			}
			return f.show()
		})
	})
}

func atoi(t *testing.T, s string) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return v
}
