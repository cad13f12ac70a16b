package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySource supplies the verification keys of an in-process issuer (the
// built-in authorization server implements it), so the gateway verifies the
// server's own tokens without an HTTP round trip to itself.
type KeySource interface {
	// Keys returns the current signing keys. Private JWKs are accepted;
	// only their public half is used. Symmetric keys are ignored.
	Keys(ctx context.Context) ([]jose.JSONWebKey, error)
	// KeysChanged returns a channel that is closed when the set returned by
	// Keys changes (a broadcast: every caller gets the same channel, and
	// the implementation replaces it after closing). It may return nil when
	// the source has no notifications: the issuer also polls Keys every
	// JWKS.RefreshMin (default 1 minute).
	KeysChanged() <-chan struct{}
}

// JWKSOptions tune an issuer's key set cache. Zero values take the defaults.
type JWKSOptions struct {
	// RefreshMin and RefreshMax clamp the Cache-Control max-age of the JWKS
	// response (defaults 1 minute and 24 hours).
	RefreshMin time.Duration
	RefreshMax time.Duration
	// RefreshDefault is the refresh interval when the response has no
	// max-age, and the poll interval of a JWKS file (default 5 minutes).
	RefreshDefault time.Duration
	// UnknownKidMinInterval is the least time between two key set loads
	// triggered by tokens (unknown kid, or no keys yet). Concurrent
	// triggers share one load (default 30 seconds).
	UnknownKidMinInterval time.Duration
	// StaleGrace is how long the last good key set keeps verifying after its
	// refresh was due and loads kept failing (default 24 hours). After that
	// tokens of the issuer are refused with ReasonUnavailable (fail closed).
	StaleGrace time.Duration
	// MaxJWKSBytes caps the key set document (default 256 KiB).
	MaxJWKSBytes int64
	// FetchTimeout bounds one key set load (default 5 seconds).
	FetchTimeout time.Duration
}

// IssuerOptions configure one trusted token issuer. Exactly one key origin
// must be set: JWKSURL, JWKSFile, KeySource, or HMACSecret.
type IssuerOptions struct {
	// Name identifies the issuer in configuration, logs and metric labels
	// (1–64 characters of [A-Za-z0-9_.:-]).
	Name string
	// Issuer is the exact "iss" value of the issuer's tokens.
	Issuer string

	// JWKSURL is the issuer's key set endpoint: https, or http to a
	// loopback address only. Redirects are never followed.
	JWKSURL string
	// JWKSFile is a local JWK Set file, re-read every RefreshDefault.
	JWKSFile string
	// KeySource is an in-process key set (the built-in issuer).
	KeySource KeySource
	// HMACSecret enables HS256/384/512 for this issuer and only those: a
	// shared-secret issuer never has public keys and a public-key issuer
	// never accepts HMAC. It must be at least as long as the largest
	// configured HMAC digest (32, 48 or 64 bytes).
	HMACSecret []byte

	// Algorithms is the allow-list (default ES256, EdDSA, RS256, PS256;
	// HS256 when HMACSecret is set). "none" is always refused.
	Algorithms []string
	// Audiences: a token's aud must contain at least one (required).
	Audiences []string
	// RequiredType, when set, is the required "typ" header, compared
	// case-insensitively with the "application/" prefix optional
	// (RFC 7515 §4.1.9), e.g. "at+jwt" for RFC 9068 access tokens.
	RequiredType string
	// Leeway is the clock skew tolerated on exp, nbf and iat (default 30 s,
	// at most 5 minutes).
	Leeway time.Duration
	// MaxTokenBytes refuses longer tokens before any parsing (default 8192,
	// at most 64 KiB).
	MaxTokenBytes int

	JWKS JWKSOptions
	// HTTPClient fetches JWKSURL; its CheckRedirect is replaced so that no
	// redirect is followed. Default: a client with its own transport.
	HTTPClient *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock defaults to time.Now (tests inject a fake clock).
	Clock func() time.Time
}

// Option bounds.
const (
	defaultLeeway        = 30 * time.Second
	maxLeeway            = 5 * time.Minute
	defaultMaxTokenBytes = 8192
	minMaxTokenBytes     = 512
	maxMaxTokenBytes     = 64 << 10
	defaultMaxJWKSBytes  = 256 << 10
	maxMaxJWKSBytes      = 16 << 20
)

// DefaultAlgorithms returns the allow-list of an issuer that does not set
// one: ES256, EdDSA, RS256, PS256.
func DefaultAlgorithms() []string { return []string{"ES256", "EdDSA", "RS256", "PS256"} }

func (o *JWKSOptions) normalize() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.RefreshMin, time.Minute)
	def(&o.RefreshMax, 24*time.Hour)
	def(&o.RefreshDefault, 5*time.Minute)
	def(&o.UnknownKidMinInterval, 30*time.Second)
	def(&o.StaleGrace, 24*time.Hour)
	def(&o.FetchTimeout, 5*time.Second)
	if o.MaxJWKSBytes == 0 {
		o.MaxJWKSBytes = defaultMaxJWKSBytes
	}
	switch {
	case o.RefreshMin < time.Second:
		return fmt.Errorf("jwks.refresh_min %s is below 1s", o.RefreshMin)
	case o.RefreshMax < o.RefreshMin:
		return fmt.Errorf("jwks.refresh_max %s is below refresh_min %s", o.RefreshMax, o.RefreshMin)
	case o.RefreshMax > 7*24*time.Hour:
		return fmt.Errorf("jwks.refresh_max %s is above 7 days", o.RefreshMax)
	case o.RefreshDefault < o.RefreshMin || o.RefreshDefault > o.RefreshMax:
		return fmt.Errorf("jwks.refresh_default %s is outside [refresh_min, refresh_max]", o.RefreshDefault)
	case o.UnknownKidMinInterval < time.Second:
		return fmt.Errorf("jwks.unknown_kid_min_interval %s is below 1s", o.UnknownKidMinInterval)
	case o.StaleGrace < 0:
		return fmt.Errorf("jwks.stale_grace %s is negative", o.StaleGrace)
	case o.FetchTimeout < 0 || o.FetchTimeout > time.Minute:
		return fmt.Errorf("jwks.fetch_timeout %s is outside (0, 1m]", o.FetchTimeout)
	case o.MaxJWKSBytes < 1024 || o.MaxJWKSBytes > maxMaxJWKSBytes:
		return fmt.Errorf("jwks.max_bytes %d is outside [1024, %d]", o.MaxJWKSBytes, maxMaxJWKSBytes)
	}
	return nil
}

