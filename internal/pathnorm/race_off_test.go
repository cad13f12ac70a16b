//go:build !race

package pathnorm

const raceEnabled = false
