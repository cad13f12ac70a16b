package oauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/sekisho/sekisho/internal/store"
)

// handleUserinfo serves GET/POST /oauth2/userinfo (OIDC Core §5.3). The
// access token comes from the Authorization header only (one credential
// source, never the query). Claims follow the granted scopes: profile
// (name, preferred_username, locale, updated_at) and email.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.duration.WithLabelValues("userinfo").Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		bearerError(w, http.StatusMethodNotAllowed, "invalid_request", "")
		return
	}
	token, ok := bearerToken(r)
	if !ok {
		bearerError(w, http.StatusUnauthorized, "", "")
		return
	}
	v := &verified{}
	ctx := context.WithValue(r.Context(), verifiedKey{}, v)
	use, ar, err := s.main.IntrospectToken(ctx, token, fosite.AccessToken, NewSession("", time.Time{}, time.Time{}))
	if err != nil || use != fosite.AccessToken || v.claims == nil {
		s.metrics.errors.WithLabelValues("userinfo", "invalid_token").Inc()
		bearerError(w, http.StatusUnauthorized, "invalid_token", "")
		return
	}
	sub := ar.GetSession().GetSubject()
	if sub == "" || !ar.GetGrantedScopes().Has(ScopeOpenID) {
		s.metrics.errors.WithLabelValues("userinfo", "insufficient_scope").Inc()
		bearerError(w, http.StatusForbidden, "insufficient_scope", ScopeOpenID)
		return
	}
	u, err := s.st.GetUser(ctx, sub)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "")
		return
	}
	if err != nil {
		s.log.Error("userinfo: load user", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	out := map[string]any{"sub": u.ID}
	if ar.GetGrantedScopes().Has(ScopeProfile) {
		if u.Name != "" {
			out["name"] = u.Name
		}
		out["preferred_username"] = u.Username
		if u.Locale != "" {
			out["locale"] = u.Locale
		}
		if !u.UpdatedAt.IsZero() {
			out["updated_at"] = u.UpdatedAt.Unix()
		}
	}
	if ar.GetGrantedScopes().Has(ScopeEmail) && u.Email != "" {
		out["email"] = u.Email
	}
	writeJSON(w, http.StatusOK, out)
}

// bearerToken extracts an RFC 6750 §2.1 bearer token.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > maxJWTLen {
		return "", false
	}
	return tok, true
}

// bearerError answers per RFC 6750 §3.
func bearerError(w http.ResponseWriter, status int, code, scope string) {
	v := `Bearer realm="userinfo"`
	if code != "" {
		v += `, error="` + code + `"`
	}
	if scope != "" {
		v += `, scope="` + scope + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	if code == "" {
		noStore(w)
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, oauthError{Error: code})
}
