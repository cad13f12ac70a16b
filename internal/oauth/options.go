package oauth

import (
	"context"
	"crypto"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/store"
)

// KeySource provides the signing keys. *keys.Manager implements it; the
// interface is declared here (consumer side) so the protocol layer does not
// depend on how keys are stored or rotated.
type KeySource interface {
	// Signer returns the current signing key; key is nil when none is
	// available (the token endpoint then fails closed with server_error).
	Signer() (kid, alg string, key crypto.Signer)
	// PublicKeys returns every published public key (next, current, retired
	// but unexpired). Tokens are verified against all of them, so tokens
	// signed before a rotation keep verifying until they expire.
	PublicKeys() []jose.JSONWebKey
	// PublicJWKS returns the JSON Web Key Set document served at the JWKS URI.
	PublicJWKS() []byte
	// Subscribe registers fn to run after the key set changed.
	Subscribe(fn func()) (unsubscribe func())
}

// Identity is the browser-facing user layer (login, consent, sessions).
// *identity.Service implements it; tests substitute a stub.
type Identity interface {
	// CurrentUser returns the signed-in user and the time they authenticated.
	CurrentUser(r *http.Request) (u *store.User, authTime time.Time, ok bool)
	// HasConsent reports whether the user remembered consent covering scopes.
	HasConsent(ctx context.Context, userID, clientID string, scopes []string) (bool, error)
	// ConsentDenied reports (and consumes) a consent refusal for exactly
	// this authorize request.
	ConsentDenied(w http.ResponseWriter, r *http.Request) bool
	// LoginURL and ConsentURL return local URLs that come back to returnTo.
	LoginURL(returnTo string) string
	ConsentURL(returnTo string) string
	// EndSession ends the browser session of r and returns its user ID.
	EndSession(w http.ResponseWriter, r *http.Request) (userID string, err error)
}

// Revoker receives revocations so the gateway refuses still-unexpired JWT
// access tokens. revocation.DenyList (and RedisSync) implement it; the method
// set mirrors revocation.Revoker so either can be passed directly.
type Revoker interface {
	// RevokeToken deny-lists one access token by jti until its expiry.
	RevokeToken(ctx context.Context, jti string, exp time.Time) error
	// RevokeSubject deny-lists every token of a user issued before issuedBefore.
	RevokeSubject(ctx context.Context, sub string, issuedBefore, until time.Time) error
	// RevokeClient deny-lists every token of a client issued before issuedBefore.
	RevokeClient(ctx context.Context, clientID string, issuedBefore, until time.Time) error
}

// Defaults and bounds of token lifetimes.
const (
	DefaultAccessTokenTTL     = 10 * time.Minute
	DefaultMaxAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL    = 30 * 24 * time.Hour
	DefaultMaxRefreshTokenTTL = 90 * 24 * time.Hour
	DefaultIDTokenTTL         = time.Hour
	DefaultCodeTTL            = 60 * time.Second

	// HardMaxAccessTokenTTL bounds MaxAccessTokenTTL: a JWT access token
	// cannot be recalled except through the deny-list, so it must stay short.
	HardMaxAccessTokenTTL  = 24 * time.Hour
	HardMaxRefreshTokenTTL = 365 * 24 * time.Hour
	maxCodeTTL             = 60 * time.Second
	minCodeTTL             = 5 * time.Second

	// DefaultClientCacheTTL is how long a client registration is reused
	// without re-reading the store. Changes made through this process's
	// ClientService invalidate the cache at once; changes made by another
	// process (the CLI, another node) are seen after at most this long.
	DefaultClientCacheTTL = 2 * time.Second
	maxClientCacheTTL     = 10 * time.Second

	// DefaultMaxBodyBytes caps request bodies of the form endpoints.
	DefaultMaxBodyBytes = 64 << 10
)

