package tlsconf

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRedirectHandler(t *testing.T) {
	h := RedirectHandler("8443")
	cases := []struct {
		method, host, target string
		status               int
		location             string
	}{
		{"GET", "example.com", "/a/b?x=1&y=%20z", 301, "https://example.com:8443/a/b?x=1&y=%20z"},
		{"HEAD", "example.com:8080", "/", 301, "https://example.com:8443/"},
		{"POST", "Example.COM.", "/submit", 308, "https://example.com:8443/submit"},
		{"PUT", "api.example.com", "/x?", 308, "https://api.example.com:8443/x"},
		{"GET", "[2001:DB8::1]:80", "/v6", 301, "https://[2001:db8::1]:8443/v6"},
		{"GET", "192.0.2.7", "/ip", 301, "https://192.0.2.7:8443/ip"},
		{"GET", "xn--bcher-kva.example", "/", 301, "https://xn--bcher-kva.example:8443/"},
		{"GET", "example.com", "//evil.com/x", 301, "https://example.com:8443//evil.com/x"},
		{"GET", "example.com", "/p%2Fq/%41?a=%2F&b=c+d#frag", 301, "https://example.com:8443/p%2Fq/%41?a=%2F&b=c+d%23frag"},
		{"GET", "example.com", "http://other.test/abs?q=1", 301, "https://example.com:8443/abs?q=1"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, c.target, nil)
		req.Host = c.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status || rec.Header().Get("Location") != c.location {
			t.Errorf("%s %s Host %q: %d %q, want %d %q", c.method, c.target, c.host, rec.Code, rec.Header().Get("Location"), c.status, c.location)
			continue
		}
		u, err := url.Parse(c.location)
		if err != nil || u.Scheme != "https" || u.User != nil || !strings.HasPrefix(c.location, "https://"+u.Host+"/") {
			t.Errorf("Location %q parses to %+v (%v)", c.location, u, err)
		}
	}
}

func TestRedirectRejectsMaliciousHost(t *testing.T) {
	h := RedirectHandler("443")
	for _, host := range []string{
		"", "evil.com@x", "user:pass@example.com", "x/../", "example.com/evil", "example.com\\evil.com",
		"example.com\r\nSet-Cookie: a=b", "example.com\nx", "exa mple.com", "example.com%2f", "%65vil.com",
		"example.com:abc", "example.com:", "example.com:99999", "example.com:443:443", "[::1", "[::1]x", "[::1]:",
		"[fe80::1%25eth0]", "[1.2.3.4]", "::1", "0x7f.0.0.1", "0x7f000001", "2130706433", "127.1", "1.2.3.04", "1.2.3.4.5",
		"-example.com", "example-.com", "a..b", ".example.com", "example.com..", "_acme.example.com", "évil.com",
		"example.com?x", "example.com#x", strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "com",
		"*.example.com", "exa\x00mple.com",
	} {
		req := httptest.NewRequest("GET", "/x?y=1", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
			t.Errorf("Host %q: %d Location %q, want 400 without Location", host, rec.Code, rec.Header().Get("Location"))
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Host %q: content type %q", host, ct)
		}
		if strings.Contains(rec.Body.String(), "evil") {
			t.Errorf("Host %q: body echoes the host: %s", host, rec.Body)
		}
	}

	// "OPTIONS *" cannot be redirected.
	req := httptest.NewRequest("OPTIONS", "*", nil)
	req.Host = "example.com"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("OPTIONS *: %d", rec.Code)
	}
}

func TestRedirectQueryEncoding(t *testing.T) {
	// Raw non-ASCII bytes and quotes in the query are percent-encoded, other
	// bytes kept verbatim.
	h := RedirectHandler("")
	req := httptest.NewRequest("GET", "/s", nil)
	req.URL.RawQuery = "q=caf\xc3\xa9&r=\"<x>\"&s=a%26b"
	req.Host = "example.com"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	want := "https://example.com/s?q=caf%C3%A9&r=%22%3Cx%3E%22&s=a%26b"
	if got := rec.Header().Get("Location"); got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
}

func TestRedirectOptions(t *testing.T) {
	var gotStatus int
	h, err := NewRedirectHandler(RedirectOptions{
		HTTPSPort:    "443",
		AllowedHosts: []string{"example.com", "*.example.org"},
		OnError: func(w http.ResponseWriter, r *http.Request, status int, detail string) {
			gotStatus = status
			w.WriteHeader(status)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{
		"example.com": 301, "EXAMPLE.com:80": 301, "a.example.org": 301,
		"example.org": 400, "a.b.example.org": 400, "evil.com": 400, "example.com.evil.com": 400,
	} {
		gotStatus = 0
		req := httptest.NewRequest("GET", "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
		if want == 400 && gotStatus != 400 {
			t.Errorf("Host %q: OnError not called", host)
		}
		if want == 301 && !strings.HasPrefix(rec.Header().Get("Location"), "https://") {
			t.Errorf("Host %q: Location %q", host, rec.Header().Get("Location"))
		}
	}

	for _, port := range []string{"0", "65536", "abc", "-1", "+443", "44 3", "123456"} {
		if _, err := NewRedirectHandler(RedirectOptions{HTTPSPort: port}); err == nil {
			t.Errorf("port %q accepted", port)
		}
	}
	if _, err := NewRedirectHandler(RedirectOptions{AllowedHosts: []string{"evil.com@x"}}); err == nil {
		t.Error("invalid allowed host accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("RedirectHandler with an invalid port did not panic")
		}
	}()
	RedirectHandler("x")
}

func TestHSTSHeader(t *testing.T) {
	cases := []struct {
		age       time.Duration
		sub, prel bool
		want      string
	}{
		{365 * 24 * time.Hour, true, true, "max-age=31536000; includeSubDomains; preload"},
		{time.Hour + 500*time.Millisecond, false, false, "max-age=3600"},
		{0, true, false, "max-age=0; includeSubDomains"},
		{-time.Hour, false, false, "max-age=0"},
	}
	for _, c := range cases {
		if got := HSTSHeader(c.age, c.sub, c.prel); got != c.want {
			t.Errorf("HSTSHeader(%v,%v,%v) = %q, want %q", c.age, c.sub, c.prel, got, c.want)
		}
	}
	if err := ValidateHSTS(365*24*time.Hour, true, true); err != nil {
		t.Error(err)
	}
	if err := ValidateHSTS(24*time.Hour, true, true); err == nil {
		t.Error("preload with a short max-age accepted")
	}
	if err := ValidateHSTS(365*24*time.Hour, false, true); err == nil {
		t.Error("preload without includeSubDomains accepted")
	}
	if err := ValidateHSTS(-1, false, false); err == nil {
		t.Error("negative max-age accepted")
	}
}

// TestRedirectOverRealServer runs the handler behind net/http so the raw
// request line (absolute-form, odd Host) goes through the real parser.
func TestRedirectOverRealServer(t *testing.T) {
	ts := httptest.NewServer(RedirectHandler("8443"))
	defer ts.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", ts.URL+"/p?q=1", nil)
	req.Host = "shop.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://shop.example.com:8443/p?q=1" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
