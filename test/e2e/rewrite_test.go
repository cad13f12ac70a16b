package e2e

import (
	"net/http"
	"testing"
	"time"
)

// TestRewriteAndHost covers strip_prefix, rewrite_prefix, a target base
// path, query passthrough and the three host_header modes.
func TestRewriteAndHost(t *testing.T) {
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
  based: {targets: [{url: "@UP@/base"}]}
routes:
  - {name: strip, match: {path: /strip}, upstream: app, strip_prefix: true, auth: public}
  - {name: rewrite, match: {path: /v1/users}, upstream: app, rewrite_prefix: /users, auth: public}
  - {name: based, match: {path: /static}, upstream: based, strip_prefix: true, auth: public}
  - {name: preserve, match: {path: /preserve}, upstream: app, host_header: preserve, auth: public}
  - {name: literal, match: {path: /literal}, upstream: app, host_header: internal.example, auth: public}
  - {name: plain, match: {path: /plain}, upstream: app, auth: public}
`, "UP", up.URL)
	c := newClient(t)
	base := g.URL("http")
	upHost := hostPort(t, up.URL)
	cases := []struct{ path, wantURI, wantHost string }{
		{"/strip/a/b?x=1&y=%2F", "/a/b?x=1&y=%2F", upHost},
		{"/strip", "/", upHost},
		{"/v1/users/42?expand=1", "/users/42?expand=1", upHost},
		{"/v1/users", "/users", upHost},
		{"/static/app.js", "/base/app.js", upHost},
		{"/preserve/x", "/preserve/x", "client.example:8080"},
		{"/literal/x", "/literal/x", "internal.example"},
		{"/plain/x?q", "/plain/x?q", upHost},
	}
	for _, tc := range cases {
		resp, body := do(t, c, "GET", base+tc.path, map[string]string{"Host": "client.example:8080"}, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d %s", tc.path, resp.StatusCode, body)
			continue
		}
		got := up.Last(t)
		if got.RequestURI != tc.wantURI {
			t.Errorf("%s: upstream request-target %q, want %q", tc.path, got.RequestURI, tc.wantURI)
		}
		if got.Host != tc.wantHost {
			t.Errorf("%s: upstream Host %q, want %q", tc.path, got.Host, tc.wantHost)
		}
		if xfh := got.Header.Get("X-Forwarded-Host"); xfh != "client.example:8080" {
			t.Errorf("%s: X-Forwarded-Host %q, want the client's host", tc.path, xfh)
		}
	}
}

// TestBalancingAndActiveHealth: round robin spreads requests evenly; a
// target failing its active health check stops receiving traffic.
func TestBalancingAndActiveHealth(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a", nil)
	b := newUpstream(t, "b", nil)
	sick := newUpstream(t, "sick", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(200)
	})
	well := newUpstream(t, "well", nil)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  rr: {targets: [{url: "@A@"}, {url: "@B@"}]}
  checked:
    targets: [{url: "@SICK@"}, {url: "@WELL@"}]
    active_health: {path: /healthz, interval: 200ms, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1}
routes:
  - {name: rr, match: {path: /rr}, upstream: rr, auth: public}
  - {name: checked, match: {path: /checked}, upstream: checked, auth: public}
`, "A", a.URL, "B", b.URL, "SICK", sick.URL, "WELL", well.URL)
	c := newClient(t)
	base := g.URL("http")
	for range 10 {
		if resp, _ := do(t, c, "GET", base+"/rr/x", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if a.Count() != 5 || b.Count() != 5 {
		t.Errorf("round robin over 2 targets, 10 requests: %d and %d, want 5 and 5", a.Count(), b.Count())
	}

	// Wait until the sick target has been probed (and marked down).
	deadline := time.Now().Add(5 * time.Second)
	for {
		probed := 0
		for _, r := range sick.Requests() {
			if r.Path == "/healthz" {
				probed++
			}
		}
		if probed >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sick target was probed %d times in 5s (interval 200ms)", probed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 6 {
		if resp, _ := do(t, c, "GET", base+"/checked/x", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	for _, r := range sick.Requests() {
		if r.Path != "/healthz" {
			t.Errorf("target failing its health check received %s", r.RequestURI)
		}
	}
}
