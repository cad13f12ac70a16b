package introspect

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/authn"
)

// FuzzDecodeResponse feeds arbitrary bodies through decoding and the claim
// checks: no panics, accepted bodies are single JSON objects without
// duplicate members, and an identity is only ever produced for "active":true.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"active":true,"sub":"a","exp":1900000000,"aud":["api"],"iss":"https://as"}`))
	f.Add([]byte(`{"active":false,"active":true}`))
	f.Add([]byte(`{"active":true,"exp":"x","nbf":-1}`))
	f.Add([]byte(`{"active":true,"scope":"a  b ","aud":"api","exp":1e300}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"a":{"b":[{"c":{}}]}}`))
	c := &checks{audience: "api", issuer: "https://as", leeway: 30 * time.Second, posTTL: time.Minute, negTTL: 10 * time.Second}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeResponse(body)
		if err != nil {
			if m != nil {
				t.Fatal("map returned with error")
			}
			return
		}
		if !json.Valid(body) {
			t.Fatal("accepted invalid JSON")
		}
		if err := checkStructure(body); err != nil {
			t.Fatalf("accepted body fails structure check: %v", err)
		}
		id, until, refusal := c.evaluate(m, now, "deadbeef")
		if (id == nil) == (refusal == nil) {
			t.Fatal("evaluate must return exactly one of identity or refusal")
		}
		if id != nil {
			if active, _ := m["active"].(bool); !active {
				t.Fatal("identity for a response without active:true")
			}
			if until.After(now.Add(time.Minute)) {
				t.Fatal("cache lifetime beyond the positive TTL")
			}
			if !id.ExpiresAt.IsZero() && until.After(id.ExpiresAt) {
				t.Fatal("cache lifetime beyond exp")
			}
		}
	})
}

// FuzzBearerToken checks header parsing: a token is only returned if it is
// a single RFC 6750 b64token within the size bound.
func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer abc.def-ghi_~+/==")
	f.Add("bearer  x")
	f.Add("Bearer a b")
	f.Add("Basic x")
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{h}
		tok, err := bearerToken(r, false, 64)
		if err != nil {
			var ae *authn.Error
			if !errors.Is(err, authn.ErrNoCredentials) && !errors.As(err, &ae) {
				t.Fatalf("unexpected error type %T", err)
			}
			return
		}
		if !isB64Token(tok) || len(tok) > 64 || strings.ContainsAny(tok, " \t\r\n") {
			t.Fatalf("accepted token %q", tok)
		}
	})
}
