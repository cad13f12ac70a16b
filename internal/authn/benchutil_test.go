package authn

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuLoop runs f in b.Loop and also reports process CPU time per operation
// ("cpu-ns/op", from getrusage): on the shared 2-core machine wall-clock
// ns/op mostly measures how long the benchmark waited for a core, while CPU
// time measures the work itself (GC threads included).
func cpuLoop(b *testing.B, f func() error) {
	b.Helper()
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadCPU is the calling thread's CPU time (use with runtime.LockOSThread).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
