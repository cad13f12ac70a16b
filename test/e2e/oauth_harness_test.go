package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

// Helpers shared by the authorization-server tests (oauth_*_test.go and
// browser_test.go). Every identifier here starts with "as" or "oauth" so it
// cannot collide with the gateway tests of the same package.

// oauthTestTimeout bounds one authorization-server test end to end.
const oauthTestTimeout = 60 * time.Second

// asUserPassword is the password of every user the tests create (the
// server requires at least 12 characters).
const asUserPassword = "correct horse battery staple"

// asAdminToken authenticates the CLI's revocation notice to the running
// server (admin.token must be at least 32 characters).
const asAdminToken = "e2e-oauth-admin-token-0123456789abcdef"

// asConfig is the deployment every test starts from: the authorization
// server on the listener whose URL is the issuer, the built-in issuer
// trusted for audience "api", and /api protected by it with scope read.
const asConfig = `
version: 1
data_dir: "@DATA@"
server:
  listeners:
    - name: public
      address: "@ADDR@"
admin:
  address: "@ADMIN@"
@ADMINTOKEN@
authorization_server:
  enabled: true
  issuer: "@ISSUER@"
  master_key: "@MASTER@"
@CODETTL@
issuers:
  sekisho:
    builtin: true
    audiences: [api]
upstreams:
  app:
    targets:
      - url: "@UPSTREAM@"
routes:
  - name: api
    match: {path: /api}
    upstream: app
    auth: {jwt: {issuers: [sekisho]}}
    authorize: {scopes: {all_of: [read]}}
@EXTRA@
`

// asEnv is one deployment under test: its config file and data directory,
// the recording upstream behind /api, and (once started) the server.
type asEnv struct {
	t         *testing.T
	dir       string
	cfgPath   string
	issuer    string // http://127.0.0.1:PORT, equal to the listener URL
	adminAddr string
	up        *upstream
	gw        *gateway
	hc        *http.Client // no redirects, no proxy, bounded
}

// asOptions varies the deployment.
type asOptions struct {
	// adminToken puts the admin listener on a fixed port with admin.token,
	// so the CLI can notify the running server of revocations.
	adminToken bool
	// codeTTL sets authorization_server.code_ttl (e.g. "5s"); "" = default.
	codeTTL string
	// extra is appended to the config as top-level YAML (e.g. revocation).
	extra string
}

// newASEnv writes the config (issuer = a free loopback port, fresh master
// key) without starting the server, so clients and users can be created
// with the CLI first.
func newASEnv(t *testing.T, o asOptions) *asEnv {
	t.Helper()
	e := &asEnv{t: t, dir: t.TempDir(), hc: newClient(t)}
	e.cfgPath = filepath.Join(e.dir, "sekisho.yaml")
	addr := deadAddr(t) // a port free right now; the issuer must name it
	e.issuer = "http://" + addr
	e.up = newUpstream(t, "api", nil)
	e.adminAddr = "127.0.0.1:0"
	tokenLine := ""
	if o.adminToken {
		e.adminAddr = deadAddr(t)
		tokenLine = "  token: \"" + asAdminToken + "\""
	}
	master := base64.StdEncoding.EncodeToString(randBytes(t, 32))
	codeTTLLine := ""
	if o.codeTTL != "" {
		codeTTLLine = "  code_ttl: " + o.codeTTL
	}
	cfg := configText(asConfig, e.dir, "ADDR", addr, "ADMIN", e.adminAddr, "ADMINTOKEN", tokenLine,
		"ISSUER", e.issuer, "MASTER", master, "UPSTREAM", e.up.URL, "CODETTL", codeTTLLine, "EXTRA", o.extra)
	writeFileAtomic(t, e.cfgPath, []byte(cfg))
	return e
}

// start runs `sekisho serve` on the config and checks that the listener is
// the issuer URL. Call it (and restart) from the test's own goroutine, not
// from a subtest: the process belongs to the top-level test.
func (e *asEnv) start() {
	e.t.Helper()
	e.gw = startGatewayFile(e.t, e.dir, e.cfgPath)
	if got := e.gw.URL("http"); got != e.issuer {
		e.t.Fatalf("listener %s is not the issuer %s", got, e.issuer)
	}
}

