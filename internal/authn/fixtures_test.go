package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/revocation"
	"github.com/sekisho/sekisho/internal/testutil"
)

const (
	testIssuer   = "https://issuer.example.test"
	testAudience = "https://api.example.test"
)

// fakeClock is a settable clock shared by issuer, route and deny-list.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// jwksServer serves a JWKS document that tests can swap, break or slow down,
// and counts requests.
type jwksServer struct {
	*httptest.Server
	doc          atomic.Pointer[[]byte]
	hits         atomic.Int64
	status       atomic.Int32 // 0 = 200
	delay        atomic.Int64 // nanoseconds
	cacheControl atomic.Pointer[string]
	etag         atomic.Pointer[string] // when set: sent, and If-None-Match answered with 304
	notModified  atomic.Int64
}

func newJWKSServer(t testing.TB, doc []byte) *jwksServer {
	s := &jwksServer{}
	s.doc.Store(&doc)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if d := s.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if st := s.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		if cc := s.cacheControl.Load(); cc != nil {
			w.Header().Set("Cache-Control", *cc)
		}
		if et := s.etag.Load(); et != nil {
			w.Header().Set("ETag", *et)
			if r.Header.Get("If-None-Match") == *et {
				s.notModified.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.doc.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(t testing.TB, keys ...jose.JSONWebKey) {
	doc := jwksJSON(t, keys...)
	s.doc.Store(&doc)
}

// countingServer records any request: used as the target of jku/x5u headers,
// which must never be contacted.
func countingServer(t testing.TB) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// env is one issuer behind a JWKS server, a route, a cache and a deny-list.
type env struct {
	t       *testing.T
	clock   *fakeClock
	srv     *jwksServer
	iss     *Issuer
	auth    *JWTAuthenticator
	cache   *TokenCache
	deny    *revocation.DenyList
	reg     *prometheus.Registry
	metrics *Metrics
}

// defaultKeys is the issuer's published key set: ES256 k1, RSA k2 (no alg
// pin, so RS256 and PS256), Ed25519 k3.
func defaultKeys(t testing.TB) []jose.JSONWebKey {
	k := fixtureKeys()
	return []jose.JSONWebKey{
		publicJWK(t, k.ec256, "k1", "ES256"),
		publicJWK(t, k.rsa, "k2", ""),
		publicJWK(t, k.ed, "k3", "EdDSA"),
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newEnv(t *testing.T, mod func(*IssuerOptions), route func(*RouteJWTOptions)) *env {
	t.Helper()
	e := &env{t: t, clock: newFakeClock(), reg: prometheus.NewRegistry()}
	var err error
	if e.metrics, err = NewMetrics(e.reg); err != nil {
		t.Fatal(err)
	}
	e.srv = newJWKSServer(t, jwksJSON(t, defaultKeys(t)...))
	opts := IssuerOptions{
		Name:         "test",
		Issuer:       testIssuer,
		JWKSURL:      e.srv.URL + "/jwks.json",
		Audiences:    []string{testAudience},
		RequiredType: "at+jwt",
		Logger:       quietLogger(),
		Clock:        e.clock.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	if e.iss, err = NewIssuer(opts, e.metrics); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.iss.Start(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if opts.JWKSURL != "" || opts.JWKSFile != "" || opts.KeySource != nil {
		if err := e.iss.WaitReady(wctx); err != nil {
			t.Fatal(err)
		}
	}
	if e.cache, err = NewTokenCache(TokenCacheOptions{MaxEntries: 1024}); err != nil {
		t.Fatal(err)
	}
	if e.deny, err = revocation.NewDenyList(revocation.Options{Clock: e.clock.Now, Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	ro := RouteJWTOptions{Logger: quietLogger(), Clock: e.clock.Now}
	if route != nil {
		route(&ro)
	}
	if e.auth, err = NewJWT([]*Issuer{e.iss}, ro, e.cache, e.deny, e.metrics); err != nil {
		t.Fatal(err)
	}
	return e
}

// claims returns valid claims at the env's clock, with overrides applied
// (a nil override value deletes the claim).
func (e *env) claims(over map[string]any) map[string]any {
	now := e.clock.Now().Unix()
	c := map[string]any{
		"iss":       testIssuer,
		"sub":       "alice",
		"aud":       testAudience,
		"exp":       now + 3600,
		"iat":       now,
		"nbf":       now,
		"jti":       fmt.Sprintf("jti-%d", time.Now().UnixNano()),
		"client_id": "web",
		"scope":     "orders:read orders:write",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// header returns the default header for alg/kid with overrides (nil deletes).
func header(alg, kid string, over map[string]any) map[string]any {
	h := map[string]any{"alg": alg, "kid": kid, "typ": "at+jwt"}
	for k, v := range over {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	return h
}

// tok signs claims with the fixture key that matches alg.
func (e *env) tok(alg, kid string, hdr, claims map[string]any) string {
	e.t.Helper()
	k := fixtureKeys()
	var key any
	switch alg {
	case "ES256":
		key = k.ec256
	case "ES384":
		key = k.ec384
	case "ES512":
		key = k.ec521
	case "EdDSA", "Ed25519":
		key = k.ed
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		key = k.rsa
	default:
		e.t.Fatalf("tok: no fixture key for %s", alg)
	}
	return signRaw(e.t, alg, key, mustJSON(e.t, header(alg, kid, hdr)), mustJSON(e.t, e.claims(claims)))
}

func (e *env) good() string { return e.tok("ES256", "k1", nil, nil) }

// verify runs the route's Verify.
func (e *env) verify(token string) (*Identity, error) {
	return e.auth.Verify(context.Background(), token)
}

// mustRefuse asserts token is refused with reason.
func (e *env) mustRefuse(token, reason string) *Error {
	e.t.Helper()
	id, err := e.verify(token)
	return assertRefusal(e.t, id, err, reason)
}

func assertRefusal(t testing.TB, id *Identity, err error, reason string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted (subject %q), want refusal %q", id.Subject, reason)
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not *Error", err)
	}
	if ae.Reason != reason {
		t.Fatalf("refused with %q (%v), want %q", ae.Reason, ae.Err, reason)
	}
	return ae
}

func (e *env) mustAccept(token string) *Identity {
	e.t.Helper()
	id, err := e.verify(token)
	if err != nil {
		e.t.Fatalf("refused: %v", err)
	}
	return id
}

// refusals reads the refusal counter for reason.
func (e *env) refusals(reason string) float64 {
	return testutil.MetricValue(e.metrics.refusals.WithLabelValues("jwt", reason))
}

func req(target string, auth ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for _, a := range auth {
		r.Header.Add("Authorization", a)
	}
	return r
}

// tamper replaces the payload of a signed token, keeping header and signature.
func tamper(token, payload string) string {
	parts := strings.Split(token, ".")
	parts[1] = b64([]byte(payload))
	return strings.Join(parts, ".")
}
