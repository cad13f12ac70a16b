package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterOrReuse(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "t_total", Help: "h"}
	first, err := RegisterOrReuse(reg, prometheus.NewCounterVec(opts, []string{"r"}))
	if err != nil {
		t.Fatal(err)
	}
	second, err := RegisterOrReuse(reg, prometheus.NewCounterVec(opts, []string{"r"}))
	if err != nil || second != first {
		t.Fatalf("second registration: %v, same collector %v", err, second == first)
	}
	// Same name, other labels: a real conflict, not a reuse.
	if _, err := RegisterOrReuse(reg, prometheus.NewCounterVec(opts, []string{"other"})); err == nil {
		t.Fatal("conflicting registration accepted")
	}
}
