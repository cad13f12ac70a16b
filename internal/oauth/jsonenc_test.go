package oauth

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// wireClaims mirrors accessClaims with encoding/json semantics for comparison.
type wireClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience any    `json:"aud"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	JTI      string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	AuthTime int64  `json:"auth_time,omitempty"`
}

func stdClaims(c *accessClaims) []byte {
	w := wireClaims{c.Issuer, c.Subject, nil, c.ClientID, c.Scope, c.JTI, c.IssuedAt, c.Expiry, c.AuthTime}
	if len(c.Audience) == 1 {
		w.Audience = c.Audience[0]
	} else {
		w.Audience = []string(c.Audience)
	}
	b, _ := json.Marshal(w)
	return b
}

func TestJSONEncodersMatchEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", "quote\"back\\slash", "ctl\x00\x01\x1f\n\r\t", "<html>&", "日本語", "bad\xffutf8", "\u2028\u2029", "\x7f"}
	for _, s := range strs {
		for _, aud := range []audience{{s}, {"a", s}, {}} {
			c := &accessClaims{Issuer: s, Subject: "sub" + s, Audience: aud, ClientID: s, Scope: s, JTI: "j" + s, IssuedAt: 1, Expiry: -2, AuthTime: int64(len(s))}
			if got, want := c.appendJSON(nil), stdClaims(c); !bytes.Equal(got, want) {
				t.Errorf("claims %q:\n got %s\nwant %s", s, got, want)
			}
		}
		tr := &tokenResponse{AccessToken: s, TokenType: "Bearer", ExpiresIn: 600, Scope: s, RefreshToken: s, IDToken: s}
		want, _ := json.Marshal(tr)
		if got := tr.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("token response %q:\n got %s\nwant %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "<>&", strings.Repeat("é", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}
