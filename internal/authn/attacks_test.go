package authn

// One test per JWT/JOSE attack (field notes §5 items 1–9, issue #3). Each
// asserts the exact refusal reason, so removing the check under test turns
// the refusal into an acceptance or into a different reason.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestValidTokensPerAlgorithm(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, tc := range []struct{ alg, kid string }{{"ES256", "k1"}, {"RS256", "k2"}, {"PS256", "k2"}, {"EdDSA", "k3"}} {
		id := e.mustAccept(e.tok(tc.alg, tc.kid, nil, nil))
		if id.Subject != "alice" || id.Issuer != testIssuer || id.Kind != "jwt" || id.ClientID != "web" {
			t.Fatalf("%s: identity %+v", tc.alg, id)
		}
		if strings.Join(id.Scopes, ",") != "orders:read,orders:write" || len(id.TokenHash) != 16 {
			t.Fatalf("%s: scopes %v hash %q", tc.alg, id.Scopes, id.TokenHash)
		}
	}
}

// §5.1: alg none.
func TestAttackAlgNone(t *testing.T) {
	e := newEnv(t, nil, nil)
	claims := mustJSON(t, e.claims(nil))
	// The classic unsecured form has an empty signature: refused by the parser.
	unsecured := b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + b64([]byte(claims)) + "."
	e.mustRefuse(unsecured, ReasonMalformed)
	// With a signature present the allow-list must refuse every spelling.
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		tok := b64([]byte(`{"alg":"`+alg+`","kid":"k1","typ":"at+jwt"}`)) + "." + b64([]byte(claims)) + "." + b64([]byte("sig"))
		e.mustRefuse(tok, ReasonAlgorithm)
	}
	if _, err := NewIssuer(IssuerOptions{Name: "x", Issuer: "x", JWKSURL: "https://x.test/jwks", Audiences: []string{"a"}, Algorithms: []string{"none"}}, nil); err == nil {
		t.Fatal(`issuer with algorithm "none" accepted`)
	}
}

// §5.2: HS256 signed with the RSA public key (as PEM, and as JWK n bytes).
func TestAttackHS256WithRSAPublicKey(t *testing.T) {
	e := newEnv(t, nil, nil)
	pub := &fixtureKeys().rsa.PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, _ := json.Marshal(publicJWK(t, fixtureKeys().rsa, "k2", ""))
	for name, secret := range map[string][]byte{
		"pem":    pemKey,
		"der":    der,
		"n":      pub.N.Bytes(),
		"jwk":    jwkJSON,
		"pkcs1":  x509.MarshalPKCS1PublicKey(pub),
		"pem-nl": append(pemKey, '\n'),
	} {
		for _, kid := range []string{"k2", ""} {
			hdr := map[string]any{"alg": "HS256", "typ": "at+jwt"}
			if kid != "" {
				hdr["kid"] = kid
			}
			tok := signRaw(t, "HS256", secret, mustJSON(t, hdr), mustJSON(t, e.claims(nil)))
			if _, err := e.verify(tok); err == nil {
				t.Fatalf("%s kid=%q: HS256 with RSA public key accepted", name, kid)
			}
			e.mustRefuse(tok, ReasonAlgorithm)
		}
	}
	// Second layer, independent of the allow-list: an RSA key never fits an
	// HMAC algorithm, whatever the configuration.
	rsaKey := &verifyKey{kind: kindRSA, rsa: pub}
	for _, alg := range []string{"HS256", "HS384", "HS512", "ES256", "EdDSA"} {
		ai, _ := lookupAlg(alg)
		if rsaKey.fits(alg, ai) {
			t.Fatalf("RSA key fits %s", alg)
		}
	}
	// And an issuer with a key set can never be configured for HS*.
	if _, err := NewIssuer(IssuerOptions{Name: "x", Issuer: "x", JWKSURL: "https://x.test/jwks", Audiences: []string{"a"}, Algorithms: []string{"RS256", "HS256"}}, nil); err == nil {
		t.Fatal("JWKS issuer with HS256 accepted")
	}
	if _, err := NewIssuer(IssuerOptions{Name: "x", Issuer: "x", JWKSURL: "https://x.test/jwks", HMACSecret: make([]byte, 32), Audiences: []string{"a"}}, nil); err == nil {
		t.Fatal("issuer with both JWKS and HMAC secret accepted")
	}
}

