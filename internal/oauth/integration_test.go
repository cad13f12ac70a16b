package oauth

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sekisho/sekisho/internal/identity"
	"github.com/sekisho/sekisho/internal/keys"
	"github.com/sekisho/sekisho/internal/revocation"
)

// The production implementations satisfy the consumer-side interfaces.
var (
	_ KeySource = (*keys.Manager)(nil)
	_ Identity  = (*identity.Service)(nil)
	_ Revoker   = (*revocation.DenyList)(nil)
)

// TestRealKeyManagerRotation runs the token endpoint on internal/keys'
// Manager and rotates immediately: a token signed before the rotation keeps
// verifying through the JWKS and introspection until it expires.
func TestRealKeyManagerRotation(t *testing.T) {
	var km *keys.Manager
	e := newEnv(t, func(o *Options) {
		var err error
		km, err = keys.NewManager(o.Store, keys.Options{MasterKey: []byte("0123456789abcdef0123456789abcdef"), Alg: keys.AlgES256, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if err := km.Start(ctx); err != nil {
			t.Fatal(err)
		}
		o.Keys = km
	})
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}})
	get := func() string {
		t.Helper()
		resp, body := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, secret)
		if resp.StatusCode != 200 {
			t.Fatalf("token: %d %v", resp.StatusCode, body)
		}
		return body["access_token"].(string)
	}
	before := get()
	oldKid, _, _ := km.Signer()
	if _, err := km.Rotate(context.Background(), keys.Immediate()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if kid, _, _ := km.Signer(); kid != oldKid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotation did not take effect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := get()
	hb, _ := jwtParts(t, before)
	ha, _ := jwtParts(t, after)
	if hb["kid"] == ha["kid"] {
		t.Fatalf("same kid before and after rotation: %v", ha["kid"])
	}
	for _, tok := range []string{before, after} {
		verifyWithJWKS(t, e, tok)
		if _, body := e.postForm("/oauth2/introspect", url.Values{"token": {tok}}, id, secret); body["active"] != true {
			t.Errorf("introspection after rotation: %v", body)
		}
	}
}

var (
	inputRe   = regexp.MustCompile(`<input type="hidden" name="(csrf_token|return_to)" value="([^"]*)">`)
	refreshRe = regexp.MustCompile(`<a href="([^"]+)">`)
)

// formPage GETs an identity page and returns its hidden inputs.
func formPage(t *testing.T, b *http.Client, u string) url.Values {
	t.Helper()
	resp := must[*http.Response](t)(b.Get(u))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	v := url.Values{}
	for _, m := range inputRe.FindAllStringSubmatch(string(body), -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	if v.Get("csrf_token") == "" {
		t.Fatalf("no CSRF token on %s", u)
	}
	return v
}

// submit posts a page's form like a browser (same-origin) and returns the
// URL of the continuation link the page answers with.
func submit(t *testing.T, e *testEnv, b *http.Client, path string, v url.Values) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.issuer)
	resp := must[*http.Response](t)(b.Do(req))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusSeeOther {
		return resp.Header.Get("Location")
	}
	m := refreshRe.FindStringSubmatch(string(body))
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
	}
	return html.UnescapeString(m[1])
}

// TestCodeFlowWithRealIdentity drives the real login and consent pages of
// internal/identity over HTTP (cookie jar, CSRF tokens from the forms) and
// finishes the flow with x/oauth2 and go-oidc.
func TestCodeFlowWithRealIdentity(t *testing.T) {
	var idsvc *identity.Service
	e := newEnv(t, func(o *Options) {
		var err error
		idsvc, err = identity.New(o.Store, identity.Options{
			Issuer: o.Issuer, Secret: o.MasterKey,
			Password: identity.PasswordOptions{Argon2: identity.Argon2Params{Memory: 8 * 1024, Time: 1, Threads: 1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Identity = idsvc
	})
	ctx := context.Background()
	u, err := idsvc.Users().Create(ctx, "mika", "correct horse battery staple", "mika@example.test", "Mika")
	if err != nil {
		t.Fatal(err)
	}
	c := newCodeClient(e, ClientSpec{})
	b := e.browser()
	verifier, state, nonce := oauth2.GenerateVerifier(), "state-"+strings.Repeat("x", 8), "nonce-12345678"
	authURL := c.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	next, resp := e.drive(b, authURL)
	if next != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/login") {
		t.Fatalf("expected the login page, got %v %d %s", next, resp.StatusCode, resp.Request.URL)
	}
	v := formPage(t, b, resp.Request.URL.String())
	v.Set("username", "mika")
	v.Set("password", "correct horse battery staple")
	cont := submit(t, e, b, "/login", v)

	next, resp = e.drive(b, e.issuer+cont)
	if next != nil || !strings.HasPrefix(resp.Request.URL.Path, "/consent") {
		t.Fatalf("expected the consent page, got %v %s", next, resp.Request.URL)
	}
	v = formPage(t, b, resp.Request.URL.String())
	v.Set("decision", "allow")
	cont = submit(t, e, b, "/consent", v)

	cb, resp := e.drive(b, e.issuer+cont)
	if cb == nil {
		t.Fatalf("no redirect to the client: %d %s", resp.StatusCode, resp.Request.URL)
	}
	if cb.Query().Get("state") != state || cb.Query().Get("iss") != e.issuer {
		t.Fatalf("callback %v", cb.Query())
	}
	tok, err := c.conf.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	provider := must[*oidc.Provider](t)(oidc.NewProvider(ctx, e.issuer))
	idt, err := provider.Verifier(&oidc.Config{ClientID: c.id}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil || idt.Subject != u.ID || idt.Nonce != nonce {
		t.Fatalf("ID token: %v %+v", err, idt)
	}

	// Remembered consent and session: a second authorization goes straight through.
	cb, _ = e.drive(b, c.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if cb == nil || cb.Query().Get("code") == "" {
		t.Fatalf("second authorization: %v", cb)
	}
	// Deny on the consent page (prompt=consent) answers access_denied.
	next, resp = e.drive(b, c.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "consent")))
	if next != nil || !strings.HasPrefix(resp.Request.URL.Path, "/consent") {
		t.Fatalf("prompt=consent: %v %s", next, resp.Request.URL)
	}
	v = formPage(t, b, resp.Request.URL.String())
	v.Set("decision", "deny")
	cb, resp = e.drive(b, e.issuer+submit(t, e, b, "/consent", v))
	if cb == nil || cb.Query().Get("error") != "access_denied" || cb.Query().Get("iss") != e.issuer {
		t.Fatalf("deny: %v %d", cb, resp.StatusCode)
	}
	// prompt=login shows the login page again even with a session.
	next, resp = e.drive(b, c.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "login")))
	if next != nil || !strings.HasPrefix(resp.Request.URL.Path, "/login") {
		t.Fatalf("prompt=login: %v %s", next, resp.Request.URL)
	}
	v = formPage(t, b, resp.Request.URL.String())
	v.Set("username", "mika")
	v.Set("password", "correct horse battery staple")
	cb, _ = e.drive(b, e.issuer+submit(t, e, b, "/login", v))
	if cb == nil || cb.Query().Get("code") == "" {
		t.Fatalf("after prompt=login: %v", cb)
	}
}
