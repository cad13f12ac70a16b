package e2e

import (
	"strings"
	"testing"
)

// TestGatewayResponsesCarryRequestID: issue 2 point 8 — every response the
// gateway makes itself is problem+json with the request ID (body and
// X-Request-Id header), including those of the connection-level framing
// guard, which answers before any handler runs.
func TestGatewayResponsesCarryRequestID(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  max_header_bytes: 4KiB
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - {name: app, match: {path: /app, methods: [GET, POST]}, upstream: app, max_body_bytes: 16, auth: public}
`, "UP", up.URL)
	cases := []struct {
		name   string
		raw    string
		status int
	}{
		{"404 no route", "GET /nowhere HTTP/1.1\r\nHost: gw.test\r\n\r\n", 404},
		{"405 method", "DELETE /app HTTP/1.1\r\nHost: gw.test\r\n\r\n", 405},
		{"400 path", "GET /app/%2e%2e/x HTTP/1.1\r\nHost: gw.test\r\n\r\n", 400},
		{"413 body", "POST /app HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 32\r\n\r\n" + strings.Repeat("x", 32), 413},
		{"400 framing (guard)", "POST /app HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"431 header block (guard)", "GET /app HTTP/1.1\r\nHost: gw.test\r\nX-Big: " + strings.Repeat("b", 8<<10) + "\r\n\r\n", 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, _, _ := rawExchange(t, g.Addr(), tc.raw)
			problemDoc(t, resp, body, tc.status, true)
		})
	}
}