func TestAttackExpired(t *testing.T) {
	e := newEnv(t, nil, nil)
	now := e.clock.Now().Unix()
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"exp": now - 31}), ReasonExpired)
	e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"exp": now - 29})) // within leeway
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"exp": nil}), ReasonMalformed)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"exp": "9999999999"}), ReasonMalformed)
	if e.refusals(ReasonExpired) != 1 {
		t.Fatalf("expired refusals metric = %v", e.refusals(ReasonExpired))
	}
}

func TestAttackNotYetValid(t *testing.T) {
	e := newEnv(t, nil, nil)
	now := e.clock.Now().Unix()
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"nbf": now + 31}), ReasonNotYetValid)
	e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"nbf": now + 29}))
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"iat": now + 31}), ReasonNotYetValid)
	e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"iat": now + 29}))
}

func TestAttackWrongIssuer(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, iss := range []string{"https://evil.example", testIssuer + "/", strings.ToUpper(testIssuer), ""} {
		e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"iss": iss}), ReasonIssuer)
	}
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"iss": nil}), ReasonIssuer)
	// The issuer check inside Issuer.verify is independent of route selection.
	p, err := parseJWS(e.tok("ES256", "k1", nil, map[string]any{"iss": "https://evil.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, rerr := e.iss.verify(context.Background(), p, 100); rerr == nil || rerr.Reason != ReasonIssuer {
		t.Fatalf("Issuer.verify with foreign iss: %v", rerr)
	}
}

// A route trusting two issuers verifies each token with only the keys of the
// issuer its iss names.
func TestMultiIssuerUsesOnlyThatIssuersKeys(t *testing.T) {
	e := newEnv(t, nil, nil)
	k := fixtureKeys()
	// Issuer B publishes a different key under the same kid "k1".
	srvB := newJWKSServer(t, jwksJSON(t, publicJWK(t, k.ecAlt, "k1", "ES256")))
	issB, err := NewIssuer(IssuerOptions{Name: "b", Issuer: "https://b.example.test", JWKSURL: srvB.URL, Audiences: []string{testAudience},
		Logger: quietLogger(), Clock: e.clock.Now}, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if err := issB.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	route, err := NewJWT([]*Issuer{e.iss, issB}, RouteJWTOptions{Logger: quietLogger(), Clock: e.clock.Now}, e.cache, nil, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by A's k1, claiming to be from B: B's k1 must not verify it.
	forged := e.tok("ES256", "k1", nil, map[string]any{"iss": "https://b.example.test"})
	_, err = route.Verify(context.Background(), forged)
	assertRefusal(t, nil, err, ReasonSignature)
	// Signed by B's key, claiming B: accepted.
	good := signRaw(t, "ES256", k.ecAlt, `{"alg":"ES256","kid":"k1"}`, mustJSON(t, e.claims(map[string]any{"iss": "https://b.example.test"})))
	if id, err := route.Verify(context.Background(), good); err != nil || id.Issuer != "https://b.example.test" {
		t.Fatalf("B token: %v", err)
	}
	// A's token still verifies with A's keys; an untrusted iss is refused.
	if _, err := route.Verify(context.Background(), e.good()); err != nil {
		t.Fatal(err)
	}
	_, err = route.Verify(context.Background(), e.tok("ES256", "k1", nil, map[string]any{"iss": "https://c.example.test"}))
	assertRefusal(t, nil, err, ReasonIssuer)
	if _, err := NewJWT([]*Issuer{e.iss, e.iss}, RouteJWTOptions{}, nil, nil, nil); err == nil {
		t.Fatal("route with a duplicate issuer accepted")
	}
}

func TestAttackWrongAudience(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"aud": "https://other.example"}), ReasonAudience)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"aud": []string{"https://other.example", "x"}}), ReasonAudience)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"aud": nil}), ReasonAudience)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"aud": []string{}}), ReasonAudience)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"aud": 42}), ReasonMalformed)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"aud": []any{testAudience, 1}}), ReasonMalformed)
}

