package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"math/big"
)

// keyKind is the family of a verification key. An algorithm is only ever
// checked against a key of its own family: the key type, never the token
// header, decides which primitive runs (RFC 8725 §3.1, RS/HS confusion).
type keyKind uint8

const (
	kindEC keyKind = iota + 1
	kindRSA
	kindEd25519
	kindHMAC
)

// algInfo describes a JWS algorithm this package can verify (RFC 7518 §3,
// RFC 8037, RFC 9864 "Ed25519").
type algInfo struct {
	kind  keyKind
	hash  crypto.Hash      // digest for EC, RSA and HMAC; 0 for Ed25519
	curve elliptic.Curve   // EC only
	pss   bool             // RSA-PSS rather than PKCS #1 v1.5
	hmac  func() hash.Hash // HMAC only
}

// lookupAlg returns the description of a supported JWS algorithm. "none" and
// every unknown name are unsupported.
func lookupAlg(alg string) (algInfo, bool) {
	switch alg {
	case "ES256":
		return algInfo{kind: kindEC, hash: crypto.SHA256, curve: elliptic.P256()}, true
	case "ES384":
		return algInfo{kind: kindEC, hash: crypto.SHA384, curve: elliptic.P384()}, true
	case "ES512":
		return algInfo{kind: kindEC, hash: crypto.SHA512, curve: elliptic.P521()}, true
	case "EdDSA", "Ed25519":
		return algInfo{kind: kindEd25519}, true
	case "RS256":
		return algInfo{kind: kindRSA, hash: crypto.SHA256}, true
	case "RS384":
		return algInfo{kind: kindRSA, hash: crypto.SHA384}, true
	case "RS512":
		return algInfo{kind: kindRSA, hash: crypto.SHA512}, true
	case "PS256":
		return algInfo{kind: kindRSA, hash: crypto.SHA256, pss: true}, true
	case "PS384":
		return algInfo{kind: kindRSA, hash: crypto.SHA384, pss: true}, true
	case "PS512":
		return algInfo{kind: kindRSA, hash: crypto.SHA512, pss: true}, true
	case "HS256":
		return algInfo{kind: kindHMAC, hash: crypto.SHA256, hmac: sha256.New}, true
	case "HS384":
		return algInfo{kind: kindHMAC, hash: crypto.SHA384, hmac: sha512.New384}, true
	case "HS512":
		return algInfo{kind: kindHMAC, hash: crypto.SHA512, hmac: sha512.New}, true
	}
	return algInfo{}, false
}

// RSA modulus bounds: RFC 7518 §3.3 requires ≥ 2048 bits; the upper bound
// keeps a hostile key set from making each verification arbitrarily slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// verifyKey is one usable verification key of an issuer.
type verifyKey struct {
	kid  string
	alg  string // the JWK's own "alg", "" when the JWK does not pin one
	kind keyKind
	ec   *ecdsa.PublicKey
	rsa  *rsa.PublicKey
	ed   ed25519.PublicKey
	hmac []byte
}

// fits reports whether alg may be used with k: same key family, for EC the
// curve named by the algorithm, and the JWK's own alg when it set one.
func (k *verifyKey) fits(alg string, ai algInfo) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	if ai.kind != k.kind {
		return false
	}
	if k.kind == kindEC && k.ec.Curve != ai.curve {
		return false
	}
	return true
}

var (
	errSigLength = errors.New("signature has the wrong length")
	errSigRange  = errors.New("ECDSA r or s out of range [1, n-1]")
	errSigBad    = errors.New("signature does not verify")
)

// verify checks sig over input with k. The caller has established k.fits(alg).
// Only standard-library primitives run here; this function only selects the
// digest and decodes the JOSE signature encoding.
func (k *verifyKey) verify(ai algInfo, input, sig []byte) error {
	switch ai.kind {
	case kindEC:
		params := k.ec.Curve.Params()
		size := (params.BitSize + 7) / 8
		// JOSE encodes ECDSA as the fixed-width concatenation r||s
		// (RFC 7518 §3.4); DER or short encodings are refused.
		if len(sig) != 2*size {
			return errSigLength
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		// crypto/ecdsa enforces this too; checking here keeps the
		// CVE-2022-21449 guard independent of the library version.
		if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(params.N) >= 0 || s.Cmp(params.N) >= 0 {
			return errSigRange
		}
		if !ecdsa.Verify(k.ec, digest(ai.hash, input), r, s) {
			return errSigBad
		}
		return nil
	case kindEd25519:
		if len(sig) != ed25519.SignatureSize {
			return errSigLength
		}
		if !ed25519.Verify(k.ed, input, sig) {
			return errSigBad
		}
		return nil
	case kindRSA:
		if len(sig) != k.rsa.Size() {
			return errSigLength
		}
		var err error
		if ai.pss {
			// RFC 7518 §3.5: the salt is as long as the digest.
			err = rsa.VerifyPSS(k.rsa, ai.hash, digest(ai.hash, input), sig,
				&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: ai.hash})
		} else {
			err = rsa.VerifyPKCS1v15(k.rsa, ai.hash, digest(ai.hash, input), sig)
		}
		if err != nil {
			return errSigBad
		}
		return nil
	case kindHMAC:
		if len(sig) != ai.hash.Size() {
			return errSigLength
		}
		m := hmac.New(ai.hmac, k.hmac)
		m.Write(input)
		if !hmac.Equal(m.Sum(nil), sig) { // constant time
			return errSigBad
		}
		return nil
	}
	return fmt.Errorf("unsupported key kind %d", ai.kind)
}

func digest(h crypto.Hash, input []byte) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(input)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(input)
		return d[:]
	}
	hh := h.New()
	hh.Write(input)
	return hh.Sum(nil)
}
