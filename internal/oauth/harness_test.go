package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sekisho/sekisho/internal/revocation"
	"github.com/sekisho/sekisho/internal/store"
)

// ---- fake key source (internal/keys is developed in parallel) ----

type fakeKey struct {
	kid, alg string
	priv     crypto.Signer
}

type fakeKeys struct {
	mu   sync.Mutex
	keys []fakeKey // last = current
	subs []func()
}

func newFakeKeys(t testing.TB, alg string) *fakeKeys {
	k := &fakeKeys{}
	k.rotate(t, alg)
	return k
}

func genKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rotate adds a new current key; old keys stay published.
func (k *fakeKeys) rotate(t testing.TB, alg string) string {
	kid := "k" + strings.ToLower(rand.Text()[:10])
	k.mu.Lock()
	k.keys = append(k.keys, fakeKey{kid: kid, alg: alg, priv: genKey(t, alg)})
	subs := slices.Clone(k.subs)
	k.mu.Unlock()
	for _, fn := range subs {
		fn()
	}
	return kid
}

func (k *fakeKeys) Signer() (string, string, crypto.Signer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.keys[len(k.keys)-1]
	return c.kid, c.alg, c.priv
}

func (k *fakeKeys) PublicKeys() []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []jose.JSONWebKey
	for _, c := range k.keys {
		out = append(out, jose.JSONWebKey{Key: c.priv.Public(), KeyID: c.kid, Algorithm: c.alg, Use: "sig"})
	}
	return out
}

func (k *fakeKeys) PublicJWKS() []byte {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: k.PublicKeys()})
	return b
}

func (k *fakeKeys) Subscribe(fn func()) func() {
	k.mu.Lock()
	k.subs = append(k.subs, fn)
	k.mu.Unlock()
	return func() {}
}

// ---- stub identity: the login/consent pages are simulated by test routes ----

type stubSession struct {
	userID   string
	authTime time.Time
}

type stubIdentity struct {
	env *testEnv

	mu       sync.Mutex
	sessions map[string]stubSession
	consents map[string][]string // userID|clientID → scopes
	denied   map[string]bool     // raw query of a denied authorize request

	loginUser    string // the user the simulated login page signs in
	denyConsent  bool
	loginVisits  atomic.Int32
	consentVisit atomic.Int32
}

const stubCookie = "stub_sid"

func (s *stubIdentity) CurrentUser(r *http.Request) (*store.User, time.Time, bool) {
	c, err := r.Cookie(stubCookie)
	if err != nil {
		return nil, time.Time{}, false
	}
	s.mu.Lock()
	sess, ok := s.sessions[c.Value]
	s.mu.Unlock()
	if !ok {
		return nil, time.Time{}, false
	}
	u, err := s.env.st.GetUser(r.Context(), sess.userID)
	if err != nil || u.Disabled {
		return nil, time.Time{}, false
	}
	return u, sess.authTime, true
}

func (s *stubIdentity) HasConsent(_ context.Context, userID, clientID string, scopes []string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	have := s.consents[userID+"|"+clientID]
	for _, sc := range scopes {
		if !slices.Contains(have, sc) {
			return false, nil
		}
	}
	return true, nil
}

func (s *stubIdentity) ConsentDenied(_ http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denied[r.URL.RawQuery] {
		delete(s.denied, r.URL.RawQuery)
		return true
	}
	return false
}

func (s *stubIdentity) LoginURL(rt string) string { return "/login?return_to=" + url.QueryEscape(rt) }
func (s *stubIdentity) ConsentURL(rt string) string {
	return "/consent?return_to=" + url.QueryEscape(rt)
}

func (s *stubIdentity) EndSession(w http.ResponseWriter, r *http.Request) (string, error) {
	c, err := r.Cookie(stubCookie)
	if err != nil {
		return "", nil
	}
	s.mu.Lock()
	sess := s.sessions[c.Value]
	delete(s.sessions, c.Value)
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: stubCookie, Value: "", Path: "/", MaxAge: -1})
	return sess.userID, nil
}

// stripPrompt removes one prompt value from return_to, as the real login
// and consent pages do.
func stripPrompt(rt, value string) string {
	u, _ := url.Parse(rt)
	q := u.Query()
	var keep []string
	for _, p := range strings.Fields(q.Get("prompt")) {
		if p != value {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		q.Del("prompt")
	} else {
		q.Set("prompt", strings.Join(keep, " "))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *stubIdentity) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		s.loginVisits.Add(1)
		rt := r.URL.Query().Get("return_to")
		sid := rand.Text()
		s.mu.Lock()
		s.sessions[sid] = stubSession{userID: s.loginUser, authTime: s.env.now()}
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: stubCookie, Value: sid, Path: "/"})
		http.Redirect(w, r, stripPrompt(rt, "login"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		s.consentVisit.Add(1)
		rt := stripPrompt(r.URL.Query().Get("return_to"), "consent")
		u, _ := url.Parse(rt)
		q := u.Query()
		user, _, ok := s.CurrentUser(r)
		if !ok {
			http.Error(w, "no session", http.StatusForbidden)
			return
		}
		s.mu.Lock()
		if s.denyConsent {
			s.denied[u.RawQuery] = true
		} else {
			key := user.ID + "|" + q.Get("client_id")
			for _, sc := range strings.Fields(q.Get("scope")) {
				if !slices.Contains(s.consents[key], sc) {
					s.consents[key] = append(s.consents[key], sc)
				}
			}
		}
		s.mu.Unlock()
		http.Redirect(w, r, rt, http.StatusSeeOther)
	})
}

