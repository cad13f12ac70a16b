package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus collectors. Labels are route names
// and status classes only: never paths, hosts, tokens or client addresses.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	refusals  *prometheus.CounterVec
	rejects   *prometheus.CounterVec
	inflight  prometheus.Gauge
	Reloads   *prometheus.CounterVec
	upErrors  *prometheus.CounterVec
	configGen prometheus.Gauge
}

// NewMetrics registers the gateway's collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_requests_total", Help: "Requests handled, by route and status class.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sekisho_request_duration_seconds", Help: "Time from request headers to the end of the response, by route and status class.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "code"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_auth_refusals_total", Help: "Requests refused by authentication or authorization, by route and reason.",
		}, []string{"route", "reason"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_rejected_requests_total", Help: "Requests the gateway answered itself before routing or proxying, by reason.",
		}, []string{"reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sekisho_requests_in_flight", Help: "Requests being handled now.",
		}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_config_reloads_total", Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_proxy_errors_total", Help: "Failed upstream exchanges as seen by the gateway, by route and kind.",
		}, []string{"route", "kind"}),
		configGen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sekisho_config_generation", Help: "Number of the configuration in force (1 at start, +1 per successful reload).",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.refusals, m.rejects, m.inflight, m.Reloads, m.upErrors, m.configGen)
	// Both reload results exist from the start so alerts on failures work
	// before the first failure.
	m.Reloads.WithLabelValues("success")
	m.Reloads.WithLabelValues("failure")
	return m
}

var codeClasses = [6]string{"1xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// routeMetrics holds a route's pre-resolved series so the hot path does no
// label lookups.
type routeMetrics struct {
	requests [6]prometheus.Counter
	duration [6]prometheus.Observer
}

func (m *Metrics) forRoute(name string) *routeMetrics {
	rm := &routeMetrics{}
	for i := 1; i < 6; i++ {
		rm.requests[i] = m.requests.WithLabelValues(name, codeClasses[i])
		rm.duration[i] = m.duration.WithLabelValues(name, codeClasses[i])
	}
	return rm
}

func (rm *routeMetrics) observe(status int, seconds float64) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 5
	}
	rm.requests[c].Inc()
	rm.duration[c].Observe(seconds)
}
