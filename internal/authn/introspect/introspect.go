// Package introspect authenticates opaque bearer tokens with an OAuth 2.0
// Token Introspection endpoint (RFC 7662).
//
// Results are cached: active tokens for PositiveCacheTTL but never past the
// token's exp, refusals for NegativeCacheTTL. Endpoint failures (network,
// timeout, non-200, oversized or malformed response) refuse the request with
// ReasonUnavailable and are never cached, so a flapping endpoint cannot turn
// into a lingering denial — nor a lingering approval. Each Authenticator
// owns its caches and they are keyed by SHA-256(token) plus the endpoint,
// so two routes using different introspection endpoints never share an
// answer (CVE-2026-33496). Concurrent requests carrying the same uncached
// token share one endpoint call.
package introspect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sekisho/sekisho/internal/ttlcache"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
)

// Defaults and bounds.
const (
	DefaultTimeout          = 3 * time.Second
	MaxTimeout              = 30 * time.Second
	DefaultPositiveCacheTTL = 60 * time.Second
	MaxPositiveCacheTTL     = time.Hour
	DefaultNegativeCacheTTL = 10 * time.Second
	MaxNegativeCacheTTL     = 5 * time.Minute
	DefaultMaxEntries       = 10_000
	DefaultMaxInFlight      = 64
	DefaultLeeway           = 30 * time.Second
	MaxLeeway               = 5 * time.Minute
	DefaultMaxTokenSize     = 8 << 10
)

// DenyList is the revocation deny-list as seen by this package (consumer
// side): whether a token id has been revoked. Implemented by the revocation
// package; DenyListFunc adapts a function.
type DenyList interface {
	Revoked(jti string) bool
}

// DenyListFunc adapts a function to DenyList.
type DenyListFunc func(jti string) bool

// Revoked implements DenyList.
func (f DenyListFunc) Revoked(jti string) bool { return f(jti) }

// Options configures an Authenticator.
type Options struct {
	// Endpoint is the introspection URL. https is required except for
	// loopback hosts; no user info or fragment.
	Endpoint string
	// ClientID and ClientSecret authenticate to the endpoint with HTTP Basic
	// (client_secret_basic, RFC 6749 §2.3.1, form-urlencoded first).
	// ClientID empty means no client authentication.
	ClientID     string
	ClientSecret string
	// Timeout bounds one endpoint call. Default 3s, max 30s.
	Timeout time.Duration
	// PositiveCacheTTL: how long an active answer is reused (never past the
	// token's exp). Default 60s, max 1h, negative disables.
	PositiveCacheTTL time.Duration
	// NegativeCacheTTL: how long a refusal (inactive, expired, wrong
	// audience...) is reused. Default 10s, max 5m, negative disables.
	NegativeCacheTTL time.Duration
	// MaxEntries bounds each of the positive and negative caches. Default 10000.
	MaxEntries int
	// MaxInFlight bounds concurrent endpoint calls; beyond it requests are
	// refused as unavailable rather than queueing (a flood of unique junk
	// tokens must not become a flood against the AS). Default 64.
	MaxInFlight int
	// RequiredAudience, when set, must appear in the response's aud.
	RequiredAudience string
	// RequiredIssuer, when set, must equal the response's iss exactly.
	RequiredIssuer string
	// Leeway for exp/nbf. Default 30s, max 5m.
	Leeway time.Duration
	// AllowQueryToken accepts ?access_token= (RFC 6750 §2.3). Off by default;
	// when off such a request is refused (ReasonQueryToken).
	AllowQueryToken bool
	// MaxTokenSize: longer tokens are refused without a call. Default 8 KiB.
	MaxTokenSize int
	// HTTPClient for endpoint calls. Nil: a dedicated client. Redirects are
	// never followed, whichever client is used.
	HTTPClient *http.Client
	// DenyList, when set, is consulted on every cache hit for tokens with a
	// jti, so a revocation applies before the cache entry expires.
	DenyList DenyList
	// Registerer receives the sekisho_introspection_* metrics. Nil: none.
	Registerer prometheus.Registerer
	// Logger for endpoint failures (token hash prefix only). Nil: discard.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type cacheKey struct {
	endpoint string
	sum      [sha256.Size]byte
}

type call struct {
	done chan struct{}
	id   *authn.Identity
	err  error
}

