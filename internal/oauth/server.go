package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	enigma "github.com/ory/fosite/token/hmac"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/ttlcache"
)

// Server is the OAuth 2.0 / OpenID Connect protocol layer: it composes
// fosite with Sekisho's storage, keys, identity and deny-list, and serves
// the endpoints. It is safe for concurrent use.
type Server struct {
	o      Options
	issuer string
	base   string // path prefix of every endpoint (the issuer's path)
	paths  endpoints
	urls   endpoints // absolute URLs for discovery

	st        store.Store
	keys      *keyRing
	identity  Identity
	clients   *clientCache
	fs        *fositeStore
	revs      *revocations
	metrics   *metrics
	log       *slog.Logger
	markerKey []byte

	// main serves authorize, introspection and revocation; perGrant serves
	// the token endpoint with only the handlers of one grant type, so a
	// client-credentials request does not walk the other handlers.
	main     *fosite.Fosite
	perGrant map[string]*fosite.Fosite

	clientSvc *ClientService
	discovery atomic.Pointer[[]byte]

	// verified remembers access tokens whose signature verified, so that
	// introspecting or presenting the same token again skips the signature
	// check (see verifyAccessToken). nil disables it.
	verified *ttlcache.Cache[string, verifiedAccess]
}

type endpoints struct {
	authorize, token, introspect, revoke, userinfo, logout, jwks string
}

// New validates o, composes fosite and returns a Server.
func New(o Options) (*Server, error) {
	iss, err := o.validate()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		o:         o,
		issuer:    o.Issuer,
		base:      strings.TrimSuffix(iss.Path, "/"),
		st:        o.Store,
		identity:  o.Identity,
		metrics:   m,
		log:       o.Logger,
		markerKey: deriveKey(o.MasterKey, "sekisho oauth interaction marker v1"),
	}
	s.paths = endpoints{
		authorize:  s.base + "/oauth2/authorize",
		token:      s.base + "/oauth2/token",
		introspect: s.base + "/oauth2/introspect",
		revoke:     s.base + "/oauth2/revoke",
		userinfo:   s.base + "/oauth2/userinfo",
		logout:     s.base + "/oauth2/logout",
		jwks:       s.base + "/oauth2/jwks",
	}
	origin := iss.Scheme + "://" + iss.Host
	s.urls = endpoints{
		authorize:  origin + s.paths.authorize,
		token:      origin + s.paths.token,
		introspect: origin + s.paths.introspect,
		revoke:     origin + s.paths.revoke,
		userinfo:   origin + s.paths.userinfo,
		logout:     origin + s.paths.logout,
		jwks:       origin + s.paths.jwks,
	}
	bounds := ttlBounds{access: o.AccessTokenTTL, maxAccess: o.MaxAccessTokenTTL, refresh: o.RefreshTokenTTL, maxRefresh: o.MaxRefreshTokenTTL}
	s.clients = newClientCache(o.Store, o.ClientCacheTTL, bounds, o.Now)
	s.revs = &revocations{st: o.Store, rev: o.Revoker, maxTTL: o.MaxAccessTokenTTL, now: o.Now, log: o.Logger, metrics: m}
	s.fs = &fositeStore{st: o.Store, clients: s.clients, revs: s.revs, now: o.Now, log: o.Logger}
	s.keys = newKeyRing(o.Keys)
	s.verified = ttlcache.New[string, verifiedAccess](verifiedAccessMax)
	s.clientSvc = newClientService(o.Store, s.revs, s.clients, bounds, o.Now, o.Logger)
	s.compose()
	s.keys.src.Subscribe(s.rebuildDiscovery)
	s.rebuildDiscovery()
	return s, nil
}

// noRemoteJWKS refuses to fetch client JWKS over the network: keys are
// registered inline (fosite would otherwise fetch jwks_uri on demand).
type noRemoteJWKS struct{}

func (noRemoteJWKS) Resolve(context.Context, string, bool) (*josev3.JSONWebKeySet, error) {
	return nil, fosite.ErrInvalidClient.WithHint("Remote JWKS are not supported.")
}

