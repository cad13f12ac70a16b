package apikey

import (
	"context"
	"crypto/rand"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/testutil"
)

// countingStore wraps a Store and counts lookups; failNext makes lookups
// fail with a store error.
type countingStore struct {
	Store
	gets atomic.Int64
	fail atomic.Bool
}

func (s *countingStore) GetAPIKey(ctx context.Context, id string) (*Record, error) {
	s.gets.Add(1)
	if s.fail.Load() {
		return nil, errors.New("database is down")
	}
	return s.Store.GetAPIKey(ctx, id)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	store *countingStore
	mem   *MemStore
	clock *fakeClock
	reg   *prometheus.Registry
	auth  *Authenticator
}

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	f := &fixture{mem: NewMemStore(), clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	f.store = &countingStore{Store: f.mem}
	o.Now = f.clock.Now
	o.Registerer = f.reg
	a, err := NewAuthenticator(f.store, o)
	if err != nil {
		t.Fatal(err)
	}
	f.auth = a
	return f
}

func (f *fixture) create(t *testing.T, consumer string, scopes []string, exp *time.Time) (string, Record) {
	t.Helper()
	key, rec, err := Create(context.Background(), f.mem, rand.Reader, consumer, scopes, exp, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return key, rec
}

func reqWithKey(key string) *http.Request {
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("X-API-Key", key)
	return r
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var ae *authn.Error
	if !errors.As(err, &ae) || ae.Reason != reason {
		t.Fatalf("error %v, want reason %q", err, reason)
	}
}

func TestValidKey(t *testing.T) {
	f := newFixture(t, Options{})
	key, rec := f.create(t, "billing-svc", []string{"orders:read", "orders:write"}, nil)
	id, err := f.auth.Authenticate(reqWithKey(key))
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != "apikey" || id.Subject != "billing-svc" || id.ClientID != "billing-svc" ||
		!id.HasScope("orders:write") || id.Claims["key_id"] != rec.ID || len(id.TokenHash) != 8 {
		t.Fatalf("identity %+v", id)
	}
	if strings.Contains(id.TokenHash, key[len(Prefix):len(Prefix)+8]) {
		t.Fatal("token hash reveals key material")
	}
}

func TestTypoRejectedWithoutStoreLookup(t *testing.T) {
	f := newFixture(t, Options{})
	key, _ := f.create(t, "c", nil, nil)
	typo := key[:20] + string(base62[(strings.IndexByte(base62, key[20])+1)%62]) + key[21:]
	_, err := f.auth.Authenticate(reqWithKey(typo))
	wantReason(t, err, authn.ReasonMalformed)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("error %v does not wrap ErrChecksum", err)
	}
	if strings.Contains(err.Error(), typo[len(Prefix):len(Prefix)+IDLen+4]) {
		t.Fatal("error message contains key material")
	}
	for _, junk := range []string{"hello", "sekisho_abc", key + "x"} {
		_, err := f.auth.Authenticate(reqWithKey(junk))
		wantReason(t, err, authn.ReasonMalformed)
	}
	if n := f.store.gets.Load(); n != 0 {
		t.Fatalf("store consulted %d times for malformed keys", n)
	}
}

