package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// chromiumPath is Debian's chromium package (CI's .ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

// needChromium skips the test when Chromium is absent, unless
// SEKISHO_TEST_SERVICES=require makes that a failure.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("SEKISHO_TEST_SERVICES") == "require" {
			t.Fatalf("headless Chromium is required (SEKISHO_TEST_SERVICES=require) but %s is missing: %v", chromiumPath, err)
		}
		t.Skipf("headless Chromium not installed (%s: %v); install Debian's chromium package, or set SEKISHO_TEST_SERVICES=require to fail instead", chromiumPath, err)
	}
}

// newChromium starts a headless Chromium bound to ctx with its own profile
// directory and no network activity of its own. It is stopped (and its
// profile removed) in t.Cleanup.
func newChromium(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "sekisho-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's helpers may still write for a moment after it exits.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-proxy-server", true), // loopback only, whatever the environment says
	)
	bctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		// Close the browser gracefully, waiting at most 10 s for it to exit.
		sctx, scancel := context.WithTimeout(bctx, 10*time.Second)
		defer scancel()
		_ = chromedp.Cancel(sctx)
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// cspDirectives parses a Content-Security-Policy header.
func cspDirectives(h string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(h, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[strings.ToLower(f[0])] = f[1:]
		}
	}
	return out
}

