package authn

// Benchmarks of this package's verifier (issue #3 targets):
//
//	go test -run '^$' -bench 'BenchmarkLibs|BenchmarkCache|BenchmarkVerify' -benchmem ./internal/authn/

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchRoute is a route over an in-process key set (no network in the loop).
func benchRoute(tb testing.TB, cache *TokenCache) *JWTAuthenticator {
	k := fixtureKeys()
	src := newTestKeySource(publicJWK(tb, k.ec256, "k1", "ES256"), publicJWK(tb, k.rsa, "k2", ""), publicJWK(tb, k.ed, "k3", "EdDSA"))
	is, err := NewIssuer(IssuerOptions{Name: "bench", Issuer: benchIssuer, KeySource: src, Audiences: []string{"https://api.example.test"},
		RequiredType: "at+jwt", Logger: quietLogger()}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := is.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	route, err := NewJWT([]*Issuer{is}, RouteJWTOptions{Logger: quietLogger()}, cache, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return route
}

// BenchmarkVerifyUncached is the full uncached path (parse, header rules,
// key lookup, signature, claims, identity) per algorithm; compare with
// BenchmarkLibs/<alg>/raw.
func BenchmarkVerifyUncached(b *testing.B) {
	route := benchRoute(b, nil)
	for _, c := range libCases(b) {
		b.Run(c.alg, func(b *testing.B) {
			ctx := context.Background()
			cpuLoop(b, func() error { _, err := route.Verify(ctx, c.token); return err })
		})
	}
}

// BenchmarkCacheHit: a client reusing its 537-byte ES256 token.
func BenchmarkCacheHit(b *testing.B) {
	cache, _ := NewTokenCache(TokenCacheOptions{})
	route := benchRoute(b, cache)
	tok := benchToken537(b)
	if len(tok) != 537 {
		b.Fatal("token length")
	}
	ctx := context.Background()
	for range 2 { // the second verification admits the token to the cache
		if _, err := route.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Verify", func(b *testing.B) {
		cpuLoop(b, func() error { _, err := route.Verify(ctx, tok); return err })
	})
	b.Run("Authenticate", func(b *testing.B) {
		r := httptest.NewRequest(http.MethodGet, "/orders?page=2", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		cpuLoop(b, func() error { _, err := route.Authenticate(r); return err })
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := route.Verify(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("lookup_only", func(b *testing.B) {
		cpuLoop(b, func() error {
			if cache.get(cache.key(tok, route.routeKey), tok) == nil {
				return errSigBad
			}
			return nil
		})
	})
}

// BenchmarkCacheMiss: every request carries a token the cache has not seen
// (a 64-entry cache cycled by 4096 tokens): verify, then the doorkeeper
// admits it (every token is seen again 4096 requests later) with eviction.
func BenchmarkCacheMiss(b *testing.B) {
	cache, _ := NewTokenCache(TokenCacheOptions{MaxEntries: 64})
	route := benchRoute(b, cache)
	k := fixtureKeys()
	toks := make([]string, 4096)
	for i := range toks {
		toks[i] = signRaw(b, "ES256", k.ec256, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`,
			benchClaimsJTI(b, fmt.Sprint("jti-", i)))
	}
	ctx := context.Background()
	i := 0
	cpuLoop(b, func() error {
		_, err := route.Verify(ctx, toks[i%len(toks)])
		i++
		return err
	})
}

func benchClaimsJTI(tb testing.TB, jti string) string {
	now := time.Now()
	return mustJSON(tb, map[string]any{
		"iss": benchIssuer, "sub": "user-1", "aud": "https://api.example.test",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": jti, "scope": "a b",
	})
}
