// Package anyof combines authenticators for routes that accept several
// credential kinds (e.g. `auth: any_of: [jwt, apikey]`).
package anyof

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sekisho/sekisho/internal/authn"
)

// CredentialSourcer is optionally implemented by authenticators to say
// where a request carries their kind of credential, without verifying it:
// e.g. "authorization:bearer", "header:x-api-key", "query:access_token";
// "" when the request carries none. Authenticators that read the same place
// (JWT and introspection both read the bearer token) report the same source.
type CredentialSourcer interface {
	CredentialSource(r *http.Request) string
}

type anyOf struct {
	auths   []authn.Authenticator
	sources []CredentialSourcer
}

// AnyOf returns an Authenticator that tries auths in order:
//
//   - authn.ErrNoCredentials: the request has no credential of that kind;
//     try the next one.
//   - success: return that identity.
//   - any other error (a credential of that kind is present but refused, or
//     its verifier is unavailable): stop and return the refusal.
//
// A present-but-bad credential never falls through to the next kind.
// Falling through would let an attacker holding a weak credential (say, an
// API key with few scopes) get it accepted alongside a forged or revoked
// strong one, would turn "your token is expired" into a confusing success
// under a different identity, and would hide attacks from the refusal
// metrics. One request, one credential, one verdict.
//
// For the same reason, when at least two of the authenticators implement
// CredentialSourcer and they report credentials in two different places
// (a bearer token and an API key header), the request is refused with
// ReasonMultipleTokens before anything is verified: the gateway would check
// one credential while the upstream might act on the other (credential
// smuggling).
//
// Ordering matters when kinds share a place: put the authenticator that can
// tell "not mine" apart first. A JWT authenticator combined with
// introspection must return ErrNoCredentials for a bearer token that is not
// in JWS compact form, or opaque tokens will be refused as malformed JWTs.
//
// If every authenticator reports ErrNoCredentials, so does AnyOf.
func AnyOf(auths ...authn.Authenticator) authn.Authenticator {
	a := &anyOf{auths: append([]authn.Authenticator(nil), auths...)}
	for _, x := range a.auths {
		if s, ok := x.(CredentialSourcer); ok {
			a.sources = append(a.sources, s)
		}
	}
	return a
}

// Authenticate implements authn.Authenticator.
func (a *anyOf) Authenticate(r *http.Request) (*authn.Identity, error) {
	if len(a.auths) == 0 {
		// A misconfigured combination must not open the route.
		return nil, &authn.Error{Reason: authn.ReasonUnavailable, Err: errors.New("anyof: no authenticators configured")}
	}
	if len(a.sources) > 1 {
		first := ""
		for _, s := range a.sources {
			src := s.CredentialSource(r)
			if src == "" {
				continue
			}
			if first == "" {
				first = src
			} else if src != first {
				return nil, &authn.Error{Reason: authn.ReasonMultipleTokens,
					Err: fmt.Errorf("anyof: credentials in both %s and %s", first, src)}
			}
		}
	}
	for _, x := range a.auths {
		id, err := x.Authenticate(r)
		if err == nil {
			if id == nil {
				return nil, &authn.Error{Reason: authn.ReasonUnavailable, Err: errors.New("anyof: authenticator returned neither identity nor error")}
			}
			return id, nil
		}
		var ae *authn.Error
		if errors.As(err, &ae) {
			return nil, err
		}
		if errors.Is(err, authn.ErrNoCredentials) {
			continue
		}
		// Unexpected error type: still a refusal (fail closed), wrapped so
		// the gateway's reason-based handling applies.
		return nil, &authn.Error{Reason: authn.ReasonUnavailable, Err: err}
	}
	return nil, authn.ErrNoCredentials
}
