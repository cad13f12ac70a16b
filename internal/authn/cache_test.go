package authn

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/testutil"
)

func TestRevokedJTIRefusedOnCacheHit(t *testing.T) {
	e := newEnv(t, nil, nil)
	tok := e.tok("ES256", "k1", nil, map[string]any{"jti": "revoke-me"})
	e.mustAccept(tok)
	e.mustAccept(tok) // second verification: admitted to the cache
	e.mustAccept(tok)
	if testutil.MetricValue(e.metrics.cacheHit) != 1 {
		t.Fatal("second verification was not a cache hit")
	}
	if err := e.deny.RevokeToken(context.Background(), "revoke-me", e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.mustRefuse(tok, ReasonRevoked)
	e.mustRefuse(tok, ReasonRevoked) // and stays refused (entry dropped, full path)
	if e.refusals(ReasonRevoked) != 2 {
		t.Fatalf("revoked refusals = %v", e.refusals(ReasonRevoked))
	}
	// Another token of the same user is unaffected.
	e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"jti": "other"}))
}

func TestRevokedSubjectAndClientOnCacheHit(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	tok := e.good()
	e.mustCache(tok)
	e.clock.Advance(time.Second)
	if err := e.deny.RevokeSubject(ctx, "alice", e.clock.Now(), e.clock.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.mustRefuse(tok, ReasonRevoked)
	// A token issued after the revocation is fine.
	e.clock.Advance(time.Second)
	e.mustAccept(e.good())

	tok = e.tok("ES256", "k1", nil, map[string]any{"sub": "bob", "client_id": "batch"})
	e.mustCache(tok)
	e.clock.Advance(time.Second)
	if err := e.deny.RevokeClient(ctx, "batch", e.clock.Now(), e.clock.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.mustRefuse(tok, ReasonRevoked)
}

func TestCacheEntryExpiresAtExp(t *testing.T) {
	e := newEnv(t, nil, nil)
	tok := e.tok("ES256", "k1", nil, map[string]any{"exp": e.clock.Now().Unix() + 60})
	e.mustCache(tok)
	e.mustAccept(tok)
	hits, misses := testutil.MetricValue(e.metrics.cacheHit), testutil.MetricValue(e.metrics.cacheMiss)
	if hits != 1 {
		t.Fatalf("hits %v", hits)
	}
	e.clock.Advance(61 * time.Second)
	// Past exp the cache must not answer; the full path applies the leeway.
	e.mustAccept(tok)
	if testutil.MetricValue(e.metrics.cacheHit) != hits || testutil.MetricValue(e.metrics.cacheMiss) != misses+1 {
		t.Fatal("expired entry served from the cache")
	}
	e.clock.Advance(30 * time.Second)
	e.mustRefuse(tok, ReasonExpired)
}

// The hash only finds the entry; the full token must match.
func TestCacheNeverTrustsHashAlone(t *testing.T) {
	c, err := NewTokenCache(TokenCacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := &Identity{Subject: "victim"}
	k := c.key("token-A", 7)
	c.put(k, &cacheEntry{token: "token-B", id: id, expires: time.Now().Add(time.Hour).UnixNano()})
	if e := c.get(k, "token-A"); e != nil {
		t.Fatal("entry of another token returned for a colliding key")
	}
	if e := c.get(k, "token-B"); e == nil {
		t.Fatal("own entry not found")
	}
}

func TestCacheBoundedAndPurge(t *testing.T) {
	c, err := NewTokenCache(TokenCacheOptions{MaxEntries: 128})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 5000 {
		tok := fmt.Sprintf("tok-%d", i)
		c.put(c.key(tok, 1), &cacheEntry{token: tok, expires: now.Add(time.Duration(i) * time.Second).UnixNano()})
	}
	if n := c.Len(); n > 128 {
		t.Fatalf("cache holds %d entries, bound 128", n)
	}
	before := c.Len()
	if n := c.Purge(now.Add(365 * 24 * time.Hour)); n != before || c.Len() != 0 {
		t.Fatalf("purge removed %d of %d, left %d", n, before, c.Len())
	}
	if _, err := NewTokenCache(TokenCacheOptions{MaxEntries: 10}); err == nil {
		t.Fatal("tiny cache accepted")
	}
}

// A route whose issuer object differs (e.g. other audiences) never gets a
// hit from another route's verification.
func TestCacheSeparatesRoutes(t *testing.T) {
	e := newEnv(t, nil, nil)
	strict, err := NewIssuer(IssuerOptions{Name: "strict", Issuer: testIssuer, JWKSURL: e.srv.URL, Audiences: []string{"https://other.example"},
		Logger: quietLogger(), Clock: e.clock.Now}, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if err := strict.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	route2, _ := NewJWT([]*Issuer{strict}, RouteJWTOptions{Logger: quietLogger(), Clock: e.clock.Now}, e.cache, e.deny, e.metrics)
	tok := e.good()
	e.mustAccept(tok)
	_, err = route2.Verify(context.Background(), tok)
	assertRefusal(t, nil, err, ReasonAudience)
	e.mustAccept(tok) // first route's entry intact
	// Even an entry found under route2's own key (a forced collision) is
	// not used when it was verified by an issuer route2 does not trust.
	ent := e.cache.get(e.cache.key(tok, e.auth.routeKey), tok)
	e.cache.put(e.cache.key(tok, route2.routeKey), ent)
	_, err = route2.Verify(context.Background(), tok)
	assertRefusal(t, nil, err, ReasonAudience)
	// A route with the same issuer shares entries.
	route3, _ := NewJWT([]*Issuer{e.iss}, RouteJWTOptions{Logger: quietLogger(), Clock: e.clock.Now}, e.cache, e.deny, e.metrics)
	hits := testutil.MetricValue(e.metrics.cacheHit)
	if _, err := route3.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if testutil.MetricValue(e.metrics.cacheHit) != hits+1 {
		t.Fatal("same-issuer route did not share the entry")
	}
}

func TestCacheConcurrent(t *testing.T) {
	e := newEnv(t, nil, nil)
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = e.tok("ES256", "k1", nil, map[string]any{"jti": fmt.Sprint("c", i)})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if _, err := e.verify(toks[(g+i)%len(toks)]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e.cache.Len() != len(toks) {
		t.Fatalf("cache has %d entries", e.cache.Len())
	}
}

// Without an injected clock, cache expiry runs on the monotonic clock.
func TestCacheMonotonicExpiry(t *testing.T) {
	e := newEnv(t, nil, nil)
	route, err := NewJWT([]*Issuer{e.iss}, RouteJWTOptions{Logger: quietLogger()}, e.cache, nil, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	// Tokens valid on the real clock (the issuer itself still uses the fake one).
	now := time.Now().Unix()
	e.clock.mu.Lock()
	e.clock.t = time.Unix(now, 0)
	e.clock.mu.Unlock()
	tok := e.tok("ES256", "k1", nil, map[string]any{"exp": now + 3600})
	ctx := context.Background()
	for range 2 { // the second verification is admitted to the cache
		if _, err := route.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	k := e.cache.key(tok, route.routeKey)
	ent := e.cache.get(k, tok)
	if ent == nil {
		t.Fatal("not cached")
	}
	if d := ent.deadline - e.cache.sinceBase(); d < 3500*time.Second || d > 3601*time.Second {
		t.Fatalf("monotonic deadline %s from now, want ~1h", d)
	}
	misses := testutil.MetricValue(e.metrics.cacheMiss)
	past := *ent
	past.deadline = e.cache.sinceBase() - time.Nanosecond
	e.cache.put(k, &past)
	if _, err := route.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if testutil.MetricValue(e.metrics.cacheMiss) != misses+1 {
		t.Fatal("entry past its monotonic deadline served from the cache")
	}
}

// mustCache verifies tok twice: the first verification only passes the
// doorkeeper, the second puts it in the cache.
func (e *env) mustCache(tok string) {
	e.t.Helper()
	e.mustAccept(tok)
	e.mustAccept(tok)
	if e.cache.get(e.cache.key(tok, e.auth.routeKey), tok) == nil {
		e.t.Fatal("token not cached after its second verification")
	}
}

// TestCacheAdmitsOnSecondVerification: a token verified once is not cached
// (one-off tokens must not churn the cache), the second verification admits
// it, and from the third on it is a hit with no parse.
func TestCacheAdmitsOnSecondVerification(t *testing.T) {
	e := newEnv(t, nil, nil)
	for i := range 200 {
		e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"jti": fmt.Sprintf("once-%d", i)}))
	}
	if n := e.cache.Len(); n != 0 {
		t.Fatalf("%d one-off tokens cached", n)
	}
	tok := e.good()
	parses := e.auth.parses.Load()
	e.mustAccept(tok)
	if e.cache.Len() != 0 {
		t.Fatal("cached after one verification")
	}
	e.mustAccept(tok)
	if e.cache.Len() != 1 || e.auth.parses.Load() != parses+2 {
		t.Fatalf("after two verifications: %d cached, %d parses", e.cache.Len(), e.auth.parses.Load()-parses)
	}
	for range 3 {
		e.mustAccept(tok)
	}
	if e.auth.parses.Load() != parses+2 || testutil.MetricValue(e.metrics.cacheHit) != 3 {
		t.Fatalf("later verifications parsed (%d parses, %v hits)", e.auth.parses.Load()-parses, testutil.MetricValue(e.metrics.cacheHit))
	}
}

// put stores e under k without the doorkeeper (tests plant entries).
func (c *TokenCache) put(k uint64, e *cacheEntry) {
	s := &c.shards[k&(cacheShards-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	c.putLocked(s, k, e)
}
