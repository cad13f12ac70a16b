package oauth

import (
	"strconv"

	"github.com/sekisho/sekisho/internal/jsonenc"
)

// Hand-written encoders for the two JSON documents on the token hot path
// (access token claims and the token response). They avoid encoding/json's
// reflection, which profiling showed as the largest cost of the token
// endpoint after the signature and the durable insert. Both produce exactly
// what encoding/json would (checked by tests and a fuzz target).

// appendJSONString is the shared encoder (exactly what encoding/json writes).
var appendJSONString = jsonenc.AppendString

func appendField(dst []byte, first bool, name string) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

// appendJSON encodes the access token claims (field order and omissions as
// the struct tags of wireAccessClaims).
func (c *accessClaims) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = appendField(dst, true, "iss")
	dst = appendJSONString(dst, c.Issuer)
	dst = appendField(dst, false, "sub")
	dst = appendJSONString(dst, c.Subject)
	dst = appendField(dst, false, "aud")
	if len(c.Audience) == 1 {
		dst = appendJSONString(dst, c.Audience[0])
	} else {
		dst = append(dst, '[')
		for i, a := range c.Audience {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, a)
		}
		dst = append(dst, ']')
	}
	dst = appendField(dst, false, "client_id")
	dst = appendJSONString(dst, c.ClientID)
	if c.Scope != "" {
		dst = appendField(dst, false, "scope")
		dst = appendJSONString(dst, c.Scope)
	}
	dst = appendField(dst, false, "jti")
	dst = appendJSONString(dst, c.JTI)
	dst = appendField(dst, false, "iat")
	dst = strconv.AppendInt(dst, c.IssuedAt, 10)
	dst = appendField(dst, false, "exp")
	dst = strconv.AppendInt(dst, c.Expiry, 10)
	if c.AuthTime != 0 {
		dst = appendField(dst, false, "auth_time")
		dst = strconv.AppendInt(dst, c.AuthTime, 10)
	}
	return append(dst, '}')
}

// appendJSON encodes a token response like encoding/json with the struct
// tags of tokenResponse.
func (t *tokenResponse) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = appendField(dst, true, "access_token")
	dst = appendJSONString(dst, t.AccessToken)
	dst = appendField(dst, false, "token_type")
	dst = appendJSONString(dst, t.TokenType)
	dst = appendField(dst, false, "expires_in")
	dst = strconv.AppendInt(dst, t.ExpiresIn, 10)
	if t.Scope != "" {
		dst = appendField(dst, false, "scope")
		dst = appendJSONString(dst, t.Scope)
	}
	if t.RefreshToken != "" {
		dst = appendField(dst, false, "refresh_token")
		dst = appendJSONString(dst, t.RefreshToken)
	}
	if t.IDToken != "" {
		dst = appendField(dst, false, "id_token")
		dst = appendJSONString(dst, t.IDToken)
	}
	return append(dst, '}')
}
