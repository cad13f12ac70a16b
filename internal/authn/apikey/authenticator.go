package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/telemetry"
	"github.com/sekisho/sekisho/internal/ttlcache"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
)

// Options configures an Authenticator.
type Options struct {
	// Header carrying the key. Default "X-API-Key".
	Header string
	// AllowAuthorization also accepts "Authorization: ApiKey <key>" (scheme
	// case-insensitive).
	AllowAuthorization bool
	// AllowQuery accepts the key in the query parameter QueryParam. Off by
	// default: query strings end up in logs and Referer headers. When off, a
	// key in the query is refused (ReasonQueryToken), not ignored.
	AllowQuery bool
	// QueryParam is the query parameter name. Default "api_key".
	QueryParam string
	// CacheTTL is how long a verified key (and a refusal of a well-formed
	// key) is remembered. A revocation or expiry change in the Store takes
	// effect on this node within CacheTTL; Invalidate makes it immediate.
	// Default 30s, maximum 5m, negative disables caching.
	CacheTTL time.Duration
	// CacheMaxEntries bounds each of the positive and negative caches.
	// Default 10000.
	CacheMaxEntries int
	// StoreTimeout bounds one Store lookup. Default 2s.
	StoreTimeout time.Duration
	// Registerer receives sekisho_apikey_refusals_total{reason} and
	// sekisho_apikey_store_lookups_total{result}. Nil: no metrics.
	Registerer prometheus.Registerer
	// Logger for store failures. Nil: discard. Keys are never logged, only
	// the public id and an 8-hex-digit SHA-256 prefix.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Bounds and defaults.
const (
	DefaultHeader       = "X-API-Key"
	DefaultQueryParam   = "api_key"
	DefaultCacheTTL     = 30 * time.Second
	MaxCacheTTL         = 5 * time.Minute
	DefaultMaxEntries   = 10_000
	DefaultStoreTimeout = 2 * time.Second
	// maxCredentialLen: anything longer is refused as too large before any
	// parsing or hashing.
	maxCredentialLen = 512
)

// Authenticator checks API keys. Safe for concurrent use.
type Authenticator struct {
	store      Store
	header     string // canonical
	lowHeader  string // lower-case, for CredentialSource
	allowAuthz bool
	allowQuery bool
	queryParam string
	ttl        time.Duration
	timeout    time.Duration
	now        func() time.Time
	log        *slog.Logger

	pos *ttlcache.Cache[[sha256.Size]byte, posEntry]
	neg *ttlcache.Cache[[sha256.Size]byte, *authn.Error]

	refusals *prometheus.CounterVec
	lookups  *prometheus.CounterVec
}

type posEntry struct {
	id        *authn.Identity
	expiresAt time.Time // key expiry; zero = none
}

var _ authn.Authenticator = (*Authenticator)(nil)

// NewAuthenticator validates o and returns an Authenticator backed by s.
func NewAuthenticator(s Store, o Options) (*Authenticator, error) {
	if s == nil {
		return nil, errors.New("apikey: nil store")
	}
	a := &Authenticator{store: s, allowAuthz: o.AllowAuthorization, allowQuery: o.AllowQuery, now: o.Now, log: o.Logger}
	if o.Header == "" {
		o.Header = DefaultHeader
	}
	if !authn.ValidHeaderName(o.Header) {
		return nil, fmt.Errorf("apikey: header %q is not a valid header name", o.Header)
	}
	a.header = textproto.CanonicalMIMEHeaderKey(o.Header)
	if a.header == "Authorization" {
		return nil, errors.New("apikey: use AllowAuthorization for the Authorization header, not Header")
	}
	a.lowHeader = strings.ToLower(a.header)
	a.queryParam = o.QueryParam
	if a.queryParam == "" {
		a.queryParam = DefaultQueryParam
	}
	switch {
	case o.CacheTTL == 0:
		a.ttl = DefaultCacheTTL
	case o.CacheTTL < 0:
		a.ttl = 0
	case o.CacheTTL > MaxCacheTTL:
		return nil, fmt.Errorf("apikey: cache TTL %s above maximum %s", o.CacheTTL, MaxCacheTTL)
	default:
		a.ttl = o.CacheTTL
	}
	maxEntries := o.CacheMaxEntries
	if maxEntries == 0 {
		maxEntries = DefaultMaxEntries
	}
	if maxEntries < 0 {
		return nil, fmt.Errorf("apikey: negative cache size %d", maxEntries)
	}
	a.pos = ttlcache.New[[sha256.Size]byte, posEntry](maxEntries)
	a.neg = ttlcache.New[[sha256.Size]byte, *authn.Error](maxEntries)
	a.timeout = o.StoreTimeout
	if a.timeout <= 0 {
		a.timeout = DefaultStoreTimeout
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Registerer != nil {
		var err error
		if a.refusals, err = telemetry.RegisterOrReuse(o.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_apikey_refusals_total",
			Help: "API key credentials refused, by reason.",
		}, []string{"reason"})); err != nil {
			return nil, err
		}
		if a.lookups, err = telemetry.RegisterOrReuse(o.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_apikey_store_lookups_total",
			Help: "API key store lookups (cache misses), by result.",
		}, []string{"result"})); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// CredentialSource names where the request carries an API key ("" if it