// restart stops the server (SIGTERM, must exit 0) and starts it again on
// the same config, data directory and port.
func (e *asEnv) restart() {
	e.t.Helper()
	e.gw.signal(syscall.SIGTERM, true)
	code, ok := e.gw.waitExit(stopTimeout)
	if !ok {
		e.t.Fatalf("sekisho did not stop within %s of SIGTERM", stopTimeout)
	}
	if code != 0 {
		e.t.Fatalf("sekisho exited with %d on SIGTERM\nstderr:\n%s", code, tail(e.gw.stderr.Lines(), 20))
	}
	e.start()
}

// cli runs `sekisho GROUP VERB --config F args...` with stdin.
func (e *asEnv) cli(t testing.TB, stdin string, group, verb string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{group, verb, "--config", e.cfgPath}, args...)
	cmd := exec.CommandContext(ctx, sekishoBin, argv...)
	cmd.Dir = e.dir
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sekisho %s: timed out", strings.Join(argv, " "))
	}
	return exitCodeOf(err), out.String(), errOut.String()
}

// mustCLI is cli that fails the test on a non-zero exit.
func (e *asEnv) mustCLI(t testing.TB, stdin string, group, verb string, args ...string) string {
	t.Helper()
	code, out, errOut := e.cli(t, stdin, group, verb, args...)
	if code != 0 {
		t.Fatalf("sekisho %s %s %s: exit %d\nstdout: %s\nstderr: %s", group, verb, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

var (
	asClientIDRe     = regexp.MustCompile(`(?m)^client_id:\s+(\S+)$`)
	asClientSecretRe = regexp.MustCompile(`(?m)^client_secret:\s+(\S+)$`)
	asUserIDRe       = regexp.MustCompile(`user (\S+) created \(id (\S+)\)`)
)

// createClient registers a client with the CLI and returns its ID and the
// secret printed once ("" for private_key_jwt and public clients).
func (e *asEnv) createClient(t testing.TB, args ...string) (id, secret string) {
	t.Helper()
	out := e.mustCLI(t, "", "clients", "create", args...)
	m := asClientIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("clients create printed no client_id:\n%s", out)
	}
	if s := asClientSecretRe.FindStringSubmatch(out); s != nil {
		secret = s[1]
	}
	return m[1], secret
}

// createUser creates a user (password on standard input) and returns its ID.
func (e *asEnv) createUser(t testing.TB, username string) string {
	t.Helper()
	out := e.mustCLI(t, asUserPassword+"\n", "users", "create", "--username", username, "--email", username+"@example.test")
	m := asUserIDRe.FindStringSubmatch(out)
	if m == nil || m[1] != username {
		t.Fatalf("users create: unexpected output:\n%s", out)
	}
	return m[2]
}

func (e *asEnv) tokenURL() string { return e.issuer + "/oauth2/token" }

// endpoint is the x/oauth2 endpoint of the server (client_secret_basic).
func (e *asEnv) endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: e.issuer + "/oauth2/authorize", TokenURL: e.tokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
}

// ctx returns a context bounded by oauthTestTimeout that makes x/oauth2 and
// go-oidc use the test's HTTP client.
func (e *asEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), oauthTestTimeout)
	e.t.Cleanup(cancel)
	return context.WithValue(ctx, oauth2.HTTPClient, e.hc)
}

// postForm POSTs an OAuth form; with id != "" it authenticates with HTTP
// Basic (client_secret_basic). The body is decoded as a JSON object.
func (e *asEnv) postForm(t testing.TB, path string, form url.Values, id, secret string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		// RFC 6749 §2.3.1: form-urlencode, then Basic.
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST %s: read: %v", path, err)
	}
	var m map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("POST %s: status %d, body is not JSON: %q", path, resp.StatusCode, b)
		}
	}
	return resp, m
}

// clientCredentials gets an access token with client_secret_basic.
func (e *asEnv) clientCredentials(t testing.TB, id, secret, scope string) string {
	t.Helper()
	resp, m := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, id, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client_credentials for %s: %d %v", id, resp.StatusCode, m)
	}
	at, _ := m["access_token"].(string)
	if at == "" {
		t.Fatalf("client_credentials for %s: no access_token in %v", id, m)
	}
	return at
}