func TestUnknownRevokedExpiredRefused(t *testing.T) {
	f := newFixture(t, Options{CacheTTL: -1})
	// Unknown: well-formed, never stored.
	unknown, _, _, _ := Generate(rand.Reader)
	_, err := f.auth.Authenticate(reqWithKey(unknown))
	wantReason(t, err, authn.ReasonInactive)

	revoked, rec := f.create(t, "c", nil, nil)
	if err := f.mem.RevokeAPIKey(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.auth.Authenticate(reqWithKey(revoked))
	wantReason(t, err, authn.ReasonRevoked)

	exp := f.clock.Now().Add(time.Hour)
	expiring, _ := f.create(t, "c", nil, &exp)
	if _, err := f.auth.Authenticate(reqWithKey(expiring)); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	f.clock.Advance(time.Hour)
	_, err = f.auth.Authenticate(reqWithKey(expiring))
	wantReason(t, err, authn.ReasonExpired)

	if got := testutil.CounterValue(t, f.reg, "sekisho_apikey_refusals_total", "reason", authn.ReasonRevoked); got != 1 {
		t.Fatalf("revoked refusals counted %v, want 1", got)
	}
}

func TestHashMismatchRefused(t *testing.T) {
	f := newFixture(t, Options{})
	key, rec := f.create(t, "c", nil, nil)
	// A record whose hash differs only in the last byte (e.g. a different
	// key with the same id): must be refused.
	bad := rec
	bad.ID = rec.ID
	bad.Hash = append([]byte(nil), rec.Hash...)
	bad.Hash[31] ^= 1
	mem := NewMemStore()
	if err := mem.CreateAPIKey(context.Background(), &bad); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthenticator(mem, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(reqWithKey(key))
	wantReason(t, err, authn.ReasonInactive)
}

// TestConstantTimeCompare checks the source: the hash comparison must be
// crypto/subtle, and the package must not compare secrets with bytes.Equal
// or string equality on the hash.
func TestConstantTimeCompare(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "authenticator.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var subtleCalls int
	ast.Inspect(file, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.ImportSpec:
			if x.Path.Value == `"bytes"` {
				t.Errorf("authenticator.go imports bytes: use crypto/subtle for hash comparison")
			}
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && id.Name == "subtle" && x.Sel.Name == "ConstantTimeCompare" {
				subtleCalls++
			}
		case *ast.BinaryExpr:
			for _, side := range []ast.Expr{x.X, x.Y} {
				if sel, ok := side.(*ast.SelectorExpr); ok && sel.Sel.Name == "Hash" {
					t.Errorf("%s: Hash compared with %s", fset.Position(x.Pos()), x.Op)
				}
			}
		}
		return true
	})
	if subtleCalls != 1 {
		t.Fatalf("subtle.ConstantTimeCompare used %d times, want 1", subtleCalls)
	}
}

func TestCacheAndRevocationWithinTTL(t *testing.T) {
	f := newFixture(t, Options{CacheTTL: 30 * time.Second})
	key, rec := f.create(t, "c", nil, nil)
	for i := 0; i < 5; i++ {
		if _, err := f.auth.Authenticate(reqWithKey(key)); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.store.gets.Load(); n != 1 {
		t.Fatalf("store looked up %d times for 5 requests, want 1", n)
	}
	if err := f.mem.RevokeAPIKey(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	// Still cached: documented staleness up to CacheTTL.
	if _, err := f.auth.Authenticate(reqWithKey(key)); err != nil {
		t.Fatalf("within TTL: %v", err)
	}
	f.clock.Advance(30 * time.Second)
	_, err := f.auth.Authenticate(reqWithKey(key))
	wantReason(t, err, authn.ReasonRevoked)
}

func TestInvalidateIsImmediate(t *testing.T) {
	f := newFixture(t, Options{CacheTTL: time.Minute})
	key, rec := f.create(t, "c", nil, nil)
	if _, err := f.auth.Authenticate(reqWithKey(key)); err != nil {
		t.Fatal(err)
	}
	_ = f.mem.RevokeAPIKey(context.Background(), rec.ID)
	f.auth.Invalidate(rec.ID)
	_, err := f.auth.Authenticate(reqWithKey(key))
	wantReason(t, err, authn.ReasonRevoked)
}

func TestCacheCappedByKeyExpiry(t *testing.T) {
	f := newFixture(t, Options{CacheTTL: time.Minute})
	exp := f.clock.Now().Add(10 * time.Second)
	key, _ := f.create(t, "c", nil, &exp)
	if _, err := f.auth.Authenticate(reqWithKey(key)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Second)
	_, err := f.auth.Authenticate(reqWithKey(key))
	wantReason(t, err, authn.ReasonExpired)
}

func TestStoreErrorFailsClosedAndIsNotCached(t *testing.T) {
	f := newFixture(t, Options{})
	key, _ := f.create(t, "c", nil, nil)
	f.store.fail.Store(true)
	_, err := f.auth.Authenticate(reqWithKey(key))
	wantReason(t, err, authn.ReasonUnavailable)
	if strings.Contains(err.Error(), key) {
		t.Fatal("error contains the key")
	}
	f.store.fail.Store(false)
	if _, err := f.auth.Authenticate(reqWithKey(key)); err != nil {
		t.Fatalf("after store recovered: %v (store error was cached?)", err)
	}
}

func TestNegativeCache(t *testing.T) {
	f := newFixture(t, Options{})
	unknown, _, _, _ := Generate(rand.Reader)
	for i := 0; i < 3; i++ {
		_, err := f.auth.Authenticate(reqWithKey(unknown))
		wantReason(t, err, authn.ReasonInactive)
	}
	if n := f.store.gets.Load(); n != 1 {
		t.Fatalf("unknown key looked up %d times, want 1 (negative cache)", n)
	}
}

func TestCredentialPlacement(t *testing.T) {
	f := newFixture(t, Options{AllowAuthorization: true})
	key, _ := f.create(t, "c", nil, nil)

	r := httptest.NewRequest("GET", "/x", nil)
	if _, err := f.auth.Authenticate(r); !errors.Is(err, authn.ErrNoCredentials) {
		t.Fatalf("no key: %v", err)
	}
	r.Header.Set("Authorization", "Bearer abc")
	if _, err := f.auth.Authenticate(r); !errors.Is(err, authn.ErrNoCredentials) {
		t.Fatalf("bearer only: %v", err)
	}

	r = httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "apikey "+key)
	if _, err := f.auth.Authenticate(r); err != nil {
		t.Fatalf("Authorization: apikey: %v", err)
	}

	r = reqWithKey(key)
	r.Header.Add("X-API-Key", key)
	_, err := f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonMultipleTokens)

	r = reqWithKey(key)
	r.Header.Set("Authorization", "ApiKey "+key)
	_, err = f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonMultipleTokens)

	r = httptest.NewRequest("GET", "/x?api_key="+key, nil)
	_, err = f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonQueryToken)

	r = reqWithKey(strings.Repeat("A", 4096))
	_, err = f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonTooLarge)
}

