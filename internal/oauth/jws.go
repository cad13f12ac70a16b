package oauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// This file holds the JWS code used for every token this server signs and
// verifies itself. It is deliberately small: compact serialization only,
// the three algorithms internal/keys produces (ES256, EdDSA, RS256), the
// algorithm bound to the key (never taken from the token header alone),
// no "none", no embedded keys, no jku/x5u, no crit.

// b64 decodes unpadded base64url with canonical trailing bits. Callers of
// parseJWS also refuse '\r' and '\n', which encoding/base64 would skip: a
// token has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// Errors of token verification; callers map them to protocol errors.
var (
	errTokenMalformed = errors.New("token malformed")
	errTokenSignature = errors.New("token signature invalid")
	errTokenExpired   = errors.New("token expired")
	errTokenType      = errors.New("token type not accepted")
	errNoSigningKey   = errors.New("no signing key available")
)

// maxJWTLen bounds tokens we parse (ours are < 2 KiB).
const maxJWTLen = 8 << 10

// signingKey is one snapshot of the active key with its precomputed headers.
type signingKey struct {
	kid, alg string
	key      crypto.Signer
	atHeader string // base64url of {"alg","kid","typ":"at+jwt"}
	idHeader string // base64url of {"alg","kid","typ":"JWT"}
}

// verifyKey is a published public key.
type verifyKey struct {
	alg string
	pub crypto.PublicKey
}

// keyRing caches the current signing key and the published verification
// keys of a KeySource, refreshed on change notifications.
type keyRing struct {
	src KeySource

	signing atomic.Pointer[signingKey]
	verify  atomic.Pointer[map[string]verifyKey]

	mu          sync.Mutex // serializes reloads
	lastRefresh atomic.Int64

	sigChecks atomic.Int64 // signatures checked (tests observe the verified-token cache with it)
}

func newKeyRing(src KeySource) *keyRing {
	kr := &keyRing{src: src}
	kr.reload()
	src.Subscribe(kr.reload)
	return kr
}

// reload rebuilds the verification map from the published keys.
func (kr *keyRing) reload() {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	m := map[string]verifyKey{}
	for _, k := range kr.src.PublicKeys() {
		if k.KeyID == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		alg := k.Algorithm
		if !algFitsKey(alg, k.Key) {
			continue
		}
		m[k.KeyID] = verifyKey{alg: alg, pub: k.Key}
	}
	kr.verify.Store(&m)
	kr.lastRefresh.Store(time.Now().UnixNano())
}

// lookup returns the verification key for kid, reloading at most once per
// second when the kid is unknown (covers a missed notification).
func (kr *keyRing) lookup(kid string) (verifyKey, bool) {
	if m := kr.verify.Load(); m != nil {
		if k, ok := (*m)[kid]; ok {
			return k, true
		}
	}
	if time.Now().UnixNano()-kr.lastRefresh.Load() < int64(time.Second) {
		return verifyKey{}, false
	}
	kr.reload()
	k, ok := (*kr.verify.Load())[kid]
	return k, ok
}

// algs returns the algorithms of the published keys (for discovery).
func (kr *keyRing) algs() []string {
	seen := map[string]bool{}
	var out []string
	if _, alg, key := kr.src.Signer(); key != nil {
		seen[alg] = true
		out = append(out, alg)
	}
	for _, k := range *kr.verify.Load() {
		if !seen[k.alg] {
			seen[k.alg] = true
			out = append(out, k.alg)
		}
	}
	return out
}

// current returns the active signing key, building its headers once per kid.
func (kr *keyRing) current() (*signingKey, error) {
	kid, alg, key := kr.src.Signer()
	if key == nil || kid == "" {
		return nil, errNoSigningKey
	}
	if sk := kr.signing.Load(); sk != nil && sk.kid == kid && sk.alg == alg && sk.key == key {
		return sk, nil
	}
	if !algFitsKey(alg, key.Public()) {
		return nil, fmt.Errorf("signing key %q: algorithm %q does not fit key type %T", kid, alg, key.Public())
	}
	sk := &signingKey{
		kid:      kid,
		alg:      alg,
		key:      key,
		atHeader: encodeHeader(alg, kid, "at+jwt"),
		idHeader: encodeHeader(alg, kid, "JWT"),
	}
	kr.signing.Store(sk)
	return sk, nil
}

func encodeHeader(alg, kid, typ string) string {
	b, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, kid, typ})
	return b64.EncodeToString(b)
}

// algFitsKey binds JWS algorithms to key types (RFC 8725 §3.1).
func algFitsKey(alg string, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve.Params().BitSize == 256
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case *rsa.PublicKey:
		return alg == "RS256" && k.N.BitLen() >= 2048
	}
	return false
}

func digest(alg string, msg []byte) ([]byte, crypto.Hash) {
	var h hash.Hash
	var id crypto.Hash
	switch alg {
	case "ES256", "RS256":
		h, id = sha256.New(), crypto.SHA256
	default:
		return nil, 0
	}
	h.Write(msg)
	return h.Sum(nil), id
}

