package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestBenchTokensVerify checks that the generated tokens are distinct RFC
// 9068 ES256 tokens that verify against the generated JWK Set.
func TestBenchTokensVerify(t *testing.T) {
	env := &runEnv{tmp: t.TempDir()}
	bi, err := env.issuer()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(env.tmp, "t.txt")
	if err := bi.writeTokens(path, 50); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d tokens, want 50", len(lines))
	}
	var set jose.JSONWebKeySet
	jb, err := os.ReadFile(bi.jwksPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Algorithm != "ES256" || set.Keys[0].Use != "sig" {
		t.Fatalf("JWKS: %v %+v", err, set)
	}
	seen := map[string]bool{}
	for _, tok := range lines {
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
		jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		h := jws.Signatures[0].Header
		if h.KeyID != bi.kid || h.ExtraHeaders["typ"] != "at+jwt" {
			t.Fatalf("header: %+v", h)
		}
		payload, err := jws.Verify(set.Keys[0].Key)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		var c claims
		if err := json.Unmarshal(payload, &c); err != nil || c.Iss != benchIssuerURL || c.Aud != benchAudience || c.Exp <= c.Iat || c.Jti == "" {
			t.Fatalf("claims %+v: %v", c, err)
		}
	}
	// A second batch continues the sequence: no token repeats across files.
	if err := bi.writeTokens(path, 5); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	for _, tok := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if seen[tok] {
			t.Fatal("token repeated across batches")
		}
	}
}

// TestFreshRefusesWraps: a jwt-fresh round whose tokens wrapped is invalid.
func TestFreshRefusesWraps(t *testing.T) {
	env := &runEnv{tmp: t.TempDir(), f: &runFlags{rounds: 2, duration: time.Second, warmup: time.Second, threads: 1}}
	p, err := prepareJWTFresh(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.checkExtra("sekisho", json.RawMessage(`{"wraps":0}`)); err != nil {
		t.Errorf("no wraps refused: %v", err)
	}
	if err := p.checkExtra("sekisho", json.RawMessage(`{"wraps":2}`)); err == nil {
		t.Error("wraps accepted")
	}
	if err := p.checkExtra("floor", json.RawMessage(`{"wraps":2}`)); err != nil {
		t.Errorf("floor refused for wrapping, though it never reads tokens: %v", err)
	}
	if err := p.checkExtra("sekisho", nil); err == nil {
		t.Error("missing counter accepted")
	}
	files := map[string]bool{}
	for _, r := range []int{-1, 1, 2} {
		files[p.scriptArgs("sekisho", r)[0]] = true
	}
	if len(files) != 3 {
		t.Errorf("warm-up and rounds share token files: %v", files)
	}
}

func TestAuthServerResponseChecks(t *testing.T) {
	if err := checkTokenResponse([]byte(`{"access_token":"a.b.c","token_type":"Bearer"}`)); err != nil {
		t.Error(err)
	}
	if err := checkTokenResponse([]byte(`{"error":"invalid_client"}`)); err == nil {
		t.Error("error response accepted")
	}
	if err := checkActive([]byte(`{"active":true}`)); err != nil {
		t.Error(err)
	}
	if err := checkActive([]byte(`{"active":false}`)); err == nil {
		t.Error("inactive accepted")
	}
}

// TestRawVerify: floor+verify passes a genuine bench token to the proxy and
// refuses a token whose signature does not verify against the key set, a
// token in another scheme and one without a signature; the same tokens go
// through the plain floor untouched (it never reads them).
func TestRawVerify(t *testing.T) {
	env := &runEnv{tmp: t.TempDir()}
	bi, err := env.issuer()
	if err != nil {
		t.Fatal(err)
	}
	key, err := loadP256Key(bi.jwksPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := bi.sign(1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := bi.sign(2)
	if err != nil {
		t.Fatal(err)
	}
	dot := strings.LastIndexByte(tok, '.')
	spliced := tok[:dot] + other[strings.LastIndexByte(other, '.'):] // header.payload of one, signature of another
	proxied := 0
	h := rawVerify(key, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { proxied++ }))
	for _, c := range []struct {
		auth string
		want int
	}{
		{"Bearer " + tok, http.StatusOK},
		{"Bearer " + spliced, http.StatusUnauthorized},
		{"Bearer " + tok[:dot], http.StatusUnauthorized},
		{"Bearer " + tok[:dot+1], http.StatusUnauthorized},
		{"Basic " + tok, http.StatusUnauthorized},
		{"", http.StatusUnauthorized},
	} {
		before := proxied
		req := httptest.NewRequest(http.MethodGet, "/jwt-fresh/hello", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want || (proxied > before) != (c.want == http.StatusOK) {
			t.Errorf("%.20q…: status %d, proxied %v; want %d", c.auth, rec.Code, proxied > before, c.want)
		}
	}
	// A key set that is not one P-256 key is refused with the file named.
	bad := filepath.Join(env.tmp, "two.json")
	jb, _ := os.ReadFile(bi.jwksPath)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jb, &set); err != nil {
		t.Fatal(err)
	}
	set.Keys = append(set.Keys, set.Keys[0])
	two, _ := json.Marshal(set)
	if err := os.WriteFile(bad, two, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadP256Key(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("two keys: %v", err)
	}
}
