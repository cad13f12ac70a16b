package testutil

import (
	"runtime"
	"testing"
)

// CPUTimer reports the calling OS thread's CPU time per benchmark operation
// as "cpu-ns/op", when the platform can measure it.
type CPUTimer struct {
	b     *testing.B
	start int64
	ok    bool
}

// StartCPUTimer locks the goroutine to its thread and starts measuring;
// call Stop (deferred) after the benchmark loop.
func StartCPUTimer(b *testing.B) *CPUTimer {
	runtime.LockOSThread()
	t := &CPUTimer{b: b}
	d, ok := ThreadCPU()
	t.start, t.ok = int64(d), ok
	return t
}

// Stop reports the metric and unlocks the thread.
func (t *CPUTimer) Stop() {
	defer runtime.UnlockOSThread()
	if !t.ok || t.b.N == 0 {
		return
	}
	d, ok := ThreadCPU()
	if !ok {
		return
	}
	t.b.ReportMetric(float64(int64(d)-t.start)/float64(t.b.N), "cpu-ns/op")
}
