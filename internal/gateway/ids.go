package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

const maxRequestIDLen = 64

// requestID returns the client's X-Request-Id when it is well formed
// (1-64 of A-Z a-z 0-9 . _ - :), else a fresh random one, so IDs are safe to
// echo, log and forward.
func requestID(h http.Header) string {
	if v := h.Get("X-Request-Id"); v != "" && validRequestID(v) {
		return v
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
	return hex.EncodeToString(b[:])
}

func validRequestID(v string) bool {
	if len(v) == 0 || len(v) > maxRequestIDLen {
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

// validTraceparent checks W3C Trace Context version 00 syntax:
// 00-<32 hex trace-id, not all zero>-<16 hex parent-id, not all zero>-<2 hex flags>.
// Invalid values are dropped rather than forwarded.
func validTraceparent(v string) bool {
	if len(v) != 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	if v[0:2] != "00" || !lowerHex(v[3:35]) || !lowerHex(v[36:52]) || !lowerHex(v[53:55]) {
		return false
	}
	return v[3:35] != "00000000000000000000000000000000" && v[36:52] != "0000000000000000"
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
