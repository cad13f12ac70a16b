package oauth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	josev3 "github.com/go-jose/go-jose/v3"

	"github.com/sekisho/sekisho/internal/store"
)

// ErrInvalidClientSpec wraps every validation failure of ClientService.
var ErrInvalidClientSpec = errors.New("invalid client")

// Bounds of client registrations.
const (
	maxClientIDLen    = 128
	maxClientNameLen  = 200
	maxURIsPerClient  = 20
	maxScopesPerCli   = 100
	maxScopeLen       = 128
	maxAudiencesPerCl = 20
	maxAudienceLen    = 512
	minClientTTL      = 10 * time.Second
)

// ClientSpec describes a client registration to create.
type ClientSpec struct {
	// ID is optional: empty generates a random ID. Allowed characters:
	// A-Z a-z 0-9 . _ ~ : - (a resource server may use its audience, e.g.
	// "urn:example:orders", as its client ID, which lets it introspect
	// tokens issued for that audience).
	ID   string
	Name string
	// Public clients (native apps, SPAs) have no secret, use
	// token_endpoint_auth_method "none" and only the authorization_code
	// (+ refresh_token) grant.
	Public                 bool
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// GrantTypes: authorization_code, refresh_token, client_credentials.
	// Default: authorization_code+refresh_token when RedirectURIs are
	// given, else client_credentials.
	GrantTypes []string
	// Scopes the client may request. Refresh tokens are only issued when
	// offline_access is granted.
	Scopes []string
	// Audiences the client's access tokens may carry (RFC 8707 resource
	// values). Without a resource parameter a token gets all of them.
	Audiences []string
	// TokenEndpointAuthMethod: client_secret_basic (default for
	// confidential clients), client_secret_post, private_key_jwt, none (public).
	TokenEndpointAuthMethod string
	// JWKS holds the public keys of a private_key_jwt client (JSON Web Key Set).
	JWKS json.RawMessage
	// AccessTokenTTL and RefreshTokenTTL override the server defaults
	// (0 = default); they must not exceed the server's bounds.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
}

