package oauth

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is the fosite session of every grant: the user (empty for client
// credentials), when they authenticated, and the expiry of each token kind.
//
// It replaces fosite's openid.DefaultSession/JWTSession, whose Clone is a
// reflection deep copy and whose JSON form (full IDTokenClaims, headers,
// maps) is several times larger than what we need to persist. Only the
// fields below are stored; ID token claims are rebuilt from them.
type Session struct {
	// Subject is the user ID; "" for client credentials.
	Subject string
	// AuthTime is when the user authenticated (zero for client credentials).
	AuthTime time.Time
	// RequestedAt is when the authorization was requested: the reference
	// time of OIDC prompt=login and max_age checks.
	RequestedAt time.Time

	accessExp, refreshExp, codeExp, idExp, otherExp time.Time

	// idClaims and idHeaders are created lazily and then returned as the
	// same pointers, as openid.Session requires (handlers edit them in place).
	idClaims  *jwt.IDTokenClaims
	idHeaders *jwt.Headers
}

var _ openid.Session = (*Session)(nil)

// NewSession returns a session for subject (a user ID, or "" for client credentials).
func NewSession(subject string, authTime, requestedAt time.Time) *Session {
	return &Session{Subject: subject, AuthTime: authTime.UTC(), RequestedAt: requestedAt.UTC()}
}

// SetExpiresAt implements fosite.Session.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	switch key {
	case fosite.AccessToken:
		s.accessExp = exp
	case fosite.RefreshToken:
		s.refreshExp = exp
	case fosite.AuthorizeCode:
		s.codeExp = exp
	case fosite.IDToken:
		s.idExp = exp
	default:
		s.otherExp = exp
	}
}

// GetExpiresAt implements fosite.Session.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time {
	switch key {
	case fosite.AccessToken:
		return s.accessExp
	case fosite.RefreshToken:
		return s.refreshExp
	case fosite.AuthorizeCode:
		return s.codeExp
	case fosite.IDToken:
		return s.idExp
	default:
		return s.otherExp
	}
}

// GetUsername implements fosite.Session (introspection "username"; unused).
func (s *Session) GetUsername() string { return "" }

// GetSubject implements fosite.Session.
func (s *Session) GetSubject() string {
	if s == nil {
		return ""
	}
	return s.Subject
}

// IDTokenClaims implements openid.Session.
func (s *Session) IDTokenClaims() *jwt.IDTokenClaims {
	if s.idClaims == nil {
		s.idClaims = &jwt.IDTokenClaims{
			Subject:     s.Subject,
			AuthTime:    s.AuthTime,
			RequestedAt: s.RequestedAt,
		}
	}
	return s.idClaims
}

// IDTokenHeaders implements openid.Session.
func (s *Session) IDTokenHeaders() *jwt.Headers {
	if s.idHeaders == nil {
		s.idHeaders = &jwt.Headers{Extra: map[string]any{}}
	}
	return s.idHeaders
}

// Clone implements fosite.Session with a plain copy (no reflection).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.idClaims != nil {
		ic := *s.idClaims
		ic.Audience = slices.Clone(ic.Audience)
		ic.AuthenticationMethodsReferences = slices.Clone(ic.AuthenticationMethodsReferences)
		ic.Extra = maps.Clone(ic.Extra)
		c.idClaims = &ic
	}
	if s.idHeaders != nil {
		c.idHeaders = &jwt.Headers{Extra: maps.Clone(s.idHeaders.Extra)}
	}
	return &c
}

// storedRequest is the persisted form of a fosite request: short JSON keys,
// unix-microsecond times, only the sanitized form. The client is stored by
// ID and re-read (through the cache) on load, so a disabled or deleted client
// invalidates its grants at once.
type storedRequest struct {
	ID          string     `json:"id"`
	RequestedAt int64      `json:"at"`
	ClientID    string     `json:"c"`
	Scopes      []string   `json:"rs,omitempty"`
	Granted     []string   `json:"gs,omitempty"`
	Audience    []string   `json:"ra,omitempty"`
	GrantedAud  []string   `json:"ga,omitempty"`
	Form        url.Values `json:"f,omitempty"`
	Session     storedSess `json:"s"`
}

