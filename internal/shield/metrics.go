package shield

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Rejection reasons used as the "reason" label of
// sekisho_connections_rejected_total.
const (
	// ReasonPerIP: the peer already held MaxConnsPerIP connections, so the new
	// connection was accepted and closed at once.
	ReasonPerIP = "per_ip"
)

// Metrics holds the Prometheus collectors of the connection limiter. One
// Metrics may be shared by several Limiters (for example the HTTP and HTTPS
// listeners); the figures are then totals over all of them.
//
// A nil *Metrics is valid and records nothing.
type Metrics struct {
	open      prometheus.Gauge
	rejected  *prometheus.CounterVec
	waits     prometheus.Counter
	reclaimed prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg. reg may be nil
// (collectors are created but not registered, useful in tests). Registration
// errors (for example a duplicate registration) are returned.
//
// Exposed series:
//
//	sekisho_open_connections                     gauge   connections admitted and not yet closed
//	sekisho_connections_rejected_total{reason}   counter connections closed right after accept ("per_ip")
//	sekisho_connection_limit_waits_total         counter times accepting paused because MaxConns was reached
//	sekisho_idle_connections_reclaimed_total     counter idle keep-alive connections closed to admit a new one
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sekisho",
			Name:      "open_connections",
			Help:      "Client connections admitted by the connection limiter and not yet closed (hijacked connections included).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho",
			Name:      "connections_rejected_total",
			Help:      "Client connections closed immediately after accept because a connection limit was exceeded, by reason.",
		}, []string{"reason"}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sekisho",
			Name:      "connection_limit_waits_total",
			Help:      "Times the listener stopped accepting because the global connection limit was reached (new clients wait in the kernel backlog).",
		}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sekisho",
			Name:      "idle_connections_reclaimed_total",
			Help:      "Idle keep-alive connections closed to make room for a new connection at the global connection limit.",
		}),
	}
	// Pre-create the label value so the series exists (at 0) before the first rejection.
	m.rejected.WithLabelValues(ReasonPerIP)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.open, m.rejected, m.waits, m.reclaimed} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("shield: register connection metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) connOpened() {
	if m != nil {
		m.open.Inc()
	}
}

func (m *Metrics) connClosed() {
	if m != nil {
		m.open.Dec()
	}
}

func (m *Metrics) rejectedConn(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) waited() {
	if m != nil {
		m.waits.Inc()
	}
}

func (m *Metrics) reclaimedIdle() {
	if m != nil {
		m.reclaimed.Inc()
	}
}