// validName reports whether s is a safe metric label / log value.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// normalizeTyp maps a typ value to its full lower-case media type
// (RFC 7515 §4.1.9: a value without '/' has an implied "application/").
func normalizeTyp(t string) string {
	t = strings.ToLower(t)
	if t != "" && !strings.Contains(t, "/") {
		return "application/" + t
	}
	return t
}

// Issuer verifies tokens of one trusted issuer with that issuer's keys only.
// Build it with NewIssuer, call Start once, share it between routes.
type Issuer struct {
	name      string
	iss       string
	algs      []string
	audiences []string
	typ       string // normalized, "" = not checked
	leeway    time.Duration
	maxToken  int
	jwks      JWKSOptions
	hmacKey   *verifyKey // HMAC issuers only
	loader    keyLoader  // nil for HMAC issuers
	source    KeySource
	metrics   *Metrics
	log       *slog.Logger
	now       func() time.Time

	keys  atomic.Pointer[keySet]
	gen   atomic.Uint64 // bumped (after keys is stored) whenever the usable set changes
	ready chan struct{}
	once  sync.Once // closes ready

	fetchMu   sync.Mutex
	inflight  *fetchCall
	fetchSeq  uint64 // loads started
	lastFetch time.Time
	etag      string
	nextIn    time.Duration // refresh interval from the last successful load
	baseCtx   context.Context
	fetches   atomic.Int64 // loads started, for tests and debugging

	startOnce sync.Once
	// id distinguishes this Issuer in token cache keys (random, so routes
	// built from different Issuer values never share entries by accident).
	id uint64
}