// ---- environment ----

type testEnv struct {
	t      testing.TB
	srv    *Server
	hs     *httptest.Server
	st     store.Store
	keys   *fakeKeys
	deny   *revocation.DenyList
	ident  *stubIdentity
	issuer string
	offset atomic.Int64 // clock offset in ns
}

func (e *testEnv) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

func (e *testEnv) advance(d time.Duration) { e.offset.Add(int64(d)) }

type envOption func(*Options)

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	return newEnvSync(t, "NORMAL", opts...)
}

// newEnvSync opens the SQLite store with the given synchronous mode
// (tests use NORMAL for speed; the benchmark measures FULL, the durable default).
func newEnvSync(t testing.TB, sync string, opts ...envOption) *testEnv {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "oauth.db"), store.SQLiteOptions{Synchronous: sync})
	if err != nil {
		t.Fatal(err)
	}
	return newEnvStore(t, st, opts...)
}

// newEnvStore builds the environment on an open store (closed at cleanup).
func newEnvStore(t testing.TB, st store.Store, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t}
	t.Cleanup(func() { _ = st.Close() })
	e.st = st
	var err error
	e.keys = newFakeKeys(t, "ES256")
	hs := httptest.NewUnstartedServer(nil)
	e.hs = hs
	e.issuer = "http://" + hs.Listener.Addr().String()
	e.deny, err = revocation.NewDenyList(revocation.Options{Issuer: e.issuer, Clock: e.now})
	if err != nil {
		t.Fatal(err)
	}
	e.ident = &stubIdentity{env: e, sessions: map[string]stubSession{}, consents: map[string][]string{}, denied: map[string]bool{}}
	o := Options{
		Issuer:    e.issuer,
		Store:     st,
		Keys:      e.keys,
		Identity:  e.ident,
		Revoker:   e.deny,
		MasterKey: []byte("0123456789abcdef0123456789abcdef-test-master-key"),
		Now:       e.now,
	}
	for _, fn := range opts {
		fn(&o)
	}
	e.srv, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.srv.Routes(mux)
	if r, ok := o.Identity.(interface{ Routes(*http.ServeMux) }); ok {
		r.Routes(mux) // the real identity service
	} else {
		e.ident.routes(mux)
	}
	hs.Config.Handler = mux
	hs.Start()
	t.Cleanup(hs.Close)
	return e
}

// createClient registers a client and returns its ID and secret.
func (e *testEnv) createClient(spec ClientSpec) (string, string) {
	e.t.Helper()
	if spec.Name == "" {
		spec.Name = "test client"
	}
	ci, secret, err := e.srv.Clients().Create(context.Background(), spec)
	if err != nil {
		e.t.Fatalf("create client: %v", err)
	}
	return ci.ID, secret
}

// createUser stores a user and makes the simulated login page sign it in.
func (e *testEnv) createUser(name string) *store.User {
	e.t.Helper()
	u := &store.User{ID: "u-" + name, Username: name, Email: name + "@example.test", Name: "User " + name, Locale: "en", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"}
	if err := e.st.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	e.ident.loginUser = u.ID
	return u
}

// browser returns an HTTP client with a cookie jar that does not follow redirects.
func (e *testEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// drive follows the browser through authorize → login → consent until the
// AS redirects to a URL outside itself (the client's redirect_uri), which it
// returns. It fails the test if the AS answers anything but a redirect.
func (e *testEnv) drive(b *http.Client, authURL string) (*url.URL, *http.Response) {
	e.t.Helper()
	next := authURL
	for range 10 {
		resp, err := b.Get(next)
		if err != nil {
			e.t.Fatalf("GET %s: %v", next, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
			return nil, resp
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			e.t.Fatal(err)
		}
		if !strings.HasPrefix(loc.String(), e.issuer+"/") {
			return loc, resp
		}
		next = loc.String()
	}
	e.t.Fatal("too many redirects")
	return nil, nil
}

// postForm posts a form to path with optional basic auth.
func (e *testEnv) postForm(path string, form url.Values, user, pass string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			e.t.Fatalf("decode %s: %v: %s", path, err, body)
		}
	}
	return resp, m
}

// jwtParts decodes a JWT's header and claims without verification.
func jwtParts(t testing.TB, tok string) (map[string]any, map[string]any) {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	var h, c map[string]any
	hb, _ := b64.DecodeString(p[0])
	cb, _ := b64.DecodeString(p[1])
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cb, &c); err != nil {
		t.Fatal(err)
	}
	return h, c
}

func assertNoStore(t testing.TB, resp *http.Response) {
	t.Helper()
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("%s: want Cache-Control no-store and Pragma no-cache, got %q / %q", resp.Request.URL.Path,
			resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
