package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestOAuthClientCredentials gets a token with golang.org/x/oauth2's
// clientcredentials package and calls the protected route with it; the
// token is an RFC 9068 JWT access token with the documented claims and
// lifetime, and the token response is not cacheable.
func TestOAuthClientCredentials(t *testing.T) {
	t.Parallel()
	e := newASEnv(t, asOptions{})
	id, secret := e.createClient(t, "--name", "Partner", "--grant", "client_credentials", "--scope", "read write", "--audience", "api")
	e.start()
	ctx := e.ctx()

	t.Run("discovery", func(t *testing.T) {
		for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
			resp, body := do(t, e.hc, http.MethodGet, e.issuer+p, nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d", p, resp.StatusCode)
			}
			var md struct {
				Issuer        string   `json:"issuer"`
				Token         string   `json:"token_endpoint"`
				JWKS          string   `json:"jwks_uri"`
				ResponseTypes []string `json:"response_types_supported"`
				Grants        []string `json:"grant_types_supported"`
				PKCE          []string `json:"code_challenge_methods_supported"`
				ISS           bool     `json:"authorization_response_iss_parameter_supported"`
			}
			if err := json.Unmarshal(body, &md); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if md.Issuer != e.issuer || md.Token != e.tokenURL() || md.JWKS != e.issuer+"/oauth2/jwks" {
				t.Errorf("%s: issuer %q token %q jwks %q", p, md.Issuer, md.Token, md.JWKS)
			}
			if !slices.Equal(md.PKCE, []string{"S256"}) || !slices.Equal(md.ResponseTypes, []string{"code"}) || !md.ISS {
				t.Errorf("%s: pkce %v response types %v iss param %v; want [S256] [code] true", p, md.PKCE, md.ResponseTypes, md.ISS)
			}
			for _, g := range md.Grants {
				if g == "password" || g == "implicit" {
					t.Errorf("%s advertises grant %q", p, g)
				}
			}
		}
	})

	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.tokenURL(), Scopes: []string{"read"}, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("clientcredentials.Token: %v", err)
	}
	if !strings.EqualFold(tok.TokenType, "Bearer") || tok.RefreshToken != "" {
		t.Errorf("token type %q, refresh token present %v; want Bearer and none", tok.TokenType, tok.RefreshToken != "")
	}
	if d := time.Until(tok.Expiry); d < 9*time.Minute || d > 10*time.Minute+5*time.Second {
		t.Errorf("expires in %s, want about 10m", d)
	}

	t.Run("RFC 9068 access token", func(t *testing.T) {
		hdr, claims := jwtParts(t, tok.AccessToken)
		if hdr["typ"] != "at+jwt" || hdr["alg"] != "ES256" {
			t.Errorf("header typ %v alg %v, want at+jwt ES256", hdr["typ"], hdr["alg"])
		}
		if kid, _ := hdr["kid"].(string); kid == "" || !slices.Contains(e.jwksKids(t), kid) {
			t.Errorf("kid %v is not published in /oauth2/jwks %v", hdr["kid"], e.jwksKids(t))
		}
		if claims["iss"] != e.issuer || claims["sub"] != id || claims["client_id"] != id || claims["scope"] != "read" {
			t.Errorf("claims iss %v sub %v client_id %v scope %v; want %s %s %s read", claims["iss"], claims["sub"], claims["client_id"], claims["scope"], e.issuer, id, id)
		}
		if aud := audClaim(claims); !slices.Equal(aud, []string{"api"}) {
			t.Errorf("aud %v, want [api]", aud)
		}
		if jti, _ := claims["jti"].(string); len(jti) < 16 {
			t.Errorf("jti %v: missing or short", claims["jti"])
		}
		iat, exp := numClaim(t, claims, "iat"), numClaim(t, claims, "exp")
		if exp-iat != 600 {
			t.Errorf("exp-iat = %d s, want 600 (default 10m)", exp-iat)
		}
		if now := time.Now().Unix(); iat < now-60 || iat > now+5 {
			t.Errorf("iat %d is not now (%d)", iat, now)
		}
	})

	t.Run("token response headers", func(t *testing.T) {
		resp, m := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, id, secret)
		if resp.StatusCode != 200 {
			t.Fatalf("token: %d %v", resp.StatusCode, m)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store (RFC 6749 §5.1)", cc)
		}
		if p := resp.Header.Get("Pragma"); p != "no-cache" {
			t.Errorf("Pragma %q, want no-cache", p)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
		if m["token_type"] != "Bearer" || m["expires_in"] != float64(600) || m["scope"] != "read" {
			t.Errorf("token_type %v expires_in %v scope %v; want Bearer 600 read", m["token_type"], m["expires_in"], m["scope"])
		}
		for _, k := range []string{"refresh_token", "id_token"} {
			if _, ok := m[k]; ok {
				t.Errorf("client credentials response carries %s", k)
			}
		}
		if other := asStr(m, "access_token"); other == tok.AccessToken {
			t.Error("two token requests returned the same access token")
		} else {
			_, c1 := jwtParts(t, other)
			_, c2 := jwtParts(t, tok.AccessToken)
			if c1["jti"] == c2["jti"] {
				t.Errorf("two tokens share jti %v", c1["jti"])
			}
		}
	})

	t.Run("gateway", func(t *testing.T) {
		e.wantAPI(t, "client credentials token", tok.AccessToken, http.StatusOK)
		if h := e.up.Last(t).Header.Get("Authorization"); h != "" {
			t.Errorf("the upstream received the caller's Authorization header (forward.authorization defaults to false)")
		}
		e.wantAPI(t, "no token", "", http.StatusUnauthorized)
		parts := strings.Split(tok.AccessToken, ".")
		_, claims := jwtParts(t, tok.AccessToken)
		claims["scope"] = "read write admin"
		forged, _ := json.Marshal(claims)
		e.wantAPI(t, "token with altered claims", parts[0]+"."+b64(forged)+"."+parts[2], http.StatusUnauthorized)
		// A valid token without scope read is authenticated but not authorized.
		noRead := e.clientCredentials(t, id, secret, "write")
		resp, _ := do(t, e.hc, http.MethodGet, e.issuer+"/api/items", map[string]string{"Authorization": "Bearer " + noRead}, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("token with scope write only: %d %q, want 403 insufficient_scope", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
}

// TestOAuthCodeFlowPKCE runs the authorization code flow with PKCE end to
// end: golang.org/x/oauth2 builds the request and redeems the code, the
// login and consent pages are driven over HTTP like a browser without
// JavaScript, and github.com/coreos/go-oidc/v3 discovers the provider and
// verifies the ID token. The refresh token rotates on use and userinfo
// answers for the user.
func TestOAuthCodeFlowPKCE(t *testing.T) {
	t.Parallel()
	e := newASEnv(t, asOptions{})
	c := e.newCodeClient(t, "Web app")
	uid := e.createUser(t, "alice")
	e.start()
	ctx := oidc.ClientContext(e.ctx(), e.hc)

	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	if ep := provider.Endpoint(); ep.AuthURL != c.conf.Endpoint.AuthURL || ep.TokenURL != c.conf.Endpoint.TokenURL {
		t.Errorf("discovered endpoints %+v, want %s and %s", ep, c.conf.Endpoint.AuthURL, c.conf.Endpoint.TokenURL)
	}

	b := e.newBrowser()
	f := c.code(t, e, b, "alice")
	if got := len(c.cb.got); got != 0 {
		t.Errorf("the callback server was called %d times by the scripted browser", got)
	}
	tok, err := c.conf.Exchange(ctx, f.resp.Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatalf("x/oauth2 Exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token although offline_access was granted")
	}
	if n := len(tok.RefreshToken); n < 43 {
		t.Errorf("refresh token has %d characters, want >= 43 (256 bits base64url)", n)
	}
	if strings.Count(tok.RefreshToken, ".") == 2 {
		t.Error("refresh token looks like a JWT; it must be opaque")
	}

	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		t.Fatal("token response without id_token for scope openid")
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: c.id}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("go-oidc ID token verification: %v", err)
	}
	if idt.Nonce != f.nonce {
		t.Errorf("ID token nonce %q, want %q", idt.Nonce, f.nonce)
	}
	if idt.Subject != uid || idt.Issuer != e.issuer {
		t.Errorf("ID token sub %q iss %q, want %s %s", idt.Subject, idt.Issuer, uid, e.issuer)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}
	}

	hdr, claims := jwtParts(t, tok.AccessToken)
	if hdr["typ"] != "at+jwt" || claims["sub"] != uid || claims["client_id"] != c.id || claims["iss"] != e.issuer {
		t.Errorf("access token typ %v sub %v client_id %v iss %v", hdr["typ"], claims["sub"], claims["client_id"], claims["iss"])
	}
	if sc := strings.Fields(asStr(claims, "scope")); !slices.Contains(sc, "read") || !slices.Contains(sc, "openid") || slices.Contains(sc, "profile") {
		t.Errorf("access token scope %v, want exactly what was requested and allowed (openid read offline_access)", sc)
	}
	e.wantAPI(t, "code flow access token", tok.AccessToken, http.StatusOK)

	t.Run("userinfo", func(t *testing.T) {
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("go-oidc UserInfo: %v", err)
		}
		if ui.Subject != uid {
			t.Errorf("userinfo sub %q, want %q", ui.Subject, uid)
		}
		resp, _ := do(t, e.hc, http.MethodGet, e.issuer+"/oauth2/userinfo", map[string]string{"Authorization": "Bearer not-a-token"}, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("userinfo with a bad token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("refresh rotates", func(t *testing.T) {
		expired := *tok
		expired.Expiry = time.Now().Add(-time.Minute) // force TokenSource to refresh
		nt, err := c.conf.TokenSource(ctx, &expired).Token()
		if err != nil {
			t.Fatalf("x/oauth2 TokenSource refresh: %v", err)
		}
		if nt.AccessToken == tok.AccessToken || nt.RefreshToken == "" || nt.RefreshToken == tok.RefreshToken {
			t.Fatalf("refresh did not rotate: new access %v, new refresh %v", nt.AccessToken != tok.AccessToken, nt.RefreshToken != tok.RefreshToken)
		}
		_, nc := jwtParts(t, nt.AccessToken)
		if nc["sub"] != uid || nc["jti"] == claims["jti"] {
			t.Errorf("refreshed access token sub %v jti %v", nc["sub"], nc["jti"])
		}
		if raw, _ := nt.Extra("id_token").(string); raw != "" {
			if _, err := provider.Verifier(&oidc.Config{ClientID: c.id}).Verify(ctx, raw); err != nil {
				t.Errorf("refreshed ID token: %v", err)
			}
		}
		e.wantAPI(t, "refreshed access token", nt.AccessToken, http.StatusOK)
		// The newest refresh token works (and rotates again).
		resp, m := c.refresh(t, e, nt.RefreshToken)
		if resp.StatusCode != 200 || asStr(m, "refresh_token") == "" || asStr(m, "refresh_token") == nt.RefreshToken {
			t.Errorf("second refresh: %d %v", resp.StatusCode, m["error"])
		}
	})

	t.Run("session and consent remembered", func(t *testing.T) {
		st := asRandom(t, 16)
		cb, p := b.drive(t, c.conf.AuthCodeURL(st, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if cb == nil {
			t.Fatalf("second authorization stopped at %s (%d) instead of returning to the client", p.URL.Path, p.Resp.StatusCode)
		}
		if cb.Query().Get("code") == "" || cb.Query().Get("state") != st || cb.Query().Get("iss") != e.issuer {
			t.Errorf("second authorization response %v", cb.Query())
		}
		// A fresh browser has no session: the login page comes first.
		_, p = e.newBrowser().drive(t, c.conf.AuthCodeURL(st, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if p.URL.Path != "/oauth2/ui/login" || p.Resp.StatusCode != 200 {
			t.Errorf("new browser: %s %d, want the login page", p.URL.Path, p.Resp.StatusCode)
		}
	})
}
