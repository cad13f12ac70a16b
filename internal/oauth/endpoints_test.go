package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/sekisho/sekisho/internal/revocation"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ExtraScopes = []string{"orders.read"} })
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		resp := must[*http.Response](t)(http.Get(e.issuer + path))
		var md map[string]any
		if err := decodeJSON(resp.Body, &md); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := map[string]any{
			"issuer":                 e.issuer,
			"authorization_endpoint": e.issuer + "/oauth2/authorize",
			"token_endpoint":         e.issuer + "/oauth2/token",
			"jwks_uri":               e.issuer + "/oauth2/jwks",
			"userinfo_endpoint":      e.issuer + "/oauth2/userinfo",
			"end_session_endpoint":   e.issuer + "/oauth2/logout",
			"introspection_endpoint": e.issuer + "/oauth2/introspect",
			"revocation_endpoint":    e.issuer + "/oauth2/revoke",
			"authorization_response_iss_parameter_supported": true,
			"request_parameter_supported":                    false,
			"request_uri_parameter_supported":                false,
		}
		for k, v := range want {
			if md[k] != v {
				t.Errorf("%s: %s = %v, want %v", path, k, md[k], v)
			}
		}
		list := func(k string) []string {
			var out []string
			for _, v := range md[k].([]any) {
				out = append(out, v.(string))
			}
			return out
		}
		eq := func(k string, want ...string) {
			if got := list(k); !slices.Equal(got, want) {
				t.Errorf("%s: %s = %v, want %v", path, k, got, want)
			}
		}
		eq("response_types_supported", "code")
		eq("grant_types_supported", "authorization_code", "client_credentials", "refresh_token")
		eq("code_challenge_methods_supported", "S256")
		eq("id_token_signing_alg_values_supported", "ES256")
		eq("token_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post", "private_key_jwt", "none")
		if !slices.Contains(list("scopes_supported"), "orders.read") || !slices.Contains(list("scopes_supported"), "openid") {
			t.Errorf("scopes_supported %v", list("scopes_supported"))
		}
		if slices.Contains(list("token_endpoint_auth_signing_alg_values_supported"), "HS256") {
			t.Error("HMAC client assertions advertised")
		}
	}
	// go-oidc accepts the issuer (exact match) and discovery.
	if _, err := oidc.NewProvider(context.Background(), e.issuer); err != nil {
		t.Fatal(err)
	}
}

// assertionFor signs a private_key_jwt client assertion.
func assertionFor(t *testing.T, key *ecdsa.PrivateKey, kid, clientID, aud, jti string, exp time.Time) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(sig).Claims(josejwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: josejwt.Audience{aud}, ID: jti,
		IssuedAt: josejwt.NewNumericDate(time.Now()), Expiry: josejwt.NewNumericDate(exp),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	key := must[*ecdsa.PrivateKey](t)(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	jwks := must[[]byte](t)(json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "c1", Algorithm: "ES256"}}}))
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: jwks, Scopes: []string{"a"}})
	if secret != "" {
		t.Fatal("private_key_jwt client got a secret")
	}
	tokenURL := e.issuer + "/oauth2/token"
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {"a"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	a := assertionFor(t, key, "c1", id, tokenURL, rand.Text(), time.Now().Add(time.Minute))
	resp, body := e.postForm("/oauth2/token", form(a), "", "")
	if resp.StatusCode != 200 || body["access_token"] == nil {
		t.Fatalf("private_key_jwt: %d %v", resp.StatusCode, body)
	}
	// Replay of the same assertion (same jti) is refused.
	resp, body = e.postForm("/oauth2/token", form(a), "", "")
	if resp.StatusCode != 401 || body["error"] != "invalid_client" {
		t.Errorf("replay: %d %v", resp.StatusCode, body)
	}
	// The issuer is an accepted audience too.
	resp, _ = e.postForm("/oauth2/token", form(assertionFor(t, key, "c1", id, e.issuer, rand.Text(), time.Now().Add(time.Minute))), "", "")
	if resp.StatusCode != 200 {
		t.Errorf("issuer audience: %d", resp.StatusCode)
	}
	bad := map[string]string{
		"wrong audience": assertionFor(t, key, "c1", id, "https://other.test/token", rand.Text(), time.Now().Add(time.Minute)),
		"long lifetime":  assertionFor(t, key, "c1", id, tokenURL, rand.Text(), time.Now().Add(2*time.Hour)),
		"expired":        assertionFor(t, key, "c1", id, tokenURL, rand.Text(), time.Now().Add(-time.Minute)),
		"other key":      assertionFor(t, must[*ecdsa.PrivateKey](t)(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), "c1", id, tokenURL, rand.Text(), time.Now().Add(time.Minute)),
		"unsigned":       "eyJhbGciOiJub25lIn0." + b64.EncodeToString([]byte(`{"iss":"`+id+`","sub":"`+id+`","aud":"`+tokenURL+`","jti":"x","exp":9999999999}`)) + ".",
		"not a jwt":      "abc",
		"secret instead": "",
	}
	for name, a := range bad {
		f := form(a)
		user, pass := "", ""
		if name == "secret instead" {
			f = url.Values{"grant_type": {"client_credentials"}}
			user, pass = id, "guess"
		}
		resp, body := e.postForm("/oauth2/token", f, user, pass)
		if resp.StatusCode != 401 && resp.StatusCode != 400 || body["access_token"] != nil {
			t.Errorf("%s: %d %v", name, resp.StatusCode, body)
		}
		if body["error"] != "invalid_client" && body["error"] != "invalid_request" {
			t.Errorf("%s: error %v", name, body["error"])
		}
	}
}

