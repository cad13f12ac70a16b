package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sekisho/sekisho/internal/testutil"
)

func (e *env) fetchMetric(result string) float64 {
	return testutil.MetricValue(e.metrics.jwksFetches.WithLabelValues(e.iss.name, result))
}

// Key rotation: a new kid is picked up by the refetch-on-unknown-kid (rate
// limited), and a key removed from the set stops verifying after the next
// load, even for tokens already in the verified-token cache.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t, nil, nil)
	k := fixtureKeys()
	old := e.good()
	e.mustCache(old)
	e.mustAccept(old) // a cache hit
	if hits := testutil.MetricValue(e.metrics.cacheHit); hits != 1 {
		t.Fatalf("cache hits = %v", hits)
	}

	// The issuer publishes k9 and starts signing with it.
	e.srv.setKeys(t, append(defaultKeys(t), publicJWK(t, k.ecAlt, "k9", "ES256"))...)
	newTok := signRaw(t, "ES256", k.ecAlt, mustJSON(t, header("ES256", "k9", nil)), mustJSON(t, e.claims(nil)))
	fetches := e.srv.hits.Load()
	// Within 30 s of the last load the unknown kid does not trigger a fetch.
	e.mustRefuse(newTok, ReasonUnknownKey)
	if e.srv.hits.Load() != fetches {
		t.Fatal("unknown kid fetched within the minimum interval")
	}
	e.clock.Advance(31 * time.Second)
	e.mustAccept(newTok)
	if got := e.srv.hits.Load() - fetches; got != 1 {
		t.Fatalf("rotation took %d fetches, want 1", got)
	}

	// k1 is retired: after the next load it no longer verifies, cached or not.
	e.srv.setKeys(t, publicJWK(t, k.ecAlt, "k9", "ES256"), publicJWK(t, k.rsa, "k2", ""))
	if err := e.iss.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mustRefuse(old, ReasonUnknownKey)
	e.mustAccept(newTok)
	// An unchanged reload keeps cache entries valid.
	hits := testutil.MetricValue(e.metrics.cacheHit)
	if err := e.iss.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mustAccept(newTok)
	if testutil.MetricValue(e.metrics.cacheHit) != hits+1 {
		t.Fatal("an unchanged key set invalidated the cache")
	}
}

func TestJWKSServerDownKeepsLastGoodKeys(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.srv.status.Store(http.StatusInternalServerError)
	if err := e.iss.Refresh(context.Background()); err == nil {
		t.Fatal("refresh against a failing server succeeded")
	}
	if e.fetchMetric(fetchErrStatus) < 1 {
		t.Fatal("fetch failure not counted")
	}
	// Fresh (uncached) tokens keep verifying with the last good keys.
	e.mustAccept(e.tok("RS256", "k2", nil, nil))
	e.clock.Advance(12 * time.Hour)
	e.mustAccept(e.tok("ES256", "k1", nil, nil))
	// Past refresh interval + stale grace: fail closed.
	e.clock.Advance(13 * time.Hour)
	e.mustRefuse(e.tok("ES256", "k1", nil, nil), ReasonUnavailable)
	// The origin recovers: the next token reloads (rate-limited) and verifies.
	e.srv.status.Store(0)
	e.clock.Advance(31 * time.Second)
	e.mustAccept(e.tok("ES256", "k1", nil, nil))
}