// aud may be a string or an array (RFC 7519 §4.1.3).
func TestAudienceStringOrArray(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"aud": testAudience}))
	e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"aud": []string{"https://other.example", testAudience}}))
	e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"aud": []string{testAudience}}))
}

func TestAttackUnknownKid(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.mustRefuse(e.tok("ES256", "nope", nil, nil), ReasonUnknownKey)
}

func TestAttackTamperedPayload(t *testing.T) {
	e := newEnv(t, nil, nil)
	good := e.good()
	for _, alg := range []struct{ alg, kid string }{{"ES256", "k1"}, {"RS256", "k2"}, {"PS256", "k2"}, {"EdDSA", "k3"}} {
		tok := e.tok(alg.alg, alg.kid, nil, nil)
		e.mustRefuse(tamper(tok, mustJSON(t, e.claims(map[string]any{"sub": "admin"}))), ReasonSignature)
	}
	// A signature moved from another valid token.
	other := e.tok("ES256", "k1", nil, map[string]any{"sub": "bob"})
	e.mustRefuse(good[:strings.LastIndexByte(good, '.')]+other[strings.LastIndexByte(other, '.'):], ReasonSignature)
}

func TestAttackStrippedSignature(t *testing.T) {
	e := newEnv(t, nil, nil)
	good := e.good()
	e.mustRefuse(good[:strings.LastIndexByte(good, '.')+1], ReasonMalformed) // "h.p."
	e.mustRefuse(good[:strings.LastIndexByte(good, '.')], ReasonMalformed)   // "h.p"
	// Truncated signature: wrong length for ES256.
	i := strings.LastIndexByte(good, '.')
	sig := mustDecode(t, good[i+1:])
	ae := e.mustRefuse(good[:i+1]+b64(sig[:60]), ReasonSignature)
	if !errors.Is(ae, errSigLength) {
		t.Fatalf("truncated signature: %v, want errSigLength", ae.Err)
	}
}

// §5.4 CVE-2018-0114: a key embedded in the header is never used.
func TestAttackEmbeddedJWK(t *testing.T) {
	e := newEnv(t, nil, nil)
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := publicJWK(t, attacker, "k1", "ES256")
	hdr := mustJSON(t, map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt", "jwk": jwk})
	tok := signRaw(t, "ES256", attacker, hdr, mustJSON(t, e.claims(nil)))
	ae := e.mustRefuse(tok, ReasonUnknownKey)
	if !strings.Contains(ae.Err.Error(), `"jwk"`) {
		t.Fatalf("refused for the wrong cause: %v", ae.Err)
	}
	// Even a jwk header carrying the issuer's real key is refused.
	real := mustJSON(t, map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt", "jwk": publicJWK(t, fixtureKeys().ec256, "k1", "ES256")})
	e.mustRefuse(signRaw(t, "ES256", fixtureKeys().ec256, real, mustJSON(t, e.claims(nil))), ReasonUnknownKey)
	// null counts as present.
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"jwk": json.RawMessage("null")}, nil), ReasonUnknownKey)
}

