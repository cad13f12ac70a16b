//go:build race

package router

// raceEnabled skips allocation assertions: the race detector's
// instrumentation can allocate.
const raceEnabled = true
