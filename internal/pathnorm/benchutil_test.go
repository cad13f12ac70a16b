package pathnorm

import (
	"runtime"
	"testing"
)

// cpuTimer reports "cpu-ns/op" (see threadCPU) when the platform supports it.
type cpuTimer struct {
	b     *testing.B
	start int64
	ok    bool
}

func startCPUTimer(b *testing.B) *cpuTimer {
	runtime.LockOSThread()
	t := &cpuTimer{b: b}
	d, ok := threadCPU()
	t.start, t.ok = int64(d), ok
	return t
}

func (t *cpuTimer) stop() {
	defer runtime.UnlockOSThread()
	if !t.ok || t.b.N == 0 {
		return
	}
	d, ok := threadCPU()
	if !ok {
		return
	}
	t.b.ReportMetric(float64(int64(d)-t.start)/float64(t.b.N), "cpu-ns/op")
}
