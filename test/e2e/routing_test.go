package e2e

import (
	"strings"
	"testing"
)

// Every route sets X-Route so the upstream tells which route forwarded it.
const routingConfig = `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - name: exact
    match: {path: /exact, path_type: exact}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: exact}}}
  - name: exact-prefix
    match: {path: /exact}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: exact-prefix}}}
  - name: api
    match: {path: /api}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: api}}}
  - name: api-v1
    match: {path: /api/v1}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: api-v1}}}
  - name: h-any
    match: {path: /h}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: h-any}}}
  - name: h-wild
    match: {path: /h, hosts: ["*.example.com"]}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: h-wild}}}
  - name: h-exact
    match: {path: /h, hosts: [a.example.com]}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: h-exact}}}
  - name: m-any
    match: {path: /m}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: m-any}}}
  - name: m-post
    match: {path: /m, methods: [POST]}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: m-post}}}
  - name: only-get
    match: {path: /only-get, methods: [GET]}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: only-get}}}
  - name: param
    match: {path: "/users/{id}/profile", path_type: exact}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: param}}}
  - name: literal
    match: {path: /users/me/profile, path_type: exact}
    upstream: app
    auth: public
    headers: {request: {set: {X-Route: literal}}}
`

func TestRoutingPrecedence(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, routingConfig, "UP", up.URL)
	c := newClient(t)
	base := g.URL("http")

	cases := []struct {
		method, host, path string
		route              string // "" for a refused request
		status             int
	}{
		{"GET", "", "/exact", "exact", 200},
		{"GET", "", "/exact/x", "exact-prefix", 200},
		{"GET", "", "/exact/", "exact-prefix", 200},
		{"GET", "", "/api", "api", 200},
		{"GET", "", "/api/", "api", 200},
		{"GET", "", "/api/x", "api", 200},
		{"GET", "", "/api/v1", "api-v1", 200},
		{"GET", "", "/api/v1/users", "api-v1", 200},
		{"GET", "", "/api/v10", "api", 200},
		{"GET", "", "/apiary", "", 404},
		{"GET", "", "/ap", "", 404},
		{"GET", "a.example.com", "/h/x", "h-exact", 200},
		{"GET", "A.Example.COM:8080", "/h/x", "h-exact", 200},
		{"GET", "b.example.com", "/h/x", "h-wild", 200},
		{"GET", "x.b.example.com", "/h/x", "h-wild", 200},
		{"GET", "example.com", "/h/x", "h-any", 200},
		{"GET", "other.test", "/h/x", "h-any", 200},
		{"POST", "", "/m", "m-post", 200},
		{"POST", "", "/m/deep", "m-post", 200},
		{"GET", "", "/m", "m-any", 200},
		{"DELETE", "", "/m", "m-any", 200},
		{"GET", "", "/only-get", "only-get", 200},
		{"HEAD", "", "/only-get", "only-get", 200},
		{"POST", "", "/only-get", "", 405},
		{"GET", "", "/users/42/profile", "param", 200},
		{"GET", "", "/users/me/profile", "literal", 200},
		{"GET", "", "/nowhere", "", 404},
		{"GET", "", "/", "", 404},
	}
	for _, tc := range cases {
		hdr := map[string]string{}
		if tc.host != "" {
			hdr["Host"] = tc.host
		}
		before := up.Count()
		resp, body := do(t, c, tc.method, base+tc.path, hdr, nil)
		name := tc.method + " " + tc.host + tc.path
		if tc.route != "" {
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status %d, want %d (body %s)", name, resp.StatusCode, tc.status, body)
				continue
			}
			if up.Count() != before+1 {
				t.Errorf("%s: upstream received %d requests, want 1", name, up.Count()-before)
				continue
			}
			got := up.Last(t)
			if r := got.Header.Get("X-Route"); r != tc.route {
				t.Errorf("%s: routed to %q, want %q", name, r, tc.route)
			}
			if got.Path != tc.path {
				t.Errorf("%s: upstream path %q, want %q", name, got.Path, tc.path)
			}
			continue
		}
		if up.Count() != before {
			t.Errorf("%s: upstream received the request; want it refused with %d", name, tc.status)
		}
		if tc.method == "HEAD" {
			continue
		}
		problemDoc(t, resp, body, tc.status, true)
		if tc.status == 405 {
			allow := resp.Header.Get("Allow")
			if !strings.Contains(allow, "GET") || strings.Contains(allow, "POST") {
				t.Errorf("%s: Allow %q, want GET (and not POST)", name, allow)
			}
		}
	}
}
