package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Test fixtures: keys are generated once per test binary because RSA key
// generation is slow on the shared 2-core machine.
type testKeys struct {
	ec256  *ecdsa.PrivateKey
	ec384  *ecdsa.PrivateKey
	ec521  *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
	rsa    *rsa.PrivateKey
	rsaAlt *rsa.PrivateKey
	ecAlt  *ecdsa.PrivateKey
}

var fixtureKeys = sync.OnceValue(func() *testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeys{}
	var err error
	k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.ec521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	k.ecAlt, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaAlt, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	return k
})

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// mustJSON marshals v (maps are emitted with sorted keys by encoding/json).
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signRaw signs the given raw header and payload JSON with key using alg and
// returns the compact JWS. The signer is written against stdlib crypto so
// tests can build any header, including hostile ones.
func signRaw(t testing.TB, alg string, key any, header, payload string) string {
	t.Helper()
	input := b64([]byte(header)) + "." + b64([]byte(payload))
	sig, err := signInput(alg, key, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

func signInput(alg string, key any, input []byte) ([]byte, error) {
	hashFor := func(h crypto.Hash) []byte {
		hh := h.New()
		hh.Write(input)
		return hh.Sum(nil)
	}
	switch alg {
	case "ES256", "ES384", "ES512":
		k := key.(*ecdsa.PrivateKey)
		h := map[string]crypto.Hash{"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512}[alg]
		r, s, err := ecdsa.Sign(rand.Reader, k, hashFor(h))
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	case "EdDSA", "Ed25519":
		return ed25519.Sign(key.(ed25519.PrivateKey), input), nil
	case "RS256", "RS384", "RS512":
		h := map[string]crypto.Hash{"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512}[alg]
		return rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), h, hashFor(h))
	case "PS256", "PS384", "PS512":
		h := map[string]crypto.Hash{"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512}[alg]
		return rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), h, hashFor(h), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "HS256", "HS384", "HS512":
		var hf func() hash.Hash
		switch alg {
		case "HS256":
			hf = sha256.New
		case "HS384":
			hf = sha512.New384
		default:
			hf = sha512.New
		}
		m := hmac.New(hf, key.([]byte))
		m.Write(input)
		return m.Sum(nil), nil
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("signInput: unsupported alg %q", alg)
}

// publicJWK returns the public JWK of a private key with kid and (optional) alg.
func publicJWK(t testing.TB, priv any, kid, alg string) jose.JSONWebKey {
	t.Helper()
	var pub any
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case ed25519.PrivateKey:
		pub = k.Public()
	default:
		t.Fatalf("publicJWK: %T", priv)
	}
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// jwksJSON renders a JWKS document.
func jwksJSON(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// derToJOSE is used by tests that need r and s as integers.
func joseRS(sig []byte) (r, s *big.Int) {
	n := len(sig) / 2
	return new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
}