// Authenticator verifies opaque bearer tokens by introspection. Safe for
// concurrent use.
type Authenticator struct {
	endpoint    string
	basicUser   string
	basicPass   string
	timeout     time.Duration
	maxInFlight int
	allowQuery  bool
	maxToken    int
	checks      checks
	client      *http.Client
	deny        DenyList
	log         *slog.Logger
	now         func() time.Time

	pos *ttlcache.Cache[cacheKey, *authn.Identity]
	neg *ttlcache.Cache[cacheKey, *authn.Error]

	mu       sync.Mutex
	calls    map[cacheKey]*call
	inFlight int

	m metrics
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New validates o and returns an Authenticator.
func New(o Options) (*Authenticator, error) {
	ep, err := validateEndpoint(o.Endpoint)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{
		endpoint:   ep,
		allowQuery: o.AllowQueryToken,
		deny:       o.DenyList,
		log:        o.Logger,
		now:        o.Now,
		calls:      map[cacheKey]*call{},
	}
	if o.ClientID != "" {
		a.basicUser, a.basicPass = url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret)
	} else if o.ClientSecret != "" {
		return nil, errors.New("introspect: client secret without client id")
	}
	if a.timeout, err = duration("timeout", o.Timeout, DefaultTimeout, MaxTimeout, false); err != nil {
		return nil, err
	}
	if a.checks.posTTL, err = duration("positive cache TTL", o.PositiveCacheTTL, DefaultPositiveCacheTTL, MaxPositiveCacheTTL, true); err != nil {
		return nil, err
	}
	if a.checks.negTTL, err = duration("negative cache TTL", o.NegativeCacheTTL, DefaultNegativeCacheTTL, MaxNegativeCacheTTL, true); err != nil {
		return nil, err
	}
	if a.checks.leeway, err = duration("leeway", o.Leeway, DefaultLeeway, MaxLeeway, true); err != nil {
		return nil, err
	}
	a.checks.audience, a.checks.issuer = o.RequiredAudience, o.RequiredIssuer
	maxEntries, err := positive("max entries", o.MaxEntries, DefaultMaxEntries)
	if err != nil {
		return nil, err
	}
	if a.maxInFlight, err = positive("max in flight", o.MaxInFlight, DefaultMaxInFlight); err != nil {
		return nil, err
	}
	if a.maxToken, err = positive("max token size", o.MaxTokenSize, DefaultMaxTokenSize); err != nil {
		return nil, err
	}
	a.pos = ttlcache.New[cacheKey, *authn.Identity](maxEntries)
	a.neg = ttlcache.New[cacheKey, *authn.Error](maxEntries)

	base := o.HTTPClient
	if base == nil {
		base = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: a.timeout}).DialContext,
			TLSHandshakeTimeout: a.timeout,
			MaxIdleConnsPerHost: a.maxInFlight,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}}
	}
	c := *base // copy: do not mutate the caller's client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a.client = &c
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.m, err = newMetrics(o.Registerer); err != nil {
		return nil, err
	}
	return a, nil
}

func validateEndpoint(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("introspect: endpoint is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("introspect: endpoint: %w", err)
	}
	if u.User != nil || u.Fragment != "" || u.Host == "" {
		return "", fmt.Errorf("introspect: endpoint %q: needs a host and no user info or fragment", u.Redacted())
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("introspect: endpoint %q: plain http only allowed for loopback", raw)
		}
	default:
		return "", fmt.Errorf("introspect: endpoint %q: scheme must be https", raw)
	}
	return u.String(), nil
}

func duration(name string, v, def, max time.Duration, allowDisable bool) (time.Duration, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0 && allowDisable:
		return 0, nil
	case v < 0:
		return 0, fmt.Errorf("introspect: negative %s", name)
	case v > max:
		return 0, fmt.Errorf("introspect: %s %s above maximum %s", name, v, max)
	}
	return v, nil
}

func positive(name string, v, def int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0:
		return 0, fmt.Errorf("introspect: negative %s", name)
	}
	return v, nil
}

// CredentialSource names where r carries a bearer token ("" if none); see
// package anyof.
func (a *Authenticator) CredentialSource(r *http.Request) string { return bearerSource(r) }

// Authenticate implements authn.Authenticator.
func (a *Authenticator) Authenticate(r *http.Request) (*authn.Identity, error) {
	token, err := bearerToken(r, a.allowQuery, a.maxToken)
	if err != nil {
		return nil, a.refuse(err)
	}
	key := cacheKey{endpoint: a.endpoint, sum: sha256.Sum256([]byte(token))}
	now := a.now()
	if id, err := a.cached(key, now); err != errCacheMiss {
		return id, a.refuse(err)
	}
	a.m.cache("miss")

	a.mu.Lock()
	c, joined := a.calls[key]
	if !joined {
		// Re-check under the lock: a call for this token may have finished
		// between the cache miss above and here.
		if id, err := a.cached(key, now); err != errCacheMiss {
			a.mu.Unlock()
			return id, a.refuse(err)
		}
		if a.inFlight >= a.maxInFlight {
			a.mu.Unlock()
			return nil, a.refuse(&authn.Error{Reason: authn.ReasonUnavailable, TokenHash: hashPrefix(key.sum),
				Err: fmt.Errorf("introspection: %d calls in flight", a.maxInFlight)})
		}
		c = &call{done: make(chan struct{})}
		a.calls[key] = c
		a.inFlight++
		// The call runs detached from this request: others may be waiting
		// on it, and it is bounded by the timeout anyway.
		go a.run(key, token, c)
	}
	a.mu.Unlock()
	if joined {
		a.m.join()
	}

	select {
	case <-c.done:
		return c.id, a.refuse(c.err)
	case <-r.Context().Done():
		return nil, a.refuse(&authn.Error{Reason: authn.ReasonUnavailable, TokenHash: hashPrefix(key.sum),
			Err: fmt.Errorf("introspection: request cancelled: %w", r.Context().Err())})
	}
}

