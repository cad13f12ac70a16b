package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// Fuzz targets cover every parser of untrusted input in this package. Seed
// corpora live in testdata/fuzz/<FuzzName>; run e.g.
//   go test ./internal/oauth -run '^$' -fuzz FuzzParseJWS -fuzztime 20s

func FuzzParseJWS(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0.e30.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := parseJWS(tok)
		if err != nil {
			return
		}
		if p.header.Alg == "" || strings.EqualFold(p.header.Alg, "none") || len(p.signature) == 0 || p.header.Crit != nil {
			t.Fatalf("accepted header %+v", p.header)
		}
		if !strings.HasPrefix(tok, p.signed+".") || strings.Count(tok, ".") != 2 {
			t.Fatalf("signing input %q of %q", p.signed, tok)
		}
	})
}

// FuzzAccessTokenKey: the storage key derived from any presented token is
// either jti + "." + hash with a jti of the generated shape, or the bare
// hash (which no stored row has).
func FuzzAccessTokenKey(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiIwMTIzNDU2Nzg5QUJDREVGR0hJSktMTU5PUCJ9.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJhLmIifQ.c2ln")
	f.Fuzz(func(t *testing.T, tok string) {
		k := accessTokenKeyOf(tok)
		h := atSignature(tok)
		if k == h {
			return
		}
		jti, rest, ok := strings.Cut(k, ".")
		if !ok || rest != h || len(jti) != jtiLen {
			t.Fatalf("key %q of %q", k, tok)
		}
	})
}

// FuzzVerifyAccessToken checks that arbitrary input never verifies (the
// fuzzer cannot produce an ES256 signature) and never panics.
func FuzzVerifyAccessToken(f *testing.F) {
	keys := newFakeKeys(f, "ES256")
	s := &Server{issuer: "https://as.test", o: Options{Now: time.Now}}
	s.keys = newKeyRing(keys)
	st := &issueState{}
	sk, err := s.keys.current()
	if err != nil {
		f.Fatal(err)
	}
	st.sk = sk
	good, err := sk.sign(sk.atHeader, []byte(`{"iss":"https://as.test","sub":"c","aud":"x","client_id":"c","jti":"j","iat":1,"exp":99999999999}`))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.verifyAccessToken(good); err != nil {
		f.Fatalf("seed token does not verify: %v", err)
	}
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.verifyAccessToken(tok)
		if err == nil && tok != good {
			// Only re-encodings of the seed's exact signing input and
			// signature can verify (base64 padding variants are refused by
			// strict decoding, so nothing else should).
			if c.JTI != "j" {
				t.Fatalf("forged token verified: %q", tok)
			}
		}
	})
}

func FuzzMatchRedirectURI(f *testing.F) {
	for _, s := range []string{"https://app.test/cb", "http://127.0.0.1:8080/cb", "http://[::1]:1/cb", "http://127.0.0.1/cb?x=1",
		"https://app.test/cb/", "https://a@app.test/cb", "http://localhost:1/cb", "http://127.0.0.1:99999/cb", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	regs := []string{"https://app.test/cb", "http://127.0.0.1/cb", "http://[::1]/cb"}
	f.Fuzz(func(t *testing.T, raw string, public bool) {
		c := &client{c: &store.Client{ID: "c", Public: public, RedirectURIs: regs}}
		u, ok := matchRedirectURI(c, raw)
		if !ok {
			return
		}
		if u == nil {
			t.Fatal("nil URL on match")
		}
		for _, r := range regs {
			if raw == r {
				return
			}
		}
		if !public || !isLoopbackRedirect(u) || u.String() != raw {
			t.Fatalf("non-exact match %q (public=%v)", raw, public)
		}
		if u.Path != "/cb" || u.RawQuery != "" || (u.Hostname() != "127.0.0.1" && u.Hostname() != "::1") {
			t.Fatalf("loopback variance too wide: %q", raw)
		}
	})
}

func FuzzValidateRedirectURI(f *testing.F) {
	for _, s := range []string{"https://app.test/cb", "http://127.0.0.1:8080/cb", "https://*.app.test/cb", "https://a.test/c%62", "javascript:alert(1)", "http://localhost/cb", "https://A.test/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if validateRedirectURI(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Fragment != "" || u.User != nil || strings.ContainsAny(raw, "*#\\") {
			t.Fatalf("accepted %q", raw)
		}
		if u.Scheme != "https" && !redirectSecure(context.Background(), u) {
			t.Fatalf("accepted insecure %q", raw)
		}
	})
}

func FuzzStrictJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"name":"a","name":"b"}`, `{"jwks":{"keys":[{"a":1,"a":2}]}}`, `[`, `{"scopes":["a"]} x`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req clientRequest
		if decodeStrictJSON(strings.NewReader(string(body)), &req) != nil {
			return
		}
		var again clientRequest
		if err := json.Unmarshal(body, &again); err != nil {
			t.Fatalf("strict decoder accepted what encoding/json refuses: %v", err)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":"r","at":1,"c":"c","gs":["a"],"f":{"redirect_uri":["https://a/cb"]},"s":{"sub":"u","ae":5}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"r","c":"c","s":{"ae":-1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, sr, err := decodeRequest(data)
		if err != nil {
			return
		}
		if req.ID == "" || sr.ClientID == "" || req.Form == nil || req.GrantedScope == nil {
			t.Fatalf("incomplete request accepted: %+v", req)
		}
	})
}

func FuzzMarker(f *testing.F) {
	s := &Server{markerKey: deriveKey([]byte("0123456789abcdef0123456789abcdef"), "m")}
	now := time.Unix(1_800_000_000, 0)
	f.Add(s.writeMarker(marker{loginAt: now.Unix()}, "c"))
	f.Add("v1.1.2.AAAA")
	f.Add("v1..." + strings.Repeat("A", 22))
	f.Fuzz(func(t *testing.T, v string) {
		m := s.readMarker(v, "c", now)
		if m == (marker{}) {
			return
		}
		if m.loginAt < 0 || m.consentAt < 0 || max(m.loginAt, m.consentAt) > now.Unix()+60 {
			t.Fatalf("implausible marker %+v from %q", m, v)
		}
		if s.readMarker(v, "other-client", now) != (marker{}) {
			t.Fatalf("marker %q valid for another client", v)
		}
	})
}

func FuzzPrecheckAssertion(f *testing.F) {
	s := &Server{o: Options{Now: time.Now}}
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjIiwiZXhwIjo5OTk5OTk5OTk5LCJqdGkiOiJqIn0.c2ln", "")
	f.Add("a.b.c", "c")
	f.Fuzz(func(t *testing.T, assertion, clientID string) {
		form := url.Values{"client_assertion": {assertion}}
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		id, err := s.precheckAssertion(form)
		if err == nil && (id == "" || len(id) > maxClientIDLen) {
			t.Fatalf("bad client id %q accepted", id)
		}
	})
}

func FuzzParseClientJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		set, alg, err := parseClientJWKS(raw)
		if err != nil {
			return
		}
		ok := false
		for _, a := range assertionAlgs {
			ok = ok || a == alg
		}
		if !ok || len(set.Keys) == 0 {
			t.Fatalf("accepted alg %q", alg)
		}
		for _, k := range set.Keys {
			if !k.IsPublic() || k.Use != "sig" {
				t.Fatalf("accepted key %+v", k)
			}
		}
	})
}

func FuzzAuthorizeForm(f *testing.F) {
	f.Add("client_id=c&redirect_uri=https%3A%2F%2Fa%2Fcb&state=x")
	f.Add("a=1&a=2")
	f.Add("resource=https://a&resource=https://b")
	f.Add("%zz")
	s := &Server{}
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest(http.MethodGet, "/oauth2/authorize", nil)
		r.URL.RawQuery = q
		v, msg := s.parseAuthorizeForm(httptest.NewRecorder(), r)
		if msg != "" {
			return
		}
		for k, vs := range v {
			if len(vs) > 1 && k != "resource" {
				t.Fatalf("repeated %q accepted", k)
			}
		}
		if len(v.Encode()) > maxAuthorizeQuery {
			t.Fatal("oversized request accepted")
		}
	})
}
