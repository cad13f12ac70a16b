//go:build race

package pathnorm

// raceEnabled skips allocation assertions: the race detector's
// instrumentation can allocate.
const raceEnabled = true
