package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"
)

// issueState carries per-request token-endpoint state through fosite's
// handler chain (which only passes a context): the signing key chosen once
// for the request, and the access token issued, whose jti the storage
// adapter persists and whose hash the ID token's at_hash covers.
type issueState struct {
	sk *signingKey

	// activeCode is the signature of the authorization code this request
	// found active (replay detection across fosite's two reads).
	activeCode string

	accessToken string
	accessSig   string
	jti         string
}

type issueStateKey struct{}

func withIssueState(ctx context.Context) (context.Context, *issueState) {
	st := &issueState{}
	return context.WithValue(ctx, issueStateKey{}, st), st
}

func issueStateFrom(ctx context.Context) *issueState {
	st, _ := ctx.Value(issueStateKey{}).(*issueState)
	return st
}

// signer returns the key for this request: the one recorded in the issue
// state (so an access token and its ID token share a key and alg), or the
// current key.
func (s *Server) signer(ctx context.Context) (*signingKey, error) {
	st := issueStateFrom(ctx)
	if st != nil && st.sk != nil {
		return st.sk, nil
	}
	sk, err := s.keys.current()
	if err != nil {
		return nil, err
	}
	if st != nil {
		st.sk = sk
	}
	return sk, nil
}

// accessClaims are the RFC 9068 claims of a JWT access token.
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	JTI      string   `json:"jti"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	AuthTime int64    `json:"auth_time,omitempty"`
}

// audience marshals as a string when single-valued (RFC 7519 §4.1.3) and
// accepts both forms.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// atSignature is SHA-256 of the whole token, base64url.
func atSignature(token string) string {
	h := sha256.Sum256([]byte(token))
	return b64.EncodeToString(h[:])
}

// accessTokenKey is the storage key of an access token: its jti, then the
// SHA-256 of the whole token. The jti prefix is time-ordered (newJTI), so
// every insert lands at the right edge of the key index instead of on a
// random page (half the WAL pages written per token at issuance); the hash
// means a row can still only be found by presenting the exact token.
func accessTokenKey(jti, token string) string {
	return jti + "." + atSignature(token)
}

// accessTokenKeyOf derives accessTokenKey from a presented token, reading
// the jti from its (not yet verified) payload. A token that is not one of
// ours gets a key no row has (stored keys always contain a '.').
func accessTokenKeyOf(token string) string {
	if len(token) <= maxJWTLen {
		if jti := peekJTI(token); jti != "" {
			return accessTokenKey(jti, token)
		}
	}
	return atSignature(token)
}

// peekJTI returns the jti claim of a compact JWS without verifying it, or ""
// if it has none that newJTI could have made.
func peekJTI(token string) string {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first < 0 || last <= first {
		return ""
	}
	payload, err := b64.DecodeString(token[first+1 : last])
	if err != nil {
		return ""
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if json.Unmarshal(payload, &c) != nil || len(c.JTI) != jtiLen || strings.IndexByte(c.JTI, '.') >= 0 {
		return ""
	}
	return c.JTI
}

// jtiEncoding keeps byte order in string order (base32hex), so jtis sort by
// their time prefix.
var jtiEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

const jtiLen = 26 // 16 bytes in unpadded base32

// newJTI returns a unique token id: 48 bits of Unix milliseconds followed by
// 80 random bits (so ids are unguessable and never collide in practice),
// base32hex-encoded.
func newJTI(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return jtiEncoding.EncodeToString(b[:])
}

// tokenStrategy implements oauth2.CoreStrategy: RFC 9068 JWT access tokens
// signed with the current key, and fosite's HMAC-SHA512/256 opaque tokens
// (256-bit random + MAC, stored by MAC) for refresh tokens and codes.
type tokenStrategy struct {
	s    *Server
	hmac *oauth2.HMACSHAStrategyUnPrefixed
}

var _ oauth2.CoreStrategy = (*tokenStrategy)(nil)

func (t *tokenStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return accessTokenKeyOf(token)
}

// GenerateAccessToken implements oauth2.AccessTokenStrategy.
func (t *tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return "", "", fmt.Errorf("oauth: unexpected session type %T", r.GetSession())
	}
	st := issueStateFrom(ctx)
	if st == nil {
		return "", "", errors.New("oauth: access token requested outside the token endpoint")
	}
	sk, err := t.s.signer(ctx)
	if err != nil {
		return "", "", err
	}
	now := t.s.o.Now()
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = now.Add(t.s.o.AccessTokenTTL)
	}
	clientID := r.GetClient().GetID()
	c := accessClaims{
		Issuer:   t.s.issuer,
		Subject:  sess.Subject,
		Audience: audience(r.GetGrantedAudience()),
		ClientID: clientID,
		Scope:    strings.Join(r.GetGrantedScopes(), " "),
		JTI:      newJTI(now),
		IssuedAt: now.Unix(),
		Expiry:   exp.Unix(),
	}
	if c.Subject == "" {
		c.Subject = clientID // client credentials: the client acts for itself (RFC 9068 §2.2)
	} else if !sess.AuthTime.IsZero() {
		c.AuthTime = sess.AuthTime.Unix()
	}
	if len(c.Audience) == 0 {
		// A client without registered audiences gets tokens for the AS
		// itself (usable at userinfo only), never an audience-less token.
		c.Audience = audience{t.s.issuer}
	}
	payload := c.appendJSON(make([]byte, 0, 384))
	token, err := sk.sign(sk.atHeader, payload)
	if err != nil {
		return "", "", err
	}
	sig := accessTokenKey(c.JTI, token)
	st.accessToken, st.accessSig, st.jti = token, sig, c.JTI
	return token, sig, nil
}

// verifiedKey holds a *verified in a context: introspection and userinfo
// reuse the claims fosite's validation already verified.
type verifiedKey struct{}

type verified struct{ claims *accessClaims }

// ValidateAccessToken implements oauth2.AccessTokenStrategy: signature by
// any published key, typ at+jwt, our issuer, not expired.
func (t *tokenStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	c, err := t.s.verifyAccessToken(token)
	switch {
	case err == nil:
		if v, ok := ctx.Value(verifiedKey{}).(*verified); ok {
			v.claims = c
		}
		return nil
	case errors.Is(err, errTokenExpired):
		return fosite.ErrTokenExpired
	case errors.Is(err, errTokenMalformed):
		return fosite.ErrInvalidTokenFormat
	default:
		return fosite.ErrTokenSignatureMismatch
	}
}

// verifiedAccess is an access token whose signature and claims verified
// under keys, the published key set then in force. claims are shared by
// every later hit and never modified.
type verifiedAccess struct {
	claims *accessClaims
	keys   *map[string]verifyKey
}

// verifiedAccessMax bounds the verified-token cache. Only tokens this server
// signed get in, at most ~1 KiB each.
const verifiedAccessMax = 4096

// verifyAccessToken checks an access token's JWS and claims (not its
// revocation state, which lives in the store and is read on every
// introspection).
//
// A token that verified before is not verified again while the key set is
// the same one (any reload replaces the map, so a removed key invalidates
// every entry at once) and the token has not expired: the entry is keyed by
// the whole token, so a hit is the same bytes whose signature was checked,
// and it expires at the token's exp. An ES256 verification is about 40 % of
// an introspection's CPU.
func (s *Server) verifyAccessToken(token string) (*accessClaims, error) {
	now := s.o.Now()
	keys := s.keys.verify.Load()
	if s.verified != nil {
		if e, ok := s.verified.Get(token, now); ok && e.keys == keys {
			return e.claims, nil
		}
	}
	p, err := s.keys.verifyJWS(token)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(p.header.Typ, "at+jwt") && !strings.EqualFold(p.header.Typ, "application/at+jwt") {
		return nil, errTokenType
	}
	var c accessClaims
	if err := json.Unmarshal(p.payload, &c); err != nil {
		return nil, errTokenMalformed
	}
	if c.Issuer != s.issuer || c.JTI == "" || c.ClientID == "" {
		return nil, errTokenMalformed
	}
	if now.Unix() >= c.Expiry {
		return nil, errTokenExpired
	}
	if s.verified != nil {
		s.verified.Put(token, verifiedAccess{claims: &c, keys: keys}, time.Unix(c.Expiry, 0), now)
	}
	return &c, nil
}

func (t *tokenStrategy) RefreshTokenSignature(ctx context.Context, token string) string {
	return t.hmac.RefreshTokenSignature(ctx, token)
}

func (t *tokenStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	return t.hmac.GenerateRefreshToken(ctx, r)
}

func (t *tokenStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return t.hmac.ValidateRefreshToken(ctx, r, token)
}

func (t *tokenStrategy) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return t.hmac.AuthorizeCodeSignature(ctx, token)
}

func (t *tokenStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	return t.hmac.GenerateAuthorizeCode(ctx, r)
}

func (t *tokenStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return t.hmac.ValidateAuthorizeCode(ctx, r, token)
}

// idTokenStrategy wraps fosite's OpenID Connect strategy to compute at_hash
// with the hash of the actual signing algorithm (fosite derives it from the
// digits of the alg name and would use SHA-256 for EdDSA).
type idTokenStrategy struct {
	inner *openid.DefaultStrategy
}

func (i idTokenStrategy) GenerateIDToken(ctx context.Context, lifespan time.Duration, r fosite.Requester) (string, error) {
	if st := issueStateFrom(ctx); st != nil && st.accessToken != "" {
		if sess, ok := r.GetSession().(openid.Session); ok && sess.IDTokenClaims().AccessTokenHash != "" && st.sk != nil {
			sess.IDTokenClaims().AccessTokenHash = atHash(st.sk.alg, st.accessToken)
		}
	}
	return i.inner.GenerateIDToken(ctx, lifespan, r)
}

// joseSigner implements fosite's jwt.Signer for ID tokens and id_token_hint
// decoding: it signs with the current key and verifies with every published
// key (fosite's DefaultSigner verifies with the signing key only, which
// breaks at the first rotation).
type joseSigner struct {
	s *Server
}

var _ fjwt.Signer = joseSigner{}

// Generate signs an ID token (typ JWT).
func (j joseSigner) Generate(ctx context.Context, claims fjwt.MapClaims, _ fjwt.Mapper) (string, string, error) {
	sk, err := j.s.signer(ctx)
	if err != nil {
		return "", "", err
	}
	payload, err := json.Marshal(map[string]any(claims))
	if err != nil {
		return "", "", fmt.Errorf("oauth: encode id token: %w", err)
	}
	token, err := sk.sign(sk.idHeader, payload)
	if err != nil {
		return "", "", err
	}
	return token, token[strings.LastIndexByte(token, '.')+1:], nil
}

// Validate checks token and returns its signature.
func (j joseSigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := j.Decode(ctx, token); err != nil {
		return "", err
	}
	return j.GetSignature(ctx, token)
}

// Decode verifies a token this server signed that is not an access token
// (ID tokens as id_token_hint). Claims validation errors (e.g. expiry) are
// reported as *jwt.ValidationError like fosite's own signer does.
func (j joseSigner) Decode(_ context.Context, token string) (*fjwt.Token, error) {
	if len(token) > maxJWTLen {
		return nil, &fjwt.ValidationError{Errors: fjwt.ValidationErrorMalformed}
	}
	return fjwt.ParseWithClaims(token, fjwt.MapClaims{}, func(t *fjwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt") {
			return nil, errTokenType
		}
		kid, _ := t.Header["kid"].(string)
		vk, ok := j.s.keys.lookup(kid)
		if !ok || string(t.Method) != vk.alg {
			return nil, errTokenSignature
		}
		return &josev3.JSONWebKey{Key: vk.pub, Algorithm: vk.alg}, nil
	})
}

// GetSignature returns the signature part of a compact JWS.
func (joseSigner) GetSignature(_ context.Context, token string) (string, error) {
	if strings.Count(token, ".") != 2 {
		return "", errTokenMalformed
	}
	return token[strings.LastIndexByte(token, '.')+1:], nil
}

// Hash implements jwt.Signer.
func (joseSigner) Hash(_ context.Context, in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	return h[:], nil
}

// GetSigningMethodLength implements jwt.Signer.
func (joseSigner) GetSigningMethodLength(context.Context) int { return sha256.Size }
