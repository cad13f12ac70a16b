package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sekisho/sekisho/internal/revocation"
)

const callback = "https://app.example.test/callback"

type codeClient struct {
	e      *testEnv
	conf   *oauth2.Config
	id     string
	secret string
}

// newCodeClient registers a confidential code-flow client and configures
// x/oauth2 for it.
func newCodeClient(e *testEnv, spec ClientSpec) *codeClient {
	if spec.RedirectURIs == nil {
		spec.RedirectURIs = []string{callback}
	}
	if spec.Scopes == nil {
		spec.Scopes = []string{"openid", "profile", "email", "offline_access", "orders.read"}
	}
	if spec.GrantTypes == nil {
		spec.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	id, secret := e.createClient(spec)
	return &codeClient{e: e, id: id, secret: secret, conf: &oauth2.Config{
		ClientID: id, ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL: e.issuer + "/oauth2/authorize", TokenURL: e.issuer + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: spec.RedirectURIs[0],
		Scopes:      []string{"openid", "profile", "email", "offline_access"},
	}}
}

type flowResult struct {
	cb       *url.URL
	verifier string
	state    string
	nonce    string
}

// authorize runs the browser part and returns the callback.
func (c *codeClient) authorize(b *http.Client, opts ...oauth2.AuthCodeOption) flowResult {
	c.e.t.Helper()
	r := flowResult{verifier: oauth2.GenerateVerifier(), state: rand.Text(), nonce: rand.Text()}
	opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(r.verifier), oidc.Nonce(r.nonce)}, opts...)
	cb, resp := c.e.drive(b, c.conf.AuthCodeURL(r.state, opts...))
	if cb == nil {
		c.e.t.Fatalf("authorize ended with %d, not a redirect to the client", resp.StatusCode)
	}
	r.cb = cb
	return r
}

func (c *codeClient) exchange(r flowResult) (*oauth2.Token, error) {
	return c.conf.Exchange(context.Background(), r.cb.Query().Get("code"), oauth2.VerifierOption(r.verifier))
}

func retrieveErr(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want an OAuth error response, got %v", err)
	}
	return re.ErrorCode
}

