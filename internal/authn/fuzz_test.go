package authn

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzParseJWS feeds arbitrary strings to the compact-JWS parser. Seeds:
// testdata/fuzz/FuzzParseJWS. Run: go test -run '^$' -fuzz FuzzParseJWS -fuzztime=20s ./internal/authn/
func FuzzParseJWS(f *testing.F) {
	k := fixtureKeys()
	claims := `{"iss":"https://issuer.example.test","sub":"alice","aud":"x","exp":1900000000}`
	f.Add(signRaw(f, "ES256", k.ec256, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, claims))
	f.Add(signRaw(f, "EdDSA", k.ed, `{"alg":"EdDSA"}`, claims))
	f.Add(b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(claims)) + ".")
	f.Add(b64([]byte(`{"alg":"ES256","alg":"none"}`)) + "." + b64([]byte(claims)) + ".AAAA")
	f.Add("a.b.c")
	f.Add("...")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := parseJWS(token)
		if err != nil {
			if p != nil {
				t.Fatal("result with error")
			}
			return
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %d segments", len(parts))
		}
		// Canonical encoding only: each accepted segment re-encodes to itself.
		if b64(p.signature) != parts[2] {
			t.Fatal("non-canonical signature segment accepted")
		}
		for _, seg := range parts[:2] {
			raw, err := b64url.DecodeString(seg)
			if err != nil || b64(raw) != seg {
				t.Fatalf("non-canonical segment %q accepted", seg)
			}
		}
		if string(p.signingInput) != parts[0]+"."+parts[1] || string(p.raw) != token {
			t.Fatal("signing input differs from the first two segments")
		}
		if p.header.Alg == "" || p.claims == nil || len(p.header.Kid) > maxKidLen {
			t.Fatal("accepted without alg, claims or with an over-long kid")
		}
	})
}

// FuzzVerify mutates valid tokens: the verifier must never panic, and must
// accept only the exact tokens the issuer signed.
func FuzzVerify(f *testing.F) {
	k := fixtureKeys()
	src := newTestKeySource(publicJWK(f, k.ec256, "k1", "ES256"), publicJWK(f, k.ed, "k3", "EdDSA"))
	now := time.Unix(1_800_000_000, 0)
	is, err := NewIssuer(IssuerOptions{Name: "fuzz", Issuer: testIssuer, KeySource: src, Audiences: []string{testAudience},
		Logger: quietLogger(), Clock: func() time.Time { return now }}, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := is.Refresh(context.Background()); err != nil {
		f.Fatal(err)
	}
	route, err := NewJWT([]*Issuer{is}, RouteJWTOptions{Logger: quietLogger(), Clock: func() time.Time { return now }}, nil, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	claims := mustJSON(f, map[string]any{"iss": testIssuer, "aud": testAudience, "sub": "alice", "exp": now.Unix() + 60})
	valid := map[string]bool{}
	for _, tok := range []string{
		signRaw(f, "ES256", k.ec256, `{"alg":"ES256","kid":"k1"}`, claims),
		signRaw(f, "EdDSA", k.ed, `{"alg":"EdDSA","kid":"k3"}`, claims),
	} {
		valid[tok] = true
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := route.Verify(context.Background(), token)
		if err == nil && !valid[token] {
			t.Fatalf("accepted a token the issuer did not sign: %q (sub %q)", token, id.Subject)
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
		}
	})
}

var _ = jose.JSONWebKey{}

// FuzzParseJWKS: the key set parser never panics and never yields a key
// with private material or of an unsupported family.
func FuzzParseJWKS(f *testing.F) {
	k := fixtureKeys()
	f.Add(jwksJSON(f, publicJWK(f, k.ec256, "k1", "ES256"), publicJWK(f, k.rsa, "k2", ""), publicJWK(f, k.ed, "k3", "EdDSA")))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}`))
	f.Add([]byte(`{"keys":[],"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, _, err := parseJWKS(doc)
		if err != nil {
			return
		}
		ks, _ := buildKeySet(keys, false)
		for _, vk := range ks.all {
			switch vk.kind {
			case kindEC:
				if vk.ec == nil {
					t.Fatal("EC key without key")
				}
			case kindRSA:
				if vk.rsa == nil || vk.rsa.N.BitLen() < minRSABits {
					t.Fatal("weak or missing RSA key")
				}
			case kindEd25519:
				if len(vk.ed) != 32 {
					t.Fatal("bad Ed25519 key")
				}
			default:
				t.Fatalf("key of kind %d from a key set", vk.kind)
			}
		}
	})
}

// FuzzDecodeClaims checks decodeClaims against the reference decoder
// (go-json-experiment Unmarshal into map[string]any): same acceptance, same
// values, except the deliberate nesting bound.
func FuzzDecodeClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"x","aud":["a","b"],"exp":1.5e9,"n":null,"t":true,"o":{"k":[1,{"z":false}]}}`,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":"\ud800"}`, `{"a":1e400}`, `{} `, `{}{}`, `[]`, `{"a":[}`,
		"{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeClaims(b)
		var want map[string]any
		werr := jsonv2.Unmarshal(b, &want)
		if err != nil && strings.Contains(err.Error(), "nested too deeply") {
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeClaims err=%v, reference err=%v for %q", err, werr, b)
		}
		if err == nil && want == nil {
			t.Fatalf("accepted %q, which is not an object", b)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeClaims %#v != reference %#v", got, want)
		}
	})
}
