package oauth

import (
	"net/http"
	"time"

	"github.com/ory/fosite"
)

// handleRevoke serves POST /oauth2/revoke (RFC 7009). The client
// authenticates like at the token endpoint (public clients with their
// client_id). Revoking a refresh token revokes its whole grant family
// including the access tokens; revoking an access token deactivates it and
// deny-lists its jti (and, as RFC 7009 §2.1 allows, the family's refresh
// token). Unknown tokens and tokens of other clients answer 200 like
// success, so the endpoint reveals nothing about them.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.duration.WithLabelValues("revoke").Observe(time.Since(start).Seconds()) }()
	if err := s.parsePostForm(w, r); err != nil {
		s.writeOAuthError(w, r, "revoke", err)
		return
	}
	if r.PostForm.Get("token") == "" {
		s.writeOAuthError(w, r, "revoke", fosite.ErrInvalidRequest.WithHint("The token parameter is missing."))
		return
	}
	err := s.main.NewRevocationRequest(r.Context(), r)
	if err == nil {
		noStore(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	code, status, _, _ := toRFCError(err)
	switch {
	case code == "unauthorized_client": // someone else's token: same answer as success
		noStore(w)
		w.WriteHeader(http.StatusOK)
	case code == "invalid_request", code == "invalid_client":
		s.writeOAuthError(w, r, "revoke", err)
	case status >= 500 || code == "temporarily_unavailable":
		// The token may still be valid: tell the client to retry (RFC 7009 §2.2.1).
		s.log.Error("token revocation failed", "err", err)
		s.metrics.errors.WithLabelValues("revoke", "temporarily_unavailable").Inc()
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
	default:
		s.writeOAuthError(w, r, "revoke", err)
	}
}