// §5.5: jku / x5u / x5c are never followed or used.
func TestAttackJKUAndX5U(t *testing.T) {
	e := newEnv(t, nil, nil)
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv, hits := countingServer(t)
	fetchesBefore := e.srv.hits.Load()
	for _, member := range []string{"jku", "x5u"} {
		for _, kid := range []string{"k1", "attacker"} {
			hdr := mustJSON(t, map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt", member: srv.URL + "/keys"})
			tok := signRaw(t, "ES256", attacker, hdr, mustJSON(t, e.claims(nil)))
			ae := e.mustRefuse(tok, ReasonUnknownKey)
			if !strings.Contains(ae.Err.Error(), `"`+member+`"`) {
				t.Fatalf("%s: refused for the wrong cause: %v", member, ae.Err)
			}
		}
	}
	hdr := mustJSON(t, map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt", "x5c": []string{"MIIB"}})
	e.mustRefuse(signRaw(t, "ES256", attacker, hdr, mustJSON(t, e.claims(nil))), ReasonUnknownKey)
	time.Sleep(50 * time.Millisecond) // let any stray request land
	if n := hits.Load(); n != 0 {
		t.Fatalf("the jku/x5u server received %d requests", n)
	}
	if n := e.srv.hits.Load() - fetchesBefore; n != 0 {
		t.Fatalf("tokens with key headers triggered %d JWKS fetches", n)
	}
}

// §5.6: kid is a map key only: path traversal finds no key and opens no file.
func TestAttackKidPathTraversal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, defaultKeys(t)...), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var opened []string
	clock := newFakeClock()
	is, err := NewIssuer(IssuerOptions{Name: "file", Issuer: testIssuer, JWKSFile: path, Audiences: []string{testAudience},
		Logger: quietLogger(), Clock: clock.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	is.loader.(*fileLoader).readFile = func(p string, max int64) ([]byte, error) {
		mu.Lock()
		opened = append(opened, p)
		mu.Unlock()
		return readFileLimited(p, max)
	}
	if err := is.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	route, _ := NewJWT([]*Issuer{is}, RouteJWTOptions{Logger: quietLogger(), Clock: clock.Now}, nil, nil, nil)
	e := &env{t: t, clock: clock}
	for _, kid := range []string{"../../etc/passwd", "/etc/passwd", "k1/../k1", "k1\x00", "' OR 1=1 --", "$(id)"} {
		clock.Advance(time.Minute) // allow the unknown-kid reload each time
		_, err := route.Verify(context.Background(), e.tok("ES256", kid, nil, nil))
		assertRefusal(t, nil, err, ReasonUnknownKey)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range opened {
		if p != path {
			t.Fatalf("opened %q", p)
		}
	}
	if len(opened) < 2 {
		t.Fatalf("unknown kids did not reload the configured file (opened %v)", opened)
	}
	// An over-long kid is refused by the parser.
	_, err = route.Verify(context.Background(), e.tok("ES256", strings.Repeat("a", maxKidLen+1), nil, nil))
	assertRefusal(t, nil, err, ReasonMalformed)
}

func TestAttackUnknownCrit(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"crit": []string{"exp"}, "exp": 1}, nil), ReasonCrit)
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"crit": []string{"b64"}, "b64": false}, nil), ReasonCrit)
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"crit": []string{}}, nil), ReasonCrit)
}

// §5.3 CVE-2022-21449: (r, s) = (0, 0) and out-of-range values.
func TestAttackECDSAZeroSignature(t *testing.T) {
	e := newEnv(t, nil, nil)
	good := e.good()
	input := good[:strings.LastIndexByte(good, '.')]
	n := elliptic.P256().Params().N
	fixed := func(r, s *big.Int) string {
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return input + "." + b64(sig)
	}
	zero, one := big.NewInt(0), big.NewInt(1)
	for name, tok := range map[string]string{
		"r=s=0": fixed(zero, zero),
		"r=0":   fixed(zero, one),
		"s=0":   fixed(one, zero),
		"r=n":   fixed(n, one),
		"s=n":   fixed(one, n),
	} {
		ae := e.mustRefuse(tok, ReasonSignature)
		if !errors.Is(ae, errSigRange) {
			t.Fatalf("%s: %v, want errSigRange", name, ae.Err)
		}
	}
	// r||s is the only encoding: the ASN.1 DER form of a valid signature is refused.
	r, s := joseRS(mustDecode(t, good[strings.LastIndexByte(good, '.')+1:]))
	der, err := asn1Sig(r, s)
	if err != nil {
		t.Fatal(err)
	}
	ae := e.mustRefuse(input+"."+b64(der), ReasonSignature)
	if !errors.Is(ae, errSigLength) {
		t.Fatalf("DER signature: %v", ae.Err)
	}
	// The stdlib check also holds on its own.
	if ecdsa.Verify(&fixtureKeys().ec256.PublicKey, make([]byte, 32), zero, zero) {
		t.Fatal("crypto/ecdsa accepts r=s=0")
	}
}

