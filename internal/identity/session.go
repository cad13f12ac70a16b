package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

const denialCookieBase = "sekisho_consent_denied"

// secure reports whether cookies for r must be Secure (and __Host-).
func (s *Service) secure(r *http.Request) bool { return s.o.CookieSecure || r.TLS != nil }

// cookieName returns base with the __Host- prefix when cookies are Secure.
// The prefix makes the browser refuse the cookie unless it is Secure,
// host-only and Path=/, so a sibling subdomain cannot plant one.
func (s *Service) cookieName(r *http.Request, base string) string {
	if s.secure(r) {
		return "__Host-" + base
	}
	return base
}

// cookie builds a cookie named after base with the common attributes:
// HttpOnly, SameSite=Lax (the session must survive the top-level redirect
// from a client to /oauth2/authorize), Path=/, host-only, Secure under TLS.
// maxAge > 0 sets Max-Age; < 0 deletes; 0 makes a browser-session cookie.
func (s *Service) cookie(r *http.Request, base, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     s.cookieName(r, base),
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.secure(r),
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	case maxAge < 0:
		c.MaxAge = -1
	}
	return c
}

// sessionCookie returns the session cookie's value decoded, or nil.
func (s *Service) sessionCookie(r *http.Request) []byte {
	c, err := r.Cookie(s.cookieName(r, s.o.CookieName))
	if err != nil || len(c.Value) != encodedTokenLen {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) != 32 {
		return nil
	}
	return b
}

// sessionHash returns SHA-256 of the session cookie value (what the store
// keeps), or nil when the request has no well-formed cookie.
func (s *Service) sessionHash(r *http.Request) []byte {
	v := s.sessionCookie(r)
	if v == nil {
		return nil
	}
	// The store key is the hash of the cookie's text, as sent by the browser.
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(v)))
	return sum[:]
}

// session returns the valid login session of r and its user; (nil, nil, nil)
// when there is none. A session is valid when it exists, has not expired,
// its user exists and is enabled, and the password was not changed after it
// began.
func (s *Service) session(r *http.Request) (*store.LoginSession, *store.User, error) {
	h := s.sessionHash(r)
	if h == nil {
		return nil, nil, nil
	}
	ctx := r.Context()
	sess, err := s.st.GetLoginSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		s.log.ErrorContext(ctx, "identity: get login session", "err", err)
		return nil, nil, fmt.Errorf("identity: get login session: %w", err)
	}
	if !s.now().Before(sess.ExpiresAt) {
		return nil, nil, nil
	}
	u, err := s.st.GetUser(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		s.log.ErrorContext(ctx, "identity: get session user", "user_id", sess.UserID, "err", err)
		return nil, nil, fmt.Errorf("identity: get user of session: %w", err)
	}
	if u.Disabled || u.PasswordChangedAt.After(sess.CreatedAt) {
		return nil, nil, nil
	}
	u.PasswordHash = ""
	return sess, u, nil
}

// startSession creates a login session for userID, replacing the request's
// current one (no session fixation: the cookie value is always fresh).
func (s *Service) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string) error {
	if old := s.sessionHash(r); old != nil {
		if err := s.st.DeleteLoginSession(ctx, old); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("identity: delete previous login session: %w", err)
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("identity: session id: %w", err)
	}
	value := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(value))
	now := s.now().UTC()
	sess := &store.LoginSession{
		IDHash:    sum[:],
		UserID:    userID,
		AuthTime:  now,
		CreatedAt: now,
		ExpiresAt: now.Add(s.o.SessionTTL),
	}
	if err := s.st.CreateLoginSession(ctx, sess); err != nil {
		return fmt.Errorf("identity: create login session: %w", err)
	}
	http.SetCookie(w, s.cookie(r, s.o.CookieName, value, s.o.SessionTTL))
	return nil
}

func (s *Service) endSession(w http.ResponseWriter, r *http.Request) (string, error) {
	h := s.sessionHash(r)
	if h == nil {
		return "", nil
	}
	// The cookie is expired whatever happens next: the browser forgets it.
	http.SetCookie(w, s.cookie(r, s.o.CookieName, "", -1))
	ctx := r.Context()
	sess, err := s.st.GetLoginSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("identity: end session: %w", err)
	}
	if err := s.st.DeleteLoginSession(ctx, h); err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("identity: end session: %w", err)
	}
	s.log.InfoContext(ctx, "identity: session ended", "user_id", sess.UserID)
	return sess.UserID, nil
}

// Consent denial handshake: a cookie holding
// exp(8 bytes, unix seconds) | HMAC(denyKey, exp | sessionHash | SHA-256(query)).

func (s *Service) denialMAC(exp uint64, sessHash []byte, rawQuery string) []byte {
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], exp)
	q := sha256.Sum256([]byte(rawQuery))
	m := hmac.New(sha256.New, s.denyKey)
	m.Write(e[:])
	m.Write(sessHash)
	m.Write(q[:])
	return m.Sum(nil)
}

// setDenial records that the user of sessHash denied the authorize request
// whose query is rawQuery.
func (s *Service) setDenial(w http.ResponseWriter, r *http.Request, sessHash []byte, rawQuery string) {
	exp := uint64(s.now().Add(consentDenialTTL).Unix())
	buf := make([]byte, 8, 8+sha256.Size)
	binary.BigEndian.PutUint64(buf, exp)
	buf = append(buf, s.denialMAC(exp, sessHash, rawQuery)...)
	http.SetCookie(w, s.cookie(r, denialCookieBase, base64.RawURLEncoding.EncodeToString(buf), consentDenialTTL))
}

func (s *Service) consumeDenial(w http.ResponseWriter, r *http.Request) bool {
	c, err := r.Cookie(s.cookieName(r, denialCookieBase))
	if err != nil {
		return false
	}
	// Whatever it holds, it is used at most once.
	http.SetCookie(w, s.cookie(r, denialCookieBase, "", -1))
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	exp := binary.BigEndian.Uint64(b[:8])
	if int64(exp) <= s.now().Unix() {
		return false
	}
	sh := s.sessionHash(r)
	if sh == nil {
		return false
	}
	return hmac.Equal(b[8:], s.denialMAC(exp, sh, r.URL.RawQuery))
}

// remoteAddrIP is the default Options.ClientIP: the peer address.
func remoteAddrIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// validCookieName accepts 1-64 characters from [A-Za-z0-9_-], not starting
// with "__" (the prefixes are ours to add).
func validCookieName(n string) bool {
	if n == "" || len(n) > 64 || (len(n) >= 2 && n[:2] == "__") {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