// NewIssuer validates opts and returns an issuer. It does no I/O: call Start.
func NewIssuer(opts IssuerOptions, m *Metrics) (*Issuer, error) {
	is, err := newIssuer(opts, m)
	if err != nil {
		name := opts.Name
		if !validName(name) {
			name = truncate(fmt.Sprintf("%q", name), 40)
		}
		return nil, fmt.Errorf("issuer %s: %w", name, err)
	}
	return is, nil
}

func newIssuer(o IssuerOptions, m *Metrics) (*Issuer, error) {
	if !validName(o.Name) {
		return nil, errors.New("name must be 1–64 characters of [A-Za-z0-9_.:-]")
	}
	if o.Issuer == "" || len(o.Issuer) > 1024 {
		return nil, errors.New("issuer must be set (at most 1024 bytes)")
	}
	origins := 0
	for _, set := range []bool{o.JWKSURL != "", o.JWKSFile != "", o.KeySource != nil, len(o.HMACSecret) > 0} {
		if set {
			origins++
		}
	}
	if origins != 1 {
		return nil, errors.New("exactly one of jwks_url, jwks_file, key source or hmac_secret must be set")
	}
	hmacIssuer := len(o.HMACSecret) > 0
	if len(o.Algorithms) == 0 {
		if hmacIssuer {
			o.Algorithms = []string{"HS256"}
		} else {
			o.Algorithms = DefaultAlgorithms()
		}
	}
	var algs []string
	minSecret := 0
	for _, a := range o.Algorithms {
		if strings.EqualFold(a, "none") {
			return nil, errors.New(`algorithm "none" is never accepted`)
		}
		ai, ok := lookupAlg(a)
		if !ok {
			return nil, fmt.Errorf("unsupported algorithm %q", a)
		}
		if (ai.kind == kindHMAC) != hmacIssuer {
			if hmacIssuer {
				return nil, fmt.Errorf("algorithm %q: an issuer with hmac_secret accepts only HS256/HS384/HS512", a)
			}
			return nil, fmt.Errorf("algorithm %q requires hmac_secret, and then only HMAC algorithms (never with a key set)", a)
		}
		if ai.kind == kindHMAC {
			minSecret = max(minSecret, ai.hash.Size())
		}
		if !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	if hmacIssuer && len(o.HMACSecret) < minSecret {
		return nil, fmt.Errorf("hmac_secret has %d bytes, the configured algorithms need at least %d", len(o.HMACSecret), minSecret)
	}
	if len(o.Audiences) == 0 {
		return nil, errors.New("at least one audience is required")
	}
	for _, a := range o.Audiences {
		if a == "" {
			return nil, errors.New("empty audience")
		}
	}
	switch {
	case o.Leeway == 0:
		o.Leeway = defaultLeeway
	case o.Leeway < 0 || o.Leeway > maxLeeway:
		return nil, fmt.Errorf("leeway %s is outside (0, %s]", o.Leeway, maxLeeway)
	}
	switch {
	case o.MaxTokenBytes == 0:
		o.MaxTokenBytes = defaultMaxTokenBytes
	case o.MaxTokenBytes < minMaxTokenBytes || o.MaxTokenBytes > maxMaxTokenBytes:
		return nil, fmt.Errorf("max_token_bytes %d is outside [%d, %d]", o.MaxTokenBytes, minMaxTokenBytes, maxMaxTokenBytes)
	}
	if err := o.JWKS.normalize(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	is := &Issuer{
		name:      o.Name,
		iss:       o.Issuer,
		algs:      algs,
		audiences: slices.Clone(o.Audiences),
		typ:       normalizeTyp(o.RequiredType),
		leeway:    o.Leeway,
		maxToken:  o.MaxTokenBytes,
		jwks:      o.JWKS,
		metrics:   m,
		log:       o.Logger.With("issuer", o.Name),
		now:       o.Clock,
		ready:     make(chan struct{}),
		baseCtx:   context.Background(),
		id:        rand.Uint64(),
	}
	switch {
	case hmacIssuer:
		is.hmacKey = &verifyKey{kind: kindHMAC, hmac: slices.Clone(o.HMACSecret)}
		is.once.Do(func() { close(is.ready) })
	case o.JWKSURL != "":
		u, err := checkJWKSURL(o.JWKSURL)
		if err != nil {
			return nil, err
		}
		is.loader = &httpLoader{url: u, client: noRedirectClient(o.HTTPClient, o.JWKS.FetchTimeout), opts: o.JWKS}
	case o.JWKSFile != "":
		is.loader = &fileLoader{path: o.JWKSFile, opts: o.JWKS, readFile: readFileLimited}
	default:
		is.source = o.KeySource
		is.loader = &sourceLoader{src: o.KeySource, poll: o.JWKS.RefreshMin}
	}
	return is, nil
}

// checkJWKSURL allows https, and plain http only to loopback hosts (a local
// sidecar or a test server): key material over plain HTTP elsewhere could be
// substituted by anyone on the path.
func checkJWKSURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("jwks_url: %w", err)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return "", errors.New("jwks_url must be an absolute URL without userinfo or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", errors.New("jwks_url must use https (plain http only to a loopback address)")
		}
	default:
		return "", fmt.Errorf("jwks_url scheme %q is not https", u.Scheme)
	}
	return u.String(), nil
}

