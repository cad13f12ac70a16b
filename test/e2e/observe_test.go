package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAccessLog: one JSON line per request with the documented fields and
// the normalized path; no Authorization, cookie or sensitive query value
// anywhere in the process output, even at debug level with the query logged.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	mode := detectCredMode(t)
	up := newUpstream(t, "app", nil)
	dir := t.TempDir()
	ti := newTestIssuer(t)
	issuers, privRoute := "", ""
	if mode == credJWT {
		issuers = issuerYAML
		privRoute = "  - {name: priv, match: {path: /priv}, upstream: app, auth: {jwt: {issuers: [e2e]}}}\n"
	}
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
access_log:
  include_query: true
  sensitive_query_params: [session_hint]
`+issuers+`
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - {name: pub, match: {path: /pub}, upstream: app, auth: public}
`+privRoute, "UP", up.URL, "JWKS", ti.writeJWKS(t, dir))
	c := newClient(t)
	base := g.URL("http")
	secrets := []string{"SECRET123", "SECRET456", "SECRET789", "SECRETABC", "SECRETDEF"}
	hdr := func(id string) map[string]string {
		return map[string]string{
			"X-Request-Id":        id,
			"Authorization":       "Bearer SECRET456",
			"Cookie":              "session=SECRET789; theme=dark",
			"Proxy-Authorization": "Basic SECRETDEF",
		}
	}

	resp, body := do(t, c, "GET", base+"/pub/./a/../x?access_token=SECRET123&other=1&session_hint=SECRETABC", hdr("e2e-log-1"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	a := g.accessFor("e2e-log-1")
	want := map[string]any{
		"request_id": "e2e-log-1", "route": "pub", "method": "GET", "path": "/pub/x",
		"status": float64(200), "bytes": float64(len(body)), "client_ip": "127.0.0.1",
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("access log %s = %v (%T), want %v", k, a[k], a[k], v)
		}
	}
	if d, ok := a["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("access log duration_ms = %v, want a non-negative number", a["duration_ms"])
	}
	if u, _ := a["upstream"].(string); !strings.Contains(u, hostPort(t, up.URL)) {
		t.Errorf("access log upstream = %v, want the target %s", a["upstream"], up.URL)
	}
	if _, ok := a["time"]; !ok {
		t.Errorf("access log line has no time")
	}
	if q, _ := a["query"].(string); !strings.Contains(q, "other=1") || !strings.Contains(q, "access_token=REDACTED") || !strings.Contains(q, "session_hint=REDACTED") {
		t.Errorf("access log query = %q, want other=1 kept and the sensitive values REDACTED", q)
	}

	// More requests: a refused one, a POST with a body, a 404, a 400.
	resp, _ = do(t, c, "POST", base+"/pub/form?token=SECRET123", hdr("e2e-log-2"), strings.NewReader("payload"))
	if resp.StatusCode != 200 {
		t.Fatalf("POST status %d", resp.StatusCode)
	}
	resp, _ = do(t, c, "GET", base+"/nowhere?code=SECRET123", hdr("e2e-log-3"), nil)
	if resp.StatusCode != 404 {
		t.Fatalf("GET /nowhere status %d", resp.StatusCode)
	}
	resp, _, _, _ = rawExchange(t, g.Addr(), "GET /pub/%2e%2e/x?password=SECRET123 HTTP/1.1\r\nHost: gw.test\r\nX-Request-Id: e2e-log-4\r\nAuthorization: Bearer SECRET456\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Fatalf("encoded dot segments: status %d", resp.StatusCode)
	}
	ids := []string{"e2e-log-1", "e2e-log-2", "e2e-log-3", "e2e-log-4"}
	if mode == credJWT {
		resp, _ = do(t, c, "GET", base+"/priv/x?other=1", hdr("e2e-log-5"), nil)
		if resp.StatusCode != 401 {
			t.Fatalf("bad token on an auth route: status %d, want 401", resp.StatusCode)
		}
		// Token in both header and query: RFC 6750 §3.1 invalid_request.
		resp, _ = do(t, c, "GET", base+"/priv/x?access_token=SECRET123", hdr("e2e-log-6"), nil)
		if resp.StatusCode != 400 && resp.StatusCode != 401 {
			t.Fatalf("two tokens on an auth route: status %d, want 400 or 401", resp.StatusCode)
		}
		ids = append(ids, "e2e-log-5", "e2e-log-6")
	}
	wantStatus := map[string]float64{"e2e-log-2": 200, "e2e-log-3": 404, "e2e-log-4": 400, "e2e-log-5": 401, "e2e-log-6": float64(resp.StatusCode)}
	for _, id := range ids[1:] {
		if a := g.accessFor(id); a["status"] != wantStatus[id] {
			t.Errorf("access log for %s: status %v, want %v", id, a["status"], wantStatus[id])
		}
	}
	if a := g.accessFor("e2e-log-2"); a["method"] != "POST" || a["route"] != "pub" {
		t.Errorf("access log for the POST: %v", a)
	}
	time.Sleep(200 * time.Millisecond)
	for _, id := range ids {
		n := 0
		for _, l := range g.stdout.JSON() {
			if l["request_id"] == id {
				n++
			}
		}
		if n != 1 {
			t.Errorf("request %s has %d access log lines, want 1", id, n)
		}
	}
	out := g.stdout.String() + "\n" + g.stderr.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			for _, l := range append(g.stdout.Lines(), g.stderr.Lines()...) {
				if strings.Contains(l, s) {
					t.Errorf("secret %s appears in the process output: %s", s, l)
				}
			}
		}
	}
	for _, l := range g.stdout.Lines() {
		if !strings.HasPrefix(l, "{") {
			t.Errorf("stdout (access log) line is not JSON: %q", l)
		}
	}
}

// TestMetricsAndHealth: the admin listener's /metrics carries request
// counts and latency by route and status class, open connections and
// reload counters; /healthz and /readyz answer; the admin API refuses
// requests when no token is configured.
func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
  dead: {targets: [{url: "http://@DEAD@"}], retries: 0, passive_health: {max_failures: 0}}
routes:
  - {name: pub, match: {path: /pub}, upstream: app, auth: public}
  - {name: dead, match: {path: /dead}, upstream: dead, auth: public}
`, "UP", up.URL, "DEAD", deadAddr(t))
	c := newClient(t)
	base := g.URL("http")
	for i := range 3 {
		if resp, _ := do(t, c, "GET", fmt.Sprintf("%s/pub/unique-path-%d?token=SECRET123", base, i), nil, nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if resp, _ := do(t, c, "GET", base+"/dead/x", nil, nil); resp.StatusCode != 502 {
		t.Fatalf("dead upstream: status %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, "GET", base+"/nowhere", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("no route: status %d", resp.StatusCode)
	}

	admin := "http://" + g.admin
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := do(t, c, "GET", admin+p, nil, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
	resp, _ := do(t, c, "POST", admin+"/admin/reload", nil, nil)
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Errorf("POST /admin/reload without a configured token: %d, want 401/403", resp.StatusCode)
	}
	resp, _ = do(t, c, "POST", admin+"/admin/reload", map[string]string{"Authorization": "Bearer anything-at-all-0123456789abcdef0123"}, nil)
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Errorf("POST /admin/reload with a guessed token and none configured: %d, want 401/403", resp.StatusCode)
	}

	// A reload by signal, so the reload counter has a sample.
	from := countLines(g.stderr, `"msg":"config reloaded"`)
	g.signal(syscall.SIGHUP, false)
	if _, _, err := g.stderr.Wait(0, 10*time.Second, nthLine(`"msg":"config reloaded"`, from+1)); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}

	resp, mb := do(t, c, "GET", admin+"/metrics", nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	m := string(mb)
	exact := map[string]float64{
		`sekisho_requests_total{code="2xx",route="pub"}`:                            3,
		`sekisho_requests_total{code="5xx",route="dead"}`:                           1,
		`sekisho_request_duration_seconds_count{code="2xx",route="pub"}`:            3,
		`sekisho_request_duration_seconds_bucket{code="2xx",route="pub",le="+Inf"}`: 3,
		`sekisho_config_reloads_total{result="success"}`:                            1,
		`sekisho_config_generation`:                                                 2,
	}
	for series, v := range exact {
		if got := metricValue(m, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	for _, series := range []string{
		`sekisho_request_duration_seconds_sum{code="2xx",route="pub"}`,
		`sekisho_open_connections`,
		`sekisho_requests_in_flight`,
	} {
		if metricValue(m, series) < 0 {
			t.Errorf("metric %s missing", series)
		}
	}
	if got := metricValue(m, `sekisho_rejected_requests_total{reason="no_route"}`); got != 1 {
		t.Errorf(`sekisho_rejected_requests_total{reason="no_route"} = %v, want 1`, got)
	}
	if !strings.Contains(m, "sekisho_proxy_errors_total{") {
		t.Errorf("no upstream error metric (sekisho_proxy_errors_total)")
	}
	for _, leak := range []string{"unique-path", "SECRET123"} {
		if strings.Contains(m, leak) {
			t.Errorf("metrics contain %q: paths and query values must never be labels", leak)
		}
	}
}