// carries none). anyof uses it to refuse requests with credentials of two
// different kinds.
func (a *Authenticator) CredentialSource(r *http.Request) string {
	if len(r.Header[a.header]) > 0 {
		return "header:" + a.lowHeader
	}
	if a.allowAuthz {
		for _, v := range r.Header["Authorization"] {
			if scheme, _, _ := strings.Cut(v, " "); strings.EqualFold(scheme, "ApiKey") {
				return "authorization:apikey"
			}
		}
	}
	if strings.Contains(r.URL.RawQuery, a.queryParam) && r.URL.Query().Has(a.queryParam) {
		return "query:" + a.queryParam
	}
	return ""
}

// Authenticate implements authn.Authenticator. It returns
// authn.ErrNoCredentials when the request has no API key, and an
// *authn.Error otherwise: malformed / bad checksum (no store lookup),
// multiple_tokens, query_token, inactive (unknown id or hash mismatch),
// revoked, expired, unavailable (store error; fail closed, not cached).
func (a *Authenticator) Authenticate(r *http.Request) (*authn.Identity, error) {
	key, err := a.extract(r)
	if err != nil {
		return nil, a.refuse(err)
	}
	if len(key) > maxCredentialLen {
		return nil, a.refuse(&authn.Error{Reason: authn.ReasonTooLarge})
	}
	sum := sha256.Sum256([]byte(key))
	hashPrefix := hex.EncodeToString(sum[:4])
	now := a.now()
	// Only keys that passed Parse and the store check are ever cached, and
	// the cache key is the full SHA-256 of the key, so a hit needs no Parse.
	if e, ok := a.pos.Get(sum, now); ok {
		if !e.expiresAt.IsZero() && !now.Before(e.expiresAt) {
			return nil, a.refuse(&authn.Error{Reason: authn.ReasonExpired, TokenHash: hashPrefix, Err: errors.New("key expired")})
		}
		return e.id, nil
	}
	id, perr := Parse(key)
	if perr != nil {
		return nil, a.refuse(&authn.Error{Reason: authn.ReasonMalformed, TokenHash: hashPrefix, Err: perr})
	}
	if e, ok := a.neg.Get(sum, now); ok {
		cp := *e // callers get their own copy of the shared cached refusal
		return nil, a.refuse(&cp)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.timeout)
	rec, err := a.store.GetAPIKey(ctx, id)
	cancel()
	switch {
	case errors.Is(err, ErrNotFound):
		a.countLookup("not_found")
		return nil, a.refuseCached(sum, now, &authn.Error{Reason: authn.ReasonInactive, TokenHash: hashPrefix, Err: fmt.Errorf("key %s unknown", id)})
	case err != nil:
		a.countLookup("error")
		a.log.Warn("api key store lookup failed", "key_id", id, "token_hash", hashPrefix, "err", err)
		return nil, a.refuse(&authn.Error{Reason: authn.ReasonUnavailable, TokenHash: hashPrefix, Err: fmt.Errorf("store lookup for key %s: %w", id, err)})
	}
	a.countLookup("found")
	// Constant-time: the stored hash is secret-derived, and the comparison
	// must not tell an attacker how many leading bytes matched.
	if rec == nil || rec.ID != id || subtle.ConstantTimeCompare(rec.Hash, sum[:]) != 1 {
		return nil, a.refuseCached(sum, now, &authn.Error{Reason: authn.ReasonInactive, TokenHash: hashPrefix, Err: fmt.Errorf("key %s: hash mismatch", id)})
	}
	if rec.Revoked {
		return nil, a.refuseCached(sum, now, &authn.Error{Reason: authn.ReasonRevoked, TokenHash: hashPrefix, Err: fmt.Errorf("key %s revoked", id)})
	}
	var expiresAt time.Time
	if rec.ExpiresAt != nil {
		expiresAt = *rec.ExpiresAt
		if !now.Before(expiresAt) {
			return nil, a.refuseCached(sum, now, &authn.Error{Reason: authn.ReasonExpired, TokenHash: hashPrefix, Err: fmt.Errorf("key %s expired", id)})
		}
	}
	ident := newIdentity(rec, hashPrefix, expiresAt)
	if a.ttl > 0 {
		until := now.Add(a.ttl)
		if !expiresAt.IsZero() && expiresAt.Before(until) {
			until = expiresAt
		}
		a.pos.Put(sum, posEntry{id: ident, expiresAt: expiresAt}, until, now)
	}
	return ident, nil
}

