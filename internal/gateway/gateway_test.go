package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/config"
)

// seen is what the test upstream received.
type seen struct {
	Path, RawPath, Query, Host, Method string
	Header                             http.Header
	Body                               string
}

// upstreamServer records every request and answers with what it saw.
func upstreamServer(t *testing.T) (*httptest.Server, *atomic.Pointer[seen], *atomic.Int64) {
	t.Helper()
	var last atomic.Pointer[seen]
	var count atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := &seen{Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Host: r.Host, Method: r.Method, Header: r.Header.Clone(), Body: string(b)}
		last.Store(s)
		count.Add(1)
		switch path.Base(r.URL.Path) {
		case "slow":
			time.Sleep(300 * time.Millisecond)
		case "stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		case "identity-leak":
			w.Header().Set("X-Request-Id", "upstream-chosen")
		}
		w.Header().Set("X-Upstream", "yes")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	return srv, &last, &count
}

// testAuth is the gateway's view of "some credential kind": the pipeline is
// under test here, not a verifier. It accepts X-Test-Token: good.
type testAuth struct{}

func (testAuth) Authenticate(r *http.Request) (*authn.Identity, error) {
	tok := r.Header.Get("X-Test-Token")
	if q := r.URL.Query().Get("access_token"); q != "" {
		tok = q
	}
	switch tok {
	case "":
		return nil, authn.ErrNoCredentials
	case "good":
		return &authn.Identity{Kind: "jwt", Subject: "alice", ClientID: "app", Scopes: []string{"read"}, Claims: map[string]any{"tenant": "t1"}}, nil
	}
	return nil, &authn.Error{Reason: authn.ReasonSignature, TokenHash: "abcd1234"}
}

const baseConfig = `version: 1
server:
  listeners: [{address: "127.0.0.1:0"}]
  trusted_proxies: [10.9.0.0/16]
issuers:
  test: {issuer: https://issuer.test, jwks_file: /dev/null, audiences: [api]}
upstreams:
  up:
    targets: [{url: "%s"}]
    response_header_timeout: 150ms
    retries: 0
  dead:
    targets: [{url: "http://127.0.0.1:1"}]
    passive_health: {max_failures: 1, eject_for: 1m}
    retries: 0
routes:
  - name: public
    match: {path: /public}
    upstream: up
    auth: public
    max_body_bytes: 16
  - name: api
    match: {path: /api}
    upstream: up
    auth: {jwt: {issuers: [test]}}
    authorize:
      scopes: {all_of: [read]}
      methods: {DELETE: {all_of: [admin]}}
      policy: "claims.tenant == 't1'"
    forward:
      headers: {X-User-Id: sub}
  - name: tenant
    match: {path: "/t/{tenant}/x", path_type: exact}
    upstream: up
    auth: {jwt: {issuers: [test]}}
    authorize: {policy: "claims.tenant == params.tenant"}
  - name: querytoken
    match: {path: /qt}
    upstream: up
    auth: {jwt: {issuers: [test], allow_query_token: true}}
  - name: stripped
    match: {path: /strip}
    upstream: up
    strip_prefix: true
    host_header: preserve
    auth: public
  - name: rewritten
    match: {path: /old, methods: [GET]}
    upstream: up
    rewrite_prefix: /new/base
    host_header: backend.internal
    auth: public
    headers:
      request: {set: {X-Added: "1"}, remove: [X-Remove-Me]}
      response: {set: {X-Frame-Options: DENY}, remove: [X-Upstream]}
  - name: dead
    match: {path: /dead}
    upstream: dead
    auth: public
`

