package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestPathNormalizationCannotBypassAuth sends every spelling from issue 2
// point 6 over raw TCP (no client-side cleaning). /public is public, /api
// needs a credential; nothing may reach /api's upstream without it, nothing
// under /api may reach /public's upstream, and when a request passes, the
// upstream sees the normalized path.
func TestPathNormalizationCannotBypassAuth(t *testing.T) {
	t.Parallel()
	mode := detectCredMode(t)
	pub := newUpstream(t, "pub", nil)
	api := newUpstream(t, "api", nil)

	dir := t.TempDir()
	ti := newTestIssuer(t)
	issuers, apiAuth := "", "public"
	switch mode {
	case credJWT:
		issuers, apiAuth = issuerYAML, "{jwt: {issuers: [e2e]}}"
	case credAPIKey:
		apiAuth = "{apikey: {}}"
	}
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
`+issuers+`
upstreams:
  pub: {targets: [{url: "@PUB@"}]}
  api: {targets: [{url: "@API@"}]}
routes:
  - name: public
    match: {path: /public}
    upstream: pub
    auth: public
  - name: api
    match: {path: /api}
    upstream: api
    auth: `+apiAuth+`
`, "PUB", pub.URL, "API", api.URL, "JWKS", ti.writeJWKS(t, dir))
	addr := g.Addr()

	// Sanity: the public route works, so "pub received nothing" below means something.
	resp, _, _, _ := rawExchange(t, addr, "GET /public/ok HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || pub.Count() != 1 || pub.Last(t).RequestURI != "/public/ok" {
		t.Fatalf("GET /public/ok: status %d, pub received %d; want 200 and 1", resp.StatusCode, pub.Count())
	}

	// normalizes: the path resolves to /api/x and must get /api's treatment.
	// Otherwise the spelling is refused with 400.
	paths := []struct {
		raw        string
		normalizes bool
	}{
		{"/public/../api/x", true},
		{"/public/%2e%2e/api/x", false},
		{"/public/%2E%2E%2Fapi/x", false},
		{"//api/x", true},
		{"/api%2fx", false},
		{"/api%2Fx", false},
		{"/public/..;/api/x", false},
		{"/./api/x", true},
		{"/public/.%2e/api/x", false},
		{"/public/%2e./api/x", false},
		{"/public%2f..%2fapi/x", false},
		{"/public/..%5capi/x", false},
		{"/public\\..\\api/x", false},
		{"/public/%00/../api/x", false},
		{"/public/./../api/x", true},
	}
	var tok string
	if mode == credJWT {
		tok = ti.token(t, "alice")
	}
	for _, p := range paths {
		t.Run(strings.ReplaceAll(p.raw, "/", "_"), func(t *testing.T) {
			// Without a credential.
			pubBefore, apiBefore := pub.Count(), api.Count()
			resp, body, _, _ := rawExchange(t, addr, "GET "+p.raw+" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
			if pub.Count() != pubBefore {
				t.Errorf("%s reached the PUBLIC upstream as %q", p.raw, pub.Last(t).RequestURI)
			}
			switch {
			case !p.normalizes:
				problemDoc(t, resp, body, 400, false)
				if api.Count() != apiBefore {
					t.Errorf("%s reached the api upstream as %q; want 400", p.raw, api.Last(t).RequestURI)
				}
			case mode == credJWT || mode == credAPIKey:
				if resp.StatusCode != 401 {
					t.Errorf("%s without credential: status %d, want 401; body %s", p.raw, resp.StatusCode, body)
				} else {
					problemDoc(t, resp, body, 401, true)
				}
				if api.Count() != apiBefore {
					t.Errorf("%s reached the api upstream WITHOUT a credential as %q", p.raw, api.Last(t).RequestURI)
				}
			default:
				// No credential kinds in this build: the request must at least
				// be handled by the /api route (whose auth would apply).
				if resp.StatusCode != 200 || api.Count() != apiBefore+1 {
					t.Fatalf("%s: status %d, api upstream +%d; want the /api route", p.raw, resp.StatusCode, api.Count()-apiBefore)
				}
				if got := api.Last(t).RequestURI; got != "/api/x" {
					t.Errorf("%s: upstream received %q, want the normalized /api/x", p.raw, got)
				}
			}
			if mode != credJWT || !p.normalizes {
				return
			}
			// With a valid credential it passes, and the upstream gets /api/x.
			apiBefore = api.Count()
			resp, body, _, _ = rawExchange(t, addr, "GET "+p.raw+" HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer "+tok+"\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != 200 || api.Count() != apiBefore+1 {
				t.Fatalf("%s with token: status %d, api upstream +%d; want 200 and 1 (body %s)", p.raw, resp.StatusCode, api.Count()-apiBefore, body)
			}
			if got := api.Last(t).RequestURI; got != "/api/x" {
				t.Errorf("%s with token: upstream received %q, want the normalized /api/x", p.raw, got)
			}
			if pub.Count() != pubBefore {
				t.Errorf("%s with token reached the public upstream", p.raw)
			}
		})
	}

	// Percent-encoded unreserved characters are decoded; the upstream sees
	// the same normalized path the router matched.
	resp, _, _, _ = rawExchange(t, addr, "GET /%70ublic/%7Euser/a%2Db HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /%%70ublic/%%7Euser/a%%2Db: status %d, want 200 via the public route", resp.StatusCode)
	}
	if got := pub.Last(t).RequestURI; got != "/public/~user/a-b" {
		t.Errorf("upstream received %q, want /public/~user/a-b", got)
	}
	// Reserved characters stay encoded (and upper-cased) on the way up.
	resp, _, _, _ = rawExchange(t, addr, "GET /public/a%3fb%2a HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /public/a%%3fb%%2a: status %d, want 200", resp.StatusCode)
	}
	if got := pub.Last(t).RequestURI; got != "/public/a%3Fb%2A" {
		t.Errorf("upstream received %q, want /public/a%%3Fb%%2A", got)
	}
}

// TestForwardingHeaders checks that a client cannot spoof forwarding or
// identity headers, that Connection cannot strip what the gateway sets, and
// that a trusted proxy's chain is honoured.
func TestForwardingHeaders(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	cfg := `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  trusted_proxies: @TRUSTED@
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - name: app
    match: {path: /}
    upstream: app
    auth: public
`
	spoof := "GET /whoami HTTP/1.1\r\n" +
		"Host: gw.test\r\n" +
		"X-Forwarded-For: 6.6.6.6\r\n" +
		"X-Forwarded-Host: evil.test\r\n" +
		"X-Forwarded-Proto: https\r\n" +
		"Forwarded: for=6.6.6.6;host=evil.test;proto=https\r\n" +
		"X-Real-IP: 6.6.6.6\r\n" +
		"X-User-Id: admin\r\n" +
		"X-User-Roles: root\r\n" +
		"X_User_Id: admin\r\n" +
		"X-Sekisho-Identity: forged\r\n" +
		"x-sekisho-subject: forged\r\n" +
		"X-Forwarded-User: admin\r\n" +
		"X-Auth-Request-User: admin\r\n" +
		"X-Drop-Me: secret\r\n" +
		"X-Keep-Me: yes\r\n" +
		"X-Request-Id: e2e-spoof-1\r\n" +
		"Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n" +
		"Connection: keep-alive, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, Forwarded, X-Request-Id, X-Drop-Me\r\n" +
		"\r\n"

	t.Run("untrusted peer", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, cfg, "UP", up.URL, "TRUSTED", "[]")
		resp, _, _, _ := rawExchange(t, g.Addr(), spoof)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if id := resp.Header.Get("X-Request-Id"); id != "e2e-spoof-1" {
			t.Errorf("response X-Request-Id %q, want the client's well-formed e2e-spoof-1", id)
		}
		var got seen
		for _, r := range up.Requests() {
			if r.Header.Get("X-Request-Id") == "e2e-spoof-1" {
				got = r
			}
		}
		if got.Header == nil {
			t.Fatal("upstream did not receive the request")
		}
		want := map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Host":  "gw.test",
			"X-Forwarded-Proto": "http",
			"Forwarded":         `for=127.0.0.1;proto=http;host="gw.test"`,
			"X-Request-Id":      "e2e-spoof-1",
			"X-Keep-Me":         "yes",
			"Traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}
		for k, v := range want {
			if vals := got.Header.Values(k); len(vals) != 1 || vals[0] != v {
				t.Errorf("upstream %s = %q, want exactly [%q]", k, vals, v)
			}
		}
		assertNoIdentityHeaders(t, got.Header)
		if _, ok := got.Header["X-Drop-Me"]; ok {
			t.Errorf("X-Drop-Me was named in Connection (hop-by-hop) but reached the upstream")
		}
		if got.Header.Get("Connection") != "" {
			t.Errorf("Connection header forwarded: %q", got.Header.Get("Connection"))
		}
		if a := g.accessFor("e2e-spoof-1"); a["client_ip"] != "127.0.0.1" {
			t.Errorf("access log client_ip %v, want 127.0.0.1", a["client_ip"])
		}

		// Malformed request IDs and traceparents are replaced / dropped.
		resp, _, _, _ = rawExchange(t, g.Addr(), "GET /x HTTP/1.1\r\nHost: gw.test\r\nX-Request-Id: bad id\"<script>\r\n"+
			"Traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\nConnection: close\r\n\r\n")
		id := resp.Header.Get("X-Request-Id")
		if id == "" || strings.ContainsAny(id, " \"<") {
			t.Errorf("malformed request ID echoed or missing: %q", id)
		}
		last := up.Last(t)
		if last.Header.Get("X-Request-Id") != id {
			t.Errorf("upstream X-Request-Id %q, response %q: want the same generated ID", last.Header.Get("X-Request-Id"), id)
		}
		if tp := last.Header.Get("Traceparent"); tp != "" {
			t.Errorf("invalid traceparent forwarded: %q", tp)
		}
	})

	t.Run("trusted proxy", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, cfg, "UP", up.URL, "TRUSTED", "[127.0.0.0/8]")
		cases := []struct {
			xff, wantClient, wantXFF string
		}{
			{"6.6.6.6, 10.1.2.3", "10.1.2.3", "6.6.6.6, 10.1.2.3, 127.0.0.1"},
			{"6.6.6.6, 127.0.0.5", "6.6.6.6", "6.6.6.6, 127.0.0.5, 127.0.0.1"},
			{"", "127.0.0.1", "127.0.0.1"},
		}
		for i, tc := range cases {
			id := fmt.Sprintf("e2e-trusted-%d", i)
			req := "GET /t HTTP/1.1\r\nHost: gw.test\r\nX-Request-Id: " + id + "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example.com\r\n" +
				"X-User-Id: forged\r\nX_User_Id: forged\r\nX-Real-IP: 9.9.9.9\r\n"
			if tc.xff != "" {
				req += "X-Forwarded-For: " + tc.xff + "\r\n"
			}
			resp, _, _, _ := rawExchange(t, g.Addr(), req+"Connection: close\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var got seen
			for _, r := range up.Requests() {
				if r.Header.Get("X-Request-Id") == id {
					got = r
				}
			}
			if got.Header == nil {
				t.Fatalf("%s: upstream did not receive the request", id)
			}
			if v := got.Header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != tc.wantXFF {
				t.Errorf("XFF %q from trusted peer: upstream got %q, want [%q]", tc.xff, v, tc.wantXFF)
			}
			if v := got.Header.Get("X-Forwarded-Proto"); v != "https" {
				t.Errorf("trusted X-Forwarded-Proto: upstream got %q, want https", v)
			}
			if v := got.Header.Get("X-Forwarded-Host"); v != "app.example.com" {
				t.Errorf("trusted X-Forwarded-Host: upstream got %q, want app.example.com", v)
			}
			wantFwd := `for=` + tc.wantClient + `;proto=https;host="app.example.com"`
			if v := got.Header.Get("Forwarded"); v != wantFwd {
				t.Errorf("Forwarded: upstream got %q, want %q", v, wantFwd)
			}
			assertNoIdentityHeaders(t, got.Header)
			if a := g.accessFor(id); a["client_ip"] != tc.wantClient {
				t.Errorf("XFF %q: access log client_ip %v, want %s (right-most untrusted hop)", tc.xff, a["client_ip"], tc.wantClient)
			}
		}
	})
}

// assertNoIdentityHeaders fails if a client-supplied identity header (in any
// spelling) reached the upstream.
func assertNoIdentityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for k, v := range h {
		n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		if strings.HasPrefix(n, "x-user-") || strings.HasPrefix(n, "x-sekisho-") || strings.HasPrefix(n, "x-auth-") ||
			n == "x-forwarded-user" || n == "x-real-ip" {
			t.Errorf("client-supplied identity header reached the upstream: %s: %q", k, v)
		}
	}
}
