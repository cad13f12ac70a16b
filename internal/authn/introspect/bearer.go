package introspect

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sekisho/sekisho/internal/authn"
)

// queryParam is the RFC 6750 §2.3 URI query parameter.
const queryParam = "access_token"

// bearerToken extracts exactly one bearer token from r: from the
// Authorization header (scheme case-insensitive, RFC 6750 §2.1) or, only when
// allowQuery, from the access_token query parameter. A token in the query on
// a route that does not allow it is refused, not ignored, so a client that
// sends one learns it is wrong instead of silently falling through.
func bearerToken(r *http.Request, allowQuery bool, maxSize int) (string, error) {
	var token string
	found := false
	authz := r.Header["Authorization"]
	for _, v := range authz {
		scheme, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		if len(authz) > 1 {
			return "", &authn.Error{Reason: authn.ReasonMultipleTokens, Err: errors.New("several Authorization headers")}
		}
		t := strings.TrimLeft(rest, " ")
		if len(t) > maxSize {
			return "", &authn.Error{Reason: authn.ReasonTooLarge, Err: fmt.Errorf("token of %d bytes", len(t))}
		}
		if !isB64Token(t) {
			return "", &authn.Error{Reason: authn.ReasonMalformed, Err: errors.New("bearer credential is not a single b64token")}
		}
		token, found = t, true
	}
	if strings.Contains(r.URL.RawQuery, queryParam) {
		if vals, ok := r.URL.Query()[queryParam]; ok {
			if !allowQuery {
				return "", &authn.Error{Reason: authn.ReasonQueryToken}
			}
			if found || len(vals) > 1 {
				return "", &authn.Error{Reason: authn.ReasonMultipleTokens, Err: errors.New("token in several places")}
			}
			t := vals[0]
			if len(t) > maxSize {
				return "", &authn.Error{Reason: authn.ReasonTooLarge, Err: fmt.Errorf("token of %d bytes", len(t))}
			}
			if !isB64Token(t) {
				return "", &authn.Error{Reason: authn.ReasonMalformed, Err: errors.New("query token is not a b64token")}
			}
			token, found = t, true
		}
	}
	if !found {
		return "", authn.ErrNoCredentials
	}
	return token, nil
}

// bearerSource names where r carries a bearer credential ("" if nowhere),
// without validating it. Used for CredentialSource.
func bearerSource(r *http.Request) string {
	for _, v := range r.Header["Authorization"] {
		if scheme, _, _ := strings.Cut(v, " "); strings.EqualFold(scheme, "Bearer") {
			return "authorization:bearer"
		}
	}
	if strings.Contains(r.URL.RawQuery, queryParam) && r.URL.Query().Has(queryParam) {
		return "query:" + queryParam
	}
	return ""
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
