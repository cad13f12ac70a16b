//go:build linux

package testutil

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ThreadCPU returns the CPU time consumed by the calling OS thread (lock the
// goroutine to it first); ok is false where it cannot be measured.
func ThreadCPU() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// ProcessCPU returns the process's user+system CPU time, all threads (GC
// included), or 0 where it cannot be measured.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
