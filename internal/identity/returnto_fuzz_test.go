package identity

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseReturnTo: whatever parseReturnTo accepts is a same-origin path to
// the authorize endpoint (or the account page), and its canonical form is a
// fixed point.
func FuzzParseReturnTo(f *testing.F) {
	for _, s := range []string{
		"/oauth2/authorize?client_id=a&state=b",
		"/oauth2/authorize?a=%2F%2Fevil",
		"/account/consents",
		"//evil.com",
		"/\\evil",
		"https://evil",
		"/oauth2/authorize/../../x",
		"/oauth2/authorize?a=b#c",
		"/oauth2/authorize?redirect_uri=https%3A%2F%2Fapp%2Fcb&prompt=login+consent",
	} {
		f.Add(s)
	}
	s := &Service{o: Options{AuthorizePath: "/oauth2/authorize"}}
	f.Fuzz(func(t *testing.T, in string) {
		c, vals, kind := s.parseReturnTo(in)
		if kind == returnInvalid {
			if c != "" || vals != nil {
				t.Fatal("invalid input returned a value")
			}
			return
		}
		if strings.ContainsAny(c, "\\# \t\r\n") || strings.HasPrefix(c, "//") {
			t.Fatalf("accepted %q -> %q", in, c)
		}
		u, err := url.Parse(c)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
			t.Fatalf("canonical %q is not a relative path: %+v %v", c, u, err)
		}
		switch kind {
		case returnAuthorize:
			if u.Path != "/oauth2/authorize" || u.RawPath != "" || !strings.HasPrefix(c, "/oauth2/authorize?") {
				t.Fatalf("canonical %q does not target the authorize endpoint", c)
			}
			if s.withoutPrompt(vals, "login") == "" {
				t.Fatal("withoutPrompt returned nothing")
			}
		case returnAccount:
			if c != "/account/consents" {
				t.Fatalf("account kind for %q", c)
			}
		}
		if c2, _, k2 := s.parseReturnTo(c); c2 != c || k2 != kind {
			t.Fatalf("canonical form not a fixed point: %q -> %q", c, c2)
		}
	})
}
