package oauth

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/sekisho/sekisho/internal/store"
)

// TestNewJTIOrderedAndUnique: jtis sort by issue time (what keeps the
// access-token index append-only) and do not collide within a millisecond.
func TestNewJTIOrderedAndUnique(t *testing.T) {
	base := time.UnixMilli(1_790_000_000_000)
	prev := ""
	for i := range 1000 {
		j := newJTI(base.Add(time.Duration(i) * time.Millisecond))
		if len(j) != jtiLen || strings.ToUpper(j) != j {
			t.Fatalf("jti %q: want %d upper-case base32hex characters", j, jtiLen)
		}
		if j <= prev {
			t.Fatalf("jti %q issued after %q sorts before it", j, prev)
		}
		prev = j
	}
	seen := map[string]bool{}
	for range 10000 {
		j := newJTI(base)
		if seen[j] {
			t.Fatalf("duplicate jti %q within one millisecond", j)
		}
		seen[j] = true
	}
}

// TestAccessTokenStorageKey: an issued client-credentials token is stored
// under jti + hash of the exact token, found again from the token alone;
// a token with the same claims but other signature bytes finds nothing;
// the grant's request id is time-ordered (UUIDv7).
func TestAccessTokenStorageKey(t *testing.T) {
	e := newEnv(t)
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"read"}})
	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/oauth2/token", Scopes: []string{"read"}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, claims := jwtParts(t, tok.AccessToken)
	jti, _ := claims["jti"].(string)
	key := accessTokenKeyOf(tok.AccessToken)
	if key != jti+"."+atSignature(tok.AccessToken) {
		t.Fatalf("key %q does not bind jti %q and the token hash", key, jti)
	}
	g, err := e.st.GetGrantSession(context.Background(), store.KindAccess, key)
	if err != nil {
		t.Fatalf("stored row not found under the token's key: %v", err)
	}
	if g.JTI != jti {
		t.Errorf("row jti %q, token jti %q", g.JTI, jti)
	}
	if u, err := uuid.Parse(g.RequestID); err != nil || u.Version() != 7 {
		t.Errorf("request id %q: want a UUIDv7 (%v)", g.RequestID, err)
	}

	// Same header and payload, other signature: another key, no row.
	forged := tok.AccessToken[:strings.LastIndexByte(tok.AccessToken, '.')+1] + strings.Repeat("A", 86)
	if k := accessTokenKeyOf(forged); k == key {
		t.Fatal("a token with another signature maps to the same key")
	} else if _, err := e.st.GetGrantSession(context.Background(), store.KindAccess, k); err == nil {
		t.Fatal("a forged token found a stored row")
	}
	// Introspection of the forged token says inactive; of the real one, active.
	for tokStr, want := range map[string]bool{tok.AccessToken: true, forged: false} {
		_, body := e.postForm("/oauth2/introspect", url.Values{"token": {tokStr}}, id, secret)
		if body["active"] != want {
			t.Errorf("introspect active=%v, want %v", body["active"], want)
		}
	}

	// Tokens without a well-formed jti get a key no stored row has.
	for _, bad := range []string{"", "abc", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJzaG9ydCJ9.sig", strings.Repeat("x", maxJWTLen+1)} {
		if k := accessTokenKeyOf(bad); strings.Contains(k, ".") {
			t.Errorf("token %.20q: key %q looks like a stored key", bad, k)
		}
	}
}