func TestQueryOptIn(t *testing.T) {
	f := newFixture(t, Options{AllowQuery: true})
	key, _ := f.create(t, "c", nil, nil)
	r := httptest.NewRequest("GET", "/x?api_key="+key, nil)
	if _, err := f.auth.Authenticate(r); err != nil {
		t.Fatalf("query key on opted-in route: %v", err)
	}
	r = httptest.NewRequest("GET", "/x?api_key="+key+"&api_key="+key, nil)
	_, err := f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonMultipleTokens)
	r = httptest.NewRequest("GET", "/x?api_key="+key, nil)
	r.Header.Set("X-API-Key", key)
	_, err = f.auth.Authenticate(r)
	wantReason(t, err, authn.ReasonMultipleTokens)
}

func TestCredentialSource(t *testing.T) {
	f := newFixture(t, Options{AllowAuthorization: true})
	if s := f.auth.CredentialSource(reqWithKey("x")); s != "header:x-api-key" {
		t.Fatalf("header source %q", s)
	}
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer t")
	if s := f.auth.CredentialSource(r); s != "" {
		t.Fatalf("bearer reported as API key source %q", s)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{Header: "bad header"},
		{Header: "Authorization"},
		{CacheTTL: time.Hour},
		{CacheMaxEntries: -1},
	} {
		if _, err := NewAuthenticator(NewMemStore(), o); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
	if _, err := NewAuthenticator(nil, Options{}); err == nil {
		t.Error("accepted nil store")
	}
}

func TestCreateValidation(t *testing.T) {
	s := NewMemStore()
	now := time.Now()
	past := now.Add(-time.Second)
	if _, _, err := Create(context.Background(), s, rand.Reader, "", nil, nil, now); err == nil {
		t.Error("empty consumer accepted")
	}
	if _, _, err := Create(context.Background(), s, rand.Reader, "c", []string{"a b"}, nil, now); err == nil {
		t.Error("invalid scope accepted")
	}
	if _, _, err := Create(context.Background(), s, rand.Reader, "c", nil, &past, now); err == nil {
		t.Error("past expiry accepted")
	}
	key, rec, err := Create(context.Background(), s, rand.Reader, "c", []string{"a"}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListAPIKeys(context.Background())
	if len(list) != 1 || list[0].ID != rec.ID || strings.Contains(string(list[0].Hash), key) {
		t.Fatalf("list %+v", list)
	}
}

func BenchmarkAuthenticateCached(b *testing.B) {
	mem := NewMemStore()
	key, _, err := Create(context.Background(), mem, rand.Reader, "c", []string{"a"}, nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	a, _ := NewAuthenticator(mem, Options{})
	r := reqWithKey(key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	key, _, _, _ := Generate(rand.Reader)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(key); err != nil {
			b.Fatal(err)
		}
	}
}