func newTestGateway(t *testing.T, upstreamURL string) (*Gateway, *httptest.Server, *syncBuf) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(baseConfig, upstreamURL)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &syncBuf{}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	g := New(Options{Logger: log, AccessLog: logBuf, Metrics: NewMetrics(reg)})
	rt, err := g.Compile(cfg, Deps{Auth: func(string, *config.Auth) (authn.Authenticator, error) { return testAuth{}, nil }, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	g.Swap(rt)
	t.Cleanup(rt.Close)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv, logBuf
}

// syncBuf is a log sink safe for the concurrent writes of a server.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// rawGet sends a request line exactly as given (no client-side cleaning).
func rawGet(t *testing.T, addr, target string, headers ...string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw.test\r\n%sConnection: close\r\n\r\n", target, strings.Join(headers, ""))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPathNormalizationNeverBypassesRouteAuth(t *testing.T) {
	up, last, count := upstreamServer(t)
	_, gw, _ := newTestGateway(t, up.URL)
	addr := strings.TrimPrefix(gw.URL, "http://")
	// Each of these either reaches the /api route — and so meets its auth,
	// 401 without a token — or is refused with 400. None reaches the upstream.
	cases := map[string]int{
		"/public/../api/x":       401,
		"/public/%2e%2e/api/x":   400,
		"/public/%2E%2E%2Fapi/x": 400,
		"//api/x":                401,
		"/api%2fx":               400,
		"/public/..;/api/x":      400,
		"/./api/x":               401,
		"/public/%2e/../api/x":   400,
		"/public/.%2e/api/x":     400,
		"/api/x%00":              400,
		"/public\\..\\api\\x":    400,
		"/public/%5c../api/x":    400,
		"/API/x":                 404, // paths are case-sensitive: no route, not the public one
	}
	for target, want := range cases {
		resp, body := rawGet(t, addr, target)
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d (%s)", target, resp.StatusCode, want, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: content-type %q", target, ct)
		}
		if want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no Bearer challenge", target)
		}
	}
	if n := count.Load(); n != 0 {
		t.Fatalf("upstream received %d requests; last %+v", n, last.Load())
	}
	// With a token, the normalized path is what the upstream receives.
	resp, _ := rawGet(t, addr, "/public/../api/./x//y", "X-Test-Token: good\r\n")
	if resp.StatusCode != 200 || last.Load().Path != "/api/x/y" {
		t.Fatalf("status %d, upstream path %q", resp.StatusCode, last.Load().Path)
	}
	// Unreserved escapes are decoded; reserved ones stay encoded, upper-cased.
	resp, _ = rawGet(t, addr, "/public/%7euser/a%3ab")
	if got := last.Load(); resp.StatusCode != 200 || got.Path != "/public/~user/a:b" || got.RawPath != "/public/~user/a%3Ab" {
		t.Fatalf("status %d, upstream path %q raw %q", resp.StatusCode, got.Path, got.RawPath)
	}
}

