package authz

import (
	"errors"
	"net/http"
	"strings"

	"github.com/sekisho/sekisho/internal/authn"
)

// RFC 6750 §3.1 error codes.
const (
	ErrCodeInvalidRequest    = "invalid_request"
	ErrCodeInvalidToken      = "invalid_token"
	ErrCodeInsufficientScope = "insufficient_scope"
)

// Bounds on the attribute values WWWAuthenticate will emit.
const (
	maxRealmLen       = 256
	maxDescriptionLen = 256
	maxScopeAttrLen   = 2048
)

// WWWAuthenticate builds an RFC 6750 Bearer challenge, e.g.
//
//	Bearer realm="api", error="invalid_token"
//	Bearer realm="api", error="insufficient_scope", scope="orders:read orders:write"
//
// Every attribute is optional (empty means omitted). errCode must be one of
// the ErrCode* constants; anything else is omitted rather than echoed. realm
// is quoted with '"' and '\' escaped; description keeps only the NQSCHAR set
// RFC 6750 allows; scope keeps only valid RFC 6749 scope-tokens. Bytes
// outside printable ASCII are dropped everywhere, so the result is always a
// single, well-formed header value whatever the inputs. Per RFC 6750 §3.1 a
// request with no credentials should get no error code: pass errCode "".
func WWWAuthenticate(realm, errCode, description, scope string) string {
	var b strings.Builder
	b.Grow(len("Bearer ") + len(realm) + len(description) + len(scope) + 64)
	b.WriteString("Bearer")
	sep := " "
	attr := func(name string) {
		b.WriteString(sep)
		sep = ", "
		b.WriteString(name)
		b.WriteString(`="`)
	}
	if realm != "" {
		attr("realm")
		n := 0
		for i := 0; i < len(realm) && n < maxRealmLen; i++ {
			c := realm[i]
			if c < 0x20 || c > 0x7E {
				continue
			}
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
			n++
		}
		b.WriteByte('"')
	}
	switch errCode {
	case ErrCodeInvalidRequest, ErrCodeInvalidToken, ErrCodeInsufficientScope:
		attr("error")
		b.WriteString(errCode)
		b.WriteByte('"')
	}
	if description != "" {
		attr("error_description")
		n := 0
		for i := 0; i < len(description) && n < maxDescriptionLen; i++ {
			if c := description[i]; isNQSChar(c) {
				b.WriteByte(c)
				n++
			}
		}
		b.WriteByte('"')
	}
	if s := cleanScopes(scope); s != "" {
		attr("scope")
		b.WriteString(s)
		b.WriteByte('"')
	}
	return b.String()
}

// isNQSChar is RFC 6750's NQSCHAR: %x20-21 / %x23-5B / %x5D-7E.
func isNQSChar(c byte) bool {
	return c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
}

// cleanScopes keeps the valid scope-tokens of a space-separated list, joined
// by single spaces, up to maxScopeAttrLen bytes (whole tokens only).
func cleanScopes(scope string) string {
	if scope == "" {
		return ""
	}
	var b strings.Builder
	for _, tok := range strings.Split(scope, " ") {
		if tok == "" || ValidateScopeToken(tok) != nil {
			continue
		}
		if b.Len()+1+len(tok) > maxScopeAttrLen {
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// Refusal maps an authentication error to the HTTP status and RFC 6750 error
// code to answer with. It reveals nothing beyond those codes:
//
//	authn.ErrNoCredentials               401, no error code (RFC 6750 §3.1)
//	multiple_tokens, query_token         400 invalid_request
//	unavailable (key set / AS down)      503, no error code (fail closed)
//	any other *authn.Error               401 invalid_token
//	any other error                      503 (unexpected: fail closed)
func Refusal(err error) (status int, errCode string) {
	if errors.Is(err, authn.ErrNoCredentials) {
		return http.StatusUnauthorized, ""
	}
	var ae *authn.Error
	if errors.As(err, &ae) {
		switch ae.Reason {
		case authn.ReasonMultipleTokens, authn.ReasonQueryToken:
			return http.StatusBadRequest, ErrCodeInvalidRequest
		case authn.ReasonUnavailable:
			return http.StatusServiceUnavailable, ""
		default:
			return http.StatusUnauthorized, ErrCodeInvalidToken
		}
	}
	return http.StatusServiceUnavailable, ""
}

// Challenge maps a denial to its response: 403 with error
// "insufficient_scope", and the missing scopes for a scope denial. Policy
// denials and policy errors look identical to the client. Allowed decisions
// return 0.
func (d Decision) Challenge() (status int, errCode, scope string) {
	if d.Allowed {
		return 0, "", ""
	}
	if d.Reason == ReasonScope {
		return http.StatusForbidden, ErrCodeInsufficientScope, d.MissingScopes
	}
	return http.StatusForbidden, ErrCodeInsufficientScope, ""
}
