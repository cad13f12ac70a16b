package e2e

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// needRedis skips unless Redis answers at 127.0.0.1:6379 (fails instead with
// SEKISHO_TEST_SERVICES=require).
func needRedis(t *testing.T) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: time.Second, MaxRetries: 0})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("SEKISHO_TEST_SERVICES") == "require" {
			t.Fatalf("Redis at 127.0.0.1:6379 is required (SEKISHO_TEST_SERVICES=require): %v", err)
		}
		t.Skipf("Redis at 127.0.0.1:6379 unreachable (%v); set SEKISHO_TEST_SERVICES=require to fail instead", err)
	}
}

// nodeBConfig is a gateway-only node: it trusts node A's authorization
// server through its JWKS, keeps its own store, and learns revocations only
// through Redis.
const nodeBConfig = `
version: 1
data_dir: "@DATA@"
server:
  listeners:
    - name: public
      address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
issuers:
  node-a:
    issuer: "@ISSUER@"
    jwks_url: "@ISSUER@/oauth2/jwks"
    audiences: [api]
upstreams:
  app:
    targets:
      - url: "@UPSTREAM@"
routes:
  - name: api
    match: {path: /api}
    upstream: app
    auth: {jwt: {issuers: [node-a]}}
    authorize: {scopes: {all_of: [read]}}
revocation:
  issuer: "@ISSUER@"
  redis: {address: 127.0.0.1:6379, key: "@KEY@", poll_interval: 1m}
`

// TestRevocationAcrossNodesViaRedis: a token revoked at node A's
// authorization server is refused at once by node B, a separate process
// with its own store, which hears of it only through revocation.redis —
// although node B had already verified and cached the token.
func TestRevocationAcrossNodesViaRedis(t *testing.T) {
	t.Parallel()
	needRedis(t)
	key := "sekisho-e2e:" + hex.EncodeToString(randBytes(t, 8))
	redisYAML := "revocation:\n  redis: {address: 127.0.0.1:6379, key: \"" + key + "\"}\n"
	a := newASEnv(t, asOptions{extra: redisYAML})
	id, secret := a.createClient(t, "--name", "Partner", "--grant", "client_credentials", "--scope", "read", "--audience", "api")
	a.start()
	b := startGateway(t, nodeBConfig, "ISSUER", a.issuer, "UPSTREAM", a.up.URL, "KEY", key)
	for _, g := range []*gateway{a.gw, b} {
		if _, _, err := g.stderr.Wait(0, 10*time.Second, func(s string) bool { return strings.Contains(s, "revocation sync: subscribed") }); err != nil {
			t.Fatalf("a node did not subscribe to Redis: %v\n%s", err, tail(g.stderr.Lines(), 20))
		}
	}

	callB := func(tok string) int {
		resp, _ := do(t, a.hc, http.MethodGet, b.URL("http")+"/api/items", map[string]string{"Authorization": "Bearer " + tok}, nil)
		return resp.StatusCode
	}
	revoked := a.clientCredentials(t, id, secret, "read")
	kept := a.clientCredentials(t, id, secret, "read")
	for i := 0; i < 3; i++ { // the second verification admits it to node B's cache
		if st := callB(revoked); st != http.StatusOK {
			t.Fatalf("node B refused a fresh token of node A: %d", st)
		}
	}

	resp, _ := a.postForm(t, "/oauth2/revoke", url.Values{"token": {revoked}, "token_type_hint": {"access_token"}}, id, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke at node A: %d", resp.StatusCode)
	}
	a.wantAPI(t, "revoked token at node A", revoked, http.StatusUnauthorized)
	deadline := time.Now().Add(5 * time.Second) // pub/sub takes milliseconds; node B's own store never learns it
	for callB(revoked) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("node B still accepts the revoked token 5 s after node A revoked it\nnode B log:\n%s", tail(b.stderr.Lines(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := callB(kept); st != http.StatusOK {
		t.Errorf("node B refused the token that was not revoked: %d", st)
	}
}

// TestRevocationWithRedisDown: with revocation.redis pointing at a port where
// nothing listens, the node starts and serves, a revocation is still applied
// at once and recorded in the store (it holds across a restart), and the
// failed publication is logged without the token.
func TestRevocationWithRedisDown(t *testing.T) {
	t.Parallel()
	a := newASEnv(t, asOptions{extra: "revocation:\n  redis: {address: \"" + deadAddr(t) + "\", poll_interval: 1s}\n"})
	id, secret := a.createClient(t, "--name", "Partner", "--grant", "client_credentials", "--scope", "read", "--audience", "api")
	a.start()
	tok := a.clientCredentials(t, id, secret, "read")
	a.wantAPI(t, "token before revocation", tok, http.StatusOK)
	start := time.Now()
	resp, _ := a.postForm(t, "/oauth2/revoke", url.Values{"token": {tok}}, id, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke with Redis down: %d, want 200", resp.StatusCode)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("revocation took %s with Redis down", d)
	}
	a.wantAPI(t, "revoked token (Redis down)", tok, http.StatusUnauthorized)
	line, _, err := a.gw.stderr.Wait(0, 5*time.Second, func(s string) bool { return strings.Contains(s, "revocation not published") })
	if err != nil {
		t.Errorf("no log line about the failed publication: %v", err)
	} else if strings.Contains(line, tok) || strings.Contains(line, secret) {
		t.Errorf("the log line carries a credential: %s", line)
	}
	a.restart()
	a.wantAPI(t, "revoked token after a restart (from the store)", tok, http.StatusUnauthorized)
}