func newIdentity(rec *Record, hashPrefix string, expiresAt time.Time) *authn.Identity {
	scopes := slices.Clone(rec.Scopes)
	return &authn.Identity{
		Kind:     "apikey",
		Issuer:   "apikey",
		Subject:  rec.Consumer,
		ClientID: rec.Consumer,
		Scopes:   scopes,
		Claims: map[string]any{
			"sub":       rec.Consumer,
			"client_id": rec.Consumer,
			"scope":     strings.Join(scopes, " "),
			"key_id":    rec.ID,
		},
		ExpiresAt: expiresAt,
		TokenHash: hashPrefix,
	}
}

// Invalidate drops cached results for the key with this id, so a revocation
// made through this process takes effect immediately instead of within
// CacheTTL. Other nodes still rely on CacheTTL.
func (a *Authenticator) Invalidate(id string) {
	a.pos.DeleteFunc(func(_ [sha256.Size]byte, e posEntry) bool {
		kid, _ := e.id.Claims["key_id"].(string)
		return kid == id
	})
	// Negative entries are keyed by key hash only; a revoked key is already
	// refused, and an unknown-id entry can only shadow a key with the same
	// id, which Create never produces. Drop them all for simplicity.
	a.neg.DeleteFunc(func([sha256.Size]byte, *authn.Error) bool { return true })
}

// extract finds exactly one API key credential in r.
func (a *Authenticator) extract(r *http.Request) (string, error) {
	var key string
	n := 0
	if vals := r.Header[a.header]; len(vals) > 0 {
		if len(vals) > 1 {
			return "", &authn.Error{Reason: authn.ReasonMultipleTokens, Err: fmt.Errorf("%d %s headers", len(vals), a.header)}
		}
		key = strings.TrimSpace(vals[0])
		n++
	}
	if a.allowAuthz {
		authz := r.Header["Authorization"]
		for _, v := range authz {
			scheme, cred, _ := strings.Cut(v, " ")
			if !strings.EqualFold(scheme, "ApiKey") {
				continue
			}
			if len(authz) > 1 {
				return "", &authn.Error{Reason: authn.ReasonMultipleTokens, Err: errors.New("several Authorization headers")}
			}
			key = strings.TrimSpace(cred)
			n++
		}
	}
	if strings.Contains(r.URL.RawQuery, a.queryParam) {
		if vals, ok := r.URL.Query()[a.queryParam]; ok {
			if !a.allowQuery {
				return "", &authn.Error{Reason: authn.ReasonQueryToken}
			}
			if len(vals) > 1 {
				return "", &authn.Error{Reason: authn.ReasonMultipleTokens, Err: fmt.Errorf("%d %s query parameters", len(vals), a.queryParam)}
			}
			key = vals[0]
			n++
		}
	}
	switch {
	case n == 0:
		return "", authn.ErrNoCredentials
	case n > 1:
		return "", &authn.Error{Reason: authn.ReasonMultipleTokens, Err: fmt.Errorf("API key in %d places", n)}
	case key == "":
		return "", &authn.Error{Reason: authn.ReasonMalformed, Err: errors.New("empty API key")}
	}
	return key, nil
}

func (a *Authenticator) refuseCached(sum [sha256.Size]byte, now time.Time, e *authn.Error) error {
	if a.ttl > 0 {
		a.neg.Put(sum, e, now.Add(a.ttl), now)
	}
	return a.refuse(e)
}

// refuse counts e by reason and returns it. ErrNoCredentials is not a
// refusal of this authenticator (the route decides) and is not counted.
func (a *Authenticator) refuse(err error) error {
	var ae *authn.Error
	if a.refusals != nil && errors.As(err, &ae) {
		a.refusals.WithLabelValues(ae.Reason).Inc()
	}
	return err
}

func (a *Authenticator) countLookup(result string) {
	if a.lookups != nil {
		a.lookups.WithLabelValues(result).Inc()
	}
}