// oauthErr asserts an RFC 6749 §5.2 error response: status, JSON error
// code, no-store, and (for 401 after Basic authentication) a
// WWW-Authenticate challenge.
func oauthErr(t testing.TB, what string, resp *http.Response, m map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || m["error"] != code {
		t.Errorf("%s: status %d error %v (%v), want %d %s", what, resp.StatusCode, m["error"], m["error_description"], status, code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
	if _, leak := m["access_token"]; leak {
		t.Errorf("%s: error response carries an access_token", what)
	}
}

// callAPI calls the protected route with a bearer token and returns the
// status; it checks that refusals never reach the upstream.
func (e *asEnv) callAPI(t testing.TB, token string) int {
	t.Helper()
	before := e.up.Count()
	hdr := map[string]string{}
	if token != "" {
		hdr["Authorization"] = "Bearer " + token
	}
	resp, body := do(t, e.hc, http.MethodGet, e.issuer+"/api/items", hdr, nil)
	reached := e.up.Count() > before
	if resp.StatusCode == http.StatusOK && !reached {
		t.Errorf("/api answered 200 without reaching the upstream: %s", body)
	}
	if resp.StatusCode != http.StatusOK && reached {
		t.Errorf("/api answered %d but the upstream received the request", resp.StatusCode)
	}
	if resp.StatusCode == http.StatusUnauthorized && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("/api 401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
	}
	return resp.StatusCode
}

// wantAPI asserts the status of /api for token.
func (e *asEnv) wantAPI(t testing.TB, what, token string, status int) {
	t.Helper()
	if got := e.callAPI(t, token); got != status {
		t.Errorf("%s: /api answered %d, want %d", what, got, status)
	}
}

// jwksKids returns the kids of the published key set.
func (e *asEnv) jwksKids(t testing.TB) []string {
	t.Helper()
	resp, body := do(t, e.hc, http.MethodGet, e.issuer+"/oauth2/jwks", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/oauth2/jwks: %d %s", resp.StatusCode, body)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("/oauth2/jwks is not a JWK Set: %v: %s", err, body)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// jwtParts decodes (without verifying) a compact JWS's header and claims.
func jwtParts(t testing.TB, tok string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS (%d parts)", len(parts))
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWS segment is not base64url: %v", err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("JWS segment is not a JSON object: %v", err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

// numClaim returns a NumericDate claim as an integer.
func numClaim(t testing.TB, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s missing or not a number: %v", name, claims[name])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s is not an integer: %v", name, n)
	}
	return v
}

// audClaim returns aud as a list (it may be a string or an array).
func audClaim(claims map[string]any) []string {
	switch v := claims["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, a := range v {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// ---------------------------------------------------------------------------
// The client's redirect URI

// asCallback is the client application's redirect_uri endpoint: a loopback
// server that records every authorization response it receives.
type asCallback struct {
	srv *httptest.Server
	URL string // the registered redirect URI
	mu  sync.Mutex
	got []url.Values
	ch  chan url.Values
}

func newASCallback(t *testing.T) *asCallback {
	cb := &asCallback{ch: make(chan url.Values, 16)}
	cb.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cb" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		cb.mu.Lock()
		cb.got = append(cb.got, q)
		cb.mu.Unlock()
		select {
		case cb.ch <- q:
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><title>callback</title><p id="done">received</p>`)
	}))
	cb.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	cb.srv.Start()
	t.Cleanup(cb.srv.Close)
	cb.URL = cb.srv.URL + "/cb"
	return cb
}

// port is the callback server's port.
func (cb *asCallback) port() int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(cb.srv.URL, "http://"))
	n, _ := strconv.Atoi(p)
	return n
}

// ---------------------------------------------------------------------------
// A scripted browser for the login and consent pages

// asBrowser drives the identity pages like a browser without JavaScript:
// cookie jar, redirects followed by hand (so each hop can be checked), HTML
// forms parsed and posted with their hidden fields (CSRF token), and the
// pages' meta-refresh continuations followed.
type asBrowser struct {
	e *asEnv
	c *http.Client
}

func (e *asEnv) newBrowser() *asBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := newClient(e.t)
	c.Jar = jar
	return &asBrowser{e: e, c: c}
}

// asPage is one HTML response.
type asPage struct {
	URL  *url.URL
	Resp *http.Response
	Body []byte
}

func (b *asBrowser) send(t testing.TB, req *http.Request) *asPage {
	t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: read: %v", req.Method, req.URL.Path, err)
	}
	return &asPage{URL: req.URL, Resp: resp, Body: body}
}

func (b *asBrowser) get(t testing.TB, u string) *asPage {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.send(t, req)
}

// drive GETs u and follows redirects while they stay on the issuer's
// origin. It returns the first redirect that leaves the origin (the
// authorization response to the client, not fetched) or the final page.
func (b *asBrowser) drive(t testing.TB, u string) (cb *url.URL, p *asPage) {
	t.Helper()
	origin, _ := url.Parse(b.e.issuer)
	for hop := 0; hop < 10; hop++ {
		p = b.get(t, u)
		if p.Resp.StatusCode < 300 || p.Resp.StatusCode > 399 {
			return nil, p
		}
		loc, err := p.URL.Parse(p.Resp.Header.Get("Location"))
		if err != nil || p.Resp.Header.Get("Location") == "" {
			t.Fatalf("GET %s: %d with bad Location %q", p.URL.Path, p.Resp.StatusCode, p.Resp.Header.Get("Location"))
		}
		if loc.Scheme != origin.Scheme || loc.Host != origin.Host {
			return loc, p
		}
		u = loc.String()
	}
	t.Fatalf("more than 10 redirects starting at %s", u)
	return nil, nil
}

// asForm is a parsed HTML form.
type asForm struct {
	Action  string
	Fields  url.Values // hidden and text inputs with their values
	Buttons url.Values // submit buttons' name=value
}

// forms parses every POST form of the page.
func (p *asPage) forms(t testing.TB) []asForm {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(p.Body))
	if err != nil {
		t.Fatalf("page %s is not HTML: %v", p.URL.Path, err)
	}
	var out []asForm
	var cur *asForm
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := func(k string) string {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			switch n.Data {
			case "form":
				if strings.EqualFold(attr("method"), "post") {
					out = append(out, asForm{Action: attr("action"), Fields: url.Values{}, Buttons: url.Values{}})
					cur = &out[len(out)-1]
					for c := n.FirstChild; c != nil; c = c.NextSibling {
						walk(c)
					}
					cur = nil
					return
				}
			case "input":
				if cur != nil && attr("name") != "" {
					cur.Fields.Add(attr("name"), attr("value"))
				}
			case "button":
				if cur != nil && attr("name") != "" {
					cur.Buttons.Add(attr("name"), attr("value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// refresh returns the meta-refresh target of a continuation page ("" if none).
func (p *asPage) refresh(t testing.TB) string {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(p.Body))
	if err != nil {
		return ""
	}
	var target string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "meta" {
			var equiv, content string
			for _, a := range n.Attr {
				switch strings.ToLower(a.Key) {
				case "http-equiv":
					equiv = a.Val
				case "content":
					content = a.Val
				}
			}
			if strings.EqualFold(equiv, "refresh") {
				if _, after, ok := strings.Cut(content, "url="); ok {
					target = after
				}
			}
		}
		for c := n.FirstChild; c != nil && target == ""; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return target
}

// text returns the page's visible text (for language checks).
func (p *asPage) text() string {
	doc, err := html.Parse(bytes.NewReader(p.Body))
	if err != nil {
		return ""
	}
	var sb strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return sb.String()
}

// submit posts the page's only POST form with its fields plus set, as a
// same-origin browser form submission would.
func (b *asBrowser) submit(t testing.TB, p *asPage, set url.Values) *asPage {
	t.Helper()
	forms := p.forms(t)
	if len(forms) != 1 {
		t.Fatalf("page %s has %d POST forms, want 1:\n%s", p.URL.Path, len(forms), p.Body)
	}
	f := forms[0]
	if f.Fields.Get("csrf_token") == "" {
		t.Errorf("form on %s has no CSRF token", p.URL.Path)
	}
	for k, v := range set {
		f.Fields[k] = v
	}
	action, err := p.URL.Parse(f.Action)
	if err != nil {
		t.Fatalf("form action %q: %v", f.Action, err)
	}
	req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(f.Fields.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.issuer)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.send(t, req)
}

// continuation asserts the identity pages' answer to a successful POST:
// 200 with a meta refresh (deliberately not a 303, see identity.continueTo)
// and no Location, and returns the absolute refresh target.
func (b *asBrowser) continuation(t testing.TB, what string, p *asPage) string {
	t.Helper()
	if p.Resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: POST answered %d, want 200 with a meta refresh:\n%s", what, p.Resp.StatusCode, p.Body)
	}
	if loc := p.Resp.Header.Get("Location"); loc != "" {
		t.Errorf("%s: unexpected Location %q on the continuation page", what, loc)
	}
	target := p.refresh(t)
	if target == "" {
		t.Fatalf("%s: no meta refresh on the continuation page:\n%s", what, p.Body)
	}
	u, err := p.URL.Parse(target)
	if err != nil {
		t.Fatalf("%s: refresh target %q: %v", what, target, err)
	}
	if !strings.HasPrefix(u.String(), b.e.issuer+"/") {
		t.Fatalf("%s: refresh target %q leaves the issuer's origin", what, u)
	}
	return u.String()
}

// authorize runs an authorization request through login (if the page asks)
// and consent (if asked), allowing, and returns the authorization response
// sent to the client's redirect URI.
func (b *asBrowser) authorize(t testing.TB, authURL, username string) *url.URL {
	t.Helper()
	cb, p := b.drive(t, authURL)
	for step := 0; cb == nil; step++ {
		if step == 4 {
			t.Fatalf("authorization did not finish; last page %s (%d):\n%s", p.URL, p.Resp.StatusCode, p.Body)
		}
		if p.Resp.StatusCode != http.StatusOK {
			t.Fatalf("%s answered %d:\n%s", p.URL.Path, p.Resp.StatusCode, p.Body)
		}
		var next string
		switch p.URL.Path {
		case "/oauth2/ui/login":
			next = b.continuation(t, "login", b.submit(t, p, url.Values{"username": {username}, "password": {asUserPassword}}))
		case "/oauth2/ui/consent":
			next = b.continuation(t, "consent", b.submit(t, p, url.Values{"decision": {"allow"}}))
		default:
			t.Fatalf("unexpected page %s:\n%s", p.URL, p.Body)
		}
		cb, p = b.drive(t, next)
	}
	return cb
}

// ---------------------------------------------------------------------------
// A confidential web client for the code flow

// asCodeClient is a confidential client registered for the code flow with
// a loopback redirect URI served by the test.
type asCodeClient struct {
	id, secret string
	cb         *asCallback
	conf       *oauth2.Config
}

// newCodeClient registers a code-flow client (before or while serving).
func (e *asEnv) newCodeClient(t *testing.T, name string) *asCodeClient {
	t.Helper()
	cb := newASCallback(t)
	id, secret := e.createClient(t, "--name", name, "--redirect-uri", cb.URL,
		"--grant", "authorization_code,refresh_token", "--scope", "openid profile email offline_access read", "--audience", "api")
	if secret == "" {
		t.Fatalf("confidential client %s got no secret", id)
	}
	return &asCodeClient{id: id, secret: secret, cb: cb, conf: &oauth2.Config{
		ClientID: id, ClientSecret: secret, Endpoint: e.endpoint(), RedirectURL: cb.URL,
		Scopes: []string{"openid", "read", "offline_access"},
	}}
}

// asRandom returns a random base64url string of n bytes (state, nonce, jti).
func asRandom(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// asCodeFlow is one authorization (state, nonce, PKCE verifier) and its
// authorization response.
type asCodeFlow struct {
	state, nonce, verifier string
	resp                   url.Values
}

// code runs an authorization with b (logging in and consenting as
// username when the server asks) and checks the authorization response:
// code, state round-tripped, iss (RFC 9207), no error.
func (c *asCodeClient) code(t testing.TB, e *asEnv, b *asBrowser, username string, opts ...oauth2.AuthCodeOption) *asCodeFlow {
	t.Helper()
	f := &asCodeFlow{state: asRandom(t, 16), nonce: asRandom(t, 16), verifier: oauth2.GenerateVerifier()}
	opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("nonce", f.nonce)}, opts...)
	cb := b.authorize(t, c.conf.AuthCodeURL(f.state, opts...), username)
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != c.cb.URL {
		t.Fatalf("authorization response went to %s, want the registered %s", got, c.cb.URL)
	}
	q := cb.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("authorization response without code: %v", q)
	}
	if q.Get("state") != f.state {
		t.Errorf("state %q, want %q (round trip)", q.Get("state"), f.state)
	}
	if q.Get("iss") != e.issuer {
		t.Errorf("iss %q in the authorization response, want %q (RFC 9207)", q.Get("iss"), e.issuer)
	}
	f.resp = q
	return f
}

// exchange redeems a code at the token endpoint by hand (so errors can be
// inspected); verifier "" omits code_verifier.
func (c *asCodeClient) exchange(t testing.TB, e *asEnv, code, verifier string) (*http.Response, map[string]any) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.cb.URL}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return e.postForm(t, "/oauth2/token", form, c.id, c.secret)
}

// refresh uses a refresh token by hand.
func (c *asCodeClient) refresh(t testing.TB, e *asEnv, rt string) (*http.Response, map[string]any) {
	return e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, c.id, c.secret)
}

// asStr returns m[k] as a string.
func asStr(m map[string]any, k string) string { s, _ := m[k].(string); return s }
