package identity

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/testutil"
)

func TestLoginSuccessContinuesToAuthorize(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	rt := authorizeURL("prompt", "login consent")
	res := b.login(rt, "alice", testPassword)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /login: status %d, want 200 continuation page", res.StatusCode)
	}
	next := field(t, reRefresh, res.body)
	u, err := url.Parse(next)
	if err != nil || u.Path != "/oauth2/authorize" || u.Host != "" || u.Scheme != "" {
		t.Fatalf("continuation %q is not a local authorize URL", next)
	}
	q := u.Query()
	if got := q.Get("prompt"); got != "consent" {
		t.Errorf("prompt after login = %q, want %q (login removed, consent kept)", got, "consent")
	}
	if q.Get("state") != "st-123" || q.Get("client_id") != testClientID {
		t.Errorf("authorize parameters not preserved: %v", q)
	}
	if link := field(t, regexp.MustCompile(`<a href="([^"]+)">continue here</a>`), res.body); link != next {
		t.Errorf("continuation page lacks a visible link to %q", next)
	}
	// The stand-in authorize endpoint now sees the session.
	auth := b.get(next)
	if auth.body != "AUTHORIZE user="+e.user.ID {
		t.Fatalf("authorize after login: %d %q", auth.StatusCode, auth.body)
	}
	usr, authTime, ok := e.svc.CurrentUser(b.sessionRequest("/"))
	if !ok || usr.ID != e.user.ID || !authTime.Equal(e.clock.Now()) {
		t.Fatalf("CurrentUser = %v %v %v", usr, authTime, ok)
	}
	if usr.PasswordHash != "" {
		t.Error("CurrentUser leaked the password hash")
	}
	if n := testutil.MetricValue(e.svc.metrics.logins.WithLabelValues(resultSuccess)); n != 1 {
		t.Errorf("login_attempts_total{result=success} = %v, want 1", n)
	}
}

