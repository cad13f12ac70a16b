package upstream

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseTarget checks that target URL validation never panics and that
// every accepted URL compiles to a well-formed, credential-free target.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"http://10.0.0.1:8080", "https://b.example/base/", "http://[::1]:9/a%20b", "http://u:p@h:1",
		"ftp://h", "http://h:0", "http://h:1/a/../b", "http://h:1/%2e%2e", "http://h:1/a%2Fb", "http://h:1?q",
		"http://h:1#f", "http:///x", "http://h:1//x", "https://H.EXAMPLE:443/A%3Ab",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// Whatever follows, a URL with a password is rejected without
		// echoing the password.
		if _, err := parseTarget("http://user:S3CR3TMARK" + raw); err == nil {
			t.Fatalf("accepted credentials in %q", raw)
		} else if strings.Contains(err.Error(), "S3CR3TMARK") || strings.Contains(err.Error(), "3CR3") {
			t.Fatalf("error echoes the password: %v", err)
		}
		tg, err := parseTarget(raw)
		if err != nil {
			return
		}
		if tg.scheme != "http" && tg.scheme != "https" {
			t.Fatalf("scheme %q", tg.scheme)
		}
		host, port, err := net.SplitHostPort(tg.host)
		if err != nil || host == "" {
			t.Fatalf("host %q: %v", tg.host, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("port %q", port)
		}
		// No userinfo in the label ('@' is a legal path character, as in
		// http://h/@, but must never precede the host), no query or fragment.
		if lu, err := url.Parse(tg.label); err != nil || lu.User != nil || strings.Contains(lu.Host, "@") || strings.ContainsAny(tg.label, "?#") {
			t.Fatalf("label %q", tg.label)
		}
		if tg.basePath != "" {
			if tg.basePath[0] != '/' || strings.HasSuffix(tg.basePath, "/") || strings.Contains(tg.baseEsc, "//") {
				t.Fatalf("base path %q", tg.basePath)
			}
			for _, seg := range strings.Split(tg.basePath[1:], "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("dot segment in base path %q", tg.basePath)
				}
			}
		}
		// The label is itself an accepted target URL describing the same target.
		again, err := parseTarget(tg.label)
		if err != nil || again.label != tg.label || again.host != tg.host || again.basePath != tg.basePath {
			t.Fatalf("label %q does not round-trip: %v", tg.label, err)
		}
	})
}

// FuzzOutboundPath checks the base-path join: the outbound path is always the
// base path followed by the request path, and the escaped form agrees.
func FuzzOutboundPath(f *testing.F) {
	for _, s := range [][2]string{{"/base", "/x"}, {"", "/a%2Fb"}, {"/a%3Ab", "/c d"}, {"/b", ""}, {"/b", "*"}, {"/b", "/%25"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, base, reqPath string) {
		if base != "" && base[0] != '/' {
			return
		}
		tg, err := parseTarget("http://h:1" + base)
		if err != nil {
			return
		}
		in, err := url.ParseRequestURI("http://placeholder" + "/" + strings.TrimPrefix(reqPath, "/"))
		if err != nil || in.Host != "placeholder" {
			return
		}
		req := &http.Request{Method: http.MethodGet, URL: in, Header: http.Header{}}
		req = req.WithContext(context.Background())
		c := &call{ctx: context.Background()}
		out, err := c.outRequest(req, tg, 1)
		if err != nil {
			t.Fatal(err)
		}
		if out.URL.Host != "h:1" || out.URL.Scheme != "http" || req.URL.Host != "placeholder" {
			t.Fatalf("URL %v (caller's %v)", out.URL, req.URL)
		}
		if want := tg.basePath + in.Path; out.URL.Path != want {
			t.Fatalf("path %q, want %q", out.URL.Path, want)
		}
		esc := out.URL.EscapedPath()
		if !strings.HasPrefix(esc, tg.baseEsc) {
			t.Fatalf("escaped path %q lost the base %q", esc, tg.baseEsc)
		}
		if dec, err := url.PathUnescape(esc); err != nil || dec != out.URL.Path {
			t.Fatalf("escaped path %q decodes to %q (%v), want %q", esc, dec, err, out.URL.Path)
		}
	})
}