// Name returns the configured issuer name.
func (is *Issuer) Name() string { return is.name }

// IssuerID returns the exact iss value this issuer verifies.
func (is *Issuer) IssuerID() string { return is.iss }

// MaxTokenBytes returns the size cap for this issuer's tokens.
func (is *Issuer) MaxTokenBytes() int { return is.maxToken }

// Ready reports whether the issuer has usable keys now.
func (is *Issuer) Ready() bool {
	if is.hmacKey != nil {
		return true
	}
	return is.keys.Load().usable(is.now())
}

// WaitReady blocks until the first key set has loaded or ctx is done. The
// gateway may use it to delay readiness; verification does not need it
// (without keys it fails closed with ReasonUnavailable).
func (is *Issuer) WaitReady(ctx context.Context) error {
	select {
	case <-is.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("issuer %s: keys not loaded: %w", is.name, ctx.Err())
	}
}

// refusal builds an *Error with a formatted internal cause.
func refusal(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// verified is the outcome of a successful verification.
type verified struct {
	id      *Identity
	gen     uint64 // key set generation the signature was checked against
	issuer  *Issuer
	iat     time.Time
	expires time.Time
}

// verify checks a parsed token against this issuer: header rules, key
// selection, signature, then claims. The payload's iss has already selected
// this issuer; it is checked again here.
func (is *Issuer) verify(ctx context.Context, p *parsedJWS, tokenLen int) (*verified, *Error) {
	if tokenLen > is.maxToken {
		return nil, refusal(ReasonTooLarge, "token of %d bytes exceeds %d", tokenLen, is.maxToken)
	}
	h := &p.header
	if !slices.Contains(is.algs, h.Alg) {
		return nil, refusal(ReasonAlgorithm, "alg %q is not allowed", truncate(h.Alg, 16))
	}
	ai, _ := lookupAlg(h.Alg) // every allowed alg is known
	if h.Crit != nil {
		// No extension is understood, so any crit must be refused (RFC 7515 §4.1.11).
		return nil, refusal(ReasonCrit, "crit header present; no extension is supported")
	}
	if name := h.embeddedKeyHeader(); name != "" {
		// Keys are never taken from the token (RFC 8725 §3.10). A token
		// that offers one is refused outright rather than half-trusted.
		return nil, refusal(ReasonUnknownKey, "token carries a %q header; keys are never taken from tokens", name)
	}
	if strings.EqualFold(h.Cty, "JWT") {
		return nil, refusal(ReasonMalformed, "nested JWT (cty JWT) is not accepted")
	}
	if is.typ != "" && normalizeTyp(h.Typ) != is.typ {
		return nil, refusal(ReasonType, "typ %q is not the required %q", truncate(h.Typ, 32), is.typ)
	}
	keys, gen, rerr := is.selectKeys(ctx, h.Kid, h.Alg, ai)
	if rerr != nil {
		return nil, rerr
	}
	var sigErr error
	ok := false
	for _, k := range keys {
		if sigErr = k.verify(ai, p.signingInput, p.signature); sigErr == nil {
			ok = true
			break
		}
	}
	if !ok {
		return nil, refusal(ReasonSignature, "%w", sigErr)
	}

	c, err := extractClaims(p.claims)
	if err != nil {
		return nil, refusal(ReasonMalformed, "claims: %w", err)
	}
	if c.iss != is.iss {
		return nil, refusal(ReasonIssuer, "iss does not match")
	}
	now := is.now()
	if !now.Before(c.exp.Add(is.leeway)) {
		return nil, refusal(ReasonExpired, "expired at %s", c.exp.UTC().Format(time.RFC3339))
	}
	if c.hasNbf && now.Add(is.leeway).Before(c.nbf) {
		return nil, refusal(ReasonNotYetValid, "nbf %s is in the future", c.nbf.UTC().Format(time.RFC3339))
	}
	if c.hasIat && now.Add(is.leeway).Before(c.iat) {
		return nil, refusal(ReasonNotYetValid, "iat %s is in the future", c.iat.UTC().Format(time.RFC3339))
	}
	if !is.audienceOK(c.aud) {
		return nil, refusal(ReasonAudience, "aud does not contain an accepted audience")
	}
	id := &Identity{
		Kind:      "jwt",
		Issuer:    c.iss,
		Subject:   c.sub,
		ClientID:  c.clientID,
		Scopes:    c.scopes,
		Claims:    p.claims,
		JTI:       c.jti,
		ExpiresAt: c.exp,
	}
	return &verified{id: id, gen: gen, issuer: is, iat: c.iat, expires: c.exp}, nil
}

func (is *Issuer) audienceOK(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(is.audiences, a) {
			return true
		}
	}
	return false
}