// TestBrowserCodeFlow runs the login and consent pages in headless
// Chromium: the user signs in (Japanese UI via ui_locales=ja), allows the
// client, and the browser lands on the client's redirect URI with code,
// state and iss; the code is redeemed with x/oauth2 and the token opens
// the protected route. The pages' CSP forbids script, which Chromium
// enforces.
func TestBrowserCodeFlow(t *testing.T) {
	t.Parallel()
	needChromium(t)
	e := newASEnv(t, asOptions{})
	c := e.newCodeClient(t, "ブラウザアプリ")
	uid := e.createUser(t, "carol")
	e.start()
	ctx := oidc.ClientContext(e.ctx(), e.hc)

	state, nonce, verifier := asRandom(t, 16), asRandom(t, 16), oauth2.GenerateVerifier()
	authURL := c.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce), oauth2.SetAuthURLParam("ui_locales", "ja"))

	t.Run("CSP forbids script", func(t *testing.T) {
		_, p := e.newBrowser().drive(t, authURL)
		if p.URL.Path != "/oauth2/ui/login" || p.Resp.StatusCode != http.StatusOK {
			t.Fatalf("authorize led to %s (%d), want the login page", p.URL.Path, p.Resp.StatusCode)
		}
		h := p.Resp.Header.Get("Content-Security-Policy")
		csp := cspDirectives(h)
		script, ok := csp["script-src"]
		if !ok {
			script = csp["default-src"]
		}
		if !slices.Equal(script, []string{"'none'"}) {
			t.Errorf("CSP %q allows script (effective script-src %v), want 'none'", h, script)
		}
		if _, ok := csp["script-src-elem"]; ok {
			t.Errorf("CSP %q relaxes script-src-elem", h)
		}
		if !slices.Equal(csp["frame-ancestors"], []string{"'none'"}) || strings.Contains(h, "unsafe-") {
			t.Errorf("CSP %q: want frame-ancestors 'none' and no unsafe-* source", h)
		}
		if strings.Contains(strings.ToLower(string(p.Body)), "<script") {
			t.Errorf("the login page contains a script element")
		}
	})

	b := newChromium(t, ctx)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			loc, _ := chromedp.Run(b, chromedp.Location())
			t.Fatalf("browser: %s: %v (at %s)", what, err, loc)
		}
	}
	doc, err := chromedp.Run(b, chromedp.NavigateResponse(authURL))
	step("open the authorize URL", err)
	if doc.Status != http.StatusOK || !strings.Contains(doc.URL, "/oauth2/ui/login") {
		t.Fatalf("authorize URL ended at %s (%d), want the login page", doc.URL, doc.Status)
	}
	for k, v := range doc.Headers {
		if strings.EqualFold(k, "Content-Security-Policy") {
			if script := cspDirectives(fmt.Sprint(v))["script-src"]; script != nil && !slices.Equal(script, []string{"'none'"}) {
				t.Errorf("the browser received a CSP that allows script: %v", v)
			}
		}
	}
	step("login form", chromedp.Do(b, chromedp.WaitVisible(chromedp.ID("username"))))
	lang, err := chromedp.Run(b, chromedp.AttributeValue(chromedp.CSS("html"), "lang"))
	step("html lang", err)
	loginH1, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("h1")))
	step("login heading", err)
	// An inline script injected into the page must be blocked by its CSP.
	scriptRan, err := chromedp.Run(b, chromedp.Evaluate[bool](`(() => { window.__sekishoE2E = false;
		const s = document.createElement("script"); s.textContent = "window.__sekishoE2E = true";
		document.head.appendChild(s); return window.__sekishoE2E; })()`))
	step("inject a script", err)
	step("sign in", chromedp.Do(b,
		chromedp.SendKeys(chromedp.ID("username"), "carol"),
		chromedp.SendKeys(chromedp.ID("password"), asUserPassword),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`)),
	))
	consentH1, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("h1")))
	step("consent heading", err)
	allow, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(`button[name=decision][value=allow]`)))
	step("allow button", err)
	step("allow", chromedp.Do(b, chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`))))

	if lang.Value != "ja" || loginH1 != "ログイン" {
		t.Errorf("login page with ui_locales=ja: lang %q, heading %q; want ja and ログイン", lang.Value, loginH1)
	}
	if !strings.Contains(consentH1, "ブラウザアプリ") || !strings.Contains(consentH1, "アクセス") || strings.TrimSpace(allow) != "許可する" {
		t.Errorf("consent page: heading %q, allow button %q; want Japanese text naming the client", consentH1, allow)
	}
	if scriptRan {
		t.Error("an inline script injected into the login page ran: the CSP does not block script")
	}

	var q map[string][]string
	select {
	case q = <-c.cb.ch:
	case <-ctx.Done():
		t.Fatal("the browser never reached the client's redirect URI")
	}
	step("callback page", chromedp.Do(b, chromedp.WaitVisible(chromedp.ID("done"))))
	landed, err := chromedp.Run(b, chromedp.Location())
	step("location", err)
	if !strings.HasPrefix(landed, c.cb.URL+"?") {
		t.Errorf("browser ended at %s, want the redirect URI %s", landed, c.cb.URL)
	}
	get := func(k string) string {
		if len(q[k]) != 1 {
			return ""
		}
		return q[k][0]
	}
	if get("code") == "" || get("state") != state || get("iss") != e.issuer || get("error") != "" {
		t.Fatalf("authorization response code %v state %q iss %q error %q; want a code, state %q, iss %q",
			get("code") != "", get("state"), get("iss"), get("error"), state, e.issuer)
	}

	tok, err := c.conf.Exchange(ctx, get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange the browser's code: %v", err)
	}
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: c.id}).Verify(ctx, raw)
	if err != nil || idt.Subject != uid || idt.Nonce != nonce {
		t.Errorf("ID token: err %v, sub/nonce match %v", err, err == nil && idt.Subject == uid && idt.Nonce == nonce)
	}
	e.wantAPI(t, "access token from the browser flow", tok.AccessToken, http.StatusOK)

	// Without ui_locales the pages follow Accept-Language (headless
	// Chromium: en-US) and are in English.
	step("open the login page", chromedp.Do(b, chromedp.Navigate(e.issuer+"/oauth2/ui/login")))
	enH1, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("h1")))
	step("heading", err)
	if enH1 != "Sign in" {
		t.Errorf("login page without ui_locales: heading %q, want Sign in", enH1)
	}
}
