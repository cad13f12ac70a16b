package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/sekisho/sekisho/internal/store"
)

// tokenResponse is the RFC 6749 §5.1 success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// handleToken serves POST /oauth2/token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.duration.WithLabelValues("token").Observe(time.Since(start).Seconds()) }()
	if err := s.parsePostForm(w, r); err != nil {
		s.writeOAuthError(w, r, "token", err)
		return
	}
	// Guard before fosite, which answers invalid_request for grant types
	// it has no handler for (RFC 6749 §5.2 wants unsupported_grant_type).
	grantType := r.PostForm.Get("grant_type")
	provider, ok := s.perGrant[grantType]
	if grantType == "" {
		s.writeOAuthError(w, r, "token", fosite.ErrInvalidRequest.WithHint("The grant_type parameter is missing."))
		return
	}
	if !ok {
		s.writeOAuthError(w, r, "token", fosite.ErrUnsupportedGrantType)
		return
	}
	resources, err := s.resourceParams(r.PostForm)
	if err != nil {
		s.writeOAuthError(w, r, "token", err)
		return
	}
	if _, present := r.PostForm["audience"]; present {
		s.writeOAuthError(w, r, "token", fosite.ErrInvalidRequest.WithHint("Use the resource parameter (RFC 8707) instead of audience."))
		return
	}

	ctx, _ := withIssueState(r.Context())
	ar, err := provider.NewAccessRequest(ctx, r, NewSession("", time.Time{}, time.Time{}))
	if err != nil {
		s.writeOAuthError(w, r, "token", err)
		return
	}
	if err := s.checkGrant(ctx, grantType, ar, resources); err != nil {
		s.writeOAuthError(w, r, "token", err)
		return
	}
	resp, err := provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.writeOAuthError(w, r, "token", err)
		return
	}
	out := tokenResponse{
		AccessToken: resp.GetAccessToken(),
		TokenType:   "Bearer",
		ExpiresIn:   int64(time.Until(ar.GetSession().GetExpiresAt(fosite.AccessToken)).Round(time.Second) / time.Second),
		Scope:       strings.Join(ar.GetGrantedScopes(), " "),
	}
	if v, ok := resp.GetExtra("refresh_token").(string); ok {
		out.RefreshToken = v
	}
	if v, ok := resp.GetExtra("id_token").(string); ok {
		out.IDToken = v
	}
	s.metrics.tokens.WithLabelValues(grantType).Inc()
	writeTokenJSON(w, &out)
}

// writeTokenJSON writes a token response without reflection.
func writeTokenJSON(w http.ResponseWriter, out *tokenResponse) {
	b := out.appendJSON(make([]byte, 0, 256+len(out.AccessToken)+len(out.RefreshToken)+len(out.IDToken)))
	noStore(w)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_, _ = w.Write(b)
}

// checkGrant applies Sekisho's rules after fosite validated the request and
// before tokens are minted.
func (s *Server) checkGrant(ctx context.Context, grantType string, ar fosite.AccessRequester, resources []string) error {
	switch grantType {
	case GrantClientCredentials:
		// A client-credentials request is its own grant family; a
		// time-ordered id (UUIDv7 instead of fosite's v4) keeps the
		// request-id index append-only on the token endpoint's hot path.
		if req, ok := ar.(*fosite.AccessRequest); ok {
			id, err := uuid.NewV7()
			if err != nil {
				return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
			}
			req.ID = id.String()
		}
		// fosite refused any scope the client may not request; what is
		// asked for is granted (no scope asked = none granted).
		for _, sc := range ar.GetRequestedScopes() {
			if sc == ScopeOpenID || sc == ScopeOfflineAccess {
				return fosite.ErrInvalidScope.WithHintf("The scope '%s' requires a user and cannot be used with client credentials.", sc)
			}
			ar.GrantScope(sc)
		}
		aud, err := pickAudience(ar.GetClient().GetAudience(), resources)
		if err != nil {
			return err
		}
		for _, a := range aud {
			ar.GrantAudience(a)
		}
		return nil
	default:
		// Authorization code and refresh token: the audience was bound at
		// authorization time; resource may name a subset of it but the
		// token keeps the bound audience (no down-scoping, see the note).
		bound := ar.GetRequestedAudience()
		for _, res := range resources {
			if !slices.Contains(bound, res) {
				return errInvalidTarget
			}
		}
		sub := ar.GetSession().GetSubject()
		if sub == "" {
			return fosite.ErrServerError.WithDebug("user grant without subject")
		}
		u, err := s.st.GetUser(ctx, sub)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
			return fosite.ErrInvalidGrant.WithHint("The user of this grant is no longer active.")
		}
		if err != nil {
			return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
		return nil
	}
}

// resourceParams validates RFC 8707 resource indicators: absolute URIs
// without fragment; at most 10.
func (s *Server) resourceParams(form url.Values) ([]string, error) {
	res := form["resource"]
	if len(res) > 10 {
		return nil, errInvalidTarget.WithHint("Too many resource parameters.")
	}
	for _, v := range res {
		u, err := url.Parse(v)
		if err != nil || !u.IsAbs() || u.Fragment != "" || len(v) > 512 {
			return nil, errInvalidTarget.WithHint("The resource parameter must be an absolute URI without a fragment.")
		}
	}
	return res, nil
}

// pickAudience returns the token audience: the requested resources if the
// client may use each of them, else all of the client's audiences.
func pickAudience(allowed []string, resources []string) ([]string, error) {
	if len(resources) == 0 {
		return allowed, nil
	}
	for _, res := range resources {
		if !slices.Contains(allowed, res) {
			return nil, errInvalidTarget
		}
	}
	return resources, nil
}