// errCacheMiss is cached's "no answer" result; never returned to callers.
var errCacheMiss = errors.New("introspection cache miss")

// cached answers from the caches, or returns errCacheMiss. A positive hit is
// re-checked against the deny-list.
func (a *Authenticator) cached(key cacheKey, now time.Time) (*authn.Identity, error) {
	if id, ok := a.pos.Get(key, now); ok {
		a.m.cache("hit")
		if a.deny != nil && id.JTI != "" && a.deny.Revoked(id.JTI) {
			return nil, &authn.Error{Reason: authn.ReasonRevoked, TokenHash: id.TokenHash, Err: errors.New("introspection: jti revoked")}
		}
		return id, nil
	}
	if e, ok := a.neg.Get(key, now); ok {
		a.m.cache("negative_hit")
		cp := *e
		return nil, &cp
	}
	return nil, errCacheMiss
}

// run performs one endpoint call and publishes its result to the caches and
// to every request waiting on c.
func (a *Authenticator) run(key cacheKey, token string, c *call) {
	hp := hashPrefix(key.sum)
	id, err := a.introspect(token, key, hp)
	c.id, c.err = id, err
	a.mu.Lock()
	delete(a.calls, key)
	a.inFlight--
	a.mu.Unlock()
	close(c.done)
}

func (a *Authenticator) introspect(token string, key cacheKey, hp string) (*authn.Identity, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	start := time.Now()
	m, err := a.post(ctx, token)
	a.m.duration(time.Since(start))
	if err != nil {
		a.m.request("error")
		a.log.Warn("token introspection failed", "endpoint", a.endpoint, "token_hash", hp, "err", err)
		return nil, &authn.Error{Reason: authn.ReasonUnavailable, TokenHash: hp, Err: err}
	}
	now := a.now()
	id, until, refusal := a.checks.evaluate(m, now, hp)
	if refusal != nil {
		a.m.request("inactive")
		if a.checks.negTTL > 0 {
			a.neg.Put(key, refusal, until, now)
		}
		return nil, refusal
	}
	a.m.request("active")
	if a.deny != nil && id.JTI != "" && a.deny.Revoked(id.JTI) {
		return nil, &authn.Error{Reason: authn.ReasonRevoked, TokenHash: hp, Err: errors.New("introspection: jti revoked")}
	}
	if a.checks.posTTL > 0 {
		a.pos.Put(key, id, until, now)
	}
	return id, nil
}

// post sends the RFC 7662 request and decodes the response. Any failure is
// an endpoint failure (the caller fails closed and does not cache).
func (a *Authenticator) post(ctx context.Context, token string) (map[string]any, error) {
	form := "token=" + url.QueryEscape(token) + "&token_type_hint=access_token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, strings.NewReader(form))
	if err != nil {
		return nil, fmt.Errorf("introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if a.basicUser != "" {
		req.SetBasicAuth(a.basicUser, a.basicPass)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection call: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("introspection response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection endpoint answered %d", resp.StatusCode)
	}
	if len(body) > MaxResponseSize {
		return nil, fmt.Errorf("introspection response larger than %d bytes", MaxResponseSize)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("introspection response content type %q, want application/json", truncate(resp.Header.Get("Content-Type"), 64))
	}
	m, err := decodeResponse(body)
	if err != nil {
		return nil, fmt.Errorf("introspection response: %w", err)
	}
	return m, nil
}

// Invalidate drops cached answers for the token whose SHA-256 is sum (e.g.
// on a revocation event carrying the token hash).
func (a *Authenticator) Invalidate(sum [sha256.Size]byte) {
	k := cacheKey{endpoint: a.endpoint, sum: sum}
	a.pos.Delete(k)
	a.neg.Delete(k)
}

// InvalidateJTI drops cached positive answers for tokens with this jti.
// O(cache size); revocation events are rare.
func (a *Authenticator) InvalidateJTI(jti string) int {
	if jti == "" {
		return 0
	}
	return a.pos.DeleteFunc(func(_ cacheKey, id *authn.Identity) bool { return id.JTI == jti })
}

func (a *Authenticator) refuse(err error) error {
	if err == nil {
		return nil
	}
	var ae *authn.Error
	if errors.As(err, &ae) {
		a.m.refusal(ae.Reason)
	}
	return err
}

func hashPrefix(sum [sha256.Size]byte) string { return hex.EncodeToString(sum[:4]) }
