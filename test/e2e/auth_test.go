package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// credMode is how the e2e tests protect a route with a credential, decided
// once by asking the binary (`config validate`) what it accepts: token kinds
// are wired in a later issue than the gateway core.
type credMode int

const (
	credNone   credMode = iota // only `auth: public` compiles: routes are told apart by upstream
	credAPIKey                 // apikey compiles, but the test cannot mint keys
	credJWT                    // jwt with a jwks_file compiles: the test signs its own tokens
)

func (m credMode) String() string {
	return [...]string{"none (auth: public only)", "apikey (no key available to the test)", "jwt (jwks_file)"}[m]
}

// testIssuer is an ES256 key whose public half the gateway trusts via a
// jwks_file written next to the config.
type testIssuer struct {
	key *ecdsa.PrivateKey
	kid string
}

const (
	testIssuerURL = "https://issuer.e2e.test"
	testAudience  = "sekisho-e2e"
)

func newTestIssuer(t testing.TB) *testIssuer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{key: k, kid: "e2e-1"}
}

// writeJWKS writes the public key set into dir and returns its path.
func (ti *testIssuer) writeJWKS(t testing.TB, dir string) string {
	t.Helper()
	pub, err := ti.key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	jwks := map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": ti.kid, "alg": "ES256", "use": "sig",
		"x": b64(raw[1:33]), "y": b64(raw[33:65]),
	}}}
	b, _ := json.Marshal(jwks)
	p := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// token signs a JWT for the test issuer and audience.
func (ti *testIssuer) token(t testing.TB, sub string) string {
	t.Helper()
	now := time.Now()
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": ti.kid})
	cl, _ := json.Marshal(map[string]any{
		"iss": testIssuerURL, "aud": testAudience, "sub": sub, "scope": "read write",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"jti": b64(randBytes(t, 12)),
	})
	signing := b64(hdr) + "." + b64(cl)
	h := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ti.key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// issuerYAML is the issuers block for a testIssuer (jwks at @JWKS@).
const issuerYAML = `
issuers:
  e2e:
    issuer: ` + testIssuerURL + `
    jwks_file: "@JWKS@"
    audiences: [` + testAudience + `]
    algorithms: [ES256]
`

var (
	credOnce sync.Once
	credKind credMode
	credWhy  string
)

// detectCredMode asks the binary which credential kinds a route may use.
func detectCredMode(t *testing.T) credMode {
	t.Helper()
	credOnce.Do(func() {
		dir := t.TempDir()
		ti := newTestIssuer(t)
		jwks := ti.writeJWKS(t, dir)
		base := `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  u: {targets: [{url: "http://127.0.0.1:9"}]}
`
		try := func(extra, auth string) (bool, string) {
			p := filepath.Join(dir, "probe.yaml")
			cfg := configText(base+extra+"routes:\n  - name: r\n    match: {path: /api}\n    upstream: u\n    auth: "+auth+"\n", dir, "JWKS", jwks)
			if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := runCLI(t, dir, "config", "validate", p)
			return code == 0, strings.TrimSpace(errOut)
		}
		if ok, why := try(issuerYAML, "{jwt: {issuers: [e2e]}}"); ok {
			credKind = credJWT
			return
		} else {
			credWhy = "jwt: " + why
		}
		if ok, why := try("", "{apikey: {}}"); ok {
			credKind = credAPIKey
			return
		} else {
			credWhy += "; apikey: " + why
		}
		credKind = credNone
	})
	if credKind == credJWT {
		t.Logf("credential mode: %s", credKind)
	} else {
		t.Logf("credential mode: %s (%s)", credKind, credWhy)
	}
	return credKind
}
