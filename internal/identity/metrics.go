package identity

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Login results (metric label values; a closed set, never user data).
const (
	resultSuccess   = "success"
	resultFailure   = "failure"
	resultThrottled = "throttled"
	resultError     = "error"
)

// metrics are the package's Prometheus collectors. Labels never carry
// usernames, user IDs or client input.
type metrics struct {
	logins   *prometheus.CounterVec
	consents *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "identity", Name: "login_attempts_total",
			Help: "Password login attempts by result (success, failure, throttled, error).",
		}, []string{"result"}),
		consents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "identity", Name: "consent_decisions_total",
			Help: "Consent page decisions (allow, deny) and revocations on the account page (revoke).",
		}, []string{"decision"}),
	}
	for _, r := range []string{resultSuccess, resultFailure, resultThrottled, resultError} {
		m.logins.WithLabelValues(r)
	}
	for _, d := range []string{"allow", "deny", "revoke"} {
		m.consents.WithLabelValues(d)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.logins, m.consents} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, fmt.Errorf("identity: metrics already registered (one Service per registry): %w", err)
				}
				return nil, fmt.Errorf("identity: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
