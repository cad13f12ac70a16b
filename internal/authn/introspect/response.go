package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/authn"
)

// MaxResponseSize caps the introspection response body.
const MaxResponseSize = 64 << 10

// maxJSONDepth bounds nesting in the response.
const maxJSONDepth = 32

var errDuplicateMember = errors.New("duplicate JSON member name")

// decodeResponse parses an RFC 7662 response body: a single JSON object
// with no duplicate member names at any depth (so "active" cannot be both
// false and true depending on the parser) and bounded nesting.
func decodeResponse(body []byte) (map[string]any, error) {
	if len(body) > MaxResponseSize {
		return nil, fmt.Errorf("response larger than %d bytes", MaxResponseSize)
	}
	if err := checkStructure(body); err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if m == nil {
		return nil, errors.New("response is not a JSON object")
	}
	return m, nil
}

// checkStructure walks the token stream: one top-level object, no
// duplicate keys in any object, depth at most maxJSONDepth, nothing after.
func checkStructure(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("response is not a JSON object")
	}
	if err := walkObject(dec, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

func walkObject(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("response nested too deeply")
	}
	seen := map[string]struct{}{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("decode response: object key is not a string")
		}
		if _, dup := seen[key]; dup {
			return fmt.Errorf("decode response: %w %q", errDuplicateMember, truncate(key, 64))
		}
		seen[key] = struct{}{}
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	if err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

func walkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(dec, depth+1)
	case '[':
		if depth+1 > maxJSONDepth {
			return errors.New("response nested too deeply")
		}
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return fmt.Errorf("decode response: %w", err)
		}
		return nil
	}
	return fmt.Errorf("decode response: unexpected %v", d)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checks are the per-endpoint acceptance rules applied to an active token.
type checks struct {
	audience string
	issuer   string
	leeway   time.Duration
	posTTL   time.Duration
	negTTL   time.Duration
}

// evaluate turns a decoded response into an identity (and how long it may
// be cached) or a refusal (and how long the refusal may be cached).
func (c *checks) evaluate(m map[string]any, now time.Time, hashPrefix string) (*authn.Identity, time.Time, *authn.Error) {
	refuse := func(reason string, err error) (*authn.Identity, time.Time, *authn.Error) {
		return nil, now.Add(c.negTTL), &authn.Error{Reason: reason, TokenHash: hashPrefix, Err: err}
	}
	// RFC 7662 §2.2: active is a REQUIRED boolean; anything but JSON true
	// (a string "true", 1, absent) is inactive.
	if active, ok := m["active"].(bool); !ok || !active {
		return refuse(authn.ReasonInactive, errors.New("introspection: token not active"))
	}
	exp, hasExp, err := numericDate(m, "exp")
	if err != nil {
		return refuse(authn.ReasonMalformed, err)
	}
	if hasExp && !now.Before(exp.Add(c.leeway)) {
		return refuse(authn.ReasonExpired, errors.New("introspection: exp in the past"))
	}
	nbf, hasNbf, err := numericDate(m, "nbf")
	if err != nil {
		return refuse(authn.ReasonMalformed, err)
	}
	if hasNbf && nbf.After(now.Add(c.leeway)) {
		return refuse(authn.ReasonNotYetValid, errors.New("introspection: nbf in the future"))
	}
	iss, _ := m["iss"].(string)
	if c.issuer != "" && iss != c.issuer {
		return refuse(authn.ReasonIssuer, fmt.Errorf("introspection: issuer %q not the required one", truncate(iss, 128)))
	}
	if c.audience != "" && !hasAudience(m["aud"], c.audience) {
		return refuse(authn.ReasonAudience, errors.New("introspection: required audience missing"))
	}
	var scopes []string
	if s, ok := m["scope"].(string); ok {
		for _, sc := range strings.Split(s, " ") {
			if sc != "" {
				scopes = append(scopes, sc)
			}
		}
	}
	sub, _ := m["sub"].(string)
	clientID, _ := m["client_id"].(string)
	jti, _ := m["jti"].(string)
	id := &authn.Identity{
		Kind:      "introspection",
		Issuer:    iss,
		Subject:   sub,
		ClientID:  clientID,
		Scopes:    scopes,
		Claims:    m,
		JTI:       jti,
		TokenHash: hashPrefix,
	}
	until := now.Add(c.posTTL)
	if hasExp {
		id.ExpiresAt = exp
		if exp.Before(until) {
			until = exp
		}
	}
	return id, until, nil
}

// numericDate reads an RFC 7519 NumericDate member. Absent is fine; present
// but not a finite, non-negative number in range is an error.
func numericDate(m map[string]any, name string) (time.Time, bool, error) {
	v, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false, fmt.Errorf("introspection: %s is not a NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func hasAudience(v any, want string) bool {
	switch a := v.(type) {
	case string:
		return a == want
	case []any:
		for _, e := range a {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}
