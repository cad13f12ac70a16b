//go:build race

package testutil

// RaceEnabled is true under the race detector, whose instrumentation can
// allocate: tests skip allocation assertions then.
const RaceEnabled = true
