package forward

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/textproto"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/ttlcache"

	"github.com/sekisho/sekisho/internal/authn"
)

// TokenType is the JOSE "typ" of gateway identity tokens, so an upstream
// can never confuse one with an access token (RFC 8725 §3.11).
const TokenType = "sekisho-id+jwt"

// Signed identity defaults and bounds.
const (
	DefaultIdentityHeader   = "X-Sekisho-Identity"
	DefaultIdentityIssuer   = "sekisho"
	DefaultIdentityLifetime = 60 * time.Second
	MaxIdentityLifetime     = 5 * time.Minute
	DefaultSignedCacheSize  = 4096
)

// Signer provides the gateway's current signing key. It is implemented by
// the keys package (rotation, persistence) and by EphemeralSigner.
//
// SigningKey is called once per token: the key id, algorithm and key it
// returns sign that whole token, so a rotation can never pair one key's kid
// with another key's signature. alg is "ES256" (key: P-256 ECDSA) or
// "EdDSA" (key: Ed25519).
type Signer interface {
	SigningKey() (kid, alg string, key crypto.Signer)
}

// SignedIdentityOptions configures the gateway-signed identity token.
type SignedIdentityOptions struct {
	Signer Signer
	// Header carrying the token. Default "X-Sekisho-Identity".
	Header string
	// Issuer ("iss") of the token. Default "sekisho".
	Issuer string
	// Audience ("aud"): the route or upstream name. Required; upstreams must
	// check it so a token minted for one upstream is useless at another.
	Audience string
	// Lifetime of a token. Default 60s, max 5m. Tokens are reused for the
	// same verified identity until half their lifetime has passed, so an
	// upstream always receives at least Lifetime/2 of validity and the
	// gateway signs about once per identity per Lifetime/2 instead of once
	// per request.
	Lifetime time.Duration
	// CacheMaxEntries bounds the reuse cache. Default 4096; negative
	// disables reuse (one signature per request).
	CacheMaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// identityClaims is the token payload.
type identityClaims struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"`
	Subject   string `json:"sub,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	// AuthIssuer is the issuer of the credential the caller presented.
	AuthIssuer string `json:"auth_iss,omitempty"`
	// AuthKind is how the caller authenticated: jwt, apikey, introspection.
	AuthKind string `json:"auth_kind,omitempty"`
}

type signedIdentity struct {
	signer   Signer
	header   string
	issuer   string
	audience string
	lifetime time.Duration
	now      func() time.Time
	cache    *ttlcache.Cache[*authn.Identity, string] // nil: no reuse
}

func newSignedIdentity(o SignedIdentityOptions) (*signedIdentity, error) {
	if o.Signer == nil {
		return nil, errors.New("forward: signed identity: no signer")
	}
	s := &signedIdentity{signer: o.Signer, issuer: o.Issuer, audience: o.Audience, lifetime: o.Lifetime, now: o.Now}
	if o.Header == "" {
		o.Header = DefaultIdentityHeader
	}
	if !authn.ValidHeaderName(o.Header) {
		return nil, fmt.Errorf("forward: signed identity header %q is not a valid header name", o.Header)
	}
	s.header = textproto.CanonicalMIMEHeaderKey(o.Header)
	if reserved(s.header) {
		return nil, fmt.Errorf("forward: signed identity header %q is reserved", o.Header)
	}
	if s.issuer == "" {
		s.issuer = DefaultIdentityIssuer
	}
	if s.audience == "" || len(s.audience) > 256 || len(s.issuer) > 256 {
		return nil, errors.New("forward: signed identity: audience required (the route or upstream name), issuer and audience at most 256 bytes")
	}
	switch {
	case s.lifetime == 0:
		s.lifetime = DefaultIdentityLifetime
	case s.lifetime < 2*time.Second || s.lifetime > MaxIdentityLifetime:
		return nil, fmt.Errorf("forward: signed identity lifetime %s outside 2s..%s", s.lifetime, MaxIdentityLifetime)
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch n := o.CacheMaxEntries; {
	case n == 0:
		s.cache = ttlcache.New[*authn.Identity, string](DefaultSignedCacheSize)
	case n > 0:
		s.cache = ttlcache.New[*authn.Identity, string](n)
	}
	// Fail at config load, not on the first request, if the key is unusable.
	kid, alg, key := o.Signer.SigningKey()
	if err := checkKey(kid, alg, key); err != nil {
		return nil, fmt.Errorf("forward: signed identity: %w", err)
	}
	return s, nil
}

func checkKey(kid, alg string, key crypto.Signer) error {
	if key == nil {
		return errors.New("signer returned no key")
	}
	if kid == "" || len(kid) > 128 {
		return errors.New("key id must be 1..128 bytes")
	}
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		if alg != "ES256" || pub.Curve != elliptic.P256() {
			return fmt.Errorf("alg %q does not fit a %s ECDSA key (want ES256 with P-256)", alg, pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("alg %q does not fit an Ed25519 key (want EdDSA)", alg)
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// token returns a signed identity token for id, reusing a cached one while
// it has at least half its lifetime left. Identities are immutable and
// verifiers share one *Identity per cached credential, so the pointer is a
// sound cache key; the cache holds the pointer, so its address cannot be
// reused by another identity while the entry exists.
func (s *signedIdentity) token(id *authn.Identity) (string, error) {
	now := s.now()
	if s.cache != nil {
		if tok, ok := s.cache.Get(id, now); ok {
			return tok, nil
		}
	}
	exp := now.Add(s.lifetime)
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(exp) {
		// Never outlive the credential it vouches for.
		exp = id.ExpiresAt
		if !exp.After(now) {
			exp = now.Add(time.Second)
		}
	}
	claims := identityClaims{
		Issuer: s.issuer, Audience: s.audience,
		Subject: id.Subject, ClientID: id.ClientID, Scope: strings.Join(id.Scopes, " "),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp.Unix(),
		AuthIssuer: id.Issuer, AuthKind: id.Kind,
	}
	tok, err := sign(s.signer, claims)
	if err != nil {
		return "", err
	}
	if s.cache != nil {
		// Reuse until half the lifetime has passed (or, for tokens capped by
		// the credential's expiry, half of what they had).
		refresh := now.Add(exp.Sub(now) / 2)
		s.cache.Put(id, tok, refresh, now)
	}
	return tok, nil
}

type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// sign produces a compact JWS over claims with the signer's current key.
func sign(signer Signer, claims any) (string, error) {
	kid, alg, key := signer.SigningKey()
	if err := checkKey(kid, alg, key); err != nil {
		return "", err
	}
	hdr, err := json.Marshal(joseHeader{Alg: alg, Kid: kid, Typ: TokenType})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, enc.EncodedLen(len(hdr))+enc.EncodedLen(len(payload))+2+enc.EncodedLen(64)+1)
	buf = enc.AppendEncode(buf, hdr)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	var sig []byte
	switch alg {
	case "ES256":
		digest := sha256.Sum256(buf)
		der, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("sign: %w", err)
		}
		if sig, err = derToJOSE(der, 32); err != nil {
			return "", err
		}
	case "EdDSA":
		if sig, err = key.Sign(rand.Reader, buf, crypto.Hash(0)); err != nil {
			return "", fmt.Errorf("sign: %w", err)
		}
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// derToJOSE converts an ASN.1 ECDSA signature to JOSE's fixed-width r||s.
func derToJOSE(der []byte, size int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 ||
		rs.R.BitLen() > 8*size || rs.S.BitLen() > 8*size {
		return nil, errors.New("sign: malformed ECDSA signature from signer")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

// EphemeralSigner is an in-process ES256 key generated at startup: enough
// for a single gateway whose upstreams fetch the public key from JWKS().
// Tokens stop verifying after a restart (new key); use the keys package for
// persistent, rotated keys.
type EphemeralSigner struct {
	kid  string
	key  *ecdsa.PrivateKey
	jwks []byte
}

var _ Signer = (*EphemeralSigner)(nil)

// NewEphemeralSigner generates a fresh P-256 key. The key id is its
// RFC 7638 JWK thumbprint.
func NewEphemeralSigner() (*EphemeralSigner, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("forward: generate identity key: %w", err)
	}
	pub, err := key.PublicKey.Bytes() // uncompressed point 0x04 || X || Y
	if err != nil {
		return nil, fmt.Errorf("forward: encode identity key: %w", err)
	}
	x := base64.RawURLEncoding.EncodeToString(pub[1:33])
	y := base64.RawURLEncoding.EncodeToString(pub[33:65])
	// RFC 7638: required members in lexicographic order, no whitespace.
	thumb := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	kid := base64.RawURLEncoding.EncodeToString(thumb[:])
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig",
	}}})
	if err != nil {
		return nil, err
	}
	return &EphemeralSigner{kid: kid, key: key, jwks: jwks}, nil
}

// SigningKey implements Signer.
func (s *EphemeralSigner) SigningKey() (string, string, crypto.Signer) { return s.kid, "ES256", s.key }

// JWKS returns the public key set (RFC 7517) as JSON, for an admin or
// well-known endpoint (media type application/jwk-set+json). The returned
// slice is a copy.
func (s *EphemeralSigner) JWKS() []byte { return append([]byte(nil), s.jwks...) }

// KeyID returns the key's id (RFC 7638 thumbprint).
func (s *EphemeralSigner) KeyID() string { return s.kid }
