package introspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/testutil"
)

const (
	clientID     = "gateway:edge"
	clientSecret = "s3cr&t=+/%"
)

// fakeAS is an RFC 7662 endpoint backed by a token table.
type fakeAS struct {
	t      *testing.T
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	tokens map[string]map[string]any
	status int           // non-zero: answer with this status
	raw    []byte        // non-nil: answer with this body
	delay  time.Duration // sleep before answering
	block  chan struct{} // non-nil: wait for close before answering
}

func newFakeAS(t *testing.T) *fakeAS {
	as := &fakeAS{t: t, tokens: map[string]map[string]any{}}
	as.srv = httptest.NewServer(http.HandlerFunc(as.serve))
	t.Cleanup(as.srv.Close)
	return as
}

func (as *fakeAS) set(token string, resp map[string]any) {
	as.mu.Lock()
	as.tokens[token] = resp
	as.mu.Unlock()
}

func (as *fakeAS) serve(w http.ResponseWriter, r *http.Request) {
	as.calls.Add(1)
	as.mu.Lock()
	status, raw, delay, block := as.status, as.raw, as.delay, as.block
	as.mu.Unlock()
	if block != nil {
		<-block
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	// The request must be a form POST authenticated with client_secret_basic.
	user, pass, ok := r.BasicAuth()
	u, _ := url.QueryUnescape(user)
	p, _ := url.QueryUnescape(pass)
	if r.Method != http.MethodPost || !ok || u != clientID || p != clientSecret ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if raw != nil {
		_, _ = w.Write(raw)
		return
	}
	as.mu.Lock()
	resp, found := as.tokens[r.PostForm.Get("token")]
	as.mu.Unlock()
	if !found {
		resp = map[string]any{"active": false}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// blockAS makes the AS hold every answer until the returned release is
// called; release also runs at cleanup (before the server closes) so a
// failing test cannot hang on blocked handlers.
func blockAS(t *testing.T, as *fakeAS) (release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	as.mu.Lock()
	as.block = ch
	as.mu.Unlock()
	return release
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	as    *fakeAS
	clock *fakeClock
	reg   *prometheus.Registry
	logs  *syncBuffer
	auth  *Authenticator
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	f := &fixture{as: newFakeAS(t), clock: &fakeClock{t: time.Unix(1_800_000_000, 0)}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	if o.Endpoint == "" {
		o.Endpoint = f.as.srv.URL + "/introspect"
	}
	o.ClientID, o.ClientSecret = clientID, clientSecret
	o.Now = f.clock.Now
	o.Registerer = f.reg
	o.Logger = slog.New(slog.NewJSONHandler(f.logs, nil))
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.auth = a
	return f
}

func (f *fixture) active(token string, extra map[string]any) {
	resp := map[string]any{"active": true, "sub": "alice", "client_id": "app", "scope": "orders:read  orders:write",
		"iss": "https://as.example", "aud": []any{"api", "other"}, "jti": "jti-" + token,
		"exp": float64(f.clock.Now().Add(time.Hour).Unix())}
	for k, v := range extra {
		if v == nil {
			delete(resp, k)
		} else {
			resp[k] = v
		}
	}
	f.as.set(token, resp)
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var ae *authn.Error
	if !errors.As(err, &ae) || ae.Reason != reason {
		t.Fatalf("error %v, want reason %q", err, reason)
	}
}

func TestActiveToken(t *testing.T) {
	f := newFixture(t, Options{RequiredAudience: "api", RequiredIssuer: "https://as.example"})
	f.active("tok-1", nil)
	id, err := f.auth.Authenticate(bearer("tok-1"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != "introspection" || id.Subject != "alice" || id.ClientID != "app" || id.Issuer != "https://as.example" ||
		id.JTI != "jti-tok-1" || len(id.Scopes) != 2 || !id.HasScope("orders:write") ||
		!id.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)) || id.Claims["sub"] != "alice" {
		t.Fatalf("identity %+v", id)
	}
	sum := sha256.Sum256([]byte("tok-1"))
	if id.TokenHash != fmt.Sprintf("%x", sum[:4]) {
		t.Fatalf("token hash %q", id.TokenHash)
	}
}

func TestInactiveAndBadActive(t *testing.T) {
	f := newFixture(t, Options{})
	f.as.set("inactive", map[string]any{"active": false, "sub": "alice"})
	f.as.set("string-true", map[string]any{"active": "true", "sub": "alice"})
	f.as.set("one", map[string]any{"active": 1})
	f.as.set("absent", map[string]any{"sub": "alice"})
	for _, tok := range []string{"inactive", "string-true", "one", "absent", "unknown"} {
		_, err := f.auth.Authenticate(bearer(tok))
		wantReason(t, err, authn.ReasonInactive)
	}
}

func TestClaimChecks(t *testing.T) {
	f := newFixture(t, Options{RequiredAudience: "api", RequiredIssuer: "https://as.example"})
	now := f.clock.Now()
	f.active("wrong-aud", map[string]any{"aud": "other"})
	f.active("no-aud", map[string]any{"aud": nil})
	f.active("wrong-iss", map[string]any{"iss": "https://evil.example"})
	f.active("expired", map[string]any{"exp": float64(now.Add(-time.Minute).Unix())})
	f.active("in-leeway", map[string]any{"exp": float64(now.Add(-10 * time.Second).Unix())})
	f.active("nbf", map[string]any{"nbf": float64(now.Add(time.Hour).Unix())})
	f.active("bad-exp", map[string]any{"exp": "tomorrow"})
	f.active("aud-string", map[string]any{"aud": "api"})
	cases := map[string]string{
		"wrong-aud": authn.ReasonAudience, "no-aud": authn.ReasonAudience, "wrong-iss": authn.ReasonIssuer,
		"expired": authn.ReasonExpired, "nbf": authn.ReasonNotYetValid, "bad-exp": authn.ReasonMalformed,
	}
	for tok, reason := range cases {
		_, err := f.auth.Authenticate(bearer(tok))
		wantReason(t, err, reason)
	}
	for _, tok := range []string{"in-leeway", "aud-string"} {
		if _, err := f.auth.Authenticate(bearer(tok)); err != nil {
			t.Errorf("%s: %v", tok, err)
		}
	}
}

func TestPositiveCache(t *testing.T) {
	f := newFixture(t, Options{PositiveCacheTTL: time.Minute})
	f.active("tok", nil)
	for i := 0; i < 5; i++ {
		if _, err := f.auth.Authenticate(bearer("tok")); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.as.calls.Load(); n != 1 {
		t.Fatalf("%d endpoint calls for 5 requests, want 1", n)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.auth.Authenticate(bearer("tok")); err != nil {
		t.Fatal(err)
	}
	if n := f.as.calls.Load(); n != 2 {
		t.Fatalf("%d endpoint calls after TTL, want 2", n)
	}
}

func TestPositiveCacheCappedByExp(t *testing.T) {
	f := newFixture(t, Options{PositiveCacheTTL: time.Hour, Leeway: -1})
	f.active("tok", map[string]any{"exp": float64(f.clock.Now().Add(5 * time.Second).Unix())})
	if _, err := f.auth.Authenticate(bearer("tok")); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5 * time.Second)
	_, err := f.auth.Authenticate(bearer("tok"))
	wantReason(t, err, authn.ReasonExpired)
	if n := f.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls: cache entry outlived the token's exp", n)
	}
}

func TestNegativeCache(t *testing.T) {
	f := newFixture(t, Options{NegativeCacheTTL: 10 * time.Second})
	for i := 0; i < 3; i++ {
		_, err := f.auth.Authenticate(bearer("nope"))
		wantReason(t, err, authn.ReasonInactive)
	}
	if n := f.as.calls.Load(); n != 1 {
		t.Fatalf("%d calls for a refused token, want 1", n)
	}
	f.clock.Advance(10 * time.Second)
	f.active("nope", nil) // became valid (e.g. was not yet issued)
	if _, err := f.auth.Authenticate(bearer("nope")); err != nil {
		t.Fatalf("after negative TTL: %v", err)
	}
}

func TestEndpointDownFailsClosedNotCached(t *testing.T) {
	f := newFixture(t, Options{})
	f.active("tok", nil)
	f.as.mu.Lock()
	f.as.status = http.StatusInternalServerError
	f.as.mu.Unlock()
	_, err := f.auth.Authenticate(bearer("tok"))
	wantReason(t, err, authn.ReasonUnavailable)
	f.as.mu.Lock()
	f.as.status = 0
	f.as.mu.Unlock()
	if _, err := f.auth.Authenticate(bearer("tok")); err != nil {
		t.Fatalf("after recovery: %v (failure was cached)", err)
	}
	if n := f.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
}

func TestEndpointUnreachable(t *testing.T) {
	as := newFakeAS(t)
	as.srv.Close()
	a, err := New(Options{Endpoint: as.srv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(bearer("tok"))
	wantReason(t, err, authn.ReasonUnavailable)
}

func TestTimeoutFailsClosedNotCached(t *testing.T) {
	f := newFixture(t, Options{Timeout: 100 * time.Millisecond})
	f.active("tok", nil)
	f.as.mu.Lock()
	f.as.delay = 500 * time.Millisecond
	f.as.mu.Unlock()
	start := time.Now()
	_, err := f.auth.Authenticate(bearer("tok"))
	wantReason(t, err, authn.ReasonUnavailable)
	if el := time.Since(start); el > 400*time.Millisecond {
		t.Fatalf("timeout of 100ms took %s", el)
	}
	f.as.mu.Lock()
	f.as.delay = 0
	f.as.mu.Unlock()
	if _, err := f.auth.Authenticate(bearer("tok")); err != nil {
		t.Fatalf("after timeout: %v (timeout was cached)", err)
	}
}

func TestCacheKeyedByEndpoint(t *testing.T) {
	// Same token, two endpoints with different answers: each authenticator
	// must use its own endpoint's answer.
	fa := newFixture(t, Options{})
	fb := newFixture(t, Options{})
	fa.active("shared", nil)
	fb.as.set("shared", map[string]any{"active": false})
	if _, err := fa.auth.Authenticate(bearer("shared")); err != nil {
		t.Fatalf("endpoint A: %v", err)
	}
	_, err := fb.auth.Authenticate(bearer("shared"))
	wantReason(t, err, authn.ReasonInactive)
	// And the key itself carries the endpoint.
	sum := sha256.Sum256([]byte("shared"))
	if _, ok := fa.auth.pos.Get(cacheKey{endpoint: fb.auth.endpoint, sum: sum}, fa.clock.Now()); ok {
		t.Fatal("entry found under the other endpoint's key")
	}
	if _, ok := fa.auth.pos.Get(cacheKey{endpoint: fa.auth.endpoint, sum: sum}, fa.clock.Now()); !ok {
		t.Fatal("entry not found under its own endpoint's key")
	}
}

func TestResponseSizeCap(t *testing.T) {
	f := newFixture(t, Options{})
	pad := strings.Repeat("x", MaxResponseSize)
	f.as.mu.Lock()
	f.as.raw = []byte(`{"active":true,"sub":"alice","pad":"` + pad + `"}`)
	f.as.mu.Unlock()
	_, err := f.auth.Authenticate(bearer("big"))
	wantReason(t, err, authn.ReasonUnavailable)

	f.as.mu.Lock()
	f.as.raw = []byte(`{"active":true,"sub":"alice","pad":"` + pad[:MaxResponseSize-64] + `"}`)
	f.as.mu.Unlock()
	if _, err := f.auth.Authenticate(bearer("just-under")); err != nil {
		t.Fatalf("response under the cap: %v", err)
	}
}

func TestMalformedResponses(t *testing.T) {
	f := newFixture(t, Options{})
	bodies := []string{
		`{"active":false,"active":true,"sub":"alice"}`, // duplicate member
		`{"active":true,"ext":{"a":1,"a":2}}`,          // nested duplicate
		`[{"active":true}]`,
		`{"active":true} {"active":true}`,
		`not json`,
		`{"active":true`,
		strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40),
	}
	for _, b := range bodies {
		f.as.mu.Lock()
		f.as.raw = []byte(b)
		f.as.mu.Unlock()
		_, err := f.auth.Authenticate(bearer("t"))
		wantReason(t, err, authn.ReasonUnavailable)
	}
	if n := f.as.calls.Load(); n != int64(len(bodies)) {
		t.Fatalf("%d calls for %d requests: malformed responses were cached", n, len(bodies))
	}
}

func TestWrongContentTypeAndRedirect(t *testing.T) {
	other := newFakeAS(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	a, err := New(Options{Endpoint: redirector.URL, ClientID: clientID, ClientSecret: clientSecret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(bearer("tok"))
	wantReason(t, err, authn.ReasonUnavailable)
	if n := other.calls.Load(); n != 0 {
		t.Fatalf("redirect followed: target got %d calls", n)
	}

	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`{"active":true}`))
	}))
	defer html.Close()
	a, _ = New(Options{Endpoint: html.URL})
	_, err = a.Authenticate(bearer("tok"))
	wantReason(t, err, authn.ReasonUnavailable)
}

func TestSingleFlight(t *testing.T) {
	f := newFixture(t, Options{})
	f.active("burst", nil)
	release := blockAS(t, f.as)

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.auth.Authenticate(bearer("burst"))
			errs <- err
		}()
	}
	// Wait until every other request has joined the one in-flight call.
	deadline := time.Now().Add(10 * time.Second)
	for gaugeValue(t, f.reg, "sekisho_introspection_coalesced_total") < n-1 {
		if time.Now().After(deadline) {
			t.Fatal("requests did not coalesce")
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := f.as.calls.Load(); c != 1 {
		t.Fatalf("%d endpoint calls for a burst of one token, want 1", c)
	}
}

func TestMaxInFlight(t *testing.T) {
	f := newFixture(t, Options{MaxInFlight: 1})
	release := blockAS(t, f.as)
	done := make(chan error)
	go func() { _, err := f.auth.Authenticate(bearer("first")); done <- err }()
	for f.as.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	_, err := f.auth.Authenticate(bearer("second"))
	wantReason(t, err, authn.ReasonUnavailable)
	release()
	<-done
}

func TestInvalidateAndDenyList(t *testing.T) {
	revoked := map[string]bool{}
	var mu sync.Mutex
	f := newFixture(t, Options{DenyList: DenyListFunc(func(jti string) bool { mu.Lock(); defer mu.Unlock(); return revoked[jti] })})
	f.active("a", nil)
	f.active("b", nil)
	for _, tok := range []string{"a", "b"} {
		if _, err := f.auth.Authenticate(bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}
	// Deny-list: refused on the next cache hit.
	mu.Lock()
	revoked["jti-a"] = true
	mu.Unlock()
	_, err := f.auth.Authenticate(bearer("a"))
	wantReason(t, err, authn.ReasonRevoked)

	// Invalidate by hash: the next request goes to the endpoint again.
	f.as.set("b", map[string]any{"active": false})
	if _, err := f.auth.Authenticate(bearer("b")); err != nil {
		t.Fatal("still cached before Invalidate expected success")
	}
	f.auth.Invalidate(sha256.Sum256([]byte("b")))
	_, err = f.auth.Authenticate(bearer("b"))
	wantReason(t, err, authn.ReasonInactive)

	// InvalidateJTI.
	f.active("c", nil)
	if _, err := f.auth.Authenticate(bearer("c")); err != nil {
		t.Fatal(err)
	}
	if n := f.auth.InvalidateJTI("jti-c"); n != 1 {
		t.Fatalf("InvalidateJTI dropped %d entries, want 1", n)
	}
}

func TestBearerParsing(t *testing.T) {
	f := newFixture(t, Options{})
	f.active("tok", nil)
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "bearer tok")
	if _, err := f.auth.Authenticate(r); err != nil {
		t.Fatalf("lower-case scheme: %v", err)
	}
	r.Header.Set("Authorization", "BEARER tok")
	if _, err := f.auth.Authenticate(r); err != nil {
		t.Fatalf("upper-case scheme: %v", err)
	}

	calls := f.as.calls.Load()
	bad := map[string]string{
		"Bearer a b":  authn.ReasonMalformed,
		"Bearer ":     authn.ReasonMalformed,
		"Bearer a\"b": authn.ReasonMalformed,
		"Bearer a=b":  authn.ReasonMalformed,
		"Bearer " + strings.Repeat("A", DefaultMaxTokenSize+1): authn.ReasonTooLarge,
		"Bearer " + strings.Repeat("A", 1<<20):                 authn.ReasonTooLarge,
	}
	for h, reason := range bad {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("Authorization", h)
		_, err := f.auth.Authenticate(r)
		wantReason(t, err, reason)
	}
	r = httptest.NewRequest("GET", "/x", nil)
	r.Header.Add("Authorization", "Bearer tok")
	r.Header.Add("Authorization", "Bearer tok")
	_, err := f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonMultipleTokens)

	r = httptest.NewRequest("GET", "/x?access_token=tok", nil)
	_, err = f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonQueryToken)

	r = httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	if _, err := f.auth.Authenticate(r); !errors.Is(err, authn.ErrNoCredentials) {
		t.Fatalf("Basic credentials: %v", err)
	}
	if _, err := f.auth.Authenticate(httptest.NewRequest("GET", "/x", nil)); !errors.Is(err, authn.ErrNoCredentials) {
		t.Fatalf("no credentials: %v", err)
	}
	if n := f.as.calls.Load(); n != calls {
		t.Fatalf("malformed credentials reached the endpoint (%d calls)", n-calls)
	}
}

func TestQueryTokenOptIn(t *testing.T) {
	f := newFixture(t, Options{AllowQueryToken: true})
	f.active("tok", nil)
	if _, err := f.auth.Authenticate(httptest.NewRequest("GET", "/x?access_token=tok", nil)); err != nil {
		t.Fatalf("opted-in query token: %v", err)
	}
	r := httptest.NewRequest("GET", "/x?access_token=tok", nil)
	r.Header.Set("Authorization", "Bearer tok")
	_, err := f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonMultipleTokens)
}