// ClientInfo is a client registration without its secret hash.
type ClientInfo struct {
	ID                      string          `json:"client_id"`
	Name                    string          `json:"name"`
	Public                  bool            `json:"public"`
	RedirectURIs            []string        `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string        `json:"post_logout_redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	Scopes                  []string        `json:"scopes"`
	Audiences               []string        `json:"audiences"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	AccessTokenTTL          time.Duration   `json:"-"`
	RefreshTokenTTL         time.Duration   `json:"-"`
	Disabled                bool            `json:"disabled"`
	CreatedAt               time.Time       `json:"created_at"`
	UpdatedAt               time.Time       `json:"updated_at"`
}

func infoOf(c *store.Client) *ClientInfo {
	return &ClientInfo{
		ID: c.ID, Name: c.Name, Public: c.Public,
		RedirectURIs: nn(c.RedirectURIs), PostLogoutRedirectURIs: nn(c.PostLogoutRedirectURIs),
		GrantTypes: nn(c.GrantTypes), Scopes: nn(c.Scopes), Audiences: nn(c.Audiences),
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, JWKS: json.RawMessage(c.JWKS),
		AccessTokenTTL: c.AccessTokenTTL, RefreshTokenTTL: c.RefreshTokenTTL,
		Disabled: c.Disabled, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

func nn(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ClientServiceOptions configures a standalone ClientService (the CLI).
type ClientServiceOptions struct {
	// Revoker receives deny-list entries when a client is disabled or
	// deleted. Nil in a CLI process that cannot reach the running server's
	// deny-list: grant rows are still deactivated, but already-issued JWT
	// access tokens stay valid at the gateway until they expire.
	Revoker Revoker
	// AccessTokenTTL/MaxAccessTokenTTL and RefreshTokenTTL/MaxRefreshTokenTTL
	// must match the server's Options (defaults: 10m/1h, 30d/90d).
	AccessTokenTTL, MaxAccessTokenTTL   time.Duration
	RefreshTokenTTL, MaxRefreshTokenTTL time.Duration
	Now                                 func() time.Time
	Logger                              *slog.Logger
}

// ClientService manages client registrations: validation, ID and secret
// generation (secrets are shown once and stored as SHA-256), secret
// rotation, disabling and deletion with token revocation. Used by the CLI
// and the admin API.
type ClientService struct {
	st     store.Store
	revs   *revocations
	cache  *clientCache // nil in standalone mode
	bounds ttlBounds
	now    func() time.Time
	log    *slog.Logger
}

// NewClientService returns a ClientService that is not attached to a
// running Server (for the CLI). Inside the server use Server.Clients.
func NewClientService(st store.Store, o ClientServiceOptions) (*ClientService, error) {
	if st == nil {
		return nil, errors.New("oauth: nil store")
	}
	b := ttlBounds{access: o.AccessTokenTTL, maxAccess: o.MaxAccessTokenTTL, refresh: o.RefreshTokenTTL, maxRefresh: o.MaxRefreshTokenTTL}
	if b.access == 0 {
		b.access = DefaultAccessTokenTTL
	}
	if b.maxAccess == 0 {
		b.maxAccess = max(DefaultMaxAccessTokenTTL, b.access)
	}
	if b.refresh == 0 {
		b.refresh = DefaultRefreshTokenTTL
	}
	if b.maxRefresh == 0 {
		b.maxRefresh = max(DefaultMaxRefreshTokenTTL, b.refresh)
	}
	if b.maxAccess > HardMaxAccessTokenTTL || b.maxRefresh > HardMaxRefreshTokenTTL || b.access > b.maxAccess || b.refresh > b.maxRefresh {
		return nil, errors.New("oauth: client service token lifetime bounds are inconsistent")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, _ := newMetrics(nil)
	revs := &revocations{st: st, rev: o.Revoker, maxTTL: b.maxAccess, now: o.Now, log: o.Logger, metrics: m}
	return newClientService(st, revs, nil, b, o.Now, o.Logger), nil
}

func newClientService(st store.Store, revs *revocations, cache *clientCache, b ttlBounds, now func() time.Time, log *slog.Logger) *ClientService {
	return &ClientService{st: st, revs: revs, cache: cache, bounds: b, now: now, log: log}
}

func (cs *ClientService) invalidate(id string) {
	if cs.cache != nil {
		cs.cache.invalidate(id)
	}
}

func specErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidClientSpec, fmt.Sprintf(format, args...))
}

// newSecret returns a 256-bit random secret, base64url encoded (43 chars).
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand contract since Go 1.24)
	return b64.EncodeToString(b)
}

// Create validates spec and stores the client. For confidential clients
// using a secret, the returned secret is the only copy: it is stored as
// SHA-256 and cannot be shown again (rotate it if lost).
func (cs *ClientService) Create(ctx context.Context, spec ClientSpec) (*ClientInfo, string, error) {
	c, err := cs.validate(spec)
	if err != nil {
		return nil, "", err
	}
	secret := ""
	if c.TokenEndpointAuthMethod == AuthSecretBasic || c.TokenEndpointAuthMethod == AuthSecretPost {
		secret = newSecret()
		c.SecretHash = hashSecret(secret)
	}
	if err := cs.st.CreateClient(ctx, c); err != nil {
		return nil, "", fmt.Errorf("create client %q: %w", c.ID, err)
	}
	cs.invalidate(c.ID)
	cs.log.Info("oauth client created", "client_id", c.ID, "public", c.Public, "auth_method", c.TokenEndpointAuthMethod)
	return infoOf(c), secret, nil
}

// Get returns a client (disabled ones included); store.ErrNotFound if absent.
func (cs *ClientService) Get(ctx context.Context, id string) (*ClientInfo, error) {
	c, err := cs.st.GetClient(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get client %q: %w", truncateID(id), err)
	}
	return infoOf(c), nil
}

// List returns clients ordered by ID.
func (cs *ClientService) List(ctx context.Context, p store.Page) ([]ClientInfo, error) {
	cl, err := cs.st.ListClients(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := make([]ClientInfo, 0, len(cl))
	for i := range cl {
		out = append(out, *infoOf(&cl[i]))
	}
	return out, nil
}

// RotateSecret replaces the secret of a client_secret_basic/post client and
// returns the new one (shown once). The old secret stops working at once
// (after the client cache TTL on other nodes); issued tokens stay valid.
func (cs *ClientService) RotateSecret(ctx context.Context, id string) (string, error) {
	c, err := cs.st.GetClient(ctx, id)
	if err != nil {
		return "", fmt.Errorf("rotate secret of client %q: %w", truncateID(id), err)
	}
	if c.Public || (c.TokenEndpointAuthMethod != AuthSecretBasic && c.TokenEndpointAuthMethod != AuthSecretPost) {
		return "", specErr("client %q does not authenticate with a secret", truncateID(id))
	}
	secret := newSecret()
	c.SecretHash = hashSecret(secret)
	if err := cs.st.UpdateClient(ctx, c); err != nil {
		return "", fmt.Errorf("rotate secret of client %q: %w", truncateID(id), err)
	}
	cs.invalidate(id)
	cs.log.Info("oauth client secret rotated", "client_id", id)
	return secret, nil
}

// SetDisabled disables or re-enables a client. Disabling stops new tokens
// at once, deactivates its refresh tokens and pending codes, and
// deny-lists every access token it holds. Re-enabling does not restore
// revoked tokens.
func (cs *ClientService) SetDisabled(ctx context.Context, id string, disabled bool) error {
	c, err := cs.st.GetClient(ctx, id)
	if err != nil {
		return fmt.Errorf("update client %q: %w", truncateID(id), err)
	}
	if c.Disabled != disabled {
		c.Disabled = disabled
		if err := cs.st.UpdateClient(ctx, c); err != nil {
			return fmt.Errorf("update client %q: %w", truncateID(id), err)
		}
		cs.invalidate(id)
	}
	if disabled {
		if err := cs.revs.revokeClient(ctx, id); err != nil {
			return fmt.Errorf("revoke tokens of client %q: %w", truncateID(id), err)
		}
	}
	cs.log.Info("oauth client updated", "client_id", id, "disabled", disabled)
	return nil
}

// Delete disables the client, revokes everything it holds, then deletes
// it. If revocation fails the client stays (disabled) so the operator can
// retry; its tokens are never silently left valid.
func (cs *ClientService) Delete(ctx context.Context, id string) error {
	if err := cs.SetDisabled(ctx, id, true); err != nil {
		return err
	}
	if err := cs.st.DeleteClient(ctx, id); err != nil {
		return fmt.Errorf("delete client %q: %w", truncateID(id), err)
	}
	cs.invalidate(id)
	cs.log.Info("oauth client deleted", "client_id", id)
	return nil
}

func truncateID(id string) string {
	if len(id) > maxClientIDLen {
		return id[:maxClientIDLen] + "…"
	}
	return id
}

// validate checks spec and returns the store record (without secret).
func (cs *ClientService) validate(spec ClientSpec) (*store.Client, error) {
	c := &store.Client{
		ID:     spec.ID,
		Name:   strings.TrimSpace(spec.Name),
		Public: spec.Public,
	}
	if c.ID == "" {
		c.ID = strings.ToLower(rand.Text())
	} else if !validClientID(c.ID) {
		return nil, specErr("client_id must be 1-%d characters of A-Z a-z 0-9 . _ ~ : - and not start with '-'", maxClientIDLen)
	}
	if c.Name == "" || len(c.Name) > maxClientNameLen || strings.IndexFunc(c.Name, unicode.IsControl) >= 0 {
		return nil, specErr("name must be 1-%d printable characters", maxClientNameLen)
	}

	// Authentication method.
	method := spec.TokenEndpointAuthMethod
	if c.Public {
		if method != "" && method != AuthNone {
			return nil, specErr("public clients must use token_endpoint_auth_method none")
		}
		method = AuthNone
	} else {
		switch method {
		case "":
			method = AuthSecretBasic
		case AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT:
		case AuthNone:
			return nil, specErr("token_endpoint_auth_method none requires a public client")
		default:
			return nil, specErr("unsupported token_endpoint_auth_method %q (use client_secret_basic, client_secret_post or private_key_jwt)", truncateID(method))
		}
	}
	c.TokenEndpointAuthMethod = method
	if method == AuthPrivateKeyJWT {
		if len(spec.JWKS) == 0 {
			return nil, specErr("private_key_jwt requires jwks (the client's public keys)")
		}
		set, _, err := parseClientJWKS(spec.JWKS)
		if err != nil {
			return nil, specErr("jwks: %v", err)
		}
		norm, err := json.Marshal(josev3.JSONWebKeySet{Keys: set.Keys})
		if err != nil {
			return nil, specErr("jwks: %v", err)
		}
		c.JWKS = norm
	} else if len(spec.JWKS) > 0 {
		return nil, specErr("jwks is only used with private_key_jwt")
	}

	// Grant types.
	grants := slices.Clone(spec.GrantTypes)
	if len(grants) == 0 {
		if len(spec.RedirectURIs) > 0 {
			grants = []string{GrantAuthorizationCode, GrantRefreshToken}
		} else {
			grants = []string{GrantClientCredentials}
		}
	}
	seen := map[string]bool{}
	for _, g := range grants {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
		default:
			return nil, specErr("unsupported grant type %q (use authorization_code, refresh_token, client_credentials)", truncateID(g))
		}
		if seen[g] {
			return nil, specErr("grant type %q listed twice", g)
		}
		seen[g] = true
	}
	if seen[GrantRefreshToken] && !seen[GrantAuthorizationCode] {
		return nil, specErr("refresh_token requires authorization_code")
	}
	if c.Public && seen[GrantClientCredentials] {
		return nil, specErr("client_credentials requires a confidential client")
	}
	if c.Public && !seen[GrantAuthorizationCode] {
		return nil, specErr("public clients use the authorization_code grant")
	}
	c.GrantTypes = grants

	// Redirect URIs.
	if seen[GrantAuthorizationCode] && len(spec.RedirectURIs) == 0 {
		return nil, specErr("authorization_code requires at least one redirect_uri")
	}
	if !seen[GrantAuthorizationCode] && (len(spec.RedirectURIs) > 0 || len(spec.PostLogoutRedirectURIs) > 0) {
		return nil, specErr("redirect URIs require the authorization_code grant")
	}
	var err error
	if c.RedirectURIs, err = validateURIs("redirect_uris", spec.RedirectURIs); err != nil {
		return nil, err
	}
	if c.PostLogoutRedirectURIs, err = validateURIs("post_logout_redirect_uris", spec.PostLogoutRedirectURIs); err != nil {
		return nil, err
	}

	// Scopes and audiences.
	if len(spec.Scopes) > maxScopesPerCli {
		return nil, specErr("at most %d scopes", maxScopesPerCli)
	}
	c.Scopes = []string{}
	for _, s := range spec.Scopes {
		if !validScopeToken(s) || len(s) > maxScopeLen {
			return nil, specErr("invalid scope %q", truncateID(s))
		}
		if slices.Contains(c.Scopes, s) {
			return nil, specErr("scope %q listed twice", s)
		}
		c.Scopes = append(c.Scopes, s)
	}
	if len(spec.Audiences) > maxAudiencesPerCl {
		return nil, specErr("at most %d audiences", maxAudiencesPerCl)
	}
	c.Audiences = []string{}
	for _, a := range spec.Audiences {
		if a == "" || len(a) > maxAudienceLen || strings.IndexFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return nil, specErr("invalid audience %q", truncateID(a))
		}
		if slices.Contains(c.Audiences, a) {
			return nil, specErr("audience %q listed twice", truncateID(a))
		}
		c.Audiences = append(c.Audiences, a)
	}

	// Lifetimes.
	if spec.AccessTokenTTL != 0 && (spec.AccessTokenTTL < minClientTTL || spec.AccessTokenTTL > cs.bounds.maxAccess) {
		return nil, specErr("access token lifetime must be between %v and %v", minClientTTL, cs.bounds.maxAccess)
	}
	if spec.RefreshTokenTTL != 0 && (spec.RefreshTokenTTL < time.Minute || spec.RefreshTokenTTL > cs.bounds.maxRefresh) {
		return nil, specErr("refresh token lifetime must be between 1m and %v", cs.bounds.maxRefresh)
	}
	c.AccessTokenTTL, c.RefreshTokenTTL = spec.AccessTokenTTL, spec.RefreshTokenTTL
	return c, nil
}

func validClientID(id string) bool {
	if id == "" || len(id) > maxClientIDLen || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._~:-", c) >= 0) {
			return false
		}
	}
	return true
}

// validScopeToken implements RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// validateURIs checks registered redirect URIs: absolute, canonical,
// https or http on a loopback address / localhost, no userinfo, fragment
// or wildcard, unique, bounded.
func validateURIs(field string, uris []string) ([]string, error) {
	if len(uris) > maxURIsPerClient {
		return nil, specErr("%s: at most %d URIs", field, maxURIsPerClient)
	}
	out := []string{}
	for i, raw := range uris {
		if err := validateRedirectURI(raw); err != nil {
			return nil, specErr("%s[%d]: %v", field, i, err)
		}
		if slices.Contains(out, raw) {
			return nil, specErr("%s[%d]: listed twice", field, i)
		}
		out = append(out, raw)
	}
	return out, nil
}

func validateRedirectURI(raw string) error {
	if raw == "" || len(raw) > maxRedirectURILen {
		return fmt.Errorf("must be 1-%d characters", maxRedirectURILen)
	}
	if strings.ContainsAny(raw, "*#\\ \t\r\n") {
		return errors.New("must not contain wildcards, fragments, backslashes or whitespace")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return errors.New("must be an absolute URL with a host")
	}
	if u.User != nil {
		return errors.New("must not contain userinfo")
	}
	if u.String() != raw || !canonicalPercentEncoding(raw) {
		return errors.New("not in canonical form (percent-encode only reserved characters, with upper-case hex digits)")
	}
	if strings.ToLower(u.Scheme) != u.Scheme || strings.ToLower(u.Host) != u.Host {
		return errors.New("scheme and host must be lower case")
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		ip := net.ParseIP(h)
		if h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return errors.New("http is only allowed for loopback addresses (127.0.0.1, [::1], localhost)")
		}
	default:
		return errors.New("scheme must be https (or http for loopback)")
	}
	return nil
}

// canonicalPercentEncoding reports whether every %XX escape in s uses
// upper-case hex and encodes a character that needs encoding (RFC 3986
// §6.2.2.2: escapes of unreserved characters are not normalized away by
// exact matching and only create look-alike registrations).
func canonicalPercentEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) {
			return false
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 || s[i+1] >= 'a' || s[i+2] >= 'a' {
			return false
		}
		c := byte(hi<<4 | lo)
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			return false
		}
		i += 2
	}
	return true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// RevokeSubject revokes every grant of a subject (a user): its access tokens
// are deny-listed through the Revoker and its refresh tokens deactivated. The
// CLI calls it when it disables a user outside a running server.
func (cs *ClientService) RevokeSubject(ctx context.Context, subject string) error {
	if subject == "" {
		return errors.New("oauth: empty subject")
	}
	return cs.revs.revokeSubject(ctx, subject)
}