// Options configures a Server. The lead maps the YAML configuration onto it;
// New validates it and applies the documented defaults.
type Options struct {
	// Issuer is the public base URL, e.g. "https://auth.example.com" or
	// "http://127.0.0.1:8080". Its path (if any) is the prefix of every
	// endpoint. No trailing slash, query, fragment or userinfo. Required.
	Issuer string
	// Store persists clients, grants and JTIs. Required.
	Store store.Store
	// Keys signs tokens and publishes the JWKS. Required.
	Keys KeySource
	// Identity answers who is signed in and what they consented to. Required
	// for the authorize and logout endpoints; without it they answer
	// server_error (machine-to-machine only deployments).
	Identity Identity
	// Revoker receives access-token revocations for the gateway. Required:
	// without it a revoked JWT would stay usable until it expires.
	Revoker Revoker
	// MasterKey (at least 32 bytes) is the root secret; the HMAC key of
	// refresh tokens and authorization codes and the key of the interaction
	// markers are derived from it with HKDF (domain separated). Required and
	// stable across restarts and nodes, or issued refresh tokens stop working.
	MasterKey []byte

	// AccessTokenTTL is the default access token lifetime (default 10m).
	AccessTokenTTL time.Duration
	// MaxAccessTokenTTL bounds per-client access token lifetimes (default 1h).
	MaxAccessTokenTTL time.Duration
	// RefreshTokenTTL is the default refresh token lifetime (default 30 days).
	RefreshTokenTTL time.Duration
	// MaxRefreshTokenTTL bounds per-client refresh token lifetimes (default 90 days).
	MaxRefreshTokenTTL time.Duration
	// IDTokenTTL is the ID token lifetime (default 1h).
	IDTokenTTL time.Duration
	// CodeTTL is the authorization code lifetime (default and maximum 60s).
	CodeTTL time.Duration

	// ExtraScopes are advertised in discovery next to openid, profile,
	// email and offline_access (what clients may request is per client).
	ExtraScopes []string
	// LogoutConfirmURL is where the end-session endpoint sends a browser
	// when it cannot verify that the logout is wanted (no valid
	// id_token_hint): the identity layer's confirmation page. Default: the
	// issuer path + "/logout".
	LogoutConfirmURL string

	// ClientCacheTTL bounds how long client registrations are cached
	// (default 2s, maximum 10s, negative disables the cache).
	ClientCacheTTL time.Duration
	// MaxBodyBytes caps form bodies (default 64 KiB).
	MaxBodyBytes int64

	// Logger receives structured logs (never tokens or secrets). Default: discard.
	Logger *slog.Logger
	// Registerer receives the package metrics. Default: not exported.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now). fosite's own expiry checks use
	// the wall clock; Sekisho's storage checks (code and refresh token
	// expiry) and the interaction markers use this one.
	Now func() time.Time
}