// selectKeys returns the keys a token may be verified with, loading the key
// set (rate-limited, shared) once when the kid is unknown or no usable set is
// loaded. gen is read before the set so a cache entry is never tagged with a
// newer generation than the keys that verified it.
func (is *Issuer) selectKeys(ctx context.Context, kid, alg string, ai algInfo) ([]*verifyKey, uint64, *Error) {
	if is.hmacKey != nil {
		return []*verifyKey{is.hmacKey}, 0, nil
	}
	for attempt := 0; ; attempt++ {
		gen := is.gen.Load()
		ks := is.keys.Load()
		if !ks.usable(is.now()) {
			if attempt == 0 && is.refetch(ctx) {
				continue
			}
			return nil, 0, refusal(ReasonUnavailable, "no usable key set (not loaded yet, or stale beyond grace)")
		}
		cands, kidKnown := ks.candidates(kid, alg, ai)
		if kidKnown && len(cands) == 0 {
			return nil, 0, refusal(ReasonAlgorithm, "alg %q does not fit key %q", alg, truncate(kid, 64))
		}
		if kid == "" && len(cands) > maxNoKidCandidates {
			return nil, 0, refusal(ReasonUnknownKey, "token has no kid and %d keys fit alg %q", len(cands), alg)
		}
		if len(cands) > 0 {
			return cands[:min(len(cands), maxNoKidCandidates)], gen, nil
		}
		if attempt == 0 && is.refetch(ctx) {
			continue
		}
		if kid == "" {
			return nil, 0, refusal(ReasonUnknownKey, "token has no kid and no key fits alg %q", alg)
		}
		return nil, 0, refusal(ReasonUnknownKey, "kid %q not in the key set", truncate(kid, 64))
	}
}
