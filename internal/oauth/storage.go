package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fstorage "github.com/ory/fosite/storage"

	"github.com/sekisho/sekisho/internal/store"
)

// fositeStore adapts store.Store to fosite's storage interfaces. Every
// request is persisted as a store.GrantSession whose Data is the compact
// JSON of storedRequest. Error contract (what fosite's handlers rely on):
//
//   - unknown, expired or client-less rows: fosite.ErrNotFound;
//   - a used authorization code: the request AND fosite.ErrInvalidatedAuthorizeCode
//     (fosite then revokes every token issued from it);
//   - a rotated refresh token: the request AND fosite.ErrInactiveToken
//     (fosite then revokes the whole family);
//   - RotateRefreshToken and InvalidateAuthorizeCodeSession are
//     compare-and-set (UPDATE ... WHERE active RETURNING), so two concurrent
//     redemptions cannot both succeed.
type fositeStore struct {
	st      store.Store
	clients *clientCache
	revs    *revocations
	now     func() time.Time
	log     *slog.Logger
}

var (
	_ fosite.Storage                     = (*fositeStore)(nil)
	_ oauth2.CoreStorage                 = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStore)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStore)(nil)
	_ fstorage.Transactional             = (*fositeStore)(nil)
)

// ---- clients and client assertions ----

