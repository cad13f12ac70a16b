package oauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/sekisho/sekisho/internal/store"
)

// introspection is the RFC 7662 response.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Audience  audience `json:"aud,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	Expiry    int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	TokenUse  string   `json:"token_use,omitempty"` // "access_token" | "refresh_token"
	AuthTime  int64    `json:"auth_time,omitempty"`
}

// handleIntrospect serves POST /oauth2/introspect (RFC 7662).
//
// The caller must be a confidential client authenticated like at the token
// endpoint (client_secret_basic, client_secret_post or private_key_jwt).
// Policy: a client learns about a token only if the token was issued to it
// or names it (its client_id) in its audience; for any other token the
// answer is {"active":false}, exactly as for an unknown token, so
// introspection cannot be used to probe other clients' tokens.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.duration.WithLabelValues("introspect").Observe(time.Since(start).Seconds()) }()
	if err := s.parsePostForm(w, r); err != nil {
		s.writeOAuthError(w, r, "introspect", err)
		return
	}
	ctx := r.Context()
	caller, err := s.main.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		s.writeOAuthError(w, r, "introspect", err)
		return
	}
	if caller.IsPublic() {
		s.writeOAuthError(w, r, "introspect", fosite.ErrInvalidClient.WithHint("Public clients cannot introspect tokens."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		s.writeOAuthError(w, r, "introspect", fosite.ErrInvalidRequest.WithHint("The token parameter is missing."))
		return
	}
	inactive := introspection{Active: false}
	v := &verified{}
	ctx = context.WithValue(ctx, verifiedKey{}, v)
	use, ar, err := s.main.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), NewSession("", time.Time{}, time.Time{}))
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	owner := ar.GetClient().GetID()
	if owner != caller.GetID() && !slices.Contains(ar.GetGrantedAudience(), caller.GetID()) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	sess, _ := ar.GetSession().(*Session)
	if sess == nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	if sess.Subject != "" {
		u, err := s.st.GetUser(ctx, sess.Subject)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		if err != nil {
			s.writeOAuthError(w, r, "introspect", fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
			return
		}
	}
	out := introspection{
		Active:   true,
		Scope:    strings.Join(ar.GetGrantedScopes(), " "),
		ClientID: owner,
		Subject:  sess.Subject,
		Audience: audience(ar.GetGrantedAudience()),
		Issuer:   s.issuer,
		IssuedAt: ar.GetRequestedAt().Unix(),
		TokenUse: string(use),
	}
	if !sess.AuthTime.IsZero() {
		out.AuthTime = sess.AuthTime.Unix()
	}
	switch use {
	case fosite.AccessToken:
		c := v.claims
		if c == nil {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		out.TokenType = "Bearer"
		out.Subject, out.Audience, out.JTI = c.Subject, c.Audience, c.JTI
		out.IssuedAt, out.Expiry = c.IssuedAt, c.Expiry
	case fosite.RefreshToken:
		out.Expiry = sess.GetExpiresAt(fosite.RefreshToken).Unix()
	}
	writeJSON(w, http.StatusOK, out)
}
