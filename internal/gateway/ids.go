package gateway

import (
	"net/http"

	"github.com/sekisho/sekisho/internal/reqid"
)

// requestID returns the client's X-Request-Id when it is well formed
// (reqid.Valid), else a fresh random one, so IDs are safe to echo, log and
// forward.
func requestID(h http.Header) string {
	if v := h.Get("X-Request-Id"); v != "" && reqid.Valid(v) {
		return v
	}
	return reqid.New()
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