// GetClient implements fosite.ClientManager.
func (a *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := a.clients.get(ctx, id)
	if errors.Is(err, errClientNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

type assertionClientKey struct{}

// assertionScope is the JTI replay scope of client assertions: per client,
// so one client cannot burn another's jti values. The client ID is put in
// the context by the client authentication strategy; fosite has verified
// iss == sub == that client before it records the jti.
func assertionScope(ctx context.Context) (string, error) {
	id, _ := ctx.Value(assertionClientKey{}).(string)
	if id == "" {
		return "", errors.New("oauth: client assertion without client context")
	}
	return "client_assertion:" + id, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager.
func (a *fositeStore) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	scope, err := assertionScope(ctx)
	if err != nil {
		return err
	}
	used, err := a.st.JTIUsed(ctx, scope, jti, a.now())
	if err != nil {
		return fmt.Errorf("check client assertion jti: %w", err)
	}
	if used {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager. MarkJTI is an
// atomic insert-if-absent: of two concurrent uses of one assertion exactly
// one succeeds (the check in ClientAssertionJWTValid alone would race).
func (a *fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	scope, err := assertionScope(ctx)
	if err != nil {
		return err
	}
	err = a.st.MarkJTI(ctx, scope, jti, exp)
	if errors.Is(err, store.ErrConflict) {
		return fosite.ErrJTIKnown
	}
	if err != nil {
		return fmt.Errorf("record client assertion jti: %w", err)
	}
	return nil
}

// ---- generic grant rows ----

func (a *fositeStore) create(ctx context.Context, kind, sig string, r fosite.Requester, tt fosite.TokenType, jti string) error {
	data, sess, err := encodeRequest(r, kind != store.KindAccess && kind != store.KindRefresh)
	if err != nil {
		return err
	}
	exp := sess.GetExpiresAt(tt)
	if exp.IsZero() {
		return fmt.Errorf("oauth: %s grant without expiry", kind)
	}
	g := &store.GrantSession{
		Kind:        kind,
		Signature:   sig,
		RequestID:   r.GetID(),
		ClientID:    r.GetClient().GetID(),
		Subject:     sess.Subject,
		Active:      true,
		Data:        data,
		JTI:         jti,
		RequestedAt: r.GetRequestedAt(),
		ExpiresAt:   exp,
	}
	if err := a.st.CreateGrantSession(ctx, g); err != nil {
		return fmt.Errorf("store %s grant: %w", kind, err)
	}
	return nil
}

// load reads a row and rehydrates its request. It returns the row even when
// it is inactive (callers decide); a missing row, a row whose client is
// gone or disabled, and an undecodable row are fosite.ErrNotFound.
func (a *fositeStore) load(ctx context.Context, kind, sig string) (*store.GrantSession, *fosite.Request, error) {
	if sig == "" || len(sig) > 512 {
		return nil, nil, fosite.ErrNotFound
	}
	g, err := a.st.GetGrantSession(ctx, kind, sig)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load %s grant: %w", kind, err)
	}
	req, sr, err := decodeRequest(g.Data)
	if err != nil {
		a.log.Error("undecodable grant row", "kind", kind, "request_id", g.RequestID, "err", err)
		return nil, nil, fosite.ErrNotFound
	}
	c, err := a.clients.get(ctx, sr.ClientID)
	if errors.Is(err, errClientNotFound) {
		return nil, nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	req.Client = c
	return g, req, nil
}

func (a *fositeStore) expired(g *store.GrantSession) bool {
	return !g.ExpiresAt.IsZero() && !a.now().Before(g.ExpiresAt)
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	return err
}

// ---- authorization codes ----

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (a *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return a.create(ctx, store.KindCode, sig, r, fosite.AuthorizeCode, "")
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
//
// fosite reads the code twice per exchange (validation, then issuance) and
// revokes on a used code only in the first read. A code that was active at
// the first read and is used at the second was redeemed concurrently by
// another request: its tokens are revoked here.
func (a *fositeStore) GetAuthorizeCodeSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	g, req, err := a.load(ctx, store.KindCode, sig)
	if err != nil {
		return nil, err
	}
	st := issueStateFrom(ctx)
	if !g.Active {
		if st != nil && st.activeCode == sig {
			a.revokeReplayed(ctx, g.RequestID)
		}
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	if a.expired(g) {
		return nil, fosite.ErrNotFound
	}
	if st != nil {
		st.activeCode = sig
	}
	return req, nil
}

// revokeReplayed revokes the grant family of an authorization code that was
// presented more than once (RFC 6749 §4.1.2: revoke what it issued).
func (a *fositeStore) revokeReplayed(ctx context.Context, requestID string) {
	a.log.Warn("authorization code presented more than once; revoking its grant", "request_id", requestID)
	if err := a.revs.revokeRequest(context.WithoutCancel(ctx), requestID); err != nil {
		a.log.Error("revoking the grant of a replayed authorization code failed", "request_id", requestID, "err", err)
	}
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage as a
// compare-and-set. When it loses a race against a concurrent redemption of
// the same code, the winner's tokens are revoked once this transaction has
// rolled back (a replayed code revokes what it issued, RFC 6749 §4.1.2).
func (a *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	g, err := a.st.GetGrantSession(ctx, store.KindCode, sig)
	if err != nil {
		return fmt.Errorf("invalidate code: %w", notFound(err))
	}
	done, err := a.st.DeactivateGrantSessionsByRequestID(ctx, store.KindCode, g.RequestID)
	if err != nil {
		return fmt.Errorf("invalidate code: %w", err)
	}
	for _, d := range done {
		if d.Signature == sig {
			return nil
		}
	}
	requestID := g.RequestID
	onRollback(ctx, func(ctx context.Context) { a.revokeReplayed(ctx, requestID) })
	return fosite.ErrInvalidatedAuthorizeCode
}

// ---- PKCE ----

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (a *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return a.create(ctx, store.KindPKCE, sig, r, fosite.AuthorizeCode, "")
}

// GetPKCERequestSession implements pkce.PKCERequestStorage. fosite consumes
// the PKCE session at the first presentation of the code (whatever the
// verifier); finding it consumed while the code is still active means the
// code was presented before, possibly concurrently by an attacker: the
// grant is revoked (so neither presentation keeps tokens) and the request
// fails with invalid_grant.
func (a *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	g, req, err := a.load(ctx, store.KindPKCE, sig)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		a.revokeReplayed(ctx, g.RequestID)
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage. The row is
// deactivated rather than deleted (GC removes it after the code's expiry) so
// a second presentation of the code is recognized as a replay.
func (a *fositeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return notFound(a.st.DeactivateGrantSession(ctx, store.KindPKCE, sig))
}

// ---- OpenID Connect ----

// codeKey hashes the raw authorization code: fosite keys OIDC sessions by
// the code itself, and the store must never hold token material.
func codeKey(code string) string {
	h := sha256.Sum256([]byte(code))
	return hex.EncodeToString(h[:])
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (a *fositeStore) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return a.create(ctx, store.KindOIDC, codeKey(code), r, fosite.AuthorizeCode, "")
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (a *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, _ fosite.Requester) (fosite.Requester, error) {
	g, req, err := a.load(ctx, store.KindOIDC, codeKey(code))
	if err != nil {
		return nil, err
	}
	if !g.Active {
		return nil, openid.ErrNoSessionFound
	}
	return req, nil
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (a *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return notFound(a.st.DeleteGrantSession(ctx, store.KindOIDC, codeKey(code)))
}

// ---- access tokens ----

// CreateAccessTokenSession implements oauth2.AccessTokenStorage; the jti of
// the token just generated comes from the request's issue state.
func (a *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	st := issueStateFrom(ctx)
	if st == nil || st.accessSig != sig || st.jti == "" {
		return errors.New("oauth: access token session without matching issue state")
	}
	return a.create(ctx, store.KindAccess, sig, r, fosite.AccessToken, st.jti)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (a *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	g, req, err := a.load(ctx, store.KindAccess, sig)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		return nil, fosite.ErrInactiveToken
	}
	if a.expired(g) {
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage; an active
// token's jti is deny-listed first.
func (a *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	g, err := a.st.GetGrantSession(ctx, store.KindAccess, sig)
	if err != nil {
		return notFound(err)
	}
	if g.Active {
		if err := a.revs.denyJTIs(ctx, []store.GrantSession{*g}); err != nil {
			return err
		}
	}
	return notFound(a.st.DeleteGrantSession(ctx, store.KindAccess, sig))
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the request (grant family) is deactivated and deny-listed.
func (a *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return a.revs.revokeAccess(ctx, requestID)
}

// ---- refresh tokens ----

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage. The
// family link to its access token is the shared request ID.
func (a *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	return a.create(ctx, store.KindRefresh, sig, r, fosite.RefreshToken, "")
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (a *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	g, req, err := a.load(ctx, store.KindRefresh, sig)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		return req, fosite.ErrInactiveToken
	}
	if a.expired(g) {
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (a *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return notFound(a.st.DeleteGrantSession(ctx, store.KindRefresh, sig))
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: it deactivates
// the presented refresh token (compare-and-set over the family, which has
// exactly one active refresh token) and retires the family's previous
// access tokens. Losing the race to a concurrent refresh with the same
// token yields fosite.ErrInactiveToken and the transaction rolls back.
func (a *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	done, err := a.st.DeactivateGrantSessionsByRequestID(ctx, store.KindRefresh, requestID)
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	found := false
	for _, d := range done {
		found = found || d.Signature == sig
	}
	if !found {
		return fosite.ErrInactiveToken
	}
	return a.revs.revokeAccess(ctx, requestID)
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage.
func (a *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if _, err := a.st.DeactivateGrantSessionsByRequestID(ctx, store.KindRefresh, requestID); err != nil {
		return fmt.Errorf("revoke refresh tokens: %w", err)
	}
	return nil
}

// ---- transactions ----

// fosite's storage.Transactional has the Begin/Commit/Rollback shape while
// store.InTx takes a callback. BeginTX therefore runs InTx on a goroutine
// whose callback hands its transaction context over and then waits for the
// decision. A transaction that is neither committed nor rolled back within
// txTimeout is rolled back, so a bug cannot hold SQLite's writer forever.

type txKey struct{}

const txTimeout = 30 * time.Second

var errTxRollback = errors.New("oauth: transaction rolled back")

type txHandle struct {
	decide chan bool
	done   chan error
	parent context.Context

	once   sync.Once
	result error

	mu       sync.Mutex
	rollback []func(context.Context)
}

// finish delivers the decision once and waits for the outcome.
func (h *txHandle) finish(commit bool) error {
	h.once.Do(func() {
		h.decide <- commit
		h.result = <-h.done
	})
	return h.result
}

// onRollback registers fn to run (outside the transaction) if the
// transaction of ctx does not commit. Without a transaction fn runs now.
func onRollback(ctx context.Context, fn func(context.Context)) {
	h, _ := ctx.Value(txKey{}).(*txHandle)
	if h == nil {
		fn(context.WithoutCancel(ctx))
		return
	}
	h.mu.Lock()
	h.rollback = append(h.rollback, fn)
	h.mu.Unlock()
}

// BeginTX implements storage.Transactional.
func (a *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	if h, _ := ctx.Value(txKey{}).(*txHandle); h != nil {
		return ctx, errors.New("oauth: nested transaction")
	}
	h := &txHandle{decide: make(chan bool, 1), done: make(chan error, 1), parent: ctx}
	started := make(chan context.Context, 1)
	go func() {
		h.done <- a.st.InTx(ctx, func(txctx context.Context) error {
			started <- txctx
			t := time.NewTimer(txTimeout)
			defer t.Stop()
			select {
			case commit := <-h.decide:
				if commit {
					return nil
				}
				return errTxRollback
			case <-t.C:
				a.log.Error("transaction neither committed nor rolled back; rolling back")
				return errors.New("oauth: transaction timed out")
			}
		})
	}()
	select {
	case txctx := <-started:
		return context.WithValue(txctx, txKey{}, h), nil
	case err := <-h.done:
		return ctx, fmt.Errorf("begin transaction: %w", err)
	}
}

// Commit implements storage.Transactional.
func (a *fositeStore) Commit(ctx context.Context) error {
	h, _ := ctx.Value(txKey{}).(*txHandle)
	if h == nil {
		return errors.New("oauth: commit without transaction")
	}
	if err := h.finish(true); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback implements storage.Transactional. Registered rollback hooks run
// after the transaction ended, with the caller's (non-transactional) context.
func (a *fositeStore) Rollback(ctx context.Context) error {
	h, _ := ctx.Value(txKey{}).(*txHandle)
	if h == nil {
		return nil
	}
	err := h.finish(false)
	if err == nil { // it had committed before; nothing to undo
		return nil
	}
	h.mu.Lock()
	hooks := h.rollback
	h.rollback = nil
	h.mu.Unlock()
	for _, fn := range hooks {
		fn(context.WithoutCancel(h.parent))
	}
	if errors.Is(err, errTxRollback) {
		return nil
	}
	return err
}