// validate applies defaults and checks o. It returns the parsed issuer.
func (o *Options) validate() (*url.URL, error) {
	iss, err := parseIssuer(o.Issuer)
	if err != nil {
		return nil, err
	}
	if o.Store == nil {
		return nil, errors.New("oauth: Store is required")
	}
	if o.Keys == nil {
		return nil, errors.New("oauth: Keys is required")
	}
	if o.Revoker == nil {
		return nil, errors.New("oauth: Revoker is required (revoked JWT access tokens must reach the gateway's deny-list)")
	}
	if len(o.MasterKey) < 32 {
		return nil, fmt.Errorf("oauth: MasterKey must be at least 32 bytes (got %d)", len(o.MasterKey))
	}
	if err := defaultDuration("AccessTokenTTL", &o.AccessTokenTTL, DefaultAccessTokenTTL, 10*time.Second, HardMaxAccessTokenTTL); err != nil {
		return nil, err
	}
	if err := defaultDuration("MaxAccessTokenTTL", &o.MaxAccessTokenTTL, max(DefaultMaxAccessTokenTTL, o.AccessTokenTTL), 10*time.Second, HardMaxAccessTokenTTL); err != nil {
		return nil, err
	}
	if o.AccessTokenTTL > o.MaxAccessTokenTTL {
		return nil, fmt.Errorf("oauth: AccessTokenTTL %v exceeds MaxAccessTokenTTL %v", o.AccessTokenTTL, o.MaxAccessTokenTTL)
	}
	if err := defaultDuration("RefreshTokenTTL", &o.RefreshTokenTTL, DefaultRefreshTokenTTL, time.Minute, HardMaxRefreshTokenTTL); err != nil {
		return nil, err
	}
	if err := defaultDuration("MaxRefreshTokenTTL", &o.MaxRefreshTokenTTL, max(DefaultMaxRefreshTokenTTL, o.RefreshTokenTTL), time.Minute, HardMaxRefreshTokenTTL); err != nil {
		return nil, err
	}
	if o.RefreshTokenTTL > o.MaxRefreshTokenTTL {
		return nil, fmt.Errorf("oauth: RefreshTokenTTL %v exceeds MaxRefreshTokenTTL %v", o.RefreshTokenTTL, o.MaxRefreshTokenTTL)
	}
	if err := defaultDuration("IDTokenTTL", &o.IDTokenTTL, DefaultIDTokenTTL, time.Minute, 24*time.Hour); err != nil {
		return nil, err
	}
	if err := defaultDuration("CodeTTL", &o.CodeTTL, DefaultCodeTTL, minCodeTTL, maxCodeTTL); err != nil {
		return nil, err
	}
	switch {
	case o.ClientCacheTTL == 0:
		o.ClientCacheTTL = DefaultClientCacheTTL
	case o.ClientCacheTTL > maxClientCacheTTL:
		return nil, fmt.Errorf("oauth: ClientCacheTTL %v exceeds %v", o.ClientCacheTTL, maxClientCacheTTL)
	}
	switch {
	case o.MaxBodyBytes == 0:
		o.MaxBodyBytes = DefaultMaxBodyBytes
	case o.MaxBodyBytes < 1024 || o.MaxBodyBytes > 1<<20:
		return nil, fmt.Errorf("oauth: MaxBodyBytes %d outside [1024, 1048576]", o.MaxBodyBytes)
	}
	for _, s := range o.ExtraScopes {
		if !validScopeToken(s) {
			return nil, fmt.Errorf("oauth: ExtraScopes: invalid scope %q", s)
		}
	}
	if o.LogoutConfirmURL == "" {
		o.LogoutConfirmURL = strings.TrimSuffix(iss.Path, "/") + "/logout"
	} else if !isLocalPath(o.LogoutConfirmURL) {
		return nil, fmt.Errorf("oauth: LogoutConfirmURL %q must be a local absolute path", o.LogoutConfirmURL)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return iss, nil
}

func defaultDuration(name string, d *time.Duration, def, lo, hi time.Duration) error {
	if *d == 0 {
		*d = def
	}
	if *d < lo || *d > hi {
		return fmt.Errorf("oauth: %s %v outside [%v, %v]", name, *d, lo, hi)
	}
	return nil
}

// parseIssuer checks the issuer URL: absolute http(s), no userinfo, query,
// fragment or trailing slash. Plain http is accepted for loopback and
// development setups; the operator decides (the gateway terminates TLS).
func parseIssuer(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("oauth: Issuer is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("oauth: Issuer %q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(s, "/") || u.Opaque != "" {
		return nil, fmt.Errorf("oauth: Issuer %q must be an absolute http(s) URL without userinfo, query, fragment or trailing slash", s)
	}
	if u.String() != s {
		return nil, fmt.Errorf("oauth: Issuer %q is not in canonical form (%q)", s, u.String())
	}
	return u, nil
}

// isLocalPath reports whether p is an absolute path on this origin ("/x"),
// excluding scheme-relative ("//host") and backslash tricks.
func isLocalPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.ContainsAny(p, "\\\r\n\t ") && len(p) <= 2048
}

// deriveKey derives a 32-byte key for one purpose from the master key.
func deriveKey(master []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, info, 32)
	if err != nil { // only for invalid lengths, which cannot happen here
		panic(fmt.Sprintf("oauth: hkdf: %v", err))
	}
	return k
}