type storedSess struct {
	Subject     string `json:"sub,omitempty"`
	AuthTime    int64  `json:"auth,omitempty"`
	RequestedAt int64  `json:"rat,omitempty"`
	AccessExp   int64  `json:"ae,omitempty"`
	RefreshExp  int64  `json:"re,omitempty"`
	CodeExp     int64  `json:"ce,omitempty"`
	IDExp       int64  `json:"ie,omitempty"`
}

// maxStoredRequest bounds what one grant row may hold; the inputs are
// already bounded by the request size caps, so hitting it means a bug.
const maxStoredRequest = 32 << 10

func unixMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicro(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// encodeRequest serializes r. Its session must be a *Session. keepForm is
// false for access and refresh token rows: their sanitized form is never
// read again (fosite uses the current request's form), so it is not stored.
func encodeRequest(r fosite.Requester, keepForm bool) ([]byte, *Session, error) {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess == nil {
		return nil, nil, fmt.Errorf("oauth: unexpected session type %T", r.GetSession())
	}
	sr := storedRequest{
		ID:          r.GetID(),
		RequestedAt: unixMicro(r.GetRequestedAt()),
		ClientID:    r.GetClient().GetID(),
		Scopes:      r.GetRequestedScopes(),
		Granted:     r.GetGrantedScopes(),
		Audience:    r.GetRequestedAudience(),
		GrantedAud:  r.GetGrantedAudience(),
		Session: storedSess{
			Subject:     sess.Subject,
			AuthTime:    unixMicro(sess.AuthTime),
			RequestedAt: unixMicro(sess.RequestedAt),
			AccessExp:   unixMicro(sess.accessExp),
			RefreshExp:  unixMicro(sess.refreshExp),
			CodeExp:     unixMicro(sess.codeExp),
			IDExp:       unixMicro(sess.idExp),
		},
	}
	if keepForm {
		sr.Form = r.GetRequestForm()
	}
	b, err := json.Marshal(&sr)
	if err != nil {
		return nil, nil, fmt.Errorf("oauth: encode request: %w", err)
	}
	if len(b) > maxStoredRequest {
		return nil, nil, fmt.Errorf("oauth: encoded request is %d bytes (limit %d)", len(b), maxStoredRequest)
	}
	return b, sess, nil
}

// decodeRequest parses data; the caller attaches the client.
func decodeRequest(data []byte) (*fosite.Request, *storedRequest, error) {
	var sr storedRequest
	if err := json.Unmarshal(data, &sr); err != nil {
		return nil, nil, fmt.Errorf("oauth: decode stored request: %w", err)
	}
	if sr.ID == "" || sr.ClientID == "" {
		return nil, nil, fmt.Errorf("oauth: decode stored request: missing id or client")
	}
	sess := &Session{
		Subject:     sr.Session.Subject,
		AuthTime:    fromMicro(sr.Session.AuthTime),
		RequestedAt: fromMicro(sr.Session.RequestedAt),
		accessExp:   fromMicro(sr.Session.AccessExp),
		refreshExp:  fromMicro(sr.Session.RefreshExp),
		codeExp:     fromMicro(sr.Session.CodeExp),
		idExp:       fromMicro(sr.Session.IDExp),
	}
	form := sr.Form
	if form == nil {
		form = url.Values{}
	}
	req := &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       fromMicro(sr.RequestedAt),
		RequestedScope:    nonNil(sr.Scopes),
		GrantedScope:      nonNil(sr.Granted),
		RequestedAudience: nonNil(sr.Audience),
		GrantedAudience:   nonNil(sr.GrantedAud),
		Form:              form,
		Session:           sess,
	}
	return req, &sr, nil
}

func nonNil(s []string) fosite.Arguments {
	if s == nil {
		return fosite.Arguments{}
	}
	return s
}
