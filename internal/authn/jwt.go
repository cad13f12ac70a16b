package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/revocation"
)

// RouteJWTOptions are the per-route settings of JWT authentication.
type RouteJWTOptions struct {
	// AllowQueryToken accepts the token in the query string (RFC 6750 §2.3)
	// on this route. Off by default: URLs end up in logs and Referer
	// headers. When on, the gateway should remove the parameter before
	// forwarding and logging (see RemoveQueryToken).
	AllowQueryToken bool
	// QueryParam is the query parameter name (default "access_token"). It
	// is also what a route without AllowQueryToken refuses.
	QueryParam string
	// Logger receives refusals at debug level; default slog.Default().
	Logger *slog.Logger
	// Clock defaults to time.Now.
	Clock func() time.Time
}

// JWTAuthenticator authenticates requests bearing a JWT access token from
// one of a route's trusted issuers.
type JWTAuthenticator struct {
	issuers    []*Issuer
	byIss      map[string]*Issuer
	routeKey   uint64
	maxToken   int
	allowQuery bool
	param      string
	cache      *TokenCache
	deny       revocation.Checker
	metrics    *Metrics
	log        *slog.Logger
	now        func() time.Time
	testClock  bool // Clock injected: cache expiry uses it instead of the monotonic clock

	parses atomic.Int64 // tokens handed to the parser (tests assert size refusals skip it)
}

// NewJWT returns the JWT authenticator of a route trusting issuers. cache
// (shared between routes) and deny may be nil; m may be nil.
//
// The token's payload is parsed (after the size check) to read iss, which
// selects the one issuer whose keys and rules then verify the token; a token
// naming an issuer the route does not trust is refused with ReasonIssuer.
func NewJWT(issuers []*Issuer, opts RouteJWTOptions, cache *TokenCache, deny revocation.Checker, m *Metrics) (*JWTAuthenticator, error) {
	if len(issuers) == 0 {
		return nil, errors.New("jwt route: at least one issuer is required")
	}
	a := &JWTAuthenticator{
		byIss:      make(map[string]*Issuer, len(issuers)),
		allowQuery: opts.AllowQueryToken,
		param:      opts.QueryParam,
		cache:      cache,
		deny:       deny,
		metrics:    m,
		log:        opts.Logger,
		now:        opts.Clock,
	}
	if a.param == "" {
		a.param = "access_token"
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	} else {
		a.testClock = true
	}
	for _, is := range issuers {
		if is == nil {
			return nil, errors.New("jwt route: nil issuer")
		}
		if _, dup := a.byIss[is.iss]; dup {
			return nil, fmt.Errorf("jwt route: issuer %q listed twice (issuers %s and another)", is.iss, is.name)
		}
		a.byIss[is.iss] = is
		a.issuers = append(a.issuers, is)
		a.maxToken = max(a.maxToken, is.maxToken)
		// Order-independent mix of the issuer ids: routes trusting the
		// same Issuer values share cache entries.
		a.routeKey += is.id * 0x9E3779B97F4A7C15
	}
	return a, nil
}

// Authenticate implements Authenticator. It returns ErrNoCredentials when
// the request has neither a Bearer Authorization header nor a query token.
func (a *JWTAuthenticator) Authenticate(r *http.Request) (*Identity, error) {
	token, rerr := a.extract(r)
	if rerr != nil {
		return nil, a.refuse(r.Context(), rerr, nil)
	}
	if token == "" {
		return nil, ErrNoCredentials
	}
	return a.Verify(r.Context(), token)
}