func TestAttackOversizedTokens(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, size := range []int{8193, 64 << 10, 1 << 20} {
		big := e.good() + strings.Repeat("A", size)
		big = big[:size]
		before := e.auth.parses.Load()
		_, err := e.auth.Authenticate(req("/", "Bearer "+big))
		ae := assertRefusal(t, nil, err, ReasonTooLarge)
		if e.auth.parses.Load() != before {
			t.Fatalf("%d-byte token reached the parser", size)
		}
		if ae.TokenHash == "" {
			t.Fatal("no token hash for the log line")
		}
		// Query-string route: same.
		_, err = e.auth.Authenticate(req("/?x=1", "Bearer "+big))
		assertRefusal(t, nil, err, ReasonTooLarge)
	}
	// At the limit it is parsed.
	before := e.auth.parses.Load()
	_, _ = e.verify(strings.Repeat("A", 8192))
	if e.auth.parses.Load() != before+1 {
		t.Fatal("a token at the size limit was not parsed")
	}
}

func TestAttackMalformedBase64(t *testing.T) {
	e := newEnv(t, nil, nil)
	good := e.good()
	parts := strings.Split(good, ".")
	std := func(s string) string { // non-url alphabet
		return strings.NewReplacer("-", "+", "_", "/").Replace(s)
	}
	cases := map[string]string{
		"padding":        parts[0] + "=." + parts[1] + "." + parts[2],
		"padded payload": parts[0] + "." + parts[1] + "==." + parts[2],
		"newline":        parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2],
		"cr":             parts[0] + "\r." + parts[1] + "." + parts[2],
		"space":          parts[0] + "." + parts[1] + ". " + parts[2],
		"bad char":       parts[0] + "." + parts[1] + "." + parts[2][:5] + "*" + parts[2][6:],
		"4 segments":     good + ".x",
		"2 segments":     parts[0] + "." + parts[1],
		"empty":          "",
		"dots":           "..",
		"jwe-like":       "a.b.c.d.e",
		"trailing bits":  parts[0] + "." + parts[1] + "." + nonCanonical(t, parts[2]),
	}
	if s := std(parts[2]); s != parts[2] {
		cases["std alphabet"] = parts[0] + "." + parts[1] + "." + s
	}
	for name, tok := range cases {
		if _, err := e.verify(tok); err == nil {
			t.Fatalf("%s: accepted", name)
		}
		e.t.Run(name, func(t *testing.T) { e.mustRefuse(tok, ReasonMalformed) })
	}
	// Not JSON / not an object.
	for name, hdr := range map[string]string{"not json": "{alg", "array": `["ES256"]`, "bad utf8": "{\"alg\":\"ES256\",\"kid\":\"k1\xff\"}"} {
		tok := b64([]byte(hdr)) + "." + parts[1] + "." + parts[2]
		e.t.Run(name, func(t *testing.T) { e.mustRefuse(tok, ReasonMalformed) })
	}
	e.mustRefuse(parts[0]+"."+b64([]byte("null"))+"."+parts[2], ReasonMalformed)
}

