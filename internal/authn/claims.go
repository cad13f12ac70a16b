package authn

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// stdClaims are the registered claims (RFC 7519 §4.1) and the RFC 9068 /
// RFC 8693 claims the gateway acts on, type-checked.
type stdClaims struct {
	iss, sub, jti, clientID string
	aud                     []string
	exp, nbf, iat           time.Time
	hasNbf, hasIat          bool
	scopes                  []string
}

// maxNumericDate bounds NumericDate values (year 5138): anything larger is
// not a date, and float64 → int64 conversion of huge values is undefined.
const maxNumericDate = 1e11

// extractClaims reads and type-checks the claims the verifier uses. A
// registered claim of the wrong JSON type is malformed, never ignored.
func extractClaims(c map[string]any) (stdClaims, error) {
	var s stdClaims
	var err error
	if s.iss, err = optString(c, "iss"); err != nil {
		return s, err
	}
	if s.sub, err = optString(c, "sub"); err != nil {
		return s, err
	}
	if s.jti, err = optString(c, "jti"); err != nil {
		return s, err
	}
	if s.clientID, err = optString(c, "client_id"); err != nil {
		return s, err
	}
	if s.clientID == "" {
		if s.clientID, err = optString(c, "azp"); err != nil {
			return s, err
		}
	}
	switch v := c["aud"].(type) {
	case nil:
		if _, present := c["aud"]; present {
			return s, errors.New("aud is null")
		}
	case string:
		s.aud = []string{v}
	case []any:
		s.aud = make([]string, 0, len(v))
		for _, e := range v {
			str, ok := e.(string)
			if !ok {
				return s, errors.New("aud array holds a non-string")
			}
			s.aud = append(s.aud, str)
		}
	default:
		return s, errors.New("aud is neither a string nor an array of strings")
	}
	var ok bool
	if s.exp, ok, err = optDate(c, "exp"); err != nil {
		return s, err
	} else if !ok {
		return s, errors.New("exp claim missing")
	}
	if s.nbf, s.hasNbf, err = optDate(c, "nbf"); err != nil {
		return s, err
	}
	if s.iat, s.hasIat, err = optDate(c, "iat"); err != nil {
		return s, err
	}
	// RFC 9068 §2.2.3 "scope" is a space-delimited string; "scp" (Azure AD,
	// Okta) is an array of strings or, sometimes, a string.
	switch v := c["scope"].(type) {
	case nil:
		if _, present := c["scope"]; present {
			return s, errors.New("scope is null")
		}
	case string:
		s.scopes = splitScopes(v)
	default:
		return s, errors.New("scope is not a string")
	}
	if s.scopes == nil {
		switch v := c["scp"].(type) {
		case nil:
		case string:
			s.scopes = splitScopes(v)
		case []any:
			s.scopes = make([]string, 0, len(v))
			for _, e := range v {
				str, ok := e.(string)
				if !ok {
					return s, errors.New("scp array holds a non-string")
				}
				if str != "" {
					s.scopes = append(s.scopes, str)
				}
			}
		default:
			return s, errors.New("scp is neither a string nor an array of strings")
		}
	}
	return s, nil
}

func splitScopes(v string) []string {
	f := strings.Split(v, " ")
	out := f[:0]
	for _, s := range f {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func optString(c map[string]any, name string) (string, error) {
	v, present := c[name]
	if !present {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// optDate reads a NumericDate (RFC 7519 §2): a JSON number of seconds,
// possibly fractional.
func optDate(c map[string]any, name string) (time.Time, bool, error) {
	v, present := c[name]
	if !present {
		return time.Time{}, false, nil
	}
	f, ok := v.(float64)
	if !ok {
		return time.Time{}, false, fmt.Errorf("%s is not a number", name)
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, false, fmt.Errorf("%s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}
