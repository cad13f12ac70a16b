package tlsconf

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRedirect feeds untrusted Host headers and request targets to the
// redirect handler: it either answers 400 without Location, or redirects to an
// https URL on the canonical form of that host with no userinfo, no fragment
// and no bytes that could break the header.
func FuzzRedirect(f *testing.F) {
	for _, s := range [][2]string{
		{"example.com", "/a/b?x=1"},
		{"evil.com@x", "/"},
		{"x/../", "/"},
		{"example.com\r\nX: y", "/"},
		{"[2001:db8::1]:80", "//evil.com/%2e%2e?q=%00"},
		{"0x7f.1", "/"},
		{"EXAMPLE.com.", "/p?q=\xff#f"},
		{"example.com", "http://other.test/abs"},
	} {
		f.Add(s[0], s[1])
	}
	h := RedirectHandler("8443")
	f.Fuzz(func(t *testing.T, host, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := &http.Request{Method: http.MethodGet, Host: host, URL: u, Header: http.Header{}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		loc := rec.Header().Get("Location")
		if rec.Code == http.StatusBadRequest {
			if loc != "" {
				t.Fatalf("400 with Location %q", loc)
			}
			return
		}
		if rec.Code != http.StatusMovedPermanently {
			t.Fatalf("status %d", rec.Code)
		}
		for i := 0; i < len(loc); i++ {
			if c := loc[i]; c <= ' ' || c >= 0x7f || c == '\\' || c == '#' {
				t.Fatalf("Location %q contains byte %q", loc, c)
			}
		}
		lu, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("Location %q does not parse: %v", loc, err)
		}
		if lu.Scheme != "https" || lu.User != nil || lu.Fragment != "" || lu.Port() != "8443" {
			t.Fatalf("Location %q: %+v", loc, lu)
		}
		canon, ok := parseHostHeader(host)
		if !ok || "https://"+canon+":8443" != "https://"+lu.Host || strings.ToLower(lu.Host) != lu.Host {
			t.Fatalf("Host %q redirected to host %q", host, lu.Host)
		}
	})
}

// FuzzSNIMatch feeds untrusted SNI names to certificate selection: a
// non-default certificate is only chosen if it is valid for the name, and a
// name that the second certificate covers selects it.
func FuzzSNIMatch(f *testing.F) {
	for _, s := range []string{"a.example.test", "x.wild.example.test", "wild.example.test", "X.WILD.example.test.", "*.wild.example.test", "..", "a..wild.example.test", ""} {
		f.Add(s)
	}
	dir := f.TempDir()
	ca := newCA(f, "CA")
	srv, err := NewServer(ServerOptions{Certificates: []CertPair{
		writePair(f, dir, "d", ca.issue(f, leafOpts{dns: []string{"default.test"}})),
		writePair(f, dir, "w", ca.issue(f, leafOpts{dns: []string{"a.example.test", "*.wild.example.test"}})),
	}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	snap := srv.cur.Load()
	f.Fuzz(func(t *testing.T, name string) {
		idx := snap.match(name, nil)
		if idx < 0 || idx >= len(snap.certs) {
			t.Fatalf("index %d", idx)
		}
		covered := snap.certs[1].Leaf.VerifyHostname(name) == nil
		if idx == 1 && !covered {
			t.Fatalf("%q selected a certificate that is not valid for it", name)
		}
		if covered && idx != 1 && isPlainDNSName(name) {
			t.Fatalf("%q is covered by certificate 1 but got %d", name, idx)
		}
	})
}

// isPlainDNSName reports letter-digit-hyphen names, the only ones real clients
// send in SNI.
func isPlainDNSName(s string) bool {
	n, ok := parseHostname(s)
	return ok && !strings.Contains(n, ":") && strings.ContainsAny(n, "abcdefghijklmnopqrstuvwxyz")
}