func TestRefusalsCountedAndTokensNotLogged(t *testing.T) {
	f := newFixture(t, Options{})
	const secretToken = "very-secret-opaque-token-value"
	f.as.mu.Lock()
	f.as.status = http.StatusBadGateway
	f.as.mu.Unlock()
	_, err := f.auth.Authenticate(bearer(secretToken))
	wantReason(t, err, authn.ReasonUnavailable)
	if strings.Contains(err.Error(), secretToken) {
		t.Fatal("error message contains the token")
	}
	logs := f.logs.String()
	if strings.Contains(logs, secretToken) {
		t.Fatal("log contains the token")
	}
	sum := sha256.Sum256([]byte(secretToken))
	if !strings.Contains(logs, fmt.Sprintf("%x", sum[:4])) {
		t.Fatalf("log lacks the token hash prefix: %s", logs)
	}
	if v := testutil.CounterValue(t, f.reg, "sekisho_introspection_refusals_total", "reason", authn.ReasonUnavailable); v != 1 {
		t.Fatalf("unavailable refusals counted %v, want 1", v)
	}
}

func TestOptionsValidation(t *testing.T) {
	bad := []Options{
		{},
		{Endpoint: "http://as.example/introspect"},
		{Endpoint: "https://user:pw@as.example/introspect"},
		{Endpoint: "ftp://as.example/"},
		{Endpoint: "https://as.example/", Timeout: time.Hour},
		{Endpoint: "https://as.example/", ClientSecret: "s"},
		{Endpoint: "https://as.example/", MaxEntries: -1},
	}
	for _, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
	for _, ep := range []string{"https://as.example/i", "http://127.0.0.1:8080/i", "http://[::1]/i", "http://localhost/i"} {
		if _, err := New(Options{Endpoint: ep}); err != nil {
			t.Errorf("%s: %v", ep, err)
		}
	}
}

func BenchmarkAuthenticateCached(b *testing.B) {
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"alice","scope":"a b","exp":` + fmt.Sprint(time.Now().Add(time.Hour).Unix()) + `}`))
	}))
	defer as.Close()
	a, err := New(Options{Endpoint: as.URL})
	if err != nil {
		b.Fatal(err)
	}
	r := bearer(strings.Repeat("A", 43))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
