//go:build race

package synthetic

// raceEnabled shrinks the heavy tests: the race detector slows numeric loops about tenfold.
const raceEnabled = true