// nonCanonical flips the unused trailing bits of a base64url segment: the
// lenient decoder yields the same bytes, the strict one refuses.
func nonCanonical(t *testing.T, seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		t.Fatal("segment has no trailing bits")
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

func TestAttackDuplicateClaims(t *testing.T) {
	e := newEnv(t, nil, nil)
	k := fixtureKeys()
	now := e.clock.Now().Unix()
	body := `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","exp":` + itoa(now+3600) + `,"sub":"alice","sub":"admin"}`
	tok := signRaw(t, "ES256", k.ec256, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, body)
	e.mustRefuse(tok, ReasonMalformed)
	// Nested duplicates too.
	body = `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","exp":` + itoa(now+3600) + `,"sub":"alice","x":{"a":1,"a":2}}`
	e.mustRefuse(signRaw(t, "ES256", k.ec256, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, body), ReasonMalformed)
	// Escaped duplicate: "s\u0075b" is "sub".
	body = `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","exp":` + itoa(now+3600) + `,"sub":"alice","s\u0075b":"admin"}`
	e.mustRefuse(signRaw(t, "ES256", k.ec256, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, body), ReasonMalformed)
	// Case variants are different members (no case-insensitive matching):
	// "Sub" does not become the subject.
	body = `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","exp":` + itoa(now+3600) + `,"sub":"alice","Sub":"admin"}`
	id := e.mustAccept(signRaw(t, "ES256", k.ec256, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, body))
	if id.Subject != "alice" {
		t.Fatalf("subject %q", id.Subject)
	}
}

func TestAttackDuplicateHeaderMembers(t *testing.T) {
	e := newEnv(t, nil, nil)
	k := fixtureKeys()
	claims := mustJSON(t, e.claims(nil))
	for _, hdr := range []string{
		`{"alg":"ES256","kid":"k1","typ":"at+jwt","alg":"none"}`,
		`{"alg":"none","kid":"k1","typ":"at+jwt","alg":"ES256"}`,
		`{"alg":"ES256","kid":"k1","kid":"k2","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"k1","typ":"at+jwt","typ":"JWT"}`,
	} {
		e.mustRefuse(signRaw(t, "ES256", k.ec256, hdr, claims), ReasonMalformed)
	}
	// "Alg" is not "alg".
	e.mustRefuse(signRaw(t, "ES256", k.ec256, `{"Alg":"ES256","kid":"k1","typ":"at+jwt"}`, claims), ReasonMalformed)
}

func TestAttackTypMismatch(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"typ": "JWT"}, nil), ReasonType)
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"typ": nil}, nil), ReasonType)
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"typ": "application/jwt"}, nil), ReasonType)
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"typ": "text/at+jwt"}, nil), ReasonType)
	for _, typ := range []string{"at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"} {
		e.mustAccept(e.tok("ES256", "k1", map[string]any{"typ": typ}, nil))
	}
	e.mustRefuse(e.tok("ES256", "k1", map[string]any{"cty": "JWT"}, nil), ReasonMalformed)
}

// alg must fit the key type, the curve, and the JWK's own alg.
func TestAlgorithmKeyBinding(t *testing.T) {
	e := newEnv(t, func(o *IssuerOptions) {
		o.Algorithms = []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}
	}, nil)
	k := fixtureKeys()
	e.srv.setKeys(t, publicJWK(t, k.ec256, "k1", ""), publicJWK(t, k.rsa, "rs-only", "RS256"), publicJWK(t, k.ed, "k3", "EdDSA"))
	if err := e.iss.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// PS256 with a key pinned to RS256.
	e.mustRefuse(e.tok("PS256", "rs-only", nil, nil), ReasonAlgorithm)
	e.mustAccept(e.tok("RS256", "rs-only", nil, nil))
	// ES384 against a P-256 key.
	e.mustRefuse(signRaw(t, "ES384", k.ec384, mustJSON(t, header("ES384", "k1", nil)), mustJSON(t, e.claims(nil))), ReasonAlgorithm)
	// ES256 against an RSA key, EdDSA against an EC key.
	e.mustRefuse(e.tok("ES256", "rs-only", nil, nil), ReasonAlgorithm)
	e.mustRefuse(e.tok("EdDSA", "k1", nil, nil), ReasonAlgorithm)
	// Allowed by config but not by this issuer: RS384.
	e.mustRefuse(e.tok("RS384", "rs-only", nil, nil), ReasonAlgorithm)
}