func TestIntrospectionPolicy(t *testing.T) {
	e := newEnv(t)
	e.createUser("hana")
	owner, ownerSecret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"a"}, Audiences: []string{"urn:example:orders"}})
	rs, rsSecret := e.createClient(ClientSpec{ID: "urn:example:orders", GrantTypes: []string{GrantClientCredentials}})
	other, otherSecret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}})
	_, tb := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"a"}}, owner, ownerSecret)
	at := tb["access_token"].(string)

	introspect := func(token, user, pass string) (int, map[string]any, *http.Response) {
		resp, body := e.postForm("/oauth2/introspect", url.Values{"token": {token}}, user, pass)
		return resp.StatusCode, body, resp
	}
	st, body, resp := introspect(at, owner, ownerSecret)
	assertNoStore(t, resp)
	_, claims := jwtParts(t, at)
	if st != 200 || body["active"] != true || body["client_id"] != owner || body["scope"] != "a" ||
		body["jti"] != claims["jti"] || body["token_type"] != "Bearer" || body["aud"] != "urn:example:orders" || body["exp"] == nil {
		t.Errorf("owner: %d %v", st, body)
	}
	if st, body, _ = introspect(at, rs, rsSecret); body["active"] != true {
		t.Errorf("audience resource server: %d %v", st, body)
	}
	if st, body, _ = introspect(at, other, otherSecret); st != 200 || len(body) != 1 || body["active"] != false {
		t.Errorf("unrelated client must see active=false only: %d %v", st, body)
	}
	if st, body, _ = introspect(at, owner, "wrong"); st != 401 || body["error"] != "invalid_client" {
		t.Errorf("bad credentials: %d %v", st, body)
	}
	if st, body, _ = introspect("garbage", owner, ownerSecret); st != 200 || body["active"] != false {
		t.Errorf("garbage: %d %v", st, body)
	}
	// A forged token with a valid-looking shape but wrong signature.
	parts := strings.Split(at, ".")
	forged := parts[0] + "." + b64.EncodeToString([]byte(`{"iss":"`+e.issuer+`"}`)) + "." + parts[2]
	if _, body, _ = introspect(forged, owner, ownerSecret); body["active"] != false {
		t.Errorf("forged: %v", body)
	}
	// Refresh token introspection by its client; public clients are refused.
	c := newCodeClient(e, ClientSpec{})
	tok := must[*oauth2.Token](t)(c.exchange(c.authorize(e.browser())))
	if _, body, _ = introspect(tok.RefreshToken, c.id, c.secret); body["active"] != true || body["token_use"] != "refresh_token" || body["sub"] != "u-hana" {
		t.Errorf("refresh token: %v", body)
	}
	pub, _ := e.createClient(ClientSpec{Public: true, RedirectURIs: []string{"http://127.0.0.1/cb"}})
	resp, body = e.postForm("/oauth2/introspect", url.Values{"token": {at}, "client_id": {pub}}, "", "")
	if resp.StatusCode != 401 {
		t.Errorf("public client introspection: %d %v", resp.StatusCode, body)
	}
	// Expired access token: inactive.
	e.advance(11 * time.Minute)
	if _, body, _ = introspect(at, owner, ownerSecret); body["active"] != false {
		t.Errorf("expired: %v", body)
	}
}

