// Package reqid makes and checks request IDs: what the gateway echoes in
// X-Request-Id, logs and puts in every problem response, including the ones
// the connection guard writes before net/http sees a request.
package reqid

import (
	"crypto/rand"
	"encoding/hex"
)

// MaxLen is the longest client-supplied ID accepted.
const MaxLen = 64

// New returns a random 128-bit ID in lower-case hex.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
	return hex.EncodeToString(b[:])
}

// Valid reports whether a client-supplied ID is safe to echo, log and
// forward: 1–64 of A-Z a-z 0-9 . _ - :.
func Valid(v string) bool {
	if len(v) == 0 || len(v) > MaxLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
