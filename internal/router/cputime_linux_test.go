//go:build linux

package router

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time consumed by the calling OS thread. The
// benchmarks lock their goroutine to its thread and report CPU time per
// operation next to wall time: on the shared 2-core test machine wall time
// includes waiting for the CPU, CPU time does not.
func threadCPU() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
