package identity

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// CSRF design (see doc.go): a random "binding" cookie is set the first time
// a form is shown; each form carries
//
//	base64url(HMAC-SHA256(csrfKey, "v1" | purpose | binding | sessionHash))
//
// where purpose names the form (login, consent, logout, revoke) and
// sessionHash is SHA-256 of the login session cookie for forms that need a
// session (empty for the login form). A cross-site page can neither read the
// cookie nor compute the HMAC, and tokens of one form or session are useless
// for another. Fetch metadata and Origin are checked as well when present.

const (
	csrfField      = "csrf_token"
	csrfCookieBase = "sekisho_csrf"
	bindingLen     = 32
	// encodedTokenLen is the base64url length of 32 bytes.
	encodedTokenLen = 43
)

// CSRF form purposes.
const (
	purposeLogin   = "login"
	purposeConsent = "consent"
	purposeLogout  = "logout"
	purposeRevoke  = "revoke"
)

// deriveKey derives a 32-byte HMAC key for one use from the configured
// secret with HKDF-SHA256 (info separates the uses).
func deriveKey(secret []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil { // only for lengths HKDF cannot produce; 32 always works
		panic("identity: hkdf: " + err.Error())
	}
	return k
}

// csrfToken returns the token for a form of purpose, bound to the browser's
// binding cookie (set now if missing or malformed) and to sessHash.
func (s *Service) csrfToken(w http.ResponseWriter, r *http.Request, purpose string, sessHash []byte) string {
	binding, ok := s.readBinding(r)
	if !ok {
		binding = make([]byte, bindingLen)
		_, _ = rand.Read(binding)
		http.SetCookie(w, s.cookie(r, csrfCookieBase, base64.RawURLEncoding.EncodeToString(binding), 0))
	}
	return base64.RawURLEncoding.EncodeToString(s.csrfMAC(purpose, binding, sessHash))
}

func (s *Service) csrfMAC(purpose string, binding, sessHash []byte) []byte {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("v1\x00"))
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(binding)
	m.Write(sessHash)
	return m.Sum(nil)
}

func (s *Service) readBinding(r *http.Request) ([]byte, bool) {
	c, err := r.Cookie(s.cookieName(r, csrfCookieBase))
	if err != nil || len(c.Value) != encodedTokenLen {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) != bindingLen {
		return nil, false
	}
	return b, true
}

// checkCSRF reports whether a POST is same-origin and carries the right
// token for purpose and sessHash. Callers answer 403 when it is false.
func (s *Service) checkCSRF(r *http.Request, purpose string, sessHash []byte) bool {
	if !s.sameOrigin(r) {
		return false
	}
	vals := r.PostForm[csrfField]
	if len(vals) != 1 || len(vals[0]) != encodedTokenLen {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(vals[0])
	if err != nil {
		return false
	}
	binding, ok := s.readBinding(r)
	if !ok {
		return false
	}
	return hmac.Equal(got, s.csrfMAC(purpose, binding, sessHash))
}

// sameOrigin applies the browser's own signals when it sends them:
// Sec-Fetch-Site must be same-origin (or none: user-typed), and a non-null
// Origin must be the issuer's origin or this request's own origin. Our pages
// send Referrer-Policy: no-referrer, under which browsers send "Origin: null"
// even for same-origin form posts, so "null" is left to the token check.
func (s *Service) sameOrigin(r *http.Request) bool {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" && sfs != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	return o == s.origin || o == requestOrigin(r)
}

func requestOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
