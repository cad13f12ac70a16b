// Package authn verifies who is calling: the credential kinds a route can
// require (JWT, API key, introspected opaque token) all produce an Identity,
// and every refusal is an *Error whose Reason is a fixed, low-cardinality
// string safe for metric labels and logs.
package authn

import (
	"errors"
	"net/http"
	"time"
)

// Identity is the verified caller. It is immutable once returned: verifiers
// may share one Identity between requests through their caches.
type Identity struct {
	Kind     string // "jwt", "apikey", "introspection"
	Issuer   string // token issuer, or "apikey"
	Subject  string
	ClientID string
	Scopes   []string
	// Claims are the verified claims (JWT payload, introspection response, or
	// API-key consumer metadata) as decoded JSON values.
	Claims    map[string]any
	JTI       string
	ExpiresAt time.Time // zero = no expiry (API key without one)
	// TokenHash is a short hex prefix of SHA-256(token) for logs: enough to
	// correlate, never enough to replay.
	TokenHash string
}

// HasScope reports whether s was granted.
func (id *Identity) HasScope(s string) bool {
	for _, g := range id.Scopes {
		if g == s {
			return true
		}
	}
	return false
}

// Authenticator checks one kind of credential on a request.
//
// It returns ErrNoCredentials when the request carries no credential of its
// kind (so an any-of combination can try the next kind), and an *Error for a
// credential that is present but not acceptable.
type Authenticator interface {
	Authenticate(r *http.Request) (*Identity, error)
}

// ErrNoCredentials means the request carried no credential of the kind asked.
var ErrNoCredentials = errors.New("no credentials")

// Error is a refusal. Reason is one of the Reason* constants: it is used as a
// metric label and in logs, never shown in more detail to the client than
// RFC 6750's error codes allow.
type Error struct {
	Reason    string
	TokenHash string // hash prefix of the offending token, for the log line
	Err       error  // internal cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// Refusal reasons. Keep this list closed: each is a metric label value.
const (
	ReasonMalformed      = "malformed"       // not parseable, bad base64/JSON, duplicate members
	ReasonTooLarge       = "too_large"       // over the size cap, refused without parsing
	ReasonAlgorithm      = "algorithm"       // alg not allowed / not matching key
	ReasonUnknownKey     = "unknown_key"     // kid not in the issuer's key set
	ReasonSignature      = "signature"       // signature does not verify
	ReasonExpired        = "expired"         // exp in the past (beyond leeway)
	ReasonNotYetValid    = "not_yet_valid"   // nbf/iat in the future
	ReasonIssuer         = "issuer"          // iss not trusted
	ReasonAudience       = "audience"        // aud does not contain the expected audience
	ReasonType           = "type"            // typ header not the required one
	ReasonCrit           = "crit"            // unknown critical header
	ReasonRevoked        = "revoked"         // on the deny-list
	ReasonInactive       = "inactive"        // introspection said active=false / API key unknown, revoked, expired
	ReasonQueryToken     = "query_token"     // token in the query string on a route that does not allow it
	ReasonMultipleTokens = "multiple_tokens" // more than one credential presented
	ReasonUnavailable    = "unavailable"     // key set / introspection endpoint unavailable (fail closed)
)
