package oauth

import (
	"encoding/json"
	"net/http"
	"slices"
)

// Scopes with built-in meaning.
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeOfflineAccess = "offline_access"
)

// providerMetadata is served at both /.well-known/openid-configuration
// (OIDC Discovery) and /.well-known/oauth-authorization-server (RFC 8414).
// It lists only what the server really supports.
type providerMetadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint"`
	EndSessionEndpoint                         string   `json:"end_session_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	SubjectTypesSupported                      []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported           []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionAuthMethodsSupported          []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionAuthSigningAlgValuesSupported []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationAuthMethodsSupported             []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationAuthSigningAlgValuesSupported    []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ClaimsSupported                            []string `json:"claims_supported"`
	PromptValuesSupported                      []string `json:"prompt_values_supported"`
	AuthorizationResponseISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	RequestParameterSupported                  bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported               bool     `json:"request_uri_parameter_supported"`
	ClaimsParameterSupported                   bool     `json:"claims_parameter_supported"`
	BackchannelLogoutSupported                 bool     `json:"backchannel_logout_supported"`
	FrontchannelLogoutSupported                bool     `json:"frontchannel_logout_supported"`
}

// rebuildDiscovery recomputes the metadata (the signing algorithms follow
// the published keys).
func (s *Server) rebuildDiscovery() {
	clientAuth := []string{AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT}
	scopes := []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOfflineAccess}
	for _, sc := range s.o.ExtraScopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	algs := s.keys.algs()
	if len(algs) == 0 {
		algs = []string{"ES256"}
	}
	slices.Sort(algs)
	md := providerMetadata{
		Issuer:                                     s.issuer,
		AuthorizationEndpoint:                      s.urls.authorize,
		TokenEndpoint:                              s.urls.token,
		JWKSURI:                                    s.urls.jwks,
		UserinfoEndpoint:                           s.urls.userinfo,
		EndSessionEndpoint:                         s.urls.logout,
		IntrospectionEndpoint:                      s.urls.introspect,
		RevocationEndpoint:                         s.urls.revoke,
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken},
		SubjectTypesSupported:                      []string{"public"},
		IDTokenSigningAlgValuesSupported:           algs,
		TokenEndpointAuthMethodsSupported:          append(slices.Clone(clientAuth), AuthNone),
		TokenEndpointAuthSigningAlgValuesSupported: assertionAlgs,
		IntrospectionAuthMethodsSupported:          clientAuth,
		IntrospectionAuthSigningAlgValuesSupported: assertionAlgs,
		RevocationAuthMethodsSupported:             append(slices.Clone(clientAuth), AuthNone),
		RevocationAuthSigningAlgValuesSupported:    assertionAlgs,
		CodeChallengeMethodsSupported:              []string{"S256"},
		ScopesSupported:                            scopes,
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
			"name", "preferred_username", "locale", "updated_at", "email"},
		PromptValuesSupported:                      []string{"none", "login", "consent"},
		AuthorizationResponseISSParameterSupported: true,
	}
	b, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		s.log.Error("encode discovery document", "err", err)
		return
	}
	s.discovery.Store(&b)
}

func (s *Server) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	b := s.discovery.Load()
	if b == nil {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*") // public metadata, no credentials
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(*b)
}

// handleJWKS serves the published keys. The short max-age lets relying
// parties pick up a new key well within keys.Options.PublishAhead.
func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	b := s.o.Keys.PublicJWKS()
	if len(b) == 0 {
		http.Error(w, "no keys", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}