func TestRevocationEndpoint(t *testing.T) {
	e := newEnv(t)
	e.createUser("ivan")
	c := newCodeClient(e, ClientSpec{})
	b := e.browser()

	// Revoking an access token deactivates and deny-lists it, although its
	// signature is remembered from an earlier introspection (the verified-
	// token cache skips only the signature check, never the store).
	tok := must[*oauth2.Token](t)(c.exchange(c.authorize(b)))
	if _, body := e.postForm("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, c.id, c.secret); body["active"] != true {
		t.Fatalf("fresh access token inactive: %v", body)
	}
	resp, _ := e.postForm("/oauth2/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}, c.id, c.secret)
	if resp.StatusCode != 200 {
		t.Fatalf("revoke access token: %d", resp.StatusCode)
	}
	assertNoStore(t, resp)
	_, claims := jwtParts(t, tok.AccessToken)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, JTI: claims["jti"].(string)}) {
		t.Error("revoked access token not deny-listed")
	}
	if _, body := e.postForm("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, c.id, c.secret); body["active"] != false {
		t.Errorf("revoked access token still active: %v", body)
	}

	// Revoking a refresh token revokes its family, access tokens included.
	tok = must[*oauth2.Token](t)(c.exchange(c.authorize(b)))
	resp, _ = e.postForm("/oauth2/revoke", url.Values{"token": {tok.RefreshToken}}, c.id, c.secret)
	if resp.StatusCode != 200 {
		t.Fatalf("revoke refresh token: %d", resp.StatusCode)
	}
	_, claims = jwtParts(t, tok.AccessToken)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, JTI: claims["jti"].(string)}) {
		t.Error("access token of a revoked refresh token not deny-listed")
	}
	_, err := c.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("revoked refresh token: %s", code)
	}

	// Unknown tokens and other clients' tokens: 200, no effect.
	if resp, _ := e.postForm("/oauth2/revoke", url.Values{"token": {"unknown"}}, c.id, c.secret); resp.StatusCode != 200 {
		t.Errorf("unknown token: %d", resp.StatusCode)
	}
	other := newCodeClient(e, ClientSpec{})
	tok = must[*oauth2.Token](t)(c.exchange(c.authorize(b)))
	if resp, _ := e.postForm("/oauth2/revoke", url.Values{"token": {tok.RefreshToken}}, other.id, other.secret); resp.StatusCode != 200 {
		t.Errorf("other client's token: %d", resp.StatusCode)
	}
	if _, err := c.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token(); err != nil {
		t.Errorf("another client revoked this client's token: %v", err)
	}
	// Client authentication is required; token is required.
	if resp, body := e.postForm("/oauth2/revoke", url.Values{"token": {tok.RefreshToken}}, c.id, "wrong"); resp.StatusCode != 401 || body["error"] != "invalid_client" {
		t.Errorf("bad credentials: %d %v", resp.StatusCode, body)
	}
	if resp, body := e.postForm("/oauth2/revoke", url.Values{"token_type_hint": {"refresh_token"}}, c.id, c.secret); resp.StatusCode != 400 || body["error"] != "invalid_request" {
		t.Errorf("missing token: %d %v", resp.StatusCode, body)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}})
	get := func() string {
		_, body := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, secret)
		return body["access_token"].(string)
	}
	before := get()
	oldKid, _, _ := e.keys.Signer()
	newKid := e.keys.rotate(t, "EdDSA")
	after := get()
	if h, _ := jwtParts(t, after); h["kid"] != newKid || h["alg"] != "EdDSA" {
		t.Fatalf("not signed with the new key: %v", h)
	}
	for _, tok := range []string{before, after} {
		verifyWithJWKS(t, e, tok)
		if _, body := e.postForm("/oauth2/introspect", url.Values{"token": {tok}}, id, secret); body["active"] != true {
			t.Errorf("introspection after rotation (kid %v): %v", oldKid, body)
		}
	}
	// Discovery follows the published algorithms.
	resp := must[*http.Response](t)(http.Get(e.issuer + "/.well-known/openid-configuration"))
	var md struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	_ = decodeJSON(resp.Body, &md)
	resp.Body.Close()
	if !slices.Equal(md.Algs, []string{"ES256", "EdDSA"}) {
		t.Errorf("algs %v", md.Algs)
	}
}

