package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const asAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// asAssertionKey is a private_key_jwt client's key pair.
type asAssertionKey struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newAssertionKey(t *testing.T, kid string) *asAssertionKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &asAssertionKey{priv: k, kid: kid}
}

// writeJWKS writes the public JWK Set for --jwks-file.
func (k *asAssertionKey) writeJWKS(t *testing.T, dir string) string {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.ES256), Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "client-jwks.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sign builds an RFC 7523 client assertion with go-jose v4.
func (k *asAssertionKey) sign(t *testing.T, c jwt.Claims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOAuthPrivateKeyJWT registers a private_key_jwt client with the CLI
// (EC public key in a JWK Set file), authenticates with go-jose signed
// client assertions, and checks the RFC 7523 rules: a jti is accepted once,
// and wrong keys, audiences, issuers and over-long lifetimes are refused as
// invalid_client.
func TestOAuthPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	e := newASEnv(t, asOptions{})
	key := newAssertionKey(t, "e2e-client-key-1")
	id, secret := e.createClient(t, "--name", "Signed partner", "--auth-method", "private_key_jwt", "--jwks-file", key.writeJWKS(t, e.dir),
		"--grant", "client_credentials", "--scope", "read", "--audience", "api")
	if secret != "" {
		t.Errorf("a private_key_jwt client was given a client secret")
	}
	e.start()

	claims := func(mod func(*jwt.Claims)) jwt.Claims {
		now := time.Now()
		c := jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{e.tokenURL()}, ID: asRandom(t, 18),
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(2 * time.Minute))}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	request := func(assertion string) (*http.Response, map[string]any) {
		return e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"},
			"client_assertion_type": {asAssertionType}, "client_assertion": {assertion}}, "", "")
	}

	first := key.sign(t, claims(nil))
	resp, m := request(first)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token with a valid client assertion: %d %v", resp.StatusCode, m)
	}
	at := asStr(m, "access_token")
	if _, c := jwtParts(t, at); c["client_id"] != id || c["sub"] != id {
		t.Errorf("access token client_id %v sub %v, want %s", c["client_id"], c["sub"], id)
	}
	e.wantAPI(t, "token of a private_key_jwt client", at, http.StatusOK)

	resp, m = request(first)
	oauthErr(t, "replayed client assertion", resp, m, http.StatusUnauthorized, "invalid_client")

	jti := asRandom(t, 18)
	resp, m = request(key.sign(t, claims(func(c *jwt.Claims) { c.ID = jti })))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh assertion: %d %v", resp.StatusCode, m)
	}
	resp, m = request(key.sign(t, claims(func(c *jwt.Claims) { c.ID = jti; c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Second)) })))
	oauthErr(t, "new assertion reusing a jti", resp, m, http.StatusUnauthorized, "invalid_client")

	resp, m = request(key.sign(t, claims(func(c *jwt.Claims) { c.Audience = jwt.Audience{e.issuer} })))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("assertion with the issuer as audience: %d %v (OIDC Core §9 allows it)", resp.StatusCode, m)
	}

	other := newAssertionKey(t, key.kid) // same kid, different key
	resp, m = request(other.sign(t, claims(nil)))
	oauthErr(t, "assertion signed with another key", resp, m, http.StatusUnauthorized, "invalid_client")
	resp, m = request(key.sign(t, claims(func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://other.example/token"} })))
	oauthErr(t, "assertion for another audience", resp, m, http.StatusUnauthorized, "invalid_client")
	resp, m = request(key.sign(t, claims(func(c *jwt.Claims) { c.Issuer = "someone-else" })))
	oauthErr(t, "assertion with iss != sub", resp, m, http.StatusUnauthorized, "invalid_client")
	resp, m = request(key.sign(t, claims(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(time.Hour)) })))
	oauthErr(t, "assertion valid for an hour", resp, m, http.StatusUnauthorized, "invalid_client")
	resp, m = request(key.sign(t, claims(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-5 * time.Minute)) })))
	oauthErr(t, "expired assertion", resp, m, http.StatusUnauthorized, "invalid_client")

	resp, m = e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, id, "guessed-secret")
	oauthErr(t, "client_secret_basic for a private_key_jwt client", resp, m, http.StatusUnauthorized, "invalid_client")
}
