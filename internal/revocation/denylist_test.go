package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newList(t *testing.T, opts Options) (*DenyList, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	opts.Clock = c.now
	opts.Logger = slog.New(slog.DiscardHandler)
	d, err := NewDenyList(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func TestRevokeToken(t *testing.T) {
	d, c := newList(t, Options{})
	ctx := context.Background()
	if d.Revoked(Token{JTI: "a"}) {
		t.Fatal("empty list revoked a token")
	}
	if err := d.RevokeToken(ctx, "a", c.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !d.Revoked(Token{JTI: "a", Subject: "s"}) || d.Revoked(Token{JTI: "b"}) {
		t.Fatal("jti revocation wrong")
	}
	// Already-expired revocations are not stored.
	if err := d.RevokeToken(ctx, "old", c.now().Add(-time.Second)); err != nil || d.Len() != 1 {
		t.Fatalf("expired revocation stored: %v len=%d", err, d.Len())
	}
	if err := d.RevokeToken(ctx, "", c.now().Add(time.Hour)); err == nil {
		t.Fatal("empty jti accepted")
	}
	c.advance(time.Hour)
	if n := d.Purge(); n != 1 || d.Len() != 0 || d.Revoked(Token{JTI: "a"}) {
		t.Fatalf("purge: %d, len %d", n, d.Len())
	}
}

func TestRevokeSubjectAndClientByIssuedAt(t *testing.T) {
	d, c := newList(t, Options{})
	ctx := context.Background()
	cut := c.now()
	if err := d.RevokeSubject(ctx, "alice", cut, cut.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := d.RevokeClient(ctx, "batch", cut, cut.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tok  Token
		want bool
	}{
		{Token{Subject: "alice", IssuedAt: cut.Add(-time.Second)}, true},
		{Token{Subject: "alice", IssuedAt: cut}, false},
		{Token{Subject: "alice", IssuedAt: cut.Add(time.Second)}, false},
		{Token{Subject: "alice"}, true}, // no iat: fail closed
		{Token{Subject: "bob", IssuedAt: cut.Add(-time.Second)}, false},
		{Token{ClientID: "batch", IssuedAt: cut.Add(-time.Minute)}, true},
		{Token{ClientID: "web", IssuedAt: cut.Add(-time.Minute)}, false},
	} {
		if got := d.Revoked(tc.tok); got != tc.want {
			t.Errorf("%+v: revoked=%v want %v", tc.tok, got, tc.want)
		}
	}
	// A later, narrower revocation never narrows the rule.
	if err := d.RevokeSubject(ctx, "alice", cut.Add(-time.Hour), cut.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !d.Revoked(Token{Subject: "alice", IssuedAt: cut.Add(-time.Second)}) {
		t.Fatal("second revocation narrowed the first")
	}
	c.advance(2 * time.Hour)
	d.Purge()
	if d.Len() != 0 {
		t.Fatalf("rules not purged: %d", d.Len())
	}
}

func TestIssuerScope(t *testing.T) {
	d, c := newList(t, Options{Issuer: "https://as.example"})
	ctx := context.Background()
	_ = d.RevokeToken(ctx, "j", c.now().Add(time.Hour))
	_ = d.RevokeSubject(ctx, "alice", c.now(), c.now().Add(time.Hour))
	if !d.Revoked(Token{Issuer: "https://as.example", JTI: "j"}) {
		t.Fatal("own issuer's token not revoked")
	}
	if d.Revoked(Token{Issuer: "https://other.example", JTI: "j"}) || d.Revoked(Token{Issuer: "https://other.example", Subject: "alice"}) {
		t.Fatal("revocation leaked to another issuer")
	}
}

func TestFullListRefusesInsteadOfDropping(t *testing.T) {
	d, c := newList(t, Options{MaxEntries: 3})
	ctx := context.Background()
	for i := range 3 {
		if err := d.RevokeToken(ctx, fmt.Sprint(i), c.now().Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RevokeToken(ctx, "x", c.now().Add(time.Hour)); !errors.Is(err, ErrFull) {
		t.Fatalf("full list: %v", err)
	}
	for i := range 3 {
		if !d.Revoked(Token{JTI: fmt.Sprint(i)}) {
			t.Fatal("existing revocation dropped")
		}
	}
	// Once an entry expires there is room again (purged on demand).
	c.advance(90 * time.Second)
	if err := d.RevokeToken(ctx, "x", c.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !d.Revoked(Token{JTI: "x"}) {
		t.Fatal("new revocation missing")
	}
}

func TestConcurrentUse(t *testing.T) {
	d, c := newList(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 500 {
				_ = d.RevokeToken(ctx, fmt.Sprint(g, "-", i), c.now().Add(time.Minute))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 500 {
				d.Revoked(Token{JTI: fmt.Sprint(g, "-", i), Subject: "s"})
			}
		}()
	}
	wg.Wait()
	if d.Len() != 2000 {
		t.Fatalf("len %d", d.Len())
	}
}

func BenchmarkRevoked(b *testing.B) {
	d, err := NewDenyList(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range 10000 {
		_ = d.RevokeToken(ctx, fmt.Sprint("jti-", i), time.Now().Add(time.Hour))
	}
	_ = d.RevokeSubject(ctx, "someone", time.Now(), time.Now().Add(time.Hour))
	tok := Token{JTI: "c4ca4238a0b923820dcc509a6f75849b", Subject: "alice", ClientID: "web", IssuedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if d.Revoked(tok) {
			b.Fatal("revoked")
		}
	}
}