func TestEdDSAIDToken(t *testing.T) {
	e := newEnv(t)
	e.keys.rotate(t, "EdDSA")
	e.createUser("jun")
	c := newCodeClient(e, ClientSpec{})
	tok := must[*oauth2.Token](t)(c.exchange(c.authorize(e.browser())))
	provider := must[*oidc.Provider](t)(oidc.NewProvider(context.Background(), e.issuer))
	idt, err := provider.Verifier(&oidc.Config{ClientID: c.id, SupportedSigningAlgs: []string{"EdDSA"}}).Verify(context.Background(), tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("EdDSA at_hash (SHA-512): %v", err)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	e.createUser("kim")
	c := newCodeClient(e, ClientSpec{PostLogoutRedirectURIs: []string{"https://app.example.test/bye"}})
	b := e.browser()
	tok := must[*oauth2.Token](t)(c.exchange(c.authorize(b)))
	idToken := tok.Extra("id_token").(string)

	get := func(q url.Values) *http.Response {
		resp := must[*http.Response](t)(b.Get(e.issuer + "/oauth2/logout?" + q.Encode()))
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// No hint: the identity confirmation page decides (no logout CSRF).
	resp := get(url.Values{"post_logout_redirect_uri": {"https://app.example.test/bye"}, "client_id": {c.id}})
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/logout" {
		t.Errorf("no hint: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Unregistered post_logout_redirect_uri: signed-out page, never a redirect.
	resp = get(url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://evil.test/"}})
	if resp.StatusCode != 200 || resp.Header.Get("Location") != "" {
		t.Errorf("unregistered URI: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, _, ok := e.ident.CurrentUser(&http.Request{Header: http.Header{"Cookie": {cookieHeader(b, e.issuer)}}}); ok {
		t.Error("session not ended with a valid id_token_hint")
	}
	// Signed in again; a valid hint and a registered URI: redirect with state.
	c.exchange(c.authorize(b))
	resp = get(url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://app.example.test/bye"}, "state": {"s1"}})
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "https://app.example.test/bye?state=s1" {
		t.Errorf("registered URI: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A hint with a mismatching client_id is refused.
	resp = get(url.Values{"id_token_hint": {idToken}, "client_id": {"someone-else"}})
	if resp.StatusCode != 400 {
		t.Errorf("client mismatch: %d", resp.StatusCode)
	}
}

func cookieHeader(b *http.Client, rawURL string) string {
	u, _ := url.Parse(rawURL)
	var parts []string
	for _, c := range b.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

func TestUserAndClientRevocation(t *testing.T) {
	e := newEnv(t)
	u := e.createUser("lee")
	c := newCodeClient(e, ClientSpec{})
	tok := must[*oauth2.Token](t)(c.exchange(c.authorize(e.browser())))
	_, claims := jwtParts(t, tok.AccessToken)

	if err := e.srv.RevokeUser(context.Background(), u.ID); err != nil {
		t.Fatal(err)
	}
	iat := time.Unix(int64(claims["iat"].(float64)), 0)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, Subject: u.ID, JTI: "other", IssuedAt: iat}) {
		t.Error("user's tokens not deny-listed")
	}
	_, err := c.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("refresh after user revocation: %s", code)
	}

	// Client deletion: tokens deny-listed, refresh tokens dead, client gone.
	e.advance(2 * time.Second)
	tok = must[*oauth2.Token](t)(c.exchange(c.authorize(e.browser())))
	if err := e.srv.Clients().Delete(context.Background(), c.id); err != nil {
		t.Fatal(err)
	}
	_, claims = jwtParts(t, tok.AccessToken)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, ClientID: c.id, JTI: "x", IssuedAt: time.Unix(int64(claims["iat"].(float64)), 0)}) {
		t.Error("deleted client's tokens not deny-listed")
	}
	if _, err := e.srv.Clients().Get(context.Background(), c.id); err == nil {
		t.Error("client not deleted")
	}
	resp, _ := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, c.id, c.secret)
	if resp.StatusCode == 200 {
		t.Error("deleted client refreshed a token")
	}
}

func TestUserinfoErrors(t *testing.T) {
	e := newEnv(t)
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}})
	_, body := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, secret)
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/oauth2/userinfo", nil)
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	req.Header.Set("Authorization", "Bearer "+body["access_token"].(string))
	resp = must[*http.Response](t)(http.DefaultClient.Do(req))
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("client credentials token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	req.Header.Set("Authorization", "Bearer garbage")
	resp = must[*http.Response](t)(http.DefaultClient.Do(req))
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("garbage token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
