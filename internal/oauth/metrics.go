package oauth

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the authorization server. Every label value comes from a
// closed set (grant types, RFC 6749 error codes, revocation kinds).
type metrics struct {
	tokens    *prometheus.CounterVec   // grant_type
	errors    *prometheus.CounterVec   // endpoint, error
	duration  *prometheus.HistogramVec // endpoint
	revoked   *prometheus.CounterVec   // kind
	authorize *prometheus.CounterVec   // outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "oauth", Name: "tokens_issued_total",
			Help: "Token responses issued by the token endpoint, by grant type.",
		}, []string{"grant_type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "oauth", Name: "errors_total",
			Help: "OAuth error responses by endpoint and RFC 6749 error code.",
		}, []string{"endpoint", "error"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sekisho", Subsystem: "oauth", Name: "request_duration_seconds",
			Help:    "Duration of authorization server requests by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"endpoint"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "oauth", Name: "revocations_total",
			Help: "Deny-list entries written: single tokens, subjects, clients.",
		}, []string{"kind"}),
		authorize: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "oauth", Name: "authorize_total",
			Help: "Authorization endpoint outcomes (code, login, consent, error, error_page).",
		}, []string{"outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.tokens, m.errors, m.duration, m.revoked, m.authorize} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("oauth: metrics already registered (one Server per Registerer): %w", err)
			}
			return nil, fmt.Errorf("oauth: register metrics: %w", err)
		}
	}
	return m, nil
}

// knownErrors is the closed set of error label values.
var knownErrors = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "unsupported_response_type": true, "invalid_scope": true,
	"access_denied": true, "server_error": true, "temporarily_unavailable": true, "invalid_target": true,
	"login_required": true, "consent_required": true, "interaction_required": true, "invalid_token": true,
	"insufficient_scope": true, "request_not_supported": true, "request_uri_not_supported": true,
	"invalid_state": true, "registration_not_supported": true, "unsupported_response_mode": true,
}

func errorLabel(code string) string {
	if knownErrors[code] {
		return code
	}
	return "other"
}
