package authz

import (
	"strings"
	"testing"
)

func TestWWWAuthenticate(t *testing.T) {
	cases := []struct{ realm, code, desc, scope, want string }{
		{"api", "", "", "", `Bearer realm="api"`},
		{"api", ErrCodeInvalidToken, "", "", `Bearer realm="api", error="invalid_token"`},
		{"api", ErrCodeInsufficientScope, "", "a b", `Bearer realm="api", error="insufficient_scope", scope="a b"`},
		{`we"ird\realm`, "", "", "", `Bearer realm="we\"ird\\realm"`},
		{"", ErrCodeInvalidToken, `token "expired"`, "", `Bearer error="invalid_token", error_description="token expired"`},
		{"api", "made_up", "", "", `Bearer realm="api"`},
		{"a\r\nSet-Cookie: x", "", "", "", `Bearer realm="aSet-Cookie: x"`},
		{"", "", "", `ok bad"one  x\y also\r\nok`, `Bearer scope="ok"`},
		{"", "", "", "", "Bearer"},
	}
	for _, c := range cases {
		if got := WWWAuthenticate(c.realm, c.code, c.desc, c.scope); got != c.want {
			t.Errorf("WWWAuthenticate(%q,%q,%q,%q) = %s, want %s", c.realm, c.code, c.desc, c.scope, got, c.want)
		}
	}
}

// parseChallenge is a strict RFC 7235 parser for the subset we emit: it
// returns the attributes or fails the test.
func parseChallenge(t *testing.T, h string) map[string]string {
	t.Helper()
	for i := 0; i < len(h); i++ {
		if c := h[i]; c < 0x20 || c > 0x7E {
			t.Fatalf("byte 0x%02x in header %q", c, h)
		}
	}
	if !strings.HasPrefix(h, "Bearer") {
		t.Fatalf("no Bearer scheme: %q", h)
	}
	rest := h[len("Bearer"):]
	attrs := map[string]string{}
	if rest == "" {
		return attrs
	}
	if rest[0] != ' ' {
		t.Fatalf("no space after scheme: %q", h)
	}
	rest = rest[1:]
	for len(rest) > 0 {
		eq := strings.Index(rest, `="`)
		if eq <= 0 {
			t.Fatalf("bad attribute in %q", h)
		}
		name := rest[:eq]
		rest = rest[eq+2:]
		var val strings.Builder
		closed := false
		for len(rest) > 0 {
			c := rest[0]
			rest = rest[1:]
			if c == '\\' {
				if len(rest) == 0 {
					t.Fatalf("dangling escape in %q", h)
				}
				val.WriteByte(rest[0])
				rest = rest[1:]
				continue
			}
			if c == '"' {
				closed = true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			t.Fatalf("unterminated value in %q", h)
		}
		if _, dup := attrs[name]; dup {
			t.Fatalf("duplicate attribute %s in %q", name, h)
		}
		attrs[name] = val.String()
		if rest == "" {
			break
		}
		if !strings.HasPrefix(rest, ", ") {
			t.Fatalf("bad separator in %q", h)
		}
		rest = rest[2:]
	}
	return attrs
}

func FuzzWWWAuthenticate(f *testing.F) {
	f.Add("api", "invalid_token", "desc", "a b")
	f.Add(`r"e\a`, "insufficient_scope", "\"\\\r\n", "a\"b c\\d \x00 e")
	f.Add("", "", "", "   ")
	f.Fuzz(func(t *testing.T, realm, code, desc, scope string) {
		h := WWWAuthenticate(realm, code, desc, scope)
		attrs := parseChallenge(t, h)
		for name, v := range attrs {
			switch name {
			case "realm", "error", "error_description", "scope":
			default:
				t.Fatalf("unexpected attribute %q", name)
			}
			if name == "error" && v != ErrCodeInvalidRequest && v != ErrCodeInvalidToken && v != ErrCodeInsufficientScope {
				t.Fatalf("error code %q echoed", v)
			}
			if name == "error_description" && strings.ContainsAny(v, "\"\\") {
				t.Fatalf("error_description has quote/backslash: %q", v)
			}
		}
		if s, ok := attrs["scope"]; ok {
			for _, tok := range strings.Split(s, " ") {
				if err := ValidateScopeToken(tok); err != nil {
					t.Fatalf("invalid scope token %q emitted: %v", tok, err)
				}
				if !strings.Contains(" "+scope+" ", " "+tok+" ") {
					t.Fatalf("scope token %q not from input", tok)
				}
			}
		}
	})
}