func TestNoKidSelection(t *testing.T) {
	e := newEnv(t, nil, nil)
	// One ES256 key: a token without kid verifies against it.
	e.mustAccept(e.tok("ES256", "", map[string]any{"kid": nil}, nil))
	// Three keys fit ES256: refused rather than tried one by one.
	k := fixtureKeys()
	a, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e.srv.setKeys(t, publicJWK(t, k.ec256, "", ""), publicJWK(t, k.ecAlt, "", ""), publicJWK(t, a, "", ""))
	if err := e.iss.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mustRefuse(e.tok("ES256", "", map[string]any{"kid": nil}, nil), ReasonUnknownKey)
	// Two keys (a rotation pair): both tried.
	e.srv.setKeys(t, publicJWK(t, k.ecAlt, "", ""), publicJWK(t, k.ec256, "", ""))
	if err := e.iss.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mustAccept(e.tok("ES256", "", map[string]any{"kid": nil}, nil))
}

func TestHMACIssuer(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	e := newEnv(t, func(o *IssuerOptions) {
		o.JWKSURL = ""
		o.HMACSecret = secret
		o.Algorithms = []string{"HS256"}
	}, nil)
	claims := mustJSON(t, e.claims(nil))
	e.mustAccept(signRaw(t, "HS256", secret, `{"alg":"HS256","typ":"at+jwt"}`, claims))
	e.mustRefuse(signRaw(t, "HS256", []byte("0123456789abcdef0123456789abcdeX"), `{"alg":"HS256","typ":"at+jwt"}`, claims), ReasonSignature)
	e.mustRefuse(signRaw(t, "HS512", secret, `{"alg":"HS512","typ":"at+jwt"}`, claims), ReasonAlgorithm)
	e.mustRefuse(e.tok("ES256", "k1", nil, nil), ReasonAlgorithm)
	if _, err := NewIssuer(IssuerOptions{Name: "h", Issuer: "h", HMACSecret: []byte("short"), Audiences: []string{"a"}}, nil); err == nil {
		t.Fatal("short HMAC secret accepted")
	}
	if _, err := NewIssuer(IssuerOptions{Name: "h", Issuer: "h", HMACSecret: secret, Algorithms: []string{"HS512"}, Audiences: []string{"a"}}, nil); err == nil {
		t.Fatal("32-byte secret accepted for HS512")
	}
	if _, err := NewIssuer(IssuerOptions{Name: "h", Issuer: "h", HMACSecret: secret, Algorithms: []string{"HS256", "ES256"}, Audiences: []string{"a"}}, nil); err == nil {
		t.Fatal("HMAC issuer with ES256 accepted")
	}
}

func itoa(n int64) string { return big.NewInt(n).String() }

func mustDecode(t testing.TB, s string) []byte {
	b, err := b64dec(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = atomic.Int64{}
var _ = jose.JSONWebKey{}

// The per-issuer allow-list refuses an algorithm even when key and signature
// would verify.
func TestAlgorithmAllowList(t *testing.T) {
	e := newEnv(t, func(o *IssuerOptions) { o.Algorithms = []string{"ES256"} }, nil)
	e.mustAccept(e.good())
	for _, tc := range []struct{ alg, kid string }{{"RS256", "k2"}, {"PS256", "k2"}, {"EdDSA", "k3"}, {"RS256", ""}} {
		hdr := map[string]any{}
		if tc.kid == "" {
			hdr["kid"] = nil
		}
		e.mustRefuse(e.tok(tc.alg, tc.kid, hdr, nil), ReasonAlgorithm)
	}
}