// extract finds the one credential of the request. Exactly one is allowed:
// several Authorization headers, or a header token plus a query token, are
// refused (a smuggling vector when components disagree on which one counts).
func (a *JWTAuthenticator) extract(r *http.Request) (string, *Error) {
	hv := r.Header["Authorization"]
	var token string
	hasBearer := false
	if len(hv) > 1 {
		return "", &Error{Reason: ReasonMultipleTokens, Err: errors.New("more than one Authorization header")}
	}
	if len(hv) == 1 {
		token, hasBearer = bearerToken(hv[0])
		if hasBearer && token == "" {
			return "", &Error{Reason: ReasonMalformed, Err: errors.New("Bearer scheme without a token")}
		}
	}
	if q := a.queryTokens(r); q != nil {
		switch {
		case len(q) > 1:
			return "", &Error{Reason: ReasonMultipleTokens, TokenHash: a.hash(q[0]), Err: fmt.Errorf("%d query tokens", len(q))}
		case hasBearer:
			return "", &Error{Reason: ReasonMultipleTokens, TokenHash: a.hash(token), Err: errors.New("token in both Authorization header and query string")}
		case !a.allowQuery:
			return "", &Error{Reason: ReasonQueryToken, TokenHash: a.hash(q[0]), Err: errors.New("query-string token on a route that does not allow it")}
		case q[0] == "":
			return "", &Error{Reason: ReasonMalformed, Err: errors.New("empty query token")}
		}
		return q[0], nil
	}
	return token, nil
}

// bearerToken parses an Authorization value with the Bearer scheme, matched
// case-insensitively (RFC 9110 §11.1). ok is false for other schemes.
func bearerToken(v string) (token string, ok bool) {
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", true
	}
	if rest[0] != ' ' {
		return "", false // e.g. "Bearerx": another scheme
	}
	return strings.TrimLeft(rest, " "), true
}

// queryTokens returns the values of the token parameter, or nil. The query
// is only parsed when it could contain the parameter (literally, or
// percent-encoded).
func (a *JWTAuthenticator) queryTokens(r *http.Request) []string {
	raw := r.URL.RawQuery
	if raw == "" || (!strings.Contains(raw, a.param) && !strings.Contains(raw, "%")) {
		return nil
	}
	// ParseQuery's error (e.g. a ';') still leaves the valid pairs parsed.
	q, _ := url.ParseQuery(raw)
	return q[a.param]
}

// RemoveQueryToken deletes every occurrence of the token parameter (default
// "access_token", matched after percent-decoding the name) from u's query,
// leaving the other parameters byte-for-byte as they were, so that a token
// accepted from the query string is neither forwarded nor logged.
func RemoveQueryToken(u *url.URL, param string) {
	if param == "" {
		param = "access_token"
	}
	if u.RawQuery == "" {
		return
	}
	pairs := strings.Split(u.RawQuery, "&")
	kept := pairs[:0]
	for _, p := range pairs {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil && n == param {
			continue
		}
		kept = append(kept, p)
	}
	u.RawQuery = strings.Join(kept, "&")
}

// Verify verifies a raw token for this route (cache, then full
// verification) and returns the identity or an *Error.
func (a *JWTAuthenticator) Verify(ctx context.Context, token string) (*Identity, error) {
	// Size first: an oversized token is not parsed, and only its first
	// maxToken bytes are hashed (for the log line).
	if len(token) > a.maxToken {
		return nil, a.refuse(ctx, &Error{Reason: ReasonTooLarge, TokenHash: hashPrefix(token[:a.maxToken]),
			Err: fmt.Errorf("token of %d bytes exceeds %d", len(token), a.maxToken)}, nil)
	}
	var ck uint64
	if a.cache != nil {
		ck = a.cache.key(token, a.routeKey)
		if e := a.cache.get(ck, token); e != nil {
			id, ok, err := a.fromCache(ctx, ck, e)
			if ok {
				return id, err
			}
		}
		a.metrics.cache(false)
	}

	a.parses.Add(1)
	p, err := parseJWS(token)
	if err != nil {
		return nil, a.refuse(ctx, &Error{Reason: ReasonMalformed, TokenHash: hashPrefix(token), Err: err}, nil)
	}
	iss, _ := p.claims["iss"].(string)
	is := a.byIss[iss]
	if is == nil {
		return nil, a.refuse(ctx, &Error{Reason: ReasonIssuer, TokenHash: hashPrefix(token), Err: errors.New("iss is not a trusted issuer of this route")}, nil)
	}
	v, rerr := is.verify(ctx, p, len(token))
	if rerr != nil {
		rerr.TokenHash = hashBytes(p.raw)
		return nil, a.refuse(ctx, rerr, is)
	}
	v.id.TokenHash = hashBytes(p.raw)
	rev := revocation.Token{Issuer: v.id.Issuer, JTI: v.id.JTI, Subject: v.id.Subject, ClientID: v.id.ClientID, IssuedAt: v.iat}
	if a.deny != nil && a.deny.Revoked(rev) {
		return nil, a.refuse(ctx, &Error{Reason: ReasonRevoked, TokenHash: v.id.TokenHash, Err: errors.New("token is on the deny-list")}, is)
	}
	is.metrics.verification(is.name, "ok")
	if now := a.now(); a.cache != nil && v.expires.After(now) {
		a.cache.admit(ck, &cacheEntry{
			token:    token,
			issuer:   is,
			gen:      v.gen,
			expires:  v.expires.UnixNano(),
			deadline: a.cache.sinceBase() + v.expires.Sub(now),
			id:       v.id,
			rev:      rev,
		})
	}
	return v.id, nil
}

