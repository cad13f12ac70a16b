package upstream

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/telemetry"
)

// Metrics (all labels are the upstream name and, for per-target series, the
// target URL, which New guarantees carries no credentials):
//
//	sekisho_upstream_errors_total{upstream,kind}       failed attempts by Kind (client cancellations excluded)
//	sekisho_upstream_retries_total{upstream}           extra attempts made
//	sekisho_upstream_ejections_total{upstream}         passive health ejections
//	sekisho_upstream_target_healthy{upstream,target}   1 if the target may receive traffic (live pools only)
//	sekisho_upstream_target_in_flight{upstream,target} requests in flight to the target
//
// The per-pool counters are resolved once in New, so the hot path does no
// label lookups.
type metrics struct {
	errors    [numKinds]prometheus.Counter
	retries   prometheus.Counter
	ejections prometheus.Counter
	health    *healthCollector // nil without a Registerer
}

func newMetrics(reg prometheus.Registerer, name string) (*metrics, error) {
	errVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sekisho", Subsystem: "upstream", Name: "errors_total",
		Help: "Failed upstream attempts by error kind (client cancellations excluded).",
	}, []string{"upstream", "kind"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sekisho", Subsystem: "upstream", Name: "retries_total",
		Help: "Extra upstream attempts made after a retryable failure.",
	}, []string{"upstream"})
	ejections := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sekisho", Subsystem: "upstream", Name: "ejections_total",
		Help: "Upstream targets ejected by passive health checking.",
	}, []string{"upstream"})
	var health *healthCollector
	if reg != nil {
		var err error
		if errVec, err = telemetry.RegisterOrReuse(reg, errVec); err != nil {
			return nil, err
		}
		if retries, err = telemetry.RegisterOrReuse(reg, retries); err != nil {
			return nil, err
		}
		if ejections, err = telemetry.RegisterOrReuse(reg, ejections); err != nil {
			return nil, err
		}
		if health, err = telemetry.RegisterOrReuse(reg, newHealthCollector()); err != nil {
			return nil, err
		}
	}
	m := &metrics{
		retries:   retries.WithLabelValues(name),
		ejections: ejections.WithLabelValues(name),
		health:    health,
	}
	for k := range numKinds {
		m.errors[k] = errVec.WithLabelValues(name, k.String())
	}
	return m, nil
}

func (m *metrics) attach(p *Pool) {
	if m.health != nil {
		m.health.attach(p)
	}
}

func (m *metrics) detach(p *Pool) {
	if m.health != nil {
		m.health.detach(p)
	}
}

// healthCollector reports per-target gauges of the live pools at scrape time,
// so the request path never updates a gauge. A pool is live between Start and
// Close; for an upstream name the most recently started pool wins, which
// keeps series unique while a reload swaps pools.
type healthCollector struct {
	healthy, inflight *prometheus.Desc

	mu    sync.Mutex
	pools map[string]*Pool
}

func newHealthCollector() *healthCollector {
	return &healthCollector{
		healthy: prometheus.NewDesc("sekisho_upstream_target_healthy",
			"1 if the upstream target may receive traffic (not ejected, not marked down), else 0.",
			[]string{"upstream", "target"}, nil),
		inflight: prometheus.NewDesc("sekisho_upstream_target_in_flight",
			"Requests in flight to the upstream target.",
			[]string{"upstream", "target"}, nil),
		pools: make(map[string]*Pool),
	}
}

func (h *healthCollector) attach(p *Pool) {
	h.mu.Lock()
	h.pools[p.name] = p
	h.mu.Unlock()
}

func (h *healthCollector) detach(p *Pool) {
	h.mu.Lock()
	if h.pools[p.name] == p {
		delete(h.pools, p.name)
	}
	h.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (h *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.healthy
	ch <- h.inflight
}

// Collect implements prometheus.Collector.
func (h *healthCollector) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	pools := make([]*Pool, 0, len(h.pools))
	for _, p := range h.pools {
		pools = append(pools, p)
	}
	h.mu.Unlock()
	for _, p := range pools {
		var now int64
		for _, t := range p.targets {
			v := 0.0
			if p.eligible(t, &now) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(h.healthy, prometheus.GaugeValue, v, p.name, t.label)
			ch <- prometheus.MustNewConstMetric(h.inflight, prometheus.GaugeValue, float64(t.inflight.Load()), p.name, t.label)
		}
	}
}