func TestLoginRedirectsToLoginWithoutSession(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	rt := authorizeURL()
	res := b.get(rt)
	if res.StatusCode != http.StatusFound {
		t.Fatalf("authorize without session: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	want := "/login?return_to=" + url.QueryEscape(rt)
	if loc != want {
		t.Fatalf("Location = %q, want %q", loc, want)
	}
	page := b.get(loc)
	if got := field(t, reReturnTo, page.body); got != rt {
		// rt is built with Encode, so it is already canonical.
		t.Fatalf("login form return_to = %q, want %q", got, rt)
	}
	if !strings.Contains(page.body, "to continue to Demo &lt;App&gt;") {
		t.Errorf("login page does not name the (escaped) client:\n%s", page.body)
	}
}

func TestWrongPasswordAndUnknownUserLookTheSame(t *testing.T) {
	e := newEnv(t, false)
	hashes := func() uint64 { return e.svc.users.h.Computations() }

	b := e.browser()
	before := hashes()
	wrong := b.login(authorizeURL(), "alice", "not the right password")
	if hashes()-before != 1 {
		t.Errorf("wrong password: %d argon2 computations, want 1", hashes()-before)
	}
	before = hashes()
	unknown := b.login(authorizeURL(), "mallory", "not the right password")
	if hashes()-before != 1 {
		t.Errorf("unknown user: %d argon2 computations, want 1 (dummy hash against enumeration)", hashes()-before)
	}
	for name, res := range map[string]*response{"wrong password": wrong, "unknown user": unknown} {
		if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "Incorrect username or password.") {
			t.Errorf("%s: status %d, body lacks the generic message", name, res.StatusCode)
		}
		if b.cookie("sekisho_session") != nil {
			t.Errorf("%s: a session cookie was set", name)
		}
	}
	// Same page apart from the echoed username and the CSRF token.
	norm := func(s, user string) string {
		s = reCSRF.ReplaceAllString(s, "")
		return strings.ReplaceAll(s, user, "USER")
	}
	if norm(wrong.body, "alice") != norm(unknown.body, "mallory") {
		t.Error("failure pages differ between a wrong password and an unknown user")
	}
	if n := testutil.MetricValue(e.svc.metrics.logins.WithLabelValues(resultFailure)); n != 2 {
		t.Errorf("login_attempts_total{result=failure} = %v, want 2", n)
	}
}

func TestDisabledUserCannotLogIn(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.login(authorizeURL(), "alice", testPassword)
	if _, ok := e.currentUser(b); !ok {
		t.Fatal("precondition: logged in")
	}
	if _, err := e.svc.Users().Disable(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.currentUser(b); ok {
		t.Error("session still valid after the user was disabled")
	}
	if len(e.disabled) != 1 || e.disabled[0] != e.user.ID {
		t.Errorf("OnUserDisabled calls = %v, want [%s]", e.disabled, e.user.ID)
	}
	b2 := e.browser()
	res := b2.login(authorizeURL(), "alice", testPassword)
	if !strings.Contains(res.body, "Incorrect username or password.") || b2.cookie("sekisho_session") != nil {
		t.Fatalf("disabled user logged in: %d\n%s", res.StatusCode, res.body)
	}
	if _, err := e.svc.Users().Enable(context.Background(), e.user.ID); err != nil {
		t.Fatal(err)
	}
	if res := b2.login(authorizeURL(), "alice", testPassword); res.StatusCode != http.StatusOK || !reRefresh.MatchString(res.body) {
		t.Fatalf("re-enabled user cannot log in: %d", res.StatusCode)
	}
}

func TestSessionExpires(t *testing.T) {
	e := newEnv(t, false, func(o *Options) { o.SessionTTL = time.Hour })
	b := e.browser()
	b.login(authorizeURL(), "alice", testPassword)
	c := b.cookie("sekisho_session")
	if c == nil {
		t.Fatal("no session cookie")
	}
	e.clock.Advance(59 * time.Minute)
	if _, ok := e.currentUser(b); !ok {
		t.Fatal("session invalid before its TTL")
	}
	e.clock.Advance(time.Minute)
	if _, ok := e.currentUser(b); ok {
		t.Fatal("session still valid at its TTL")
	}
	if res := b.get(authorizeURL()); res.StatusCode != http.StatusFound {
		t.Fatalf("authorize with expired session: %d, want redirect to login", res.StatusCode)
	}
}

func TestSetPasswordKillsSessions(t *testing.T) {
	e := newEnv(t, false)
	b1, b2 := e.browser(), e.browser()
	b1.login(authorizeURL(), "alice", testPassword)
	b2.login(authorizeURL(), "alice", testPassword)
	e.clock.Advance(time.Second)
	if _, err := e.svc.Users().SetPassword(context.Background(), "ALICE", "a brand new passphrase"); err != nil {
		t.Fatal(err)
	}
	for i, b := range []*browser{b1, b2} {
		if _, ok := e.currentUser(b); ok {
			t.Errorf("browser %d still signed in after set-password", i+1)
		}
	}
	if res := e.browser().login(authorizeURL(), "alice", testPassword); !strings.Contains(res.body, "Incorrect username or password.") {
		t.Error("old password still works")
	}
	b3 := e.browser()
	b3.login(authorizeURL(), "alice", "a brand new passphrase")
	if _, ok := e.currentUser(b3); !ok {
		t.Error("new password does not work")
	}
}

func TestSessionFixationRefused(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.login(authorizeURL(), "alice", testPassword)
	first := b.cookie("sekisho_session").Value
	b.login(authorizeURL(), "alice", testPassword)
	second := b.cookie("sekisho_session").Value
	if first == second {
		t.Fatal("login reused the existing session ID")
	}
	// The replaced session is gone from the store.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: "sekisho_session", Value: first})
	if _, _, ok := e.svc.CurrentUser(r); ok {
		t.Fatal("old session still valid after re-login")
	}
}

func TestCookieAttributesPlainHTTP(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	res := b.login(authorizeURL(), "alice", testPassword)
	raw := setCookie(res.Response, "sekisho_session")
	for _, want := range []string{"Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=28800"} {
		if !strings.Contains(raw, want) {
			t.Errorf("session cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "Secure") || strings.Contains(raw, "Domain=") {
		t.Errorf("plain-HTTP session cookie %q must be neither Secure nor domain-scoped", raw)
	}
	if len(strings.SplitN(strings.SplitN(raw, ";", 2)[0], "=", 2)[1]) != 43 {
		t.Errorf("session cookie value is not 256 bits base64url: %q", raw)
	}
}

func TestCookieAttributesTLS(t *testing.T) {
	e := newEnv(t, true)
	b := e.browser()
	page := b.get("/login?return_to=" + url.QueryEscape(authorizeURL()))
	if raw := setCookie(page.Response, "__Host-sekisho_csrf"); !strings.Contains(raw, "Secure") {
		t.Errorf("CSRF cookie under TLS = %q, want __Host- prefix and Secure", raw)
	}
	res := b.login(authorizeURL(), "alice", testPassword)
	raw := setCookie(res.Response, "__Host-sekisho_session")
	for _, want := range []string{"Path=/", "HttpOnly", "SameSite=Lax", "Secure"} {
		if !strings.Contains(raw, want) {
			t.Errorf("TLS session cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "Domain=") {
		t.Errorf("__Host- cookie must not have a Domain: %q", raw)
	}
	if _, ok := e.currentUser(b); !ok {
		t.Fatal("not signed in over TLS")
	}
}

func TestHTTPSIssuerForcesSecureCookies(t *testing.T) {
	e := newEnv(t, false, func(o *Options) { o.Issuer = "https://auth.example" })
	b := e.browser()
	page := b.get("/login")
	if raw := setCookie(page.Response, "__Host-sekisho_csrf"); !strings.Contains(raw, "Secure") {
		t.Fatalf("https issuer over plain HTTP: CSRF cookie %q, want __Host- and Secure", raw)
	}
}

func setCookie(res *http.Response, name string) string {
	for _, v := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, name+"=") {
			return v
		}
	}
	return ""
}

func TestCSRFRequired(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	page := b.get("/login?return_to=" + url.QueryEscape(authorizeURL()))
	token := field(t, reCSRF, page.body)
	good := url.Values{"csrf_token": {token}, "return_to": {authorizeURL()}, "username": {"alice"}, "password": {testPassword}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	cases := []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"missing token", with("csrf_token", ""), nil},
		{"wrong token", with("csrf_token", strings.Repeat("A", 43)), nil},
		{"token twice", func() url.Values { f := with("", ""); f["csrf_token"] = []string{token, token}; return f }(), nil},
		{"cross-site fetch", good, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site fetch", good, []string{"Sec-Fetch-Site", "same-site"}},
		{"foreign origin", good, []string{"Origin", "https://evil.example"}},
	}
	for _, c := range cases {
		res := b.post("/login", c.form, c.hdr...)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.name, res.StatusCode)
		}
		if b.cookie("sekisho_session") != nil {
			t.Fatalf("%s: signed in", c.name)
		}
	}
	// A token for another form is refused.
	other := base64Token(e.svc.csrfMAC(purposeLogout, mustBinding(t, b), nil))
	if res := b.post("/login", with("csrf_token", other)); res.StatusCode != http.StatusForbidden {
		t.Errorf("logout-purpose token accepted for login: %d", res.StatusCode)
	}
	// Another browser's cookie does not match this token.
	b2 := e.browser()
	b2.get("/login")
	if res := b2.post("/login", good); res.StatusCode != http.StatusForbidden {
		t.Errorf("token replayed with another browser's cookie: %d", res.StatusCode)
	}
	// Correct token, same-origin signals (incl. Origin: null, sent under no-referrer) pass.
	res := b.post("/login", good, "Sec-Fetch-Site", "same-origin", "Origin", "null")
	if res.StatusCode != http.StatusOK || !reRefresh.MatchString(res.body) {
		t.Fatalf("valid login refused: %d\n%s", res.StatusCode, res.body)
	}
	res = b.post("/login", with("csrf_token", token), "Origin", e.srv.URL)
	if res.StatusCode != http.StatusOK || !reRefresh.MatchString(res.body) {
		t.Fatalf("valid login with own Origin refused: %d", res.StatusCode)
	}

	// Session-bound forms: consent, logout, revoke.
	for _, path := range []string{"/consent", "/logout", "/account/consents/revoke"} {
		res := b.post(path, url.Values{"return_to": {authorizeURL()}, "decision": {"allow"}, "client_id": {testClientID}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without token: %d, want 403", path, res.StatusCode)
		}
	}
	if _, ok := e.currentUser(b); !ok {
		t.Error("logout without CSRF token ended the session")
	}
	if ok, _ := e.svc.HasConsent(context.Background(), e.user.ID, testClientID, []string{"openid"}); ok {
		t.Error("consent without CSRF token was saved")
	}
}

func mustBinding(t *testing.T, b *browser) []byte {
	t.Helper()
	r := b.sessionRequest("/")
	bind, ok := b.e.svc.readBinding(r)
	if !ok {
		t.Fatal("no CSRF binding cookie")
	}
	return bind
}

func TestLogoutFlow(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.login(authorizeURL(), "alice", testPassword)
	page := b.get("/logout")
	if page.StatusCode != http.StatusOK || !strings.Contains(page.body, "Do you want to sign out of Sekisho?") {
		t.Fatalf("GET /logout: %d\n%s", page.StatusCode, page.body)
	}
	if _, ok := e.currentUser(b); !ok {
		t.Fatal("GET /logout must not end the session")
	}
	res := b.post("/logout", url.Values{"csrf_token": {field(t, reCSRF, page.body)}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/logout" {
		t.Fatalf("POST /logout: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if !strings.Contains(setCookie(res.Response, "sekisho_session"), "Max-Age=0") {
		t.Error("logout did not expire the session cookie")
	}
	if _, ok := e.currentUser(b); ok {
		t.Fatal("still signed in after logout")
	}
	done := b.get("/logout")
	if !strings.Contains(done.body, "You are signed out.") {
		t.Errorf("signed-out page missing:\n%s", done.body)
	}
}

func TestEndSession(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.login(authorizeURL(), "alice", testPassword)
	r := b.sessionRequest("/oauth2/logout")
	w := httptest.NewRecorder()
	uid, err := e.svc.EndSession(w, r)
	if err != nil || uid != e.user.ID {
		t.Fatalf("EndSession = %q, %v", uid, err)
	}
	if _, _, ok := e.svc.CurrentUser(r); ok {
		t.Fatal("session valid after EndSession")
	}
	if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Error("EndSession did not expire the cookie")
	}
	if uid, err := e.svc.EndSession(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)); uid != "" || err != nil {
		t.Errorf("EndSession without session = %q, %v", uid, err)
	}
}

func TestConsentAllowRememberedAndRevocable(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	b := e.browser()
	rt := authorizeURL("prompt", "consent")
	b.login(rt, "alice", testPassword)
	page := b.get(e.svc.ConsentURL(rt))
	if page.StatusCode != http.StatusOK {
		t.Fatalf("consent page: %d\n%s", page.StatusCode, page.body)
	}
	for _, want := range []string{"Demo &lt;App&gt; wants to access your account", "Confirm who you are", "See your name and username",
		"Use the permission “orders:read”", "Signed in as alice"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if ok, _ := e.svc.HasConsent(ctx, e.user.ID, testClientID, []string{"openid"}); ok {
		t.Fatal("consent remembered before the user decided")
	}
	res := b.post("/consent", url.Values{
		"csrf_token": {field(t, reCSRF, page.body)},
		"return_to":  {field(t, reReturnTo, page.body)},
		"decision":   {"allow"},
	})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /consent: %d\n%s", res.StatusCode, res.body)
	}
	next, _ := url.Parse(field(t, reRefresh, res.body))
	if next.Path != "/oauth2/authorize" || next.Query().Has("prompt") {
		t.Errorf("after consent: continuation %q, want authorize without prompt=consent", next)
	}
	for _, c := range []struct {
		scopes []string
		want   bool
	}{
		{[]string{"openid", "profile", "orders:read"}, true},
		{[]string{"openid"}, true},
		{nil, true},
		{[]string{"openid", "email"}, false},
	} {
		if ok, err := e.svc.HasConsent(ctx, e.user.ID, testClientID, c.scopes); ok != c.want || err != nil {
			t.Errorf("HasConsent(%v) = %v, %v; want %v", c.scopes, ok, err, c.want)
		}
	}
	if ok, _ := e.svc.HasConsent(ctx, e.user.ID, "other-client", []string{"openid"}); ok {
		t.Error("consent leaked to another client")
	}
	if b.get(next.RequestURI()).body != "AUTHORIZE user="+e.user.ID {
		t.Error("authorize after allow did not proceed")
	}

	// A later consent for more scopes is merged.
	rt2 := authorizeURL("scope", "openid email")
	page = b.get(e.svc.ConsentURL(rt2))
	b.post("/consent", url.Values{"csrf_token": {field(t, reCSRF, page.body)}, "return_to": {field(t, reReturnTo, page.body)}, "decision": {"allow"}})
	if ok, _ := e.svc.HasConsent(ctx, e.user.ID, testClientID, []string{"openid", "profile", "email", "orders:read"}); !ok {
		t.Error("second consent did not merge with the first")
	}

	// Account page lists it; revoke removes it and calls the hook.
	acct := b.get("/account/consents")
	if acct.StatusCode != http.StatusOK || !strings.Contains(acct.body, "Demo &lt;App&gt;") || !strings.Contains(acct.body, "See your email address") {
		t.Fatalf("account page: %d\n%s", acct.StatusCode, acct.body)
	}
	res = b.post("/account/consents/revoke", url.Values{"csrf_token": {field(t, reCSRF, acct.body)}, "client_id": {testClientID}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account/consents" {
		t.Fatalf("revoke: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if ok, _ := e.svc.HasConsent(ctx, e.user.ID, testClientID, []string{"openid"}); ok {
		t.Error("consent still remembered after revoke")
	}
	if len(e.revoked) != 1 || e.revoked[0] != e.user.ID+"|"+testClientID {
		t.Errorf("OnConsentRevoked calls = %v", e.revoked)
	}
	if acct := b.get("/account/consents"); !strings.Contains(acct.body, "You have not authorized any application.") {
		t.Error("account page still lists the revoked consent")
	}
	if n := testutil.MetricValue(e.svc.metrics.consents.WithLabelValues("allow")); n != 2 {
		t.Errorf("consent_decisions_total{decision=allow} = %v, want 2", n)
	}
}

func TestConsentTTL(t *testing.T) {
	e := newEnv(t, false, func(o *Options) { o.ConsentTTL = 24 * time.Hour })
	b := e.browser()
	rt := authorizeURL()
	b.login(rt, "alice", testPassword)
	page := b.get(e.svc.ConsentURL(rt))
	b.post("/consent", url.Values{"csrf_token": {field(t, reCSRF, page.body)}, "return_to": {field(t, reReturnTo, page.body)}, "decision": {"allow"}})
	ctx := context.Background()
	if ok, _ := e.svc.HasConsent(ctx, e.user.ID, testClientID, []string{"openid"}); !ok {
		t.Fatal("consent not remembered")
	}
	e.clock.Advance(24 * time.Hour)
	if ok, _ := e.svc.HasConsent(ctx, e.user.ID, testClientID, []string{"openid"}); ok {
		t.Fatal("consent remembered past ConsentTTL")
	}
}

func TestConsentDeny(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	rt := authorizeURL("prompt", "consent")
	b.login(rt, "alice", testPassword)
	page := b.get(e.svc.ConsentURL(rt))
	res := b.post("/consent", url.Values{
		"csrf_token": {field(t, reCSRF, page.body)},
		"return_to":  {field(t, reReturnTo, page.body)},
		"decision":   {"deny"},
	})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("deny: %d", res.StatusCode)
	}
	next := field(t, reRefresh, res.body)
	if ok, _ := e.svc.HasConsent(context.Background(), e.user.ID, testClientID, nil); ok {
		t.Fatal("deny remembered a consent")
	}

	// Another query (another request of the same client) does not see it.
	other := b.sessionRequest(authorizeURL("state", "other"))
	if e.svc.ConsentDenied(httptest.NewRecorder(), other) {
		t.Error("denial applied to a different authorize request")
	}
	// Another browser (session) does not see it, even with the cookie copied.
	b2 := e.browser()
	b2.login(rt, "alice", testPassword)
	r2 := b2.sessionRequest(next)
	r2.AddCookie(b.cookie("sekisho_consent_denied"))
	if e.svc.ConsentDenied(httptest.NewRecorder(), r2) {
		t.Error("denial cookie accepted with another session")
	}
	// A forged cookie is ignored.
	forged := b.sessionRequest(next)
	forged.Header.Del("Cookie")
	forged.AddCookie(b.cookie("sekisho_session"))
	forged.AddCookie(&http.Cookie{Name: "sekisho_consent_denied", Value: strings.Repeat("A", 54)})
	if e.svc.ConsentDenied(httptest.NewRecorder(), forged) {
		t.Error("forged denial accepted")
	}

	// The real authorize request sees the denial exactly once.
	if got := b.get(next).body; got != "DENIED" {
		t.Fatalf("authorize after deny = %q, want DENIED", got)
	}
	if got := b.get(next).body; got == "DENIED" {
		t.Fatal("denial was not consumed")
	}
}

func TestConsentDenialExpires(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	rt := authorizeURL()
	b.login(rt, "alice", testPassword)
	page := b.get(e.svc.ConsentURL(rt))
	res := b.post("/consent", url.Values{"csrf_token": {field(t, reCSRF, page.body)}, "return_to": {field(t, reReturnTo, page.body)}, "decision": {"deny"}})
	next := field(t, reRefresh, res.body)
	e.clock.Advance(consentDenialTTL)
	if e.svc.ConsentDenied(httptest.NewRecorder(), b.sessionRequest(next)) {
		t.Fatal("expired denial accepted")
	}
}

func TestConsentPageRequiresSessionAndKnownClient(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	rt := authorizeURL()
	res := b.get(e.svc.ConsentURL(rt))
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != e.svc.LoginURL(rt) {
		t.Fatalf("consent without session: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	b.login(rt, "alice", testPassword)
	res = b.get(e.svc.ConsentURL(authorizeURL("client_id", "nope")))
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(res.body, "The application is unknown or has been disabled.") {
		t.Errorf("unknown client: %d", res.StatusCode)
	}
	res = b.get(e.svc.ConsentURL("https://evil.example/oauth2/authorize?client_id=" + testClientID))
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("absolute return_to on consent page: %d, want 400", res.StatusCode)
	}
}

func TestReturnToOpenRedirectRefused(t *testing.T) {
	e := newEnv(t, false)
	attacks := []string{
		"//evil.com",
		"//evil.com/oauth2/authorize?x=1",
		"/\\evil.com",
		"\\\\evil.com",
		"/%5Cevil.com",
		"https://evil.com",
		"https://evil.com/oauth2/authorize?client_id=x",
		"http:/evil.com",
		"javascript:alert(1)",
		"data:text/html,x",
		"/oauth2/authorize/../../x",
		"/oauth2/authorize/..%2F..%2Fx?a=b",
		"/oauth2/authorize%3Fa=b",
		"/oauth2/authorize/?a=b",
		"/oauth2/authorize?",
		"/oauth2/authorize",
		"/oauth2/authorizex?a=b",
		"/oauth2//authorize?a=b",
		"/OAUTH2/authorize?a=b",
		"%2F%2Fevil.com",
		"%2Foauth2%2Fauthorize?a=b",
		"/oauth2/authorize?a=b#@evil.com",
		"/oauth2/authorize?a=b\r\nLocation: https://evil.com",
		"/oauth2/authorize?a=%zz",
		"/oauth2/authorize?a=1;b=2",
		"/oauth2/authorize?client_id=a&client_id=b",
		" /oauth2/authorize?a=b",
		"/oauth2/authorize?a=b c",
		"/oauth2/authorize?a=\u00e9",
		"/account/consents?x=1",
		"/account/consents/../../evil",
		"/./oauth2/authorize?a=b",
		strings.Repeat("/", 1) + "/" + strings.Repeat("a", 10),
		"/oauth2/authorize?" + strings.Repeat("a=b&", 3000),
	}
	for _, a := range attacks {
		if c, _, k := e.svc.parseReturnTo(a); k != returnInvalid {
			t.Errorf("parseReturnTo(%q) accepted as %q", a, c)
		}
	}
	// End to end: log in with each; the browser must only ever be sent to a
	// local neutral page.
	for _, a := range attacks[:12] {
		b := e.browser()
		res := b.login(a, "alice", testPassword)
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusSeeOther || loc != "/account/consents" {
			t.Errorf("login with return_to %q: %d Location %q, want 303 to /account/consents", a, res.StatusCode, loc)
		}
		if strings.Contains(res.body, "evil") {
			t.Errorf("login with return_to %q: response mentions the target", a)
		}
	}
	// Canonicalization of a valid one.
	c, _, k := e.svc.parseReturnTo("/oauth2/authorize?state=x%20y&client_id=a+b")
	if k != returnAuthorize || c != "/oauth2/authorize?client_id=a+b&state=x+y" {
		t.Errorf("canonical form = %q (%v)", c, k)
	}
	if c, _, k := e.svc.parseReturnTo("/account/consents"); k != returnAccount || c != "/account/consents" {
		t.Errorf("account return_to = %q (%v)", c, k)
	}
}

func TestReturnToWithBasePath(t *testing.T) {
	e := newEnv(t, false, func(o *Options) { o.BasePath = "/auth" })
	if _, _, k := e.svc.parseReturnTo("/auth/oauth2/authorize?a=b"); k != returnAuthorize {
		t.Error("base-path authorize URL refused")
	}
	if _, _, k := e.svc.parseReturnTo("/oauth2/authorize?a=b"); k != returnInvalid {
		t.Error("authorize URL outside the base path accepted")
	}
	if got := e.svc.LoginURL("/auth/oauth2/authorize?a=b"); got != "/auth/login?return_to=%2Fauth%2Foauth2%2Fauthorize%3Fa%3Db" {
		t.Errorf("LoginURL = %q", got)
	}
	b := e.browser()
	if res := b.get("/auth/login"); res.StatusCode != http.StatusOK || !strings.Contains(res.body, `action="/auth/login"`) ||
		!strings.Contains(res.body, `href="/auth/static/sekisho.css?v=`) {
		t.Errorf("base-path login page: %d", res.StatusCode)
	}
}

func TestThrottleLoginPerAccount(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	for i := 0; i < 5; i++ {
		if res := b.login(authorizeURL(), "alice", "wrong password "+string(rune('a'+i))); res.StatusCode != http.StatusOK {
			t.Fatalf("failure %d: status %d", i+1, res.StatusCode)
		}
	}
	// Locked: even the right password is refused, with a generic message,
	// and from another address too.
	other := e.browser()
	res := other.login(authorizeURL(), "Alice", testPassword)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(res.body, "Too many sign-in attempts.") {
		t.Fatalf("6th attempt: %d\n%s", res.StatusCode, res.body)
	}
	if ra := res.Header.Get("Retry-After"); ra != "900" {
		t.Errorf("Retry-After = %q, want 900", ra)
	}
	if other.cookie("sekisho_session") != nil {
		t.Fatal("locked account signed in")
	}
	// An unknown username locks identically (no enumeration through the lock).
	for i := 0; i < 5; i++ {
		b.login(authorizeURL(), "nobody", "wrong password x")
	}
	res2 := b.login(authorizeURL(), "nobody", "wrong password x")
	if res2.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("unknown user not throttled the same way: %d", res2.StatusCode)
	}
	e.clock.Advance(15 * time.Minute)
	if res := other.login(authorizeURL(), "alice", testPassword); res.StatusCode != http.StatusOK || !reRefresh.MatchString(res.body) {
		t.Fatalf("after the window: %d", res.StatusCode)
	}
	if n := testutil.MetricValue(e.svc.metrics.logins.WithLabelValues(resultThrottled)); n != 2 {
		t.Errorf("login_attempts_total{result=throttled} = %v, want 2", n)
	}
}

func TestThrottleLoginPerIP(t *testing.T) {
	e := newEnv(t, false, func(o *Options) { o.Throttle.IPFailures = 4 })
	b := e.browser()
	for i := 0; i < 4; i++ {
		b.login(authorizeURL(), "user"+string(rune('a'+i)), "wrong password")
	}
	res := b.login(authorizeURL(), "alice", testPassword)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(res.body, "Too many sign-in attempts.") {
		t.Fatalf("after 4 failures from one address: %d", res.StatusCode)
	}
	e.clock.Advance(time.Minute)
	if res := b.login(authorizeURL(), "alice", testPassword); !reRefresh.MatchString(res.body) {
		t.Fatalf("after the IP window: %d", res.StatusCode)
	}
}

func TestJapanesePages(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.header.Set("Accept-Language", "ja-JP,ja;q=0.9,en;q=0.5")
	page := b.get("/login")
	if !strings.Contains(page.body, `<html lang="ja">`) || !strings.Contains(page.body, "ユーザー名") || !strings.Contains(page.body, "パスワード") {
		t.Fatalf("Japanese login page:\n%s", page.body)
	}
	// ui_locales in the authorize request wins over Accept-Language.
	b.header.Set("Accept-Language", "ja")
	page = b.get("/login?return_to=" + url.QueryEscape(authorizeURL("ui_locales", "fr en")))
	if !strings.Contains(page.body, `<html lang="en">`) || !strings.Contains(page.body, "Username") {
		t.Errorf("ui_locales=en did not win over Accept-Language: ja")
	}
	b.header.Set("Accept-Language", "en-US")
	page = b.get("/login?ui_locales=ja")
	if !strings.Contains(page.body, `<html lang="ja">`) {
		t.Error("ui_locales=ja on the page URL ignored")
	}
	// Failure message in Japanese.
	b.header.Set("Accept-Language", "ja")
	res := b.login(authorizeURL(), "alice", "wrong password!")
	if !strings.Contains(res.body, "ユーザー名またはパスワードが正しくありません。") {
		t.Errorf("Japanese failure message missing:\n%s", res.body)
	}
	b.login(authorizeURL(), "alice", testPassword)
	cp := b.get(e.svc.ConsentURL(authorizeURL()))
	for _, want := range []string{`lang="ja"`, "があなたのアカウントへのアクセスを求めています", "本人確認", "許可する", "拒否する"} {
		if !strings.Contains(cp.body, want) {
			t.Errorf("Japanese consent page lacks %q", want)
		}
	}
	// Unsupported languages fall back to English.
	b.header.Set("Accept-Language", "fr-FR, de;q=0.8")
	if page := b.get("/logout"); !strings.Contains(page.body, `<html lang="en">`) {
		t.Error("fallback is not English")
	}
}

var (
	reScript      = regexp.MustCompile(`(?i)<script`)
	reStyleAttr   = regexp.MustCompile(`(?i)\sstyle\s*=`)
	reStyleTag    = regexp.MustCompile(`(?i)<style`)
	reEventAttr   = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	reExternalRef = regexp.MustCompile(`(?i)(src|href|action)="(https?:)?//`)
)

// TestPagesStrictCSPNoInline renders every page in both languages and checks
// headers and the HTML itself.
func TestPagesStrictCSPNoInline(t *testing.T) {
	e := newEnv(t, false)
	for _, lang := range []string{"en", "ja"} {
		b := e.browser()
		b.header.Set("Accept-Language", lang)
		var pages []*response
		pages = append(pages, b.get("/login?return_to="+url.QueryEscape(authorizeURL()))) // login
		pages = append(pages, b.get("/logout"))                                           // signed out
		pages = append(pages, b.get("/consent?return_to=%2F%2Fevil"))                     // error
		pages = append(pages, b.login(authorizeURL(), "alice", "wrong password!!"))       // login with error
		pages = append(pages, b.login(authorizeURL(), "alice", testPassword))             // continue
		pages = append(pages, b.get(e.svc.ConsentURL(authorizeURL())))                    // consent
		pages = append(pages, b.get("/logout"))                                           // logout confirm
		pages = append(pages, b.get("/account/consents"))                                 // consents (empty)
		cp := pages[5]
		b.post("/consent", url.Values{"csrf_token": {field(t, reCSRF, cp.body)}, "return_to": {field(t, reReturnTo, cp.body)}, "decision": {"allow"}})
		pages = append(pages, b.get("/account/consents")) // consents (listed)
		for i, p := range pages {
			h := p.Header
			if got := h.Get("Content-Security-Policy"); got != pageCSP {
				t.Errorf("%s page %d: CSP %q", lang, i, got)
			}
			for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
				"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
				if h.Get(k) != v {
					t.Errorf("%s page %d: %s = %q, want %q", lang, i, k, h.Get(k), v)
				}
			}
			for _, re := range []*regexp.Regexp{reScript, reStyleAttr, reStyleTag, reEventAttr, reExternalRef} {
				if loc := re.FindStringIndex(p.body); loc != nil {
					t.Errorf("%s page %d contains %q", lang, i, p.body[loc[0]:min(loc[1]+20, len(p.body))])
				}
			}
			if !strings.Contains(p.body, `<html lang="`+lang+`">`) {
				t.Errorf("page %d: not lang=%s", i, lang)
			}
			if !strings.Contains(p.body, `<label for="username">`) && strings.Contains(p.body, `id="username"`) {
				t.Errorf("page %d: username input without label", i)
			}
		}
		if !strings.Contains(pages[0].body, `autocomplete="username"`) || !strings.Contains(pages[0].body, `autocomplete="current-password"`) {
			t.Error("login form lacks autocomplete hints")
		}
	}
}

func TestStaticStylesheet(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	page := b.get("/login")
	m := regexp.MustCompile(`href="(/static/sekisho\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatal("login page does not link the versioned stylesheet")
	}
	res := b.get(m[1])
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/css; charset=utf-8" ||
		!strings.Contains(res.Header.Get("Cache-Control"), "max-age=31536000") || !strings.Contains(res.body, ".card") {
		t.Fatalf("stylesheet: %d %v", res.StatusCode, res.Header)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+m[1], nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	if res2 := b.do(req); res2.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d, want 304", res2.StatusCode)
	}
	if res := b.get("/static/other.css"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown static file: %d", res.StatusCode)
	}
	if res := b.get("/static/..%2Fweb.go"); res.StatusCode != http.StatusNotFound {
		t.Errorf("static traversal: %d", res.StatusCode)
	}
}

func TestRehashOnLogin(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	// A user whose hash has older (different) parameters.
	old, err := NewPasswordHasher(PasswordOptions{Argon2: Argon2Params{Memory: minArgon2Memory, Time: 2, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	phc, err := old.Hash(ctx, "an older passphrase")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := e.st.GetUserByUsername(ctx, "alice")
	u.PasswordHash = phc
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	if res := b.login("", "alice", "an older passphrase"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with old-parameter hash: %d", res.StatusCode)
	}
	u, _ = e.st.GetUserByUsername(ctx, "alice")
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("hash not upgraded: %q", u.PasswordHash[:30])
	}
	if _, ok := e.currentUser(b); !ok {
		t.Error("rehash ended the session")
	}
	if res := e.browser().login("", "alice", "an older passphrase"); res.StatusCode != http.StatusSeeOther {
		t.Error("password stopped working after rehash")
	}
}

func TestUserManagement(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	us := e.svc.Users()
	cases := []struct {
		user, pass, email string
		want              error
	}{
		{"bob", "short", "", ErrPasswordTooShort},
		{"bob", strings.Repeat("x", 1025), "", ErrPasswordTooLong},
		{"bob", "valid passphrase\xff", "", ErrPasswordEncoding},
		{"", testPassword, "", ErrInvalidUsername},
		{"-bob", testPassword, "", ErrInvalidUsername},
		{"bob smith", testPassword, "", ErrInvalidUsername},
		{"bob", testPassword, "Bob <bob@example.com>", ErrInvalidEmail},
		{"ALICE", testPassword, "", ErrUserExists},
		{"123e4567-e89b-42d3-a456-426614174000", testPassword, "", ErrInvalidUsername},
	}
	for _, c := range cases {
		if _, err := us.Create(ctx, c.user, c.pass, c.email, ""); !errors.Is(err, c.want) {
			t.Errorf("Create(%q, len %d, %q) = %v, want %v", c.user, len(c.pass), c.email, err, c.want)
		}
	}
	bob, err := us.Create(ctx, "bob.smith@corp", "twelve chars", "bob@example.com", "ボブ")
	if err != nil {
		t.Fatal(err)
	}
	if !looksLikeUserID(bob.ID) || bob.PasswordHash != "" {
		t.Errorf("created user = %+v", bob)
	}
	list, err := us.List(ctx, store.Page{})
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %d users, %v", len(list), err)
	}
	for _, u := range list {
		if u.PasswordHash != "" {
			t.Error("List leaked a password hash")
		}
	}
	if got, err := us.Get(ctx, bob.ID); err != nil || got.Username != "bob.smith@corp" {
		t.Errorf("Get by ID = %v, %v", got, err)
	}
	if _, err := us.Disable(ctx, "nobody"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("Disable(unknown) = %v", err)
	}
	if _, err := us.SetPassword(ctx, "bob.smith@corp", "short"); !errors.Is(err, ErrPasswordTooShort) {
		t.Errorf("SetPassword(short) = %v", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	st := openStore(t, nil)
	base := Options{Issuer: "https://auth.example", Secret: []byte(testSecret), Password: fastPasswords}
	bad := map[string]func(*Options){
		"no issuer":        func(o *Options) { o.Issuer = "" },
		"relative issuer":  func(o *Options) { o.Issuer = "/auth" },
		"ftp issuer":       func(o *Options) { o.Issuer = "ftp://x" },
		"short secret":     func(o *Options) { o.Secret = []byte("short") },
		"bad base path":    func(o *Options) { o.BasePath = "auth/" },
		"dotted base path": func(o *Options) { o.BasePath = "/a/../b" },
		"cookie prefix":    func(o *Options) { o.CookieName = "__Host-x" },
		"cookie chars":     func(o *Options) { o.CookieName = "a;b" },
		"ttl":              func(o *Options) { o.SessionTTL = time.Second },
		"scope locale":     func(o *Options) { o.ScopeDescriptions = map[string]map[string]string{"x": {"fr": "x"}} },
		"argon2 memory":    func(o *Options) { o.Password.Argon2.Memory = 1024 },
		"min length":       func(o *Options) { o.Password.MinLength = 4 },
		"throttle":         func(o *Options) { o.Throttle.AccountFailures = -1 },
	}
	for name, f := range bad {
		o := base
		f(&o)
		if _, err := New(st, o); err == nil {
			t.Errorf("%s: New accepted invalid options", name)
		}
	}
	if _, err := New(st, base); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
}

func TestScopeDescriptionsOverride(t *testing.T) {
	e := newEnv(t, false, func(o *Options) {
		o.ScopeDescriptions = map[string]map[string]string{"orders:read": {"en": "Read your orders", "ja": "注文の参照"}}
	})
	b := e.browser()
	b.login(authorizeURL(), "alice", testPassword)
	if page := b.get(e.svc.ConsentURL(authorizeURL())); !strings.Contains(page.body, "Read your orders") {
		t.Error("configured scope description not shown")
	}
}

// A password change that did not go through SetPassword (another node, a
// restore) still invalidates older sessions.
func TestSessionOlderThanPasswordChangeInvalid(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.login(authorizeURL(), "alice", testPassword)
	e.clock.Advance(time.Second)
	ctx := context.Background()
	u, _ := e.st.GetUser(ctx, e.user.ID)
	u.PasswordChangedAt = e.clock.Now()
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.currentUser(b); ok {
		t.Fatal("session that predates the password change is still valid")
	}
}
