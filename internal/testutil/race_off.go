//go:build !race

package testutil

// RaceEnabled is true under the race detector (see race_on.go).
const RaceEnabled = false
