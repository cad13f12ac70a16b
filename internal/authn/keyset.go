package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// maxKeysPerSet bounds how many keys of one key set are kept: real issuers
// publish a handful, and every key costs memory and, without kid, lookups.
const maxKeysPerSet = 100

// maxNoKidCandidates bounds how many keys a token without "kid" is tried
// against. Two covers an issuer's rotation pair; more would let one forged
// token cost many signature verifications.
const maxNoKidCandidates = 2

// keySet is an immutable snapshot of an issuer's usable verification keys.
type keySet struct {
	byKid       map[string][]*verifyKey
	all         []*verifyKey
	fingerprint [32]byte
	// expiresAt is when the set stops being usable if no refresh succeeds
	// (last success + refresh interval + stale grace). Zero means never
	// (in-process key source, HMAC secret).
	expiresAt time.Time
}

// usable reports whether the set may verify tokens at now.
func (ks *keySet) usable(now time.Time) bool {
	return ks != nil && len(ks.all) > 0 && (ks.expiresAt.IsZero() || now.Before(ks.expiresAt))
}

// skippedKey records why a published key is not used, for the log line.
type skippedKey struct {
	kid    string
	reason string
	severe bool // private key material published: an operator must act
}

// isPrivateJWKMember reports RFC 7518 §6 private (or symmetric) key
// parameters. A published key set that carries them has leaked its keys:
// such keys are never used.
func isPrivateJWKMember(name string) bool {
	switch name {
	case "d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv":
		return true
	}
	return false
}

// jwkMeta is the subset of a JWK read before handing it to go-jose.
type jwkMeta struct {
	Kid    string         `json:"kid"`
	Use    string         `json:"use"`
	KeyOps []string       `json:"key_ops"`
	Rest   jsontext.Value `json:",unknown"`
}

