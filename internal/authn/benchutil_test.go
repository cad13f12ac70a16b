package authn

import (
	"testing"

	"github.com/sekisho/sekisho/internal/testutil"
)

// cpuLoop runs f in b.Loop and also reports process CPU time per operation
// ("cpu-ns/op", from getrusage): on the shared 2-core machine wall-clock
// ns/op mostly measures how long the benchmark waited for a core, while CPU
// time measures the work itself (GC threads included).
func cpuLoop(b *testing.B, f func() error) {
	b.Helper()
	b.ReportAllocs()
	start := testutil.ProcessCPU()
	for b.Loop() {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(testutil.ProcessCPU()-start)/float64(b.N), "cpu-ns/op")
}
