// Package apikey implements Sekisho API keys: a recognisable, checksummed
// key format (see docs/decisions/0004-api-key-format.md), the store
// interface the persistent store implements, an in-memory store for tests
// and demos, and an authn.Authenticator that checks keys on requests.
//
// Key format (66 bytes, all ASCII):
//
//	sekisho_ IIIIIIII SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS _ CCCCCC
//	prefix   id (8)   secret (43)                                   checksum (6)
//
// I, S and C are base62 characters [0-9A-Za-z]. The id is public (listed by
// the CLI, stored in clear as the lookup key); the 43 secret characters
// carry 256 bits of entropy. The checksum is the CRC-32 (IEEE) of
// everything before the last '_', in fixed-width base62, so typos and
// truncations are rejected without a store lookup and secret scanners can
// validate candidates offline with a regexp and a CRC:
//
//	\bsekisho_[0-9A-Za-z]{51}_[0-9A-Za-z]{6}\b
package apikey

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Format constants.
const (
	Prefix      = "sekisho_"
	IDLen       = 8
	SecretLen   = 43
	ChecksumLen = 6
	bodyLen     = IDLen + SecretLen
	// KeyLen is the exact length of every key.
	KeyLen = len(Prefix) + bodyLen + 1 + ChecksumLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Parse errors. They never contain the key.
var (
	ErrMalformed = errors.New("apikey: malformed key")
	ErrChecksum  = errors.New("apikey: checksum mismatch")
)

// Generate creates a new key from rand (crypto/rand.Reader in production).
// It returns the key (show it once, never store it), its public id, and
// hash = SHA-256(key), the only form that is stored.
//
// SHA-256 rather than a slow password hash: the key has ~256 bits of
// entropy, so brute force against a leaked hash is infeasible whatever the
// hash speed, and a fast hash keeps verification at ~1 µs per request.
func Generate(rand io.Reader) (key, id string, hash []byte, err error) {
	if rand == nil {
		return "", "", nil, errors.New("apikey: nil random source")
	}
	buf := make([]byte, 0, KeyLen)
	buf = append(buf, Prefix...)
	// Rejection sampling: bytes >= 248 (= 4*62) are discarded so each
	// character is uniform over the 62-character alphabet.
	var chunk [64]byte
	for len(buf) < len(Prefix)+bodyLen {
		if _, err := io.ReadFull(rand, chunk[:]); err != nil {
			return "", "", nil, fmt.Errorf("apikey: reading random bytes: %w", err)
		}
		for _, b := range chunk {
			if b >= 248 {
				continue
			}
			buf = append(buf, base62[b%62])
			if len(buf) == len(Prefix)+bodyLen {
				break
			}
		}
	}
	crc := crc32.ChecksumIEEE(buf)
	buf = append(buf, '_')
	buf = appendChecksum(buf, crc)
	key = string(buf)
	sum := sha256.Sum256(buf)
	return key, key[len(Prefix) : len(Prefix)+IDLen], sum[:], nil
}

// appendChecksum appends crc as exactly ChecksumLen base62 digits
// (62^6 > 2^32, so every CRC fits).
func appendChecksum(dst []byte, crc uint32) []byte {
	var d [ChecksumLen]byte
	v := crc
	for i := ChecksumLen - 1; i >= 0; i-- {
		d[i] = base62[v%62]
		v /= 62
	}
	return append(dst, d[:]...)
}

// Parse validates key's format and checksum and returns its public id.
// It does no I/O and reads at most KeyLen bytes of key: anything longer or
// shorter is rejected on length alone.
func Parse(key string) (id string, err error) {
	if len(key) != KeyLen {
		return "", ErrMalformed
	}
	if key[:len(Prefix)] != Prefix {
		return "", ErrMalformed
	}
	body := key[len(Prefix) : len(Prefix)+bodyLen]
	for i := 0; i < len(body); i++ {
		if !isBase62(body[i]) {
			return "", ErrMalformed
		}
	}
	if key[len(Prefix)+bodyLen] != '_' {
		return "", ErrMalformed
	}
	sum := key[len(Prefix)+bodyLen+1:]
	for i := 0; i < len(sum); i++ {
		if !isBase62(sum[i]) {
			return "", ErrMalformed
		}
	}
	var signed [len(Prefix) + bodyLen]byte
	copy(signed[:], key)
	var want [ChecksumLen]byte
	appendChecksum(want[:0], crc32.ChecksumIEEE(signed[:]))
	if string(want[:]) != sum {
		return "", ErrChecksum
	}
	return body[:IDLen], nil
}

// ValidID reports whether id has the shape of a key id (for CLI/admin input).
func ValidID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isBase62(id[i]) {
			return false
		}
	}
	return true
}

func isBase62(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}
