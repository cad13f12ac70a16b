package oauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"github.com/sekisho/sekisho/internal/revocation"
	"github.com/sekisho/sekisho/internal/store"
)

// newPostgresEnv runs the server on PostgreSQL in a fresh schema. It skips
// when no server is reachable (fails with SEKISHO_TEST_SERVICES=require).
func newPostgresEnv(t *testing.T) *testEnv {
	t.Helper()
	candidates := []string{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "postgres://root@127.0.0.1:5432/test?sslmode=disable"}
	if env := os.Getenv("SEKISHO_TEST_POSTGRES_DSN"); env != "" {
		candidates = []string{env}
	}
	ctx := context.Background()
	var server string
	var lastErr error
	for _, dsn := range candidates {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		cancel()
		if err == nil {
			conn.Close(ctx)
			server = dsn
			break
		}
		lastErr = err
	}
	if server == "" {
		if os.Getenv("SEKISHO_TEST_SERVICES") == "require" {
			t.Fatalf("PostgreSQL required but unreachable: %v", lastErr)
		}
		t.Skipf("PostgreSQL unreachable (127.0.0.1:5432 as postgres/root or SEKISHO_TEST_POSTGRES_DSN); SEKISHO_TEST_SERVICES=require fails instead: %v", lastErr)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "sekisho_oauth_" + hex.EncodeToString(rnd[:])
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, _ := url.Parse(server)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := store.OpenPostgres(ctx, u.String(), store.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return newEnvStore(t, st)
}

// TestPostgresGrantSemantics runs the security-relevant state transitions
// (code replay, concurrent redemption, refresh reuse) on PostgreSQL, where
// concurrent transactions really run in parallel.
func TestPostgresGrantSemantics(t *testing.T) {
	e := newPostgresEnv(t)
	e.createUser("pat")
	c := newCodeClient(e, ClientSpec{})
	ctx := context.Background()

	tok := must[*oauth2.Token](t)(c.exchange(c.authorize(e.browser())))
	tok2, err := c.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("refresh reuse: %s", code)
	}
	_, err = c.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("newest refresh token after reuse: %s", code)
	}
	_, claims := jwtParts(t, tok2.AccessToken)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, JTI: claims["jti"].(string)}) {
		t.Error("family access token not deny-listed")
	}
	t.Run("concurrent redemption", func(t *testing.T) { concurrentRedemption(t, e, c) })
}