func TestCodeFlowOIDC(t *testing.T) {
	e := newEnv(t)
	user := e.createUser("alice")
	c := newCodeClient(e, ClientSpec{Audiences: []string{"https://api.example.test"}})
	ctx := context.Background()

	b := e.browser()
	r := c.authorize(b)
	q := r.cb.Query()
	if got := r.cb.Scheme + "://" + r.cb.Host + r.cb.Path; got != callback {
		t.Fatalf("redirected to %s", got)
	}
	if q.Get("state") != r.state || q.Get("iss") != e.issuer || q.Get("code") == "" || q.Get("scope") != "" {
		t.Fatalf("authorization response %v", q)
	}
	if e.ident.loginVisits.Load() != 1 || e.ident.consentVisit.Load() != 1 {
		t.Errorf("login visits %d, consent visits %d", e.ident.loginVisits.Load(), e.ident.consentVisit.Load())
	}
	tok, err := c.exchange(r)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token despite offline_access")
	}
	if len(tok.RefreshToken) < 80 {
		t.Errorf("refresh token %d chars; want >= 256-bit random + MAC", len(tok.RefreshToken))
	}

	// go-oidc: discovery and ID token verification including nonce and at_hash.
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: c.id}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	if idt.Nonce != r.nonce || idt.Subject != user.ID {
		t.Errorf("nonce %q sub %q", idt.Nonce, idt.Subject)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var idc struct {
		AuthTime int64 `json:"auth_time"`
	}
	if err := idt.Claims(&idc); err != nil || idc.AuthTime == 0 {
		t.Errorf("auth_time missing: %v", err)
	}

	// Access token claims (RFC 9068) for a user.
	h, ac := jwtParts(t, tok.AccessToken)
	if h["typ"] != "at+jwt" || ac["sub"] != user.ID || ac["client_id"] != c.id || ac["aud"] != "https://api.example.test" ||
		ac["scope"] != "openid profile email offline_access" || ac["auth_time"] == nil {
		t.Errorf("access token %v %v", h, ac)
	}

	// userinfo
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var claims map[string]any
	_ = ui.Claims(&claims)
	if ui.Subject != user.ID || ui.Email != user.Email || claims["preferred_username"] != "alice" {
		t.Errorf("userinfo %v", claims)
	}

	// Refresh through x/oauth2's TokenSource: rotation on every use.
	expired := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	tok2, err := c.conf.TokenSource(ctx, expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
		t.Fatal("refresh token not rotated")
	}
	if raw, _ := tok2.Extra("id_token").(string); raw == "" {
		t.Error("no ID token on refresh")
	} else if _, err := provider.Verifier(&oidc.Config{ClientID: c.id}).Verify(ctx, raw); err != nil {
		t.Errorf("refreshed ID token: %v", err)
	}
	tok3, err := c.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}

	// A second authorization reuses the session and remembered consent.
	r2 := c.authorize(b)
	if e.ident.loginVisits.Load() != 1 || e.ident.consentVisit.Load() != 1 {
		t.Errorf("second authorization asked again: login %d consent %d", e.ident.loginVisits.Load(), e.ident.consentVisit.Load())
	}
	if _, err := c.exchange(r2); err != nil {
		t.Fatal(err)
	}

	// Reuse of a rotated refresh token revokes the whole family: the newest
	// refresh token stops working and the family's access tokens are
	// deny-listed.
	_, err = c.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("reuse: %s", code)
	}
	_, err = c.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok3.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("newest refresh token after family revocation: %s", code)
	}
	_, c3 := jwtParts(t, tok3.AccessToken)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, JTI: c3["jti"].(string)}) {
		t.Error("family access token not deny-listed")
	}
	_, c2 := jwtParts(t, tok2.AccessToken)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, JTI: c2["jti"].(string)}) {
		t.Error("access token of a rotated refresh token not deny-listed")
	}
	resp, body := e.postForm("/oauth2/introspect", url.Values{"token": {tok3.AccessToken}}, c.id, c.secret)
	if resp.StatusCode != 200 || body["active"] != false {
		t.Errorf("introspection after family revocation: %v", body)
	}
}

func TestCodeReplayRevokes(t *testing.T) {
	e := newEnv(t)
	e.createUser("bob")
	c := newCodeClient(e, ClientSpec{})
	r := c.authorize(e.browser())
	tok, err := c.exchange(r)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.exchange(r)
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("code reuse: %s", code)
	}
	_, err = c.conf.Exchange(context.Background(), "forged.code", oauth2.VerifierOption(r.verifier))
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("unknown code: %s", code)
	}
	_, claims := jwtParts(t, tok.AccessToken)
	if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, JTI: claims["jti"].(string)}) {
		t.Error("access token of a replayed code not deny-listed")
	}
	_, err = c.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("refresh token of a replayed code: %s", code)
	}
}

func TestCodeExpiry(t *testing.T) {
	e := newEnv(t)
	e.createUser("carol")
	c := newCodeClient(e, ClientSpec{})
	r := c.authorize(e.browser())
	e.advance(61 * time.Second)
	_, err := c.exchange(r)
	if code := retrieveErr(t, err); code != "invalid_grant" {
		t.Errorf("expired code: %s", code)
	}
}

