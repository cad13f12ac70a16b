package identity

import (
	"context"
	"crypto/tls"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/store"
)

// fastPasswords keeps argon2id cheap in tests (the minimum memory).
var fastPasswords = PasswordOptions{Argon2: Argon2Params{Memory: minArgon2Memory, Time: 1, Threads: 1}}

const (
	testPassword = "correct horse battery staple"
	testClientID = "demo-app"
	testSecret   = "0123456789abcdef0123456789abcdef-test-secret"
)

// fakeClock is a settable clock shared by the service and the store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T, clock *fakeClock) store.Store {
	t.Helper()
	o := store.SQLiteOptions{}
	if clock != nil {
		o.Now = clock.Now
	}
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "sekisho.db"), o)
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// env is a running identity service behind a loopback HTTP(S) server.
type env struct {
	t     *testing.T
	st    store.Store
	svc   *Service
	srv   *httptest.Server
	clock *fakeClock
	reg   *prometheus.Registry
	user  *store.User

	disabled []string // OnUserDisabled calls
	revoked  []string // OnConsentRevoked calls ("user|client")
	mu       sync.Mutex
}

type envOpt func(*Options)

func newEnv(t *testing.T, tlsServer bool, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), reg: prometheus.NewRegistry()}
	e.st = openStore(t, e.clock)
	mux := http.NewServeMux()
	if tlsServer {
		e.srv = httptest.NewUnstartedServer(mux)
		e.srv.StartTLS()
	} else {
		e.srv = httptest.NewServer(mux)
	}
	t.Cleanup(e.srv.Close)
	o := Options{
		Issuer:     e.srv.URL,
		Secret:     []byte(testSecret),
		Password:   fastPasswords,
		Registerer: e.reg,
		Now:        e.clock.Now,
		OnUserDisabled: func(id string) {
			e.mu.Lock()
			e.disabled = append(e.disabled, id)
			e.mu.Unlock()
		},
		OnConsentRevoked: func(uid, cid string) {
			e.mu.Lock()
			e.revoked = append(e.revoked, uid+"|"+cid)
			e.mu.Unlock()
		},
	}
	for _, f := range opts {
		f(&o)
	}
	svc, err := New(e.st, o)
	if err != nil {
		t.Fatalf("identity.New: %v", err)
	}
	e.svc = svc
	svc.Routes(mux)
	// A stand-in authorize endpoint that records what it was asked.
	mux.HandleFunc("GET /oauth2/authorize", func(w http.ResponseWriter, r *http.Request) {
		if svc.ConsentDenied(w, r) {
			io.WriteString(w, "DENIED")
			return
		}
		u, _, ok := svc.CurrentUser(r)
		if !ok {
			http.Redirect(w, r, svc.LoginURL(r.URL.RequestURI()), http.StatusFound)
			return
		}
		io.WriteString(w, "AUTHORIZE user="+u.ID)
	})
	ctx := context.Background()
	if err := e.st.CreateClient(ctx, &store.Client{
		ID: testClientID, Name: "Demo <App>", RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email", "orders:read"},
		TokenEndpointAuthMethod: "client_secret_basic", SecretHash: make([]byte, 32),
	}); err != nil {
		t.Fatalf("create client: %v", err)
	}
	u, err := svc.Users().Create(ctx, "alice", testPassword, "alice@example.com", "Alice")
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	e.user = u
	return e
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
type browser struct {
	e      *env
	c      *http.Client
	header http.Header // added to every request
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.srv.Client()
	c = &http.Client{Transport: c.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return &browser{e: e, c: c, header: http.Header{}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) *response {
	b.e.t.Helper()
	for k, v := range b.header {
		req.Header[k] = v
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return &response{Response: res, body: string(body)}
}

func (b *browser) get(path string) *response {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values, hdr ...string) *response {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

var (
	reCSRF     = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	reReturnTo = regexp.MustCompile(`name="return_to" value="([^"]*)"`)
	reRefresh  = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`)
)

func field(t *testing.T, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no match for %s in page:\n%s", re, body)
	}
	return html.UnescapeString(m[1])
}

// authorizeURL is a typical authorize request URI.
func authorizeURL(extra ...string) string {
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {testClientID},
		"redirect_uri":          {"https://app.example/cb"},
		"scope":                 {"openid profile orders:read"},
		"state":                 {"st-123"},
		"code_challenge":        {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		"code_challenge_method": {"S256"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return "/oauth2/authorize?" + v.Encode()
}

// login signs the browser in through the login form and returns the final
// response (continuation page or redirect).
func (b *browser) login(returnTo, username, password string) *response {
	b.e.t.Helper()
	page := b.get("/login?return_to=" + url.QueryEscape(returnTo))
	if page.StatusCode != http.StatusOK {
		b.e.t.Fatalf("GET /login: %d", page.StatusCode)
	}
	return b.post("/login", url.Values{
		"csrf_token": {field(b.e.t, reCSRF, page.body)},
		"return_to":  {field(b.e.t, reReturnTo, page.body)},
		"username":   {username},
		"password":   {password},
	})
}

// sessionRequest builds a request carrying the browser's cookies, for
// calling Service methods directly.
func (b *browser) sessionRequest(target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, b.e.srv.URL+target, nil)
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	if strings.HasPrefix(b.e.srv.URL, "https:") {
		r.TLS = &tls.ConnectionState{}
	}
	return r
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (e *env) currentUser(b *browser) (*store.User, bool) {
	u, _, ok := e.svc.CurrentUser(b.sessionRequest("/"))
	return u, ok
}
