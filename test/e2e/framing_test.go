package e2e

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

const echoConfig = `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - name: app
    match: {path: /}
    upstream: app
    auth: public
`

// TestSmugglingFramings sends ambiguous framings over raw TCP: each must be
// refused with 400 problem+json, the connection closed, and neither the
// carrier nor the smuggled request may reach the upstream. A valid
// pipelined keep-alive sequence still works afterwards.
func TestSmugglingFramings(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, echoConfig, "UP", up.URL)
	addr := g.Addr()

	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"
	cases := []struct{ name, raw string }{
		{"CL+TE", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE+CL", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 45\r\n\r\n0\r\n\r\n" + smuggled},
		{"two different CLs", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Length: 45\r\n\r\nhello" + smuggled},
		{"duplicate CLs", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled},
		{"CL list", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 45\r\n\r\nhello" + smuggled},
		{"TE xchunked", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE xchunked with CL", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE chunked, identity", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled},
		{"obs-fold TE", "POST /carrier HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"obs-fold other header", "GET /carrier HTTP/1.1\r\nHost: gw.test\r\nX-Folded: a\r\n b\r\n\r\n" + smuggled},
		{"bare LF", "GET /carrier HTTP/1.1\nHost: gw.test\n\n" + smuggled},
		{"bare LF in one header", "GET /carrier HTTP/1.1\r\nHost: gw.test\r\nX-A: 1\nX-B: 2\r\n\r\n" + smuggled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, conn, br := rawExchange(t, addr, tc.raw)
			problemDoc(t, resp, body, 400, false)
			if !connClosed(conn, br, 5*time.Second) {
				t.Errorf("connection stayed open after a framing rejection (the rest of the bytes could be parsed as a request)")
			}
		})
	}
	// Give any (wrongly) forwarded request time to land, then check.
	time.Sleep(200 * time.Millisecond)
	for _, r := range up.Requests() {
		t.Errorf("upstream received %s %s (want nothing from ambiguous framings)", r.Method, r.RequestURI)
	}

	// A valid pipelined keep-alive sequence still works, in order.
	t.Run("valid pipeline", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(ioTimeout))
		pipeline := "GET /p/1 HTTP/1.1\r\nHost: gw.test\r\n\r\n" +
			"POST /p/2 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\n\r\nabc" +
			"POST /p/3 HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n" +
			"GET /p/4 HTTP/1.1\r\nHost: gw.test\r\n\r\n"
		if _, err := io.WriteString(conn, pipeline); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		for i := 1; i <= 4; i++ {
			resp, body, err := readResponse(br)
			if err != nil {
				t.Fatalf("pipelined response %d: %v", i, err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("pipelined response %d: status %d body %s", i, resp.StatusCode, body)
			}
			if !strings.Contains(string(body), `"/p/`) {
				t.Errorf("pipelined response %d: unexpected body %s", i, body)
			}
		}
		reqs := up.Requests()
		if len(reqs) != 4 {
			t.Fatalf("upstream received %d requests, want 4", len(reqs))
		}
		wantBodies := []string{"", "abc", "xyz", ""}
		for i, r := range reqs {
			if want := "/p/" + string(rune('1'+i)); r.RequestURI != want {
				t.Errorf("request %d: upstream path %q, want %q", i+1, r.RequestURI, want)
			}
			if string(r.Body) != wantBodies[i] {
				t.Errorf("request %d: upstream body %q, want %q", i+1, r.Body, wantBodies[i])
			}
		}
	})
}