func TestJWKSUnavailableAtStart(t *testing.T) {
	clock := newFakeClock()
	srv := newJWKSServer(t, jwksJSON(t, defaultKeys(t)...))
	srv.status.Store(http.StatusServiceUnavailable)
	is, err := NewIssuer(IssuerOptions{Name: "late", Issuer: testIssuer, JWKSURL: srv.URL, Audiences: []string{testAudience},
		Logger: quietLogger(), Clock: clock.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	is.Start(ctx)
	route, _ := NewJWT([]*Issuer{is}, RouteJWTOptions{Logger: quietLogger(), Clock: clock.Now}, nil, nil, nil)
	e := &env{t: t, clock: clock}
	tok := e.good()
	waitFor(t, func() bool { return srv.hits.Load() >= 1 })
	_, err = route.Verify(ctx, tok)
	assertRefusal(t, nil, err, ReasonUnavailable)
	if is.Ready() {
		t.Fatal("Ready without keys")
	}
	srv.status.Store(0)
	clock.Advance(31 * time.Second)
	if _, err := route.Verify(ctx, tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if !is.Ready() {
		t.Fatal("not Ready after load")
	}
}

func TestUnknownKidRateLimit(t *testing.T) {
	e := newEnv(t, nil, nil)
	start := e.srv.hits.Load()
	for i := range 50 {
		e.mustRefuse(e.tok("ES256", "unknown-"+itoa(int64(i)), nil, nil), ReasonUnknownKey)
	}
	if n := e.srv.hits.Load() - start; n != 0 {
		t.Fatalf("%d fetches within the interval after the initial load", n)
	}
	e.clock.Advance(31 * time.Second)
	for i := range 50 {
		e.mustRefuse(e.tok("ES256", "unknown-"+itoa(int64(i)), nil, nil), ReasonUnknownKey)
	}
	if n := e.srv.hits.Load() - start; n != 1 {
		t.Fatalf("%d fetches for 50 unknown kids after the interval, want 1", n)
	}
}

// 1000 concurrent tokens with a kid the issuer just published, plus 1000 with
// garbage kids: one fetch, and every legitimate token waits for it and passes.
func TestUnknownKidSingleFlight(t *testing.T) {
	e := newEnv(t, nil, nil)
	k := fixtureKeys()
	e.srv.setKeys(t, append(defaultKeys(t), publicJWK(t, k.ecAlt, "k9", "ES256"))...)
	e.srv.delay.Store(int64(time.Second)) // every goroutine must join before the fetch ends, even under -race on a loaded machine
	e.clock.Advance(31 * time.Second)
	start := e.srv.hits.Load()

	const n = 1000
	good := make([]string, 20) // distinct tokens so the cache cannot short-cut
	for i := range good {
		good[i] = signRaw(t, "ES256", k.ecAlt, mustJSON(t, header("ES256", "k9", nil)), mustJSON(t, e.claims(map[string]any{"jti": "j" + itoa(int64(i))})))
	}
	bad := e.tok("ES256", "never-published", nil, nil)
	var wg sync.WaitGroup
	var okCount, unknown atomic.Int64
	release := make(chan struct{})
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			tok := bad
			if i%2 == 0 {
				tok = good[i%len(good)]
			}
			_, err := e.verify(tok)
			switch {
			case err == nil:
				okCount.Add(1)
			case err.(*Error).Reason == ReasonUnknownKey:
				unknown.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	close(release)
	wg.Wait()
	if got := e.srv.hits.Load() - start; got != 1 {
		t.Fatalf("%d JWKS fetches for %d concurrent unknown kids, want 1", got, 2*n)
	}
	if okCount.Load() != n || unknown.Load() != n {
		t.Fatalf("ok=%d unknown=%d, want %d each", okCount.Load(), unknown.Load(), n)
	}
}

func TestJWKSRedirectNotFollowed(t *testing.T) {
	target, hits := countingServer(t)
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/jwks", http.StatusFound)
	}))
	defer redir.Close()
	is, err := NewIssuer(IssuerOptions{Name: "r", Issuer: testIssuer, JWKSURL: redir.URL, Audiences: []string{testAudience},
		Logger: quietLogger(), HTTPClient: &http.Client{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := is.Refresh(context.Background()); err == nil {
		t.Fatal("redirected JWKS load succeeded")
	}
	if hits.Load() != 0 {
		t.Fatal("redirect was followed")
	}
}

func TestJWKSSizeCap(t *testing.T) {
	e := newEnv(t, func(o *IssuerOptions) { o.JWKS.MaxJWKSBytes = 1024 }, nil)
	k := fixtureKeys()
	e.srv.setKeys(t, append(defaultKeys(t), publicJWK(t, k.rsaAlt, "big", ""))...)
	if n := len(*e.srv.doc.Load()); n <= 1024 {
		t.Fatalf("test document only %d bytes", n)
	}
	if err := e.iss.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized JWKS: %v", err)
	}
	if e.fetchMetric(fetchErrTooLarge) != 1 {
		t.Fatal("too-large fetch not counted")
	}
	e.mustAccept(e.good()) // last good keys kept

	// Without Content-Length (chunked) the body reader enforces the cap.
	big := *e.srv.doc.Load()
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		_, _ = w.Write(big)
	}))
	defer chunked.Close()
	is, err := NewIssuer(IssuerOptions{Name: "chunked", Issuer: testIssuer, JWKSURL: chunked.URL, Audiences: []string{testAudience},
		JWKS: JWKSOptions{MaxJWKSBytes: 1024}, Logger: quietLogger()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := is.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("chunked oversized JWKS: %v", err)
	}
}

func TestJWKSRejectsUnusableKeys(t *testing.T) {
	k := fixtureKeys()
	priv, _ := json.Marshal(jose.JSONWebKey{Key: k.ecAlt, KeyID: "leaked", Algorithm: "ES256"})
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallJWK, _ := json.Marshal(publicJWK(t, small, "small", "RS256"))
	enc, _ := json.Marshal(jose.JSONWebKey{Key: &k.rsaAlt.PublicKey, KeyID: "enc", Use: "enc"})
	oct, _ := json.Marshal(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256"})
	good, _ := json.Marshal(publicJWK(t, k.ec256, "k1", "ES256"))
	// A sound RSA key whose key_ops exclude verify: only the pre-check refuses it.
	var opsMap map[string]any
	rsaJWK, _ := json.Marshal(publicJWK(t, k.rsaAlt, "ops", ""))
	_ = json.Unmarshal(rsaJWK, &opsMap)
	opsMap["key_ops"] = []string{"encrypt"}
	ops, _ := json.Marshal(opsMap)
	doc := `{"keys":[` + strings.Join([]string{
		string(priv), string(smallJWK), string(enc), string(oct),
		`{"kty":"EC","crv":"secp256k1","kid":"k256k","x":"AA","y":"AA"}`,
		`{"kty":"OKP","crv":"X25519","kid":"x","x":"` + b64(make([]byte, 32)) + `"}`,
		`{"kty":"XYZ","kid":"weird"}`,
		string(ops),
		string(good),
	}, ",") + `]}`
	keys, skipped, err := parseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ks, skipped2 := buildKeySet(keys, false)
	if len(ks.all) != 1 || ks.all[0].kid != "k1" {
		var kids []string
		for _, k := range ks.all {
			kids = append(kids, k.kid)
		}
		t.Fatalf("usable keys %v, want [k1] (skipped %v %v)", kids, skipped, skipped2)
	}
	if len(skipped)+len(skipped2) != 8 {
		t.Fatalf("skipped %d+%d entries, want 8: %v %v", len(skipped), len(skipped2), skipped, skipped2)
	}
	// Duplicate members and missing "keys" fail the whole document.
	for _, bad := range []string{`{"keys":[],"keys":[` + string(good) + `]}`, `{}`, `[]`, `{"keys":{}}`} {
		if _, _, err := parseJWKS([]byte(bad)); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
}

func TestJWKSEmptySetKeepsLastGood(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, doc := range []string{`{"keys":[]}`, `{"keys":null}`, `{"keys":[{"kty":"oct","k":"AAAA"}]}`} {
		b := []byte(doc)
		e.srv.doc.Store(&b)
		if err := e.iss.Refresh(context.Background()); err == nil {
			t.Fatalf("%s accepted", doc)
		}
		e.mustAccept(e.tok("ES256", "k1", nil, nil))
	}
}

// The per-key pre-checks refuse what go-jose would otherwise parse.
func TestUnusableJWKMeta(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"kty":"EC","d":"AA"}`:                                         true,
		`{"kty":"RSA","p":"AA"}`:                                        true,
		`{"kty":"oct","k":"AA"}`:                                        true,
		`{"kty":"RSA","use":"enc"}`:                                     true,
		`{"kty":"RSA","key_ops":["encrypt"]}`:                           true,
		`{"kty":"RSA","key_ops":["verify"]}`:                            false,
		`{"kty":"RSA","use":"sig","kid":"a"}`:                           false,
		`{"kty":"EC","kid":"` + strings.Repeat("k", maxKidLen+1) + `"}`: true,
	} {
		var m jwkMeta
		if err := unmarshalStrict([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		if got := unusableJWK(&m) != ""; got != want {
			t.Errorf("%s: unusable=%v want %v", doc, got, want)
		}
	}
}

func TestCacheControlTTL(t *testing.T) {
	var o JWKSOptions
	if err := o.normalize(); err != nil {
		t.Fatal(err)
	}
	for cc, want := range map[string]time.Duration{
		"":                             5 * time.Minute,
		"max-age=600":                  10 * time.Minute,
		"public, max-age=5":            time.Minute,
		"max-age=999999999999999":      24 * time.Hour,
		"MAX-AGE=120, must-revalidate": 2 * time.Minute,
		"no-cache":                     time.Minute,
		"no-store, max-age=3600":       time.Minute,
		"max-age=-1":                   5 * time.Minute,
		"max-age=abc":                  5 * time.Minute,
	} {
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		if got := cacheTTL(h, o); got != want {
			t.Errorf("%q: %s, want %s", cc, got, want)
		}
	}
}

func TestIssuerOptionValidation(t *testing.T) {
	base := func() IssuerOptions {
		return IssuerOptions{Name: "ok", Issuer: "https://i", JWKSURL: "https://i/jwks", Audiences: []string{"a"}}
	}
	if _, err := NewIssuer(base(), nil); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*IssuerOptions){
		"http url":      func(o *IssuerOptions) { o.JWKSURL = "http://example.com/jwks" },
		"ftp url":       func(o *IssuerOptions) { o.JWKSURL = "ftp://127.0.0.1/jwks" },
		"no origin":     func(o *IssuerOptions) { o.JWKSURL = "" },
		"two origins":   func(o *IssuerOptions) { o.JWKSFile = "/tmp/x" },
		"no audience":   func(o *IssuerOptions) { o.Audiences = nil },
		"empty aud":     func(o *IssuerOptions) { o.Audiences = []string{""} },
		"bad name":      func(o *IssuerOptions) { o.Name = "a b" },
		"no issuer":     func(o *IssuerOptions) { o.Issuer = "" },
		"leeway":        func(o *IssuerOptions) { o.Leeway = 6 * time.Minute },
		"neg leeway":    func(o *IssuerOptions) { o.Leeway = -time.Second },
		"token size":    func(o *IssuerOptions) { o.MaxTokenBytes = 10 << 20 },
		"unknown alg":   func(o *IssuerOptions) { o.Algorithms = []string{"ES256K"} },
		"refresh order": func(o *IssuerOptions) { o.JWKS.RefreshMin = time.Hour; o.JWKS.RefreshMax = time.Minute },
		"kid interval":  func(o *IssuerOptions) { o.JWKS.UnknownKidMinInterval = time.Millisecond },
		"jwks size":     func(o *IssuerOptions) { o.JWKS.MaxJWKSBytes = 1 << 30 },
	} {
		o := base()
		mod(&o)
		if _, err := NewIssuer(o, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o := base()
	o.JWKSURL = "http://127.0.0.1:1/jwks"
	if _, err := NewIssuer(o, nil); err != nil {
		t.Fatalf("loopback http refused: %v", err)
	}
}

// testKeySource is an in-process key source with change notification.
type testKeySource struct {
	mu   sync.Mutex
	keys []jose.JSONWebKey
	ch   chan struct{}
}

func newTestKeySource(keys ...jose.JSONWebKey) *testKeySource {
	return &testKeySource{keys: keys, ch: make(chan struct{})}
}

func (s *testKeySource) Keys(context.Context) ([]jose.JSONWebKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]jose.JSONWebKey(nil), s.keys...), nil
}

func (s *testKeySource) KeysChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *testKeySource) set(keys ...jose.JSONWebKey) {
	s.mu.Lock()
	s.keys = keys
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

func TestKeySourceIssuer(t *testing.T) {
	k := fixtureKeys()
	// The built-in server hands over private keys; only the public half is used.
	src := newTestKeySource(jose.JSONWebKey{Key: k.ec256, KeyID: "k1", Algorithm: "ES256", Use: "sig"})
	e := newEnv(t, func(o *IssuerOptions) { o.JWKSURL = ""; o.KeySource = src }, nil)
	e.mustAccept(e.good())
	if ks := e.iss.keys.Load(); ks.all[0].ec == nil || !ks.expiresAt.IsZero() {
		t.Fatal("key source set not loaded as public, non-expiring")
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	src.set(jose.JSONWebKey{Key: other, KeyID: "k2", Algorithm: "ES256"})
	// The change notification reloads without any token-triggered fetch.
	tok := signRaw(t, "ES256", other, mustJSON(t, header("ES256", "k2", nil)), mustJSON(t, e.claims(nil)))
	waitFor(t, func() bool { _, err := e.verify(tok); return err == nil })
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"jti": "fresh"}), ReasonUnknownKey)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quietKeySource never notifies: the issuer must poll it.
type quietKeySource struct{ *testKeySource }

func (quietKeySource) KeysChanged() <-chan struct{} { return nil }

func TestKeySourceWithoutNotificationsIsPolled(t *testing.T) {
	k := fixtureKeys()
	src := newTestKeySource(publicJWK(t, k.ec256, "k1", "ES256"))
	e := newEnv(t, func(o *IssuerOptions) {
		o.JWKSURL = ""
		o.KeySource = quietKeySource{src}
		o.JWKS.RefreshMin = time.Second
	}, nil)
	e.mustAccept(e.good())
	src.set(publicJWK(t, k.ecAlt, "k2", "ES256")) // closes a channel nobody watches
	tok := signRaw(t, "ES256", k.ecAlt, mustJSON(t, header("ES256", "k2", nil)), mustJSON(t, e.claims(nil)))
	// No clock advance, so the unknown-kid reload stays rate-limited: only
	// the poll can pick the new key up.
	e.mustRefuse(tok, ReasonUnknownKey)
	waitFor(t, func() bool { _, err := e.verify(tok); return err == nil })
}

func TestJWKSConditionalRefresh(t *testing.T) {
	e := newEnv(t, nil, nil)
	etag := `"v1"`
	e.srv.etag.Store(&etag)
	cc := "max-age=600"
	e.srv.cacheControl.Store(&cc)
	ctx := context.Background()
	if err := e.iss.Refresh(ctx); err != nil { // learns the ETag
		t.Fatal(err)
	}
	gen := e.iss.gen.Load()
	before := e.iss.keys.Load().expiresAt
	e.clock.Advance(time.Minute)
	if err := e.iss.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e.srv.notModified.Load() != 1 || e.fetchMetric(fetchNotModified) != 1 {
		t.Fatalf("304 not used (server %d, metric %v)", e.srv.notModified.Load(), e.fetchMetric(fetchNotModified))
	}
	ks := e.iss.keys.Load()
	if e.iss.gen.Load() != gen || !ks.expiresAt.After(before) || len(ks.all) != 3 {
		t.Fatal("304 did not keep the keys and extend their validity")
	}
	if want := e.clock.Now().Add(10*time.Minute + 24*time.Hour); !ks.expiresAt.Equal(want) {
		t.Fatalf("expires %s, want %s (max-age + stale grace)", ks.expiresAt, want)
	}
	e.mustAccept(e.good())
}
