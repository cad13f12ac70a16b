package authn

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the authentication metrics. Create one per process with
// NewMetrics and share it between issuers and routes; a nil *Metrics is
// valid and records nothing. Label values are fixed strings (Reason*
// constants, configured issuer names, result words): never token content.
type Metrics struct {
	refusals      *prometheus.CounterVec
	verifications *prometheus.CounterVec
	cacheLookups  *prometheus.CounterVec
	cacheHit      prometheus.Counter
	cacheMiss     prometheus.Counter
	jwksFetches   *prometheus.CounterVec
	jwksKeys      *prometheus.GaugeVec
	jwksSuccess   *prometheus.GaugeVec
}

// JWKS fetch result label values.
const (
	fetchOK          = "ok"
	fetchNotModified = "not_modified"
	fetchUnchanged   = "unchanged"
	fetchErrNetwork  = "error_network"
	fetchErrStatus   = "error_status"
	fetchErrTooLarge = "error_too_large"
	fetchErrInvalid  = "error_invalid"
)

// NewMetrics registers the authentication metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("authn metrics: nil registerer")
	}
	m := &Metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authn_refusals_total",
			Help: "Credentials refused, by credential kind and reason.",
		}, []string{"kind", "reason"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authn_jwt_verifications_total",
			Help: "Uncached JWT verifications by configured issuer name and result (ok or a refusal reason).",
		}, []string{"issuer", "result"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authn_jwt_cache_lookups_total",
			Help: "Verified-token cache lookups by result (hit, miss).",
		}, []string{"result"}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authn_jwks_fetches_total",
			Help: "Key set loads by issuer and result.",
		}, []string{"issuer", "result"}),
		jwksKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sekisho_authn_jwks_keys",
			Help: "Usable verification keys currently loaded, by issuer.",
		}, []string{"issuer"}),
		jwksSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sekisho_authn_jwks_last_success_timestamp_seconds",
			Help: "Unix time of the last successful key set load, by issuer.",
		}, []string{"issuer"}),
	}
	for _, c := range []prometheus.Collector{m.refusals, m.verifications, m.cacheLookups, m.jwksFetches, m.jwksKeys, m.jwksSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("authn metrics: %w", err)
		}
	}
	m.cacheHit = m.cacheLookups.WithLabelValues("hit")
	m.cacheMiss = m.cacheLookups.WithLabelValues("miss")
	return m, nil
}

// Refusal counts one refused credential. kind is the credential kind
// ("jwt", "apikey", "introspection"), reason a Reason* constant. Other
// authenticators may use it so that every refusal lands in one metric.
func (m *Metrics) Refusal(kind, reason string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(kind, reason).Inc()
}

func (m *Metrics) verification(issuer, result string) {
	if m == nil {
		return
	}
	m.verifications.WithLabelValues(issuer, result).Inc()
}

func (m *Metrics) cache(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheHit.Inc()
	} else {
		m.cacheMiss.Inc()
	}
}

func (m *Metrics) jwksFetch(issuer, result string) {
	if m == nil {
		return
	}
	m.jwksFetches.WithLabelValues(issuer, result).Inc()
}

func (m *Metrics) jwksLoaded(issuer string, keys int, unix float64) {
	if m == nil {
		return
	}
	m.jwksKeys.WithLabelValues(issuer).Set(float64(keys))
	if unix > 0 {
		m.jwksSuccess.WithLabelValues(issuer).Set(unix)
	}
}
