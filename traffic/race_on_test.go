//go:build race

package traffic_test

// raceEnabled: the race detector slows kongsim's proxy about tenfold, so
// the kongsim test lowers its rate instead of measuring the machine.
const raceEnabled = true