// sign returns the compact JWS of header (already base64url) and payload.
func (sk *signingKey) sign(header string, payload []byte) (string, error) {
	n := len(header) + 1 + b64.EncodedLen(len(payload))
	sigLen := 64 // ES256 (r||s) and Ed25519
	if sk.alg == "RS256" {
		sigLen = 512
	}
	buf := make([]byte, 0, n+1+b64.EncodedLen(sigLen))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	input := buf[:n]

	var sig []byte
	var err error
	switch sk.alg {
	case "EdDSA":
		sig, err = sk.key.Sign(rand.Reader, input, crypto.Hash(0))
	case "ES256":
		d, h := digest(sk.alg, input)
		var der []byte
		if der, err = sk.key.Sign(rand.Reader, d, h); err == nil {
			sig, err = derToRaw(der, 32)
		}
	case "RS256":
		d, h := digest(sk.alg, input)
		sig, err = sk.key.Sign(rand.Reader, d, h)
	default:
		err = fmt.Errorf("unsupported signing algorithm %q", sk.alg)
	}
	if err != nil {
		return "", fmt.Errorf("sign with key %q: %w", sk.kid, err)
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), nil
}

// derToRaw converts an ASN.1 ECDSA signature into the fixed-size r||s form
// of JWS (RFC 7518 §3.4).
func derToRaw(der []byte, size int) ([]byte, error) {
	var inner, r, s cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&inner, cbasn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1(&r, cbasn1.INTEGER) || !inner.ReadASN1(&s, cbasn1.INTEGER) || !inner.Empty() {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	if !putFixed(out[:size], r) || !putFixed(out[size:], s) {
		return nil, errors.New("ECDSA signature component too large")
	}
	return out, nil
}

func putFixed(dst []byte, v []byte) bool {
	v = bytes.TrimLeft(v, "\x00")
	if len(v) > len(dst) {
		return false
	}
	copy(dst[len(dst)-len(v):], v)
	return true
}

// jwsHeader is the part of a JOSE header we read.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// parsedJWS is a compact JWS split into its parts (not yet verified).
type parsedJWS struct {
	header    jwsHeader
	payload   []byte
	signed    string // header.payload, the signing input
	signature []byte
}

// parseJWS splits and decodes a compact JWS without verifying it.
func parseJWS(token string) (*parsedJWS, error) {
	if len(token) == 0 || len(token) > maxJWTLen || strings.ContainsAny(token, "\r\n") {
		return nil, errTokenMalformed
	}
	i := strings.IndexByte(token, '.')
	if i < 0 {
		return nil, errTokenMalformed
	}
	j := strings.IndexByte(token[i+1:], '.')
	if j < 0 {
		return nil, errTokenMalformed
	}
	j += i + 1
	if strings.IndexByte(token[j+1:], '.') >= 0 {
		return nil, errTokenMalformed
	}
	hb, err := b64.DecodeString(token[:i])
	if err != nil {
		return nil, errTokenMalformed
	}
	p := &parsedJWS{signed: token[:j]}
	if err := json.Unmarshal(hb, &p.header); err != nil {
		return nil, errTokenMalformed
	}
	if p.header.Crit != nil || p.header.Alg == "" || strings.EqualFold(p.header.Alg, "none") {
		return nil, errTokenMalformed
	}
	if p.payload, err = b64.DecodeString(token[i+1 : j]); err != nil {
		return nil, errTokenMalformed
	}
	if p.signature, err = b64.DecodeString(token[j+1:]); err != nil || len(p.signature) == 0 {
		return nil, errTokenMalformed
	}
	return p, nil
}

// verifySignature checks p against vk; the header alg must equal the
// algorithm the key is published for.
func (p *parsedJWS) verifySignature(vk verifyKey) error {
	if p.header.Alg != vk.alg {
		return errTokenSignature
	}
	msg := []byte(p.signed)
	switch pub := vk.pub.(type) {
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(p.signature) != 2*size {
			return errTokenSignature
		}
		d, _ := digest(vk.alg, msg)
		r := new(big.Int).SetBytes(p.signature[:size])
		s := new(big.Int).SetBytes(p.signature[size:])
		if !ecdsa.Verify(pub, d, r, s) {
			return errTokenSignature
		}
	case ed25519.PublicKey:
		if len(p.signature) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, p.signature) {
			return errTokenSignature
		}
	case *rsa.PublicKey:
		d, h := digest(vk.alg, msg)
		if rsa.VerifyPKCS1v15(pub, h, d, p.signature) != nil {
			return errTokenSignature
		}
	default:
		return errTokenSignature
	}
	return nil
}

// verify checks the signature of a token against the published keys.
func (kr *keyRing) verifyJWS(token string) (*parsedJWS, error) {
	p, err := parseJWS(token)
	if err != nil {
		return nil, err
	}
	if p.header.Kid == "" || len(p.header.Kid) > 256 {
		return nil, errTokenSignature
	}
	vk, ok := kr.lookup(p.header.Kid)
	if !ok {
		return nil, errTokenSignature
	}
	kr.sigChecks.Add(1)
	if err := p.verifySignature(vk); err != nil {
		return nil, err
	}
	return p, nil
}

// atHash computes the OIDC at_hash/c_hash of value for the signing alg:
// the left half of the hash named by the algorithm (SHA-512 for EdDSA with
// Ed25519, as go-oidc and the OpenID Foundation's guidance expect).
func atHash(alg, value string) string {
	var sum []byte
	switch alg {
	case "EdDSA":
		s := sha512.Sum512([]byte(value))
		sum = s[:]
	default:
		s := sha256.Sum256([]byte(value))
		sum = s[:]
	}
	return b64.EncodeToString(sum[:len(sum)/2])
}