// parseJWKS decodes a JWK Set document (RFC 7517 §5) from an untrusted-ish
// source (the issuer's endpoint or a file). The document must be strict
// I-JSON (no duplicate members). Keys that cannot be used for signature
// verification are skipped and reported, not fatal; the caller decides what
// to do with an empty result.
func parseJWKS(doc []byte) ([]jose.JSONWebKey, []skippedKey, error) {
	var set struct {
		Keys []jsontext.Value `json:"keys"`
	}
	if err := unmarshalStrict(doc, &set); err != nil {
		return nil, nil, fmt.Errorf("JWKS document: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`JWKS document: no "keys" array`)
	}
	var keys []jose.JSONWebKey
	var skipped []skippedKey
	for i, raw := range set.Keys {
		if len(keys) >= maxKeysPerSet {
			skipped = append(skipped, skippedKey{reason: fmt.Sprintf("%d keys beyond the limit of %d ignored", len(set.Keys)-i, maxKeysPerSet)})
			break
		}
		var meta jwkMeta
		if err := unmarshalStrict(raw, &meta); err != nil {
			skipped = append(skipped, skippedKey{reason: "key " + fmt.Sprint(i) + ": " + err.Error()})
			continue
		}
		if reason := unusableJWK(&meta); reason != "" {
			skipped = append(skipped, skippedKey{kid: meta.Kid, reason: reason, severe: strings.Contains(reason, "private")})
			continue
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, skippedKey{kid: meta.Kid, reason: "unsupported or invalid key: " + err.Error()})
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

// unusableJWK returns why a JWK must not be used for verification, or "".
func unusableJWK(m *jwkMeta) string {
	if m.Use != "" && m.Use != "sig" {
		return fmt.Sprintf("use %q is not sig", truncate(m.Use, 16))
	}
	if m.KeyOps != nil && !slices.Contains(m.KeyOps, "verify") {
		return "key_ops does not include verify"
	}
	if len(m.Kid) > maxKidLen {
		return "kid too long"
	}
	if len(m.Rest) > 0 {
		var members map[string]jsontext.Value
		if err := json.Unmarshal(m.Rest, &members); err == nil {
			for name := range members {
				if isPrivateJWKMember(name) {
					return "key set publishes private or symmetric key material (member " + name + "); key refused"
				}
			}
		}
	}
	return ""
}

// buildKeySet turns JWKs into verification keys. Only public keys of the
// supported families are kept; allowPrivate (in-process key source only)
// permits private JWKs, of which only the public half is used.
func buildKeySet(jwks []jose.JSONWebKey, allowPrivate bool) (*keySet, []skippedKey) {
	ks := &keySet{byKid: make(map[string][]*verifyKey)}
	var skipped []skippedKey
	type fp struct{ kid, alg, thumb string }
	var prints []fp
	for i := range jwks {
		j := jwks[i]
		if len(ks.all) >= maxKeysPerSet {
			skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "beyond the key limit"})
			continue
		}
		if !j.IsPublic() {
			if !allowPrivate {
				skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "private key material; key refused", severe: true})
				continue
			}
			j = j.Public()
			if j.Key == nil { // symmetric
				skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "symmetric keys are never taken from a key set"})
				continue
			}
		}
		if j.Use != "" && j.Use != "sig" {
			skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "use is not sig"})
			continue
		}
		if len(j.KeyID) > maxKidLen {
			skipped = append(skipped, skippedKey{kid: truncate(j.KeyID, 32), reason: "kid too long"})
			continue
		}
		vk := &verifyKey{kid: j.KeyID, alg: j.Algorithm}
		if vk.alg != "" {
			ai, ok := lookupAlg(vk.alg)
			if !ok || ai.kind == kindHMAC {
				skipped = append(skipped, skippedKey{kid: j.KeyID, reason: fmt.Sprintf("alg %q is not a supported signature algorithm", truncate(vk.alg, 16))})
				continue
			}
		}
		switch pub := j.Key.(type) {
		case *ecdsa.PublicKey:
			switch pub.Curve {
			case elliptic.P256(), elliptic.P384(), elliptic.P521():
			default:
				skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "unsupported curve"})
				continue
			}
			vk.kind, vk.ec = kindEC, pub
		case *rsa.PublicKey:
			if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
				skipped = append(skipped, skippedKey{kid: j.KeyID, reason: fmt.Sprintf("RSA key of %d bits outside [%d, %d]", bits, minRSABits, maxRSABits)})
				continue
			}
			vk.kind, vk.rsa = kindRSA, pub
		case ed25519.PublicKey:
			if len(pub) != ed25519.PublicKeySize {
				skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "bad Ed25519 key length"})
				continue
			}
			vk.kind, vk.ed = kindEd25519, pub
		case []byte:
			skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "symmetric keys are never taken from a key set"})
			continue
		default:
			skipped = append(skipped, skippedKey{kid: j.KeyID, reason: fmt.Sprintf("unsupported key type %T", j.Key)})
			continue
		}
		if vk.alg != "" {
			ai, _ := lookupAlg(vk.alg)
			if !vk.fits(vk.alg, ai) {
				skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "JWK alg does not match its key type or curve"})
				continue
			}
		}
		thumb, err := j.Thumbprint(crypto.SHA256)
		if err != nil {
			skipped = append(skipped, skippedKey{kid: j.KeyID, reason: "cannot compute thumbprint"})
			continue
		}
		ks.all = append(ks.all, vk)
		if vk.kid != "" {
			ks.byKid[vk.kid] = append(ks.byKid[vk.kid], vk)
		}
		prints = append(prints, fp{vk.kid, vk.alg, string(thumb)})
	}
	// The fingerprint identifies the set's content independently of order,
	// so an unchanged refresh does not invalidate cached verifications.
	slices.SortFunc(prints, func(a, b fp) int {
		return strings.Compare(a.kid+"\x00"+a.alg+"\x00"+a.thumb, b.kid+"\x00"+b.alg+"\x00"+b.thumb)
	})
	h := sha256.New()
	for _, p := range prints {
		fmt.Fprintf(h, "%d:%s|%d:%s|%d:%s|", len(p.kid), p.kid, len(p.alg), p.alg, len(p.thumb), p.thumb)
	}
	copy(ks.fingerprint[:], h.Sum(nil))
	return ks, skipped
}

// candidates returns the keys a token with this kid and alg may be verified
// with. kidKnown reports whether the kid exists at all (so that a known kid
// used with the wrong algorithm is an algorithm refusal, not a refetch).
func (ks *keySet) candidates(kid, alg string, ai algInfo) (keys []*verifyKey, kidKnown bool) {
	if kid != "" {
		list, ok := ks.byKid[kid]
		for _, k := range list {
			if k.fits(alg, ai) {
				keys = append(keys, k)
			}
		}
		return keys, ok
	}
	for _, k := range ks.all {
		if k.fits(alg, ai) {
			keys = append(keys, k)
		}
	}
	return keys, false
}

// truncate shortens attacker- or publisher-controlled strings for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
