package sched

import (
	"math/rand"
	"testing"
	"testing/quick"
)

// obviousQuorum counts both sides of the split and lets the larger win, the
// coordinator's side winning a tie.
func obviousQuorum(w World, voters map[NodeID]bool) bool {
	in, out := 0, 0
	coordIn := false
	for _, m := range w.Members {
		if voters[m] {
			in++
			coordIn = coordIn || m == w.Coordinator
		} else {
			out++
		}
	}
	return in > out || (in == out && in > 0 && coordIn)
}

// TestNewWorldNeedsMajorityOfPrevious: a world needs a majority of the
// previous world's members, a tie going to the side holding the coordinator;
// so of any split exactly one side may decide.
func TestNewWorldNeedsMajorityOfPrevious(t *testing.T) {
	property := func(size uint8, mask uint64) bool {
		n := 1 + int(size)%12
		members := make([]NodeID, n)
		for i := range members {
			members[i] = NodeID(rune('a' + i))
		}
		w := newWorld(1, members, 0, members[0])
		side, other := map[NodeID]bool{}, map[NodeID]bool{}
		for i, m := range members {
			if mask>>i&1 == 1 {
				side[m] = true
			} else {
				other[m] = true
			}
		}
		return isQuorum(w, side) == obviousQuorum(w, side) && isQuorum(w, side) != isQuorum(w, other)
	}
	if err := quick.Check(property, &quick.Config{MaxCount: 2000, Rand: rand.New(rand.NewSource(1))}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "sched: invalid config: id is empty"},
		{Config{ID: "a", MinNodes: -1}, "sched: invalid config: min_nodes must be at least 1, got -1"},
		{Config{ID: "a", StartStep: -2}, "sched: invalid config: start_step must not be negative, got -2"},
	}
	for _, tc := range tests {
		if _, err := NewNode(tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("NewNode(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestStartStepIsHighestCursorOfPromisers checks the start step and source
// choice: the highest cursor among promisers in the new world, lowest ID first.
func TestStartStepIsHighestCursorOfPromisers(t *testing.T) {
	promises := map[NodeID]Promise{"a": {Cursor: 4}, "b": {Cursor: 5}, "c": {Cursor: 5}, "x": {Cursor: 9}}
	start, src := startAndSource([]NodeID{"c", "b", "a"}, promises)
	if start != 5 || src != "b" {
		t.Fatalf("startAndSource = %d, %s; want 5, b (x is not a member)", start, src)
	}
}
