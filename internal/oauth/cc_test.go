package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/sekisho/sekisho/internal/revocation"
)

func TestClientCredentialsJWT(t *testing.T) {
	e := newEnv(t)
	id, secret := e.createClient(ClientSpec{
		GrantTypes: []string{GrantClientCredentials},
		Scopes:     []string{"orders.read", "orders.write"},
		Audiences:  []string{"https://api.example.test/orders", "https://api.example.test/billing"},
	})
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{
			ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/oauth2/token",
			Scopes: []string{"orders.read"}, AuthStyle: style,
			EndpointParams: url.Values{"resource": {"https://api.example.test/orders"}},
		}
		if style == oauth2.AuthStyleInParams {
			// a client_secret_basic client must not authenticate in the body
			if _, err := cc.Token(context.Background()); err == nil {
				t.Fatal("client_secret_post accepted for a client_secret_basic client")
			}
			continue
		}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("client credentials: %v", err)
		}
		if !strings.EqualFold(tok.TokenType, "bearer") || tok.RefreshToken != "" {
			t.Errorf("token type %q, refresh %q", tok.TokenType, tok.RefreshToken)
		}
		if d := time.Until(tok.Expiry); d < 9*time.Minute || d > 11*time.Minute {
			t.Errorf("expires in %v, want ~10m", d)
		}
		h, c := jwtParts(t, tok.AccessToken)
		kid, _, _ := e.keys.Signer()
		if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] != kid {
			t.Errorf("header %v", h)
		}
		if c["iss"] != e.issuer || c["sub"] != id || c["client_id"] != id || c["scope"] != "orders.read" ||
			c["aud"] != "https://api.example.test/orders" || c["jti"] == "" || c["iat"] == nil || c["exp"] == nil {
			t.Errorf("claims %v", c)
		}
		if _, ok := c["auth_time"]; ok {
			t.Error("client credentials token carries auth_time")
		}
		// Verify with the published JWKS like a relying party would.
		verifyWithJWKS(t, e, tok.AccessToken)
	}

	// Without resource: every registered audience; without scope: none.
	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/oauth2/token"}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, c := jwtParts(t, tok.AccessToken)
	aud, _ := c["aud"].([]any)
	if len(aud) != 2 || c["scope"] != nil {
		t.Errorf("default audience/scope: %v", c)
	}
}

func verifyWithJWKS(t *testing.T, e *testEnv, token string) map[string]any {
	t.Helper()
	resp, err := http.Get(e.issuer + "/oauth2/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("JWKS Cache-Control %q", cc)
	}
	var set jose.JSONWebKeySet
	if err := decodeJSON(resp.Body, &set); err != nil {
		t.Fatal(err)
	}
	parsed, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in JWKS", parsed.Headers[0].KeyID)
	}
	var claims map[string]any
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("signature does not verify with the JWKS: %v", err)
	}
	return claims
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t)
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"a"}, Audiences: []string{"https://rs.test"}})

	oauthErr := func(t *testing.T, err error) *oauth2.RetrieveError {
		t.Helper()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("want oauth2.RetrieveError, got %v", err)
		}
		return re
	}
	t.Run("wrong secret", func(t *testing.T) {
		_, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret + "x", TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}).Token(context.Background())
		re := oauthErr(t, err)
		if re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 || re.Response.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("got %s %d %q", re.ErrorCode, re.Response.StatusCode, re.Response.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		_, err := (&clientcredentials.Config{ClientID: "nope", ClientSecret: secret, TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}).Token(context.Background())
		if re := oauthErr(t, err); re.ErrorCode != "invalid_client" {
			t.Errorf("got %s", re.ErrorCode)
		}
	})
	t.Run("invalid scope", func(t *testing.T) {
		_, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader, Scopes: []string{"a", "admin"}}).Token(context.Background())
		if re := oauthErr(t, err); re.ErrorCode != "invalid_scope" {
			t.Errorf("got %s", re.ErrorCode)
		}
	})
	t.Run("openid scope with client credentials", func(t *testing.T) {
		id2, s2 := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"openid"}})
		_, err := (&clientcredentials.Config{ClientID: id2, ClientSecret: s2, TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader, Scopes: []string{"openid"}}).Token(context.Background())
		if re := oauthErr(t, err); re.ErrorCode != "invalid_scope" {
			t.Errorf("got %s", re.ErrorCode)
		}
	})
	t.Run("unknown resource", func(t *testing.T) {
		_, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader,
			EndpointParams: url.Values{"resource": {"https://evil.test"}}}).Token(context.Background())
		if re := oauthErr(t, err); re.ErrorCode != "invalid_target" {
			t.Errorf("got %s", re.ErrorCode)
		}
	})

	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"password grant", url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}}, 400, "unsupported_grant_type"},
		{"jwt bearer grant", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"x"}}, 400, "unsupported_grant_type"},
		{"implicit as grant", url.Values{"grant_type": {"implicit"}}, 400, "unsupported_grant_type"},
		{"missing grant", url.Values{"scope": {"a"}}, 400, "invalid_request"},
		{"repeated parameter", url.Values{"grant_type": {"client_credentials"}, "scope": {"a", "a"}}, 400, "invalid_request"},
		{"audience parameter", url.Values{"grant_type": {"client_credentials"}, "audience": {"https://rs.test"}}, 400, "invalid_request"},
		{"not a URI resource", url.Values{"grant_type": {"client_credentials"}, "resource": {"rs"}}, 400, "invalid_target"},
		{"bad code", url.Values{"grant_type": {"authorization_code"}, "code": {"x.y"}, "redirect_uri": {"https://a.test/cb"}}, 400, "unauthorized_client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.postForm("/oauth2/token", tc.form, id, secret)
			if resp.StatusCode != tc.status || body["error"] != tc.code {
				t.Errorf("got %d %v, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			assertNoStore(t, resp)
		})
	}

	t.Run("GET and wrong content type", func(t *testing.T) {
		resp := must[*http.Response](t)(http.Get(e.issuer + "/oauth2/token?grant_type=client_credentials"))
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("GET: %d", resp.StatusCode)
		}
		resp = must[*http.Response](t)(http.Post(e.issuer+"/oauth2/token", "application/json", strings.NewReader(`{"grant_type":"client_credentials"}`)))
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("JSON body: %d", resp.StatusCode)
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		resp, body := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "x": {strings.Repeat("a", 70<<10)}}, id, secret)
		if resp.StatusCode != 400 || body["error"] != "invalid_request" {
			t.Errorf("got %d %v", resp.StatusCode, body)
		}
	})
	t.Run("success has no-store", func(t *testing.T) {
		resp, body := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, secret)
		if resp.StatusCode != 200 || body["access_token"] == nil {
			t.Fatalf("got %d %v", resp.StatusCode, body)
		}
		assertNoStore(t, resp)
	})
	t.Run("disabled client", func(t *testing.T) {
		if err := e.srv.Clients().SetDisabled(context.Background(), id, true); err != nil {
			t.Fatal(err)
		}
		resp, body := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, secret)
		if resp.StatusCode != 401 || body["error"] != "invalid_client" {
			t.Errorf("got %d %v", resp.StatusCode, body)
		}
		if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, ClientID: id, JTI: "x", IssuedAt: e.now().Add(-time.Second)}) {
			t.Error("disabling the client did not deny-list its tokens")
		}
	})
}