// config returns a fosite configuration; token endpoint handlers are
// filled in by compose.
func (s *Server) config() *fosite.Config {
	o := &s.o
	return &fosite.Config{
		AccessTokenLifespan:            o.AccessTokenTTL,
		RefreshTokenLifespan:           o.RefreshTokenTTL,
		AuthorizeCodeLifespan:          o.CodeTTL,
		IDTokenLifespan:                o.IDTokenTTL,
		IDTokenIssuer:                  s.issuer,
		AccessTokenIssuer:              s.issuer,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.ExactAudienceMatchingStrategy,
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		AllowedPromptValues:            []string{"login", "none", "consent"},
		TokenURL:                       s.urls.token,
		RedirectSecureChecker:          redirectSecure,
		RefreshTokenScopes:             []string{"offline_access"},
		MinParameterEntropy:            fosite.MinParameterEntropy,
		SendDebugMessagesToClients:     false,
		ClientSecretsHasher:            secretHasher{},
		GlobalSecret:                   deriveKey(o.MasterKey, "sekisho oauth token hmac v1"),
		TokenEntropy:                   32,
		OmitRedirectScopeParam:         true,
		JWKSFetcherStrategy:            noRemoteJWKS{},
		ClientAuthenticationStrategy:   s.authenticateClient,
		// The sanitized form kept with a code: redirect_uri must match at
		// the token endpoint (RFC 6749 §4.1.3).
		SanitationWhiteList: []string{"redirect_uri"},
	}
}

// audConfig overrides the accepted client assertion audiences.
type audConfig struct {
	*fosite.Config
	urls []string
}

// GetTokenURLs implements fosite.TokenURLProvider.
func (c *audConfig) GetTokenURLs(context.Context) []string { return c.urls }

// compose wires fosite with exactly the supported grants: authorization
// code + PKCE (S256 only, required), OpenID Connect (code flow and refresh),
// client credentials, refresh token with rotation, introspection and
// revocation. No implicit, hybrid, password or JWT-bearer grant exists.
func (s *Server) compose() {
	cfg := s.config()
	hmacStrategy := oauth2.NewHMACSHAStrategyUnPrefixed(&enigma.HMACStrategy{Config: cfg}, cfg)
	ts := &tokenStrategy{s: s, hmac: hmacStrategy}
	signer := joseSigner{s: s}
	ids := idTokenStrategy{inner: &openid.DefaultStrategy{Signer: signer, Config: cfg}}
	idHelper := &openid.IDTokenHandleHelper{IDTokenStrategy: ids}
	st := s.fs

	explicit := &oauth2.AuthorizeExplicitGrantHandler{
		AccessTokenStrategy: ts, RefreshTokenStrategy: ts, AuthorizeCodeStrategy: ts,
		CoreStorage: st, TokenRevocationStorage: st, Config: cfg,
	}
	oidcExplicit := &openid.OpenIDConnectExplicitHandler{
		OpenIDConnectRequestStorage:   st,
		OpenIDConnectRequestValidator: openid.NewOpenIDConnectRequestValidator(signer, cfg),
		IDTokenHandleHelper:           idHelper,
		Config:                        cfg,
	}
	pkceHandler := &pkce.Handler{AuthorizeCodeStrategy: ts, Storage: st, Config: cfg}
	clientCreds := &oauth2.ClientCredentialsGrantHandler{
		HandleHelper: &oauth2.HandleHelper{AccessTokenStrategy: ts, AccessTokenStorage: st, Config: cfg},
		Config:       cfg,
	}
	refresh := &oauth2.RefreshTokenGrantHandler{
		AccessTokenStrategy: ts, RefreshTokenStrategy: ts, TokenRevocationStorage: st, Config: cfg,
	}
	oidcRefresh := &openid.OpenIDConnectRefreshHandler{IDTokenHandleHelper: idHelper, Config: cfg}
	introspector := &oauth2.CoreValidator{CoreStrategy: ts, CoreStorage: st, Config: cfg}
	revoker := &oauth2.TokenRevocationHandler{TokenRevocationStorage: st, AccessTokenStrategy: ts, RefreshTokenStrategy: ts}

	// Authorize endpoint order matters: the code handler issues the code
	// that the OIDC and PKCE handlers attach their sessions to.
	cfg.AuthorizeEndpointHandlers = fosite.AuthorizeEndpointHandlers{explicit, oidcExplicit, pkceHandler}
	cfg.TokenEndpointHandlers = fosite.TokenEndpointHandlers{explicit, pkceHandler, oidcExplicit, clientCreds, refresh, oidcRefresh}
	cfg.TokenIntrospectionHandlers = fosite.TokenIntrospectionHandlers{introspector}
	cfg.RevocationHandlers = fosite.RevocationHandlers{revoker}
	// private_key_jwt assertions may name the token endpoint or the issuer
	// as audience (OIDC Core §9, RFC 7523 / draft-ietf-oauth-rfc7523bis).
	s.main = fosite.NewOAuth2Provider(st, &audConfig{Config: cfg, urls: []string{s.urls.token, s.issuer}})

	grant := func(handlers ...fosite.TokenEndpointHandler) *fosite.Fosite {
		c := s.config()
		c.TokenEndpointHandlers = handlers
		return fosite.NewOAuth2Provider(st, c)
	}
	s.perGrant = map[string]*fosite.Fosite{
		GrantAuthorizationCode: grant(explicit, pkceHandler, oidcExplicit),
		GrantClientCredentials: grant(clientCreds),
		GrantRefreshToken:      grant(refresh, oidcRefresh),
	}
}

