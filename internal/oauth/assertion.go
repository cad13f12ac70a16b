package oauth

import (
	"encoding/json"
	"net/url"
	"time"

	"github.com/ory/fosite"
)

// Bounds of private_key_jwt client assertions (RFC 7523 §3). fosite
// verifies signature, iss/sub/aud, expiry and jti replay; it does not bound
// how far in the future exp may lie, which decides how long a jti must be
// remembered. We refuse long-lived assertions up front.
const (
	maxAssertionLen      = 8 << 10
	maxAssertionLifetime = 10 * time.Minute
	assertionClockSkew   = time.Minute
)

type assertionClaims struct {
	Subject string      `json:"sub"`
	Expiry  json.Number `json:"exp"`
	JTI     string      `json:"jti"`
}

// precheckAssertion inspects a client assertion before fosite verifies it
// and returns the client ID it claims (form client_id, else sub). Nothing
// here is trusted: the result only selects the jti replay scope, and fosite
// then verifies that iss == sub == this client and the signature.
func (s *Server) precheckAssertion(form url.Values) (string, error) {
	bad := func(hint string) (string, error) {
		return "", fosite.ErrInvalidClient.WithHint(hint)
	}
	a := form.Get("client_assertion")
	if a == "" || len(a) > maxAssertionLen {
		return bad("The client_assertion is missing or too large.")
	}
	p, err := parseJWS(a)
	if err != nil {
		return bad("The client_assertion is not a compact JWS.")
	}
	var c assertionClaims
	if err := json.Unmarshal(p.payload, &c); err != nil {
		return bad("The client_assertion claims are malformed.")
	}
	exp, err := c.Expiry.Int64()
	if err != nil {
		return bad("The client_assertion must carry a numeric exp claim.")
	}
	now := s.o.Now()
	if !time.Unix(exp, 0).After(now.Add(-assertionClockSkew)) {
		return bad("The client_assertion has expired.")
	}
	if time.Unix(exp, 0).After(now.Add(maxAssertionLifetime + assertionClockSkew)) {
		return bad("The client_assertion expires too far in the future (at most 10 minutes).")
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return bad("The client_assertion must carry a jti of at most 256 characters.")
	}
	id := form.Get("client_id")
	if id == "" {
		id = c.Subject
	}
	if id == "" || len(id) > maxClientIDLen {
		return bad("The client_assertion does not identify a client.")
	}
	return id, nil
}
