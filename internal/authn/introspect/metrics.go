package introspect

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/telemetry"
)

// metrics are optional: every method is a no-op when no Registerer was
// given. Label values are fixed strings, never token data.
type metrics struct {
	refusals *prometheus.CounterVec // reason
	requests *prometheus.CounterVec // result: active, inactive, error
	cacheRes *prometheus.CounterVec // result: hit, negative_hit, miss
	latency  prometheus.Histogram   // endpoint call duration
	joined   prometheus.Counter     // requests that waited on another request's call
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	var m metrics
	if reg == nil {
		return m, nil
	}
	var err error
	if m.refusals, err = telemetry.RegisterOrReuse(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sekisho_introspection_refusals_total",
		Help: "Bearer tokens refused by the introspection authenticator, by reason.",
	}, []string{"reason"})); err != nil {
		return m, err
	}
	if m.requests, err = telemetry.RegisterOrReuse(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sekisho_introspection_requests_total",
		Help: "Calls to the introspection endpoint, by result (active, inactive, error).",
	}, []string{"result"})); err != nil {
		return m, err
	}
	if m.cacheRes, err = telemetry.RegisterOrReuse(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sekisho_introspection_cache_total",
		Help: "Introspection cache lookups, by result (hit, negative_hit, miss).",
	}, []string{"result"})); err != nil {
		return m, err
	}
	joined := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sekisho_introspection_coalesced_total",
		Help: "Requests answered by joining an endpoint call already in flight for the same token.",
	})
	if m.joined, err = telemetry.RegisterOrReuse(reg, joined); err != nil {
		return m, fmt.Errorf("introspect: coalesced counter: %w", err)
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sekisho_introspection_request_duration_seconds",
		Help:    "Duration of introspection endpoint calls.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	if m.latency, err = telemetry.RegisterOrReuse(reg, h); err != nil {
		return m, fmt.Errorf("introspect: histogram: %w", err)
	}
	return m, nil
}

func (m metrics) refusal(reason string) {
	if m.refusals != nil {
		m.refusals.WithLabelValues(reason).Inc()
	}
}

func (m metrics) request(result string) {
	if m.requests != nil {
		m.requests.WithLabelValues(result).Inc()
	}
}

func (m metrics) cache(result string) {
	if m.cacheRes != nil {
		m.cacheRes.WithLabelValues(result).Inc()
	}
}

func (m metrics) join() {
	if m.joined != nil {
		m.joined.Inc()
	}
}

func (m metrics) duration(d time.Duration) {
	if m.latency != nil {
		m.latency.Observe(d.Seconds())
	}
}