func TestAuthAndAuthorization(t *testing.T) {
	up, last, _ := upstreamServer(t)
	_, gw, logs := newTestGateway(t, up.URL)
	do := func(method, path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, gw.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := do("GET", "/api/x", nil); r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != `Bearer realm="sekisho"` {
		t.Fatalf("no token: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := do("GET", "/api/x", map[string]string{"X-Test-Token": "forged"}); r.StatusCode != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("bad token: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := do("DELETE", "/api/x", map[string]string{"X-Test-Token": "good"}); r.StatusCode != 403 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="admin"`) {
		t.Fatalf("missing scope: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := do("GET", "/t/t2/x", map[string]string{"X-Test-Token": "good"}); r.StatusCode != 403 {
		t.Fatalf("policy over path parameter should deny t2: %d", r.StatusCode)
	}
	if r := do("GET", "/t/t1/x", map[string]string{"X-Test-Token": "good"}); r.StatusCode != 200 {
		t.Fatalf("policy over path parameter should allow t1: %d", r.StatusCode)
	}
	// Identity injected after verification; spoofed identity headers gone.
	r := do("GET", "/api/x", map[string]string{"X-Test-Token": "good", "X-User-Id": "mallory", "X-Sekisho-Role": "admin", "X-Auth-User": "root", "Connection": "X-User-Id"})
	if r.StatusCode != 200 {
		t.Fatalf("good token: %d", r.StatusCode)
	}
	h := last.Load().Header
	if h.Get("X-User-Id") != "alice" || h.Get("X-Sekisho-Role") != "" || h.Get("X-Auth-User") != "" {
		t.Fatalf("identity headers upstream: %v", h)
	}
	if !strings.Contains(logs.String(), `"error":"authn_signature"`) {
		t.Fatalf("refusal not in access log: %s", logs.String())
	}
	if strings.Contains(logs.String(), "forged") {
		t.Fatal("token value leaked into the access log")
	}
}

func TestForwardingHeaders(t *testing.T) {
	up, last, _ := upstreamServer(t)
	_, gw, _ := newTestGateway(t, up.URL)
	addr := strings.TrimPrefix(gw.URL, "http://")
	// From an untrusted peer, spoofed forwarding headers are replaced, and a
	// Connection header naming them cannot delete what the gateway sets.
	rawGet(t, addr, "/public/x", "X-Forwarded-For: 1.2.3.4\r\n", "X-Forwarded-Host: evil.test\r\n", "X-Forwarded-Proto: https\r\n",
		"Forwarded: for=1.2.3.4;proto=https\r\n", "X-Real-IP: 1.2.3.4\r\n", "Connection: X-Forwarded-For, X-Request-Id, Forwarded\r\n", "X-Request-Id: client-id-1\r\n")
	h := last.Load().Header
	if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Host") != "gw.test" || h.Get("X-Forwarded-Proto") != "http" {
		t.Fatalf("forwarded headers: %v", h)
	}
	if h.Get("Forwarded") != `for=127.0.0.1;proto=http;host="gw.test"` || h.Get("X-Real-Ip") != "" {
		t.Fatalf("Forwarded %q / X-Real-Ip %q", h.Get("Forwarded"), h.Get("X-Real-Ip"))
	}
	if h.Get("X-Request-Id") != "client-id-1" {
		t.Fatalf("request id not forwarded: %q", h.Get("X-Request-Id"))
	}
}

func TestTrustedProxyChain(t *testing.T) {
	tp := trustedProxies{mustPrefix("10.9.0.0/16")}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.9.1.1:5555"
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.9.3.3")
	ip, trusted := tp.clientIP(r)
	if !trusted || ip.String() != "203.0.113.7" {
		t.Fatalf("got %v %v: want the right-most untrusted hop", ip, trusted)
	}
	r.RemoteAddr = "198.51.100.1:5555" // untrusted peer: its XFF is ignored
	if ip, trusted := tp.clientIP(r); trusted || ip.String() != "198.51.100.1" {
		t.Fatalf("untrusted peer: got %v %v", ip, trusted)
	}
}

func mustPrefix(s string) netip.Prefix {
	p, err := config.ParsePrefix(s)
	if err != nil {
		panic(err)
	}
	return p
}

func TestProblemsForGatewayResponses(t *testing.T) {
	up, _, _ := upstreamServer(t)
	_, gw, _ := newTestGateway(t, up.URL)
	check := func(resp *http.Response, status int) {
		t.Helper()
		defer resp.Body.Close()
		var p map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatalf("status %d: body not JSON: %v", resp.StatusCode, err)
		}
		if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("got %d %q, want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), status)
		}
		if id := resp.Header.Get("X-Request-Id"); id == "" || p["request_id"] != id {
			t.Fatalf("request id header %q body %v", id, p["request_id"])
		}
		for _, leak := range []string{"127.0.0.1", "dial", "connection refused"} {
			if strings.Contains(fmt.Sprint(p), leak) {
				t.Fatalf("problem leaks %q: %v", leak, p)
			}
		}
	}
	get := func(path string) *http.Response {
		resp, err := http.Get(gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	check(get("/nowhere"), 404)
	resp, _ := http.Post(gw.URL+"/old", "text/plain", strings.NewReader("x"))
	if resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", resp.Header.Get("Allow"))
	}
	check(resp, 405)
	check(get("/dead"), 502)
	check(get("/dead"), 503) // ejected after one failure: fail fast
	check(get("/public/slow"), 504)
	resp, _ = http.Post(gw.URL+"/public/x", "text/plain", strings.NewReader(strings.Repeat("a", 17)))
	check(resp, 413)
	// Streaming body over the limit (no Content-Length).
	req, _ := http.NewRequest("POST", gw.URL+"/public/x", io.MultiReader(strings.NewReader(strings.Repeat("a", 10)), strings.NewReader(strings.Repeat("b", 10))))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	check(resp, 413)
}

func TestRewriteHostAndHeaderTransforms(t *testing.T) {
	up, last, _ := upstreamServer(t)
	_, gw, _ := newTestGateway(t, up.URL)
	req, _ := http.NewRequest("GET", gw.URL+"/old/a?q=1", nil)
	req.Header.Set("X-Remove-Me", "x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := last.Load()
	if s.Path != "/new/base/a" || s.Query != "q=1" || s.Host != "backend.internal" || s.Header.Get("X-Added") != "1" || s.Header.Get("X-Remove-Me") != "" {
		t.Fatalf("upstream saw %+v", s)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Upstream") != "" {
		t.Fatalf("response transforms: %v", resp.Header)
	}
	resp, _ = http.Get(gw.URL + "/strip/b")
	resp.Body.Close()
	if s := last.Load(); s.Path != "/b" || s.Host != strings.TrimPrefix(gw.URL, "http://") {
		t.Fatalf("strip_prefix/preserve: %+v", s)
	}
	resp, _ = http.Get(gw.URL + "/strip")
	resp.Body.Close()
	if s := last.Load(); s.Path != "/" {
		t.Fatalf("strip_prefix of the bare prefix: %q", s.Path)
	}
	// The upstream cannot choose the request ID the client sees.
	req, _ = http.NewRequest("GET", gw.URL+"/public/identity-leak", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] != "abc-123" {
		t.Fatalf("request id %q", resp.Header.Get("X-Request-Id"))
	}
}

// TestQueryTokenNotForwarded: a token accepted from the query string (route
// opted in) is removed before the upstream and the access log see the URL.
func TestQueryTokenNotForwarded(t *testing.T) {
	up, last, _ := upstreamServer(t)
	_, gw, logs := newTestGateway(t, up.URL)
	resp, err := http.Get(gw.URL + "/qt/x?a=1&access_token=good&b=%20")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || last.Load().Query != "a=1&b=%20" {
		t.Fatalf("status %d, upstream query %q", resp.StatusCode, last.Load().Query)
	}
	if strings.Contains(logs.String(), "good") {
		t.Fatal("query token in the access log")
	}
}

func TestRequestIDAndTraceparent(t *testing.T) {
	up, last, _ := upstreamServer(t)
	_, gw, _ := newTestGateway(t, up.URL)
	send := func(id, tp string) *http.Response {
		req, _ := http.NewRequest("GET", gw.URL+"/public/x", nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		if tp != "" {
			req.Header.Set("Traceparent", tp)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := send("bad id with spaces<script>", ""); len(r.Header.Get("X-Request-Id")) != 32 || last.Load().Header.Get("X-Request-Id") != r.Header.Get("X-Request-Id") {
		t.Fatalf("malformed id not replaced: %q", r.Header.Get("X-Request-Id"))
	}
	good := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	send("", good)
	if last.Load().Header.Get("Traceparent") != good {
		t.Fatal("valid traceparent not passed through")
	}
	send("", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")
	send("", "zz-bogus")
	if last.Load().Header.Get("Traceparent") != "" {
		t.Fatal("invalid traceparent forwarded")
	}
}

func TestStreamingAndWebSocketUpgrade(t *testing.T) {
	up, _, _ := upstreamServer(t)
	_, gw, _ := newTestGateway(t, up.URL)
	resp, err := http.Get(gw.URL + "/public/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	first, _ := br.ReadString('\n')
	if first != "data: 0\n" {
		t.Fatalf("first event %q", first)
	}
	resp.Body.Close()

	// An upgrade upstream: after 101 the upstream echoes bytes back.
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, _ := w.(http.Hijacker).Hijack()
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	}))
	defer ws.Close()
	_, gw2, _ := newTestGateway(t, ws.URL)
	c, err := net.Dial("tcp", strings.TrimPrefix(gw2.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /public/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br = bufio.NewReader(c)
	r, err := http.ReadResponse(br, nil)
	if err != nil || r.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", r, err)
	}
	fmt.Fprint(c, "ping-frame")
	buf := make([]byte, 10)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping-frame" {
		t.Fatalf("echo %q %v", buf, err)
	}
}

func TestAccessLogLineIsJSON(t *testing.T) {
	up, _, _ := upstreamServer(t)
	_, gw, logs := newTestGateway(t, up.URL)
	resp, err := http.Get(gw.URL + "/public/a%22b%3Cc?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("not one JSON line: %q: %v", logs.String(), err)
	}
	for _, k := range []string{"time", "request_id", "route", "method", "path", "status", "bytes", "duration_ms", "client_ip", "upstream"} {
		if _, ok := line[k]; !ok {
			t.Errorf("field %s missing in %v", k, line)
		}
	}
	if line["route"] != "public" || line["status"].(float64) != 200 || line["client_ip"] != "127.0.0.1" || line["path"] != "/public/a%22b%3Cc" {
		t.Fatalf("line %v", line)
	}
	if _, ok := line["query"]; ok {
		t.Fatal("query logged although not enabled")
	}
}

func TestRouterParamsAndHostOnly(t *testing.T) {
	for in, want := range map[string]string{"Example.COM:8080": "example.com", "[::1]:80": "[::1]", "a.b.": "a.b", "x": "x"} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}