// fromCache validates a cache entry. ok=false means "treat as a miss".
func (a *JWTAuthenticator) fromCache(ctx context.Context, ck uint64, e *cacheEntry) (*Identity, bool, error) {
	trusted := false
	for _, is := range a.issuers {
		if is == e.issuer {
			trusted = true
			break
		}
	}
	var expired bool
	if a.testClock {
		expired = a.now().UnixNano() >= e.expires
	} else {
		expired = a.cache.sinceBase() >= e.deadline
	}
	if !trusted || expired || e.gen != e.issuer.gen.Load() {
		a.cache.remove(ck, e.token)
		return nil, false, nil
	}
	if a.deny != nil && a.deny.Revoked(e.rev) {
		a.cache.remove(ck, e.token)
		return nil, true, a.refuse(ctx, &Error{Reason: ReasonRevoked, TokenHash: e.id.TokenHash, Err: errors.New("token is on the deny-list")}, e.issuer)
	}
	a.metrics.cache(true)
	return e.id, true, nil
}

// refuse counts and logs a refusal and returns it as an error.
func (a *JWTAuthenticator) refuse(ctx context.Context, e *Error, is *Issuer) error {
	a.metrics.Refusal("jwt", e.Reason)
	name := ""
	if is != nil {
		name = is.name
		a.metrics.verification(is.name, e.Reason)
	}
	if a.log.Enabled(ctx, slog.LevelDebug) {
		a.log.LogAttrs(ctx, slog.LevelDebug, "credential refused",
			slog.String("kind", "jwt"),
			slog.String("reason", e.Reason),
			slog.String("issuer", name),
			slog.String("token_hash", e.TokenHash),
			slog.Any("err", e.Err))
	}
	return e
}

// hash is hashPrefix over at most the route's size cap.
func (a *JWTAuthenticator) hash(token string) string {
	return hashPrefix(token[:min(len(token), a.maxToken)])
}

// tokenHashLen is the number of hex digits of SHA-256 kept in TokenHash: 64
// bits, enough to correlate log lines, useless for replay.
const tokenHashLen = 16

// hashPrefix returns the TokenHash of token. Callers pass at most the
// route's size cap, so hashing a hostile token stays cheap.
func hashPrefix(token string) string {
	if token == "" {
		return ""
	}
	return hashBytes([]byte(token))
}

// hashBytes is hashPrefix of a token already held as bytes.
func hashBytes(token []byte) string {
	sum := sha256.Sum256(token)
	return hex.EncodeToString(sum[:tokenHashLen/2])
}

// HashToken returns the log-safe hash prefix of a credential (16 hex digits
// of its SHA-256), the value used in Identity.TokenHash and Error.TokenHash.
func HashToken(token string) string { return hashPrefix(token) }

var _ Authenticator = (*JWTAuthenticator)(nil)