func TestPKCE(t *testing.T) {
	e := newEnv(t)
	e.createUser("dave")
	c := newCodeClient(e, ClientSpec{})
	b := e.browser()

	t.Run("wrong verifier", func(t *testing.T) {
		r := c.authorize(b)
		r.verifier = oauth2.GenerateVerifier()
		_, err := c.exchange(r)
		if code := retrieveErr(t, err); code != "invalid_grant" {
			t.Errorf("got %s", code)
		}
	})
	t.Run("missing verifier", func(t *testing.T) {
		r := c.authorize(b)
		_, err := c.conf.Exchange(context.Background(), r.cb.Query().Get("code"))
		if code := retrieveErr(t, err); code != "invalid_grant" && code != "invalid_request" {
			t.Errorf("got %s", code)
		}
	})
	authErr := func(t *testing.T, params url.Values) url.Values {
		t.Helper()
		u, _ := url.Parse(c.conf.AuthCodeURL("state-" + rand.Text()))
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		for k, v := range params {
			if len(v) == 0 {
				q.Del(k)
			}
		}
		u.RawQuery = q.Encode()
		cb, resp := e.drive(b, u.String())
		if cb == nil {
			t.Fatalf("no redirect: %d", resp.StatusCode)
		}
		if cb.Query().Get("code") != "" || cb.Query().Get("iss") != e.issuer || cb.Query().Get("state") != q.Get("state") {
			t.Errorf("error redirect %v", cb.Query())
		}
		return cb.Query()
	}
	t.Run("missing challenge", func(t *testing.T) {
		if q := authErr(t, url.Values{}); q.Get("error") != "invalid_request" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("plain challenge", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		if q := authErr(t, url.Values{"code_challenge": {v}, "code_challenge_method": {"plain"}}); q.Get("error") != "invalid_request" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("challenge without method", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		if q := authErr(t, url.Values{"code_challenge": {v}}); q.Get("error") != "invalid_request" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("response_type token", func(t *testing.T) {
		if q := authErr(t, url.Values{"response_type": {"token"}}); q.Get("error") != "unsupported_response_type" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("response_type code id_token", func(t *testing.T) {
		if q := authErr(t, url.Values{"response_type": {"code id_token"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}, "nonce": {rand.Text()}}); q.Get("error") != "unsupported_response_type" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("unknown scope", func(t *testing.T) {
		if q := authErr(t, url.Values{"scope": {"openid admin"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}); q.Get("error") != "invalid_scope" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("request object", func(t *testing.T) {
		if q := authErr(t, url.Values{"request": {"eyJhbGciOiJub25lIn0.e30."}}); q.Get("error") != "request_not_supported" {
			t.Errorf("got %v", q)
		}
	})
}

func TestRedirectURIVariantsShowErrorPage(t *testing.T) {
	e := newEnv(t)
	e.createUser("erin")
	c := newCodeClient(e, ClientSpec{RedirectURIs: []string{"https://app.example.test/cb", "http://127.0.0.1:9000/native"}})
	variants := []string{
		"https://app.example.test/cb/",            // suffix
		"https://app.example.test/c",              // prefix
		"https://app.example.test/cb/extra",       // extra path
		"https://APP.example.test/cb",             // case
		"https://app.example.test/CB",             // case in path
		"https://a@app.example.test/cb",           // userinfo
		"https://app.example.test@evil.test/cb",   // userinfo trick
		"https://app.example.test:8443/cb",        // port
		"https://app.example.test/%63b",           // encoded
		"https://app.example.test/cb?x=1",         // extra query
		"https://app.example.test/cb#frag",        // fragment
		"https://evil.test/cb",                    // other host
		"http://app.example.test/cb",              // scheme
		"http://127.0.0.1:9001/native",            // loopback port variance for a confidential client
		"https://app.example.test/./cb",           // dot segment
		"https://app.example.test/cb\\@evil.test", // backslash
	}
	b := e.browser()
	for _, v := range variants {
		u, _ := url.Parse(c.conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		q := u.Query()
		q.Set("redirect_uri", v)
		u.RawQuery = q.Encode()
		resp, err := b.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: got %d Location=%q", v, resp.StatusCode, resp.Header.Get("Location"))
		}
		if strings.Contains(string(body), "evil") {
			t.Errorf("%s: error page echoes the request", v)
		}
	}
	// Unknown client: error page too.
	u, _ := url.Parse(c.conf.AuthCodeURL("state-12345678"))
	q := u.Query()
	q.Set("client_id", "unknown")
	u.RawQuery = q.Encode()
	resp := must[*http.Response](t)(b.Get(u.String()))
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Errorf("unknown client: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Repeated parameter: error page (which redirect_uri would be meant?).
	resp = must[*http.Response](t)(b.Get(c.conf.AuthCodeURL("state-12345678") + "&redirect_uri=" + url.QueryEscape("https://evil.test/")))
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Errorf("repeated redirect_uri: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestPublicNativeClientLoopback(t *testing.T) {
	e := newEnv(t)
	e.createUser("frank")
	id, secret := e.createClient(ClientSpec{
		Public: true, RedirectURIs: []string{"http://127.0.0.1/cb", "http://[::1]/cb"},
		Scopes: []string{"openid", "offline_access"},
	})
	if secret != "" {
		t.Fatal("public client got a secret")
	}
	conf := &oauth2.Config{ClientID: id, Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/oauth2/authorize", TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:53127/cb", Scopes: []string{"openid", "offline_access"}}
	c := &codeClient{e: e, conf: conf, id: id}
	b := e.browser()
	r := c.authorize(b)
	if r.cb.Host != "127.0.0.1:53127" {
		t.Fatalf("callback %s", r.cb)
	}
	if _, err := c.exchange(r); err != nil {
		t.Fatalf("public client exchange: %v", err)
	}
	// RFC 8252 §8.6: consent is asked every time for a loopback public client.
	before := e.ident.consentVisit.Load()
	c.authorize(b)
	if e.ident.consentVisit.Load() != before+1 {
		t.Error("remembered consent used for a public loopback client")
	}
	// Other loopback host, path or localhost: refused with the error page.
	for _, v := range []string{"http://localhost:53127/cb", "http://127.0.0.2:53127/cb", "http://127.0.0.1:53127/cb2", "http://[::1]:1/cb/"} {
		conf.RedirectURL = v
		_, resp := e.drive(b, conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d", v, resp.StatusCode)
		}
	}
	conf.RedirectURL = "http://[::1]:61000/cb"
	if r := c.authorize(b); r.cb.Host != "[::1]:61000" {
		t.Errorf("IPv6 loopback callback %s", r.cb)
	}
	// A public client cannot use client credentials.
	resp, body := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}}, "", "")
	if resp.StatusCode == 200 {
		t.Errorf("public client got a client credentials token: %v", body)
	}
}

func TestPromptAndConsent(t *testing.T) {
	e := newEnv(t)
	e.createUser("gina")
	c := newCodeClient(e, ClientSpec{})
	b := e.browser()

	// prompt=none without a session: login_required, with state and iss.
	r := flowResult{verifier: oauth2.GenerateVerifier(), state: rand.Text()}
	cb, _ := e.drive(b, c.conf.AuthCodeURL(r.state, oauth2.S256ChallengeOption(r.verifier), oauth2.SetAuthURLParam("prompt", "none")))
	if cb == nil || cb.Query().Get("error") != "login_required" || cb.Query().Get("state") != r.state || cb.Query().Get("iss") != e.issuer {
		t.Fatalf("prompt=none: %v", cb)
	}
	// Consent denied: access_denied.
	e.ident.denyConsent = true
	cb, _ = e.drive(b, c.conf.AuthCodeURL("state-deny-1234", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if cb == nil || cb.Query().Get("error") != "access_denied" || cb.Query().Get("iss") != e.issuer {
		t.Fatalf("denied consent: %v", cb)
	}
	e.ident.denyConsent = false
	// Signed in now; prompt=none without consent: consent_required.
	cb, _ = e.drive(b, c.conf.AuthCodeURL("state-none-1234", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
	if cb == nil || cb.Query().Get("error") != "consent_required" {
		t.Fatalf("prompt=none without consent: %v", cb)
	}
	c.authorize(b) // grants consent
	// prompt=none with session and consent: a code.
	r = c.authorize(b, oauth2.SetAuthURLParam("prompt", "none"))
	if r.cb.Query().Get("code") == "" {
		t.Fatalf("prompt=none: %v", r.cb.Query())
	}
	// prompt=login forces a new login exactly once (no loop).
	logins := e.ident.loginVisits.Load()
	e.advance(2 * time.Second)
	r = c.authorize(b, oauth2.SetAuthURLParam("prompt", "login"))
	if e.ident.loginVisits.Load() != logins+1 || r.cb.Query().Get("code") == "" {
		t.Fatalf("prompt=login: logins %d→%d, %v", logins, e.ident.loginVisits.Load(), r.cb.Query())
	}
	if _, err := c.exchange(r); err != nil {
		t.Fatalf("prompt=login exchange: %v", err)
	}
	// max_age=0 also forces a login, once.
	logins = e.ident.loginVisits.Load()
	e.advance(2 * time.Second)
	r = c.authorize(b, oauth2.SetAuthURLParam("max_age", "0"))
	if e.ident.loginVisits.Load() != logins+1 {
		t.Fatalf("max_age=0 logins %d→%d", logins, e.ident.loginVisits.Load())
	}
	if _, err := c.exchange(r); err != nil {
		t.Fatalf("max_age exchange: %v", err)
	}
	// prompt=consent asks again, once.
	consents := e.ident.consentVisit.Load()
	c.authorize(b, oauth2.SetAuthURLParam("prompt", "consent"))
	if e.ident.consentVisit.Load() != consents+1 {
		t.Fatalf("prompt=consent visits %d→%d", consents, e.ident.consentVisit.Load())
	}
	// Invalid prompt combination is an error redirect.
	cb, _ = e.drive(b, c.conf.AuthCodeURL("state-bad-12345", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none login")))
	if cb == nil || cb.Query().Get("error") != "invalid_request" {
		t.Fatalf("prompt=none login: %v", cb)
	}
}

// TestConcurrentRedemption races several redemptions of one code and of one
// refresh token: at most one may succeed, and a replayed code revokes what
// the winner got.
func TestConcurrentRedemption(t *testing.T) {
	e := newEnv(t)
	e.createUser("olga")
	concurrentRedemption(t, e, newCodeClient(e, ClientSpec{}))
}

func concurrentRedemption(t *testing.T, e *testEnv, c *codeClient) {
	r := c.authorize(e.browser())
	const n = 8
	type result struct {
		tok *oauth2.Token
		err error
	}
	race := func(f func() (*oauth2.Token, error)) []result {
		out := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := f()
				out[i] = result{tok, err}
			}()
		}
		wg.Wait()
		return out
	}
	var winner *oauth2.Token
	for _, res := range race(func() (*oauth2.Token, error) { return c.exchange(r) }) {
		if res.err == nil {
			if winner != nil {
				t.Fatal("one code redeemed twice")
			}
			winner = res.tok
		}
	}
	// Either nobody got tokens (a replay detected before the winner
	// committed revokes the grant), or the winner's tokens were revoked.
	if winner != nil {
		_, claims := jwtParts(t, winner.AccessToken)
		if !e.deny.Revoked(revocation.Token{Issuer: e.issuer, JTI: claims["jti"].(string)}) {
			t.Error("replayed code did not revoke the winner's access token")
		}
		_, err := c.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: winner.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
		if err == nil {
			t.Error("replayed code did not revoke the winner's refresh token")
		}
	}
	if _, err := c.exchange(r); err == nil {
		t.Error("code usable after concurrent replays")
	}

	// Refresh: a fresh family, raced.
	tok := must[*oauth2.Token](t)(c.exchange(c.authorize(e.browser())))
	wins := 0
	for _, res := range race(func() (*oauth2.Token, error) {
		return c.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	}) {
		if res.err == nil {
			wins++
		}
	}
	if wins > 1 {
		t.Fatalf("one refresh token redeemed %d times", wins)
	}
}
