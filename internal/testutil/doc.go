// Package testutil holds what several packages' tests, benchmarks and the
// bench harness share: CPU-time measurement (on the shared 2-core machine
// wall-clock ns/op mostly measures waiting for a core; CPU time measures the
// work) and whether the race detector is on. Product code never imports it.
package testutil