// Routes registers every endpoint on mux (paths under the issuer's path).
func (s *Server) Routes(mux *http.ServeMux) {
	wk := s.base + "/.well-known/"
	mux.HandleFunc("GET "+wk+"openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET "+wk+"oauth-authorization-server", s.handleDiscovery)
	if s.base != "" { // RFC 8414 §3: well-known segment inserted before the issuer path
		mux.HandleFunc("GET /.well-known/oauth-authorization-server"+s.base, s.handleDiscovery)
	}
	mux.HandleFunc("GET "+s.paths.jwks, s.handleJWKS)
	mux.HandleFunc(s.paths.authorize, s.handleAuthorize)
	mux.HandleFunc(s.paths.token, s.handleToken)
	mux.HandleFunc(s.paths.introspect, s.handleIntrospect)
	mux.HandleFunc(s.paths.revoke, s.handleRevoke)
	mux.HandleFunc(s.paths.userinfo, s.handleUserinfo)
	mux.HandleFunc(s.paths.logout, s.handleLogout)
}

// Issuer returns the issuer identifier.
func (s *Server) Issuer() string { return s.issuer }

// Clients returns the client management service bound to this server: its
// changes invalidate the server's client cache at once and its revocations
// reach the deny-list.
func (s *Server) Clients() *ClientService { return s.clientSvc }

// AdminHandler returns the client management JSON API (see
// ClientService.AdminHandler); mount it on the admin listener behind
// authentication.
func (s *Server) AdminHandler() http.Handler { return s.clientSvc.AdminHandler() }

// RevokeUser revokes every grant and token of a user (disabled or deleted
// account). Wire it to identity.Options.OnUserDisabled.
func (s *Server) RevokeUser(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("oauth: empty user id")
	}
	if err := s.revs.revokeSubject(ctx, userID); err != nil {
		return fmt.Errorf("oauth: revoke user %q: %w", userID, err)
	}
	return nil
}

// RevokeUserClient revokes the grants a user gave one client (consent
// withdrawn). Wire it to identity.Options.OnConsentRevoked.
func (s *Server) RevokeUserClient(ctx context.Context, userID, clientID string) error {
	if userID == "" || clientID == "" {
		return errors.New("oauth: empty user or client id")
	}
	if err := s.revs.revokeMatching(ctx, clientID, userID); err != nil {
		return fmt.Errorf("oauth: revoke grants of user %q for client %q: %w", userID, clientID, err)
	}
	return nil
}

// authenticateClient wraps fosite's client authentication: for
// private_key_jwt it bounds the assertion (size, lifetime) before fosite
// verifies it and scopes the jti replay cache to the asserting client.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		id, err := s.precheckAssertion(form)
		if err != nil {
			return nil, err
		}
		ctx = context.WithValue(ctx, assertionClientKey{}, id)
	}
	c, err := s.main.DefaultClientAuthenticationStrategy(ctx, r, form)
	if err != nil {
		// fosite passes some JWT validation errors through unconverted;
		// every client authentication failure is invalid_client.
		// A request without any client credentials is invalid_client too
		// (RFC 6749 §5.2 "no client authentication included"; RFC 7662
		// answers 401), though fosite calls it invalid_request.
		var rfc *fosite.RFC6749Error
		if !errors.As(err, &rfc) || rfc.ErrorField == fosite.ErrInvalidRequest.ErrorField {
			return nil, fosite.ErrInvalidClient.WithWrap(err).WithDebug(err.Error())
		}
		return nil, err
	}
	return c, nil
}
