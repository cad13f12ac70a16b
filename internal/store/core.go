package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rowsIter is the common subset of *sql.Rows and pgx.Rows.
type rowsIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// execer runs prepared core statements (by qid) or raw SQL.
type execer interface {
	exec(ctx context.Context, q qid, args ...any) (int64, error)
	query(ctx context.Context, q qid, args ...any) (rowsIter, error)
	execRaw(ctx context.Context, sql string, args ...any) (int64, error)
	queryRaw(ctx context.Context, sql string, args ...any) (rowsIter, error)
}

// txn is a backend transaction.
type txn interface {
	execer
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

// batchExecer is implemented by transactions that can send many statements in
// one round trip (pgx batches). It returns rows affected per statement, or the
// first error (the transaction is then unusable and must be rolled back).
type batchExecer interface {
	execBatch(ctx context.Context, ops []*hotOp) ([]int64, error)
}

// backend is what a database driver contributes to the shared SQL core.
type backend interface {
	name() string
	// writer runs autocommit writes outside InTx.
	writer() execer
	// reader runs reads outside InTx.
	reader() execer
	// begin starts a read-write transaction.
	begin(ctx context.Context) (txn, error)
	// timeArg encodes a time for a statement argument (zero → NULL).
	timeArg(t time.Time) any
	// classify maps a driver error to ErrConflict/ErrNotFound, or returns nil.
	classify(err error) error
	// migrationFS returns the embedded migrations of this backend.
	migrationFS() (fs.FS, error)
	// migrationSQL returns the DDL for schema_migrations and the statement
	// run first in every migration transaction (e.g. an advisory lock; "" = none).
	migrationSQL() (createTable, lock string)
	ping(ctx context.Context) error
	close() error
}

// sqlStore implements Store on top of a backend.
type sqlStore struct {
	b   backend
	now func() time.Time
	gc  *groupCommitter // nil when disabled

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

func newSQLStore(b backend, now func() time.Time, gco GroupCommitOptions) (*sqlStore, error) {
	if now == nil {
		now = time.Now
	}
	s := &sqlStore{b: b, now: now}
	if !gco.Disabled {
		gc, err := newGroupCommitter(b, gco)
		if err != nil {
			return nil, err
		}
		s.gc = gc
	}
	return s, nil
}

var _ Store = (*sqlStore)(nil)

type txKey struct{}

type txState struct {
	owner *sqlStore
	tx    txn
}

func (s *sqlStore) txFrom(ctx context.Context) txn {
	if st, ok := ctx.Value(txKey{}).(*txState); ok && st.owner == s {
		return st.tx
	}
	return nil
}

// w returns the execer for writes with ctx: the joined transaction or the writer.
func (s *sqlStore) w(ctx context.Context) execer {
	if t := s.txFrom(ctx); t != nil {
		return t
	}
	return s.b.writer()
}

// r returns the execer for reads with ctx: the joined transaction (to see its
// own writes) or the read pool.
func (s *sqlStore) r(ctx context.Context) execer {
	if t := s.txFrom(ctx); t != nil {
		return t
	}
	return s.b.reader()
}

func (s *sqlStore) t(t time.Time) any { return s.b.timeArg(t) }

func (s *sqlStore) stamp() time.Time { return utcMicro(s.now()) }

// wrap adds operation context to err and maps driver constraint errors to
// the sentinels. Conflict/not-found driver messages are dropped (they may
// quote key values); other driver errors are kept for diagnosis.
func (s *sqlStore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() && !errors.Is(err, ErrInvalid) {
		return fmt.Errorf("store: %s: %w", op, ErrClosed)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if c := s.b.classify(err); c != nil {
		return fmt.Errorf("store: %s: %w", op, c)
	}
	return fmt.Errorf("store: %s (%s): %w", op, s.b.name(), err)
}

// InTx implements Store.
func (s *sqlStore) InTx(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if s.txFrom(ctx) != nil {
		return fn(ctx) // nested: join the outer transaction
	}
	tx, err := s.b.begin(ctx)
	if err != nil {
		return s.wrap("begin transaction", err)
	}
	committed := false
	defer func() {
		if !committed {
			// Roll back with a fresh context: ctx may be the reason we failed.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = tx.rollback(rctx)
			cancel()
		}
	}()
	if err := fn(context.WithValue(ctx, txKey{}, &txState{owner: s, tx: tx})); err != nil {
		return err
	}
	if err := tx.commit(ctx); err != nil {
		return s.wrap("commit", err)
	}
	committed = true
	return nil
}

// GroupCommitStats returns the group-commit counters (zero when disabled), for
// metrics: Rows/Batches is the mean batch size.
func (s *sqlStore) GroupCommitStats() GroupCommitStats {
	if s.gc == nil {
		return GroupCommitStats{}
	}
	return s.gc.snapshot()
}

// Ping implements Store.
func (s *sqlStore) Ping(ctx context.Context) error { return s.wrap("ping", s.b.ping(ctx)) }

// Close implements Store.
func (s *sqlStore) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.gc != nil {
			s.gc.close()
		}
		s.closeErr = s.b.close()
	})
	return s.closeErr
}

func pageArgs(p Page) (after string, limit int, err error) {
	limit = p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	if limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	if len(p.After) > maxSigLen {
		return "", 0, invalid("page cursor too long")
	}
	return p.After, limit, nil
}

// queryOne runs q and scans the single row with scan; ErrNotFound if none.
func queryOne(ctx context.Context, e execer, q qid, args []any, scan func(rowsIter) error) error {
	rows, err := e.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return ErrNotFound
	}
	if err := scan(rows); err != nil {
		return err
	}
	return rows.Err()
}

// queryAll runs q and calls scan for each row.
func queryAll(ctx context.Context, e execer, q qid, args []any, scan func(rowsIter) error) error {
	rows, err := e.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ---- clients ----

func validateClient(c *Client) error {
	if c == nil {
		return invalid("nil client")
	}
	if err := checkID("client id", c.ID); err != nil {
		return err
	}
	if err := checkText("client name", c.Name, maxTextLen, false); err != nil {
		return err
	}
	if err := checkText("token_endpoint_auth_method", c.TokenEndpointAuthMethod, 64, false); err != nil {
		return err
	}
	for _, l := range []struct {
		n string
		v []string
	}{{"redirect_uris", c.RedirectURIs}, {"post_logout_redirect_uris", c.PostLogoutRedirectURIs},
		{"grant_types", c.GrantTypes}, {"scopes", c.Scopes}, {"audiences", c.Audiences}} {
		if err := checkList(l.n, l.v); err != nil {
			return err
		}
	}
	if err := checkBlob("client jwks", c.JWKS); err != nil {
		return err
	}
	if len(c.SecretHash) > 128 {
		return invalid("client secret hash longer than 128 bytes")
	}
	if c.AccessTokenTTL < 0 || c.RefreshTokenTTL < 0 {
		return invalid("negative token TTL")
	}
	return nil
}

func (s *sqlStore) CreateClient(ctx context.Context, c *Client) error {
	if err := validateClient(c); err != nil {
		return s.wrap("create client", err)
	}
	now := s.stamp()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	n, err := s.w(ctx).exec(ctx, qClientInsert, c.ID, c.Name, nilIfEmpty(c.SecretHash), c.Public,
		encList(c.RedirectURIs), encList(c.PostLogoutRedirectURIs), encList(c.GrantTypes), encList(c.Scopes),
		encList(c.Audiences), c.TokenEndpointAuthMethod, nilIfEmpty(c.JWKS), int64(c.AccessTokenTTL),
		int64(c.RefreshTokenTTL), c.Disabled, s.t(c.CreatedAt), s.t(c.UpdatedAt))
	if err == nil && n == 0 {
		err = ErrConflict
	}
	return s.wrap(fmt.Sprintf("create client %q", c.ID), err)
}

func scanClient(r rowsIter) (Client, error) {
	var c Client
	var ru, plru, gt, sc, aud string
	var att, rtt int64
	err := r.Scan(&c.ID, &c.Name, &c.SecretHash, &c.Public, &ru, &plru, &gt, &sc, &aud, &c.TokenEndpointAuthMethod,
		&c.JWKS, &att, &rtt, &c.Disabled, scanTime(&c.CreatedAt), scanTime(&c.UpdatedAt))
	if err != nil {
		return c, err
	}
	c.SecretHash, c.JWKS = nilIfEmpty(c.SecretHash), nilIfEmpty(c.JWKS)
	c.AccessTokenTTL, c.RefreshTokenTTL = time.Duration(att), time.Duration(rtt)
	for _, l := range []struct {
		dst *[]string
		src string
		n   string
	}{{&c.RedirectURIs, ru, "redirect_uris"}, {&c.PostLogoutRedirectURIs, plru, "post_logout_redirect_uris"},
		{&c.GrantTypes, gt, "grant_types"}, {&c.Scopes, sc, "scopes"}, {&c.Audiences, aud, "audiences"}} {
		if *l.dst, err = decList(l.n, l.src); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (s *sqlStore) GetClient(ctx context.Context, id string) (*Client, error) {
	var c Client
	err := queryOne(ctx, s.r(ctx), qClientGet, []any{id}, func(r rowsIter) (err error) {
		c, err = scanClient(r)
		return err
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get client %q", truncate(id, maxIDLen)), err)
	}
	return &c, nil
}

func (s *sqlStore) ListClients(ctx context.Context, p Page) ([]Client, error) {
	after, limit, err := pageArgs(p)
	if err != nil {
		return nil, s.wrap("list clients", err)
	}
	out := []Client{}
	err = queryAll(ctx, s.r(ctx), qClientList, []any{after, limit}, func(r rowsIter) error {
		c, err := scanClient(r)
		out = append(out, c)
		return err
	})
	if err != nil {
		return nil, s.wrap("list clients", err)
	}
	return out, nil
}

func (s *sqlStore) UpdateClient(ctx context.Context, c *Client) error {
	if err := validateClient(c); err != nil {
		return s.wrap("update client", err)
	}
	c.UpdatedAt = s.stamp()
	n, err := s.w(ctx).exec(ctx, qClientUpdate, c.Name, nilIfEmpty(c.SecretHash), c.Public, encList(c.RedirectURIs),
		encList(c.PostLogoutRedirectURIs), encList(c.GrantTypes), encList(c.Scopes), encList(c.Audiences),
		c.TokenEndpointAuthMethod, nilIfEmpty(c.JWKS), int64(c.AccessTokenTTL), int64(c.RefreshTokenTTL), c.Disabled,
		s.t(c.UpdatedAt), c.ID)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap(fmt.Sprintf("update client %q", c.ID), err)
}

func (s *sqlStore) DeleteClient(ctx context.Context, id string) error {
	n, err := s.w(ctx).exec(ctx, qClientDelete, id)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap(fmt.Sprintf("delete client %q", truncate(id, maxIDLen)), err)
}

// ---- users ----

// normalizeUsername is the key of case-insensitive username uniqueness.
func normalizeUsername(u string) string { return strings.ToLower(u) }

func validateUser(u *User) error {
	if u == nil {
		return invalid("nil user")
	}
	if err := checkID("user id", u.ID); err != nil {
		return err
	}
	if err := checkText("username", u.Username, maxIDLen, true); err != nil {
		return err
	}
	for _, f := range []struct{ n, v string }{{"email", u.Email}, {"name", u.Name}, {"password hash", u.PasswordHash}} {
		if err := checkText(f.n, f.v, maxTextLen, false); err != nil {
			return err
		}
	}
	return checkText("locale", u.Locale, 64, false)
}

func (s *sqlStore) CreateUser(ctx context.Context, u *User) error {
	if err := validateUser(u); err != nil {
		return s.wrap("create user", err)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.stamp()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	n, err := s.w(ctx).exec(ctx, qUserInsert, normalizeUsername(u.Username), u.ID, u.Username, u.Email, u.Name, u.Locale,
		u.PasswordHash, u.Disabled, s.t(u.CreatedAt), s.t(u.UpdatedAt), s.t(u.PasswordChangedAt))
	if err == nil && n == 0 {
		err = ErrConflict
	}
	return s.wrap(fmt.Sprintf("create user %q", u.ID), err)
}

func scanUser(r rowsIter) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Username, &u.Email, &u.Name, &u.Locale, &u.PasswordHash, &u.Disabled,
		scanTime(&u.CreatedAt), scanTime(&u.UpdatedAt), scanTime(&u.PasswordChangedAt))
	return u, err
}

func (s *sqlStore) getUser(ctx context.Context, q qid, key, op string) (*User, error) {
	var u User
	err := queryOne(ctx, s.r(ctx), q, []any{key}, func(r rowsIter) (err error) {
		u, err = scanUser(r)
		return err
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return &u, nil
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (*User, error) {
	return s.getUser(ctx, qUserGet, id, fmt.Sprintf("get user %q", truncate(id, maxIDLen)))
}

func (s *sqlStore) GetUserByUsername(ctx context.Context, username string) (*User, error) {
	if len(username) > maxIDLen {
		return nil, s.wrap("get user by username", ErrNotFound)
	}
	return s.getUser(ctx, qUserGetByName, normalizeUsername(username), "get user by username")
}

func (s *sqlStore) ListUsers(ctx context.Context, p Page) ([]User, error) {
	after, limit, err := pageArgs(p)
	if err != nil {
		return nil, s.wrap("list users", err)
	}
	out := []User{}
	err = queryAll(ctx, s.r(ctx), qUserList, []any{after, limit}, func(r rowsIter) error {
		u, err := scanUser(r)
		out = append(out, u)
		return err
	})
	if err != nil {
		return nil, s.wrap("list users", err)
	}
	return out, nil
}

func (s *sqlStore) UpdateUser(ctx context.Context, u *User) error {
	if err := validateUser(u); err != nil {
		return s.wrap("update user", err)
	}
	u.UpdatedAt = s.stamp()
	n, err := s.w(ctx).exec(ctx, qUserUpdate, normalizeUsername(u.Username), u.Username, u.Email, u.Name, u.Locale,
		u.PasswordHash, u.Disabled, s.t(u.UpdatedAt), s.t(u.PasswordChangedAt), u.ID)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap(fmt.Sprintf("update user %q", u.ID), err)
}

// ---- consents ----

func (s *sqlStore) SaveConsent(ctx context.Context, c *Consent) error {
	if c == nil {
		return s.wrap("save consent", invalid("nil consent"))
	}
	if err := checkID("user id", c.UserID); err != nil {
		return s.wrap("save consent", err)
	}
	if err := checkID("client id", c.ClientID); err != nil {
		return s.wrap("save consent", err)
	}
	if err := checkList("consent scopes", c.Scopes); err != nil {
		return s.wrap("save consent", err)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.stamp()
	}
	_, err := s.w(ctx).exec(ctx, qConsentUpsert, c.UserID, c.ClientID, encList(c.Scopes), s.t(c.CreatedAt), s.t(c.ExpiresAt))
	return s.wrap(fmt.Sprintf("save consent of user %q for client %q", c.UserID, c.ClientID), err)
}

func scanConsent(r rowsIter) (Consent, error) {
	var c Consent
	var sc string
	if err := r.Scan(&c.UserID, &c.ClientID, &sc, scanTime(&c.CreatedAt), scanTime(&c.ExpiresAt)); err != nil {
		return c, err
	}
	var err error
	c.Scopes, err = decList("consent scopes", sc)
	return c, err
}

func (s *sqlStore) GetConsent(ctx context.Context, userID, clientID string) (*Consent, error) {
	var c Consent
	err := queryOne(ctx, s.r(ctx), qConsentGet, []any{userID, clientID}, func(r rowsIter) (err error) {
		c, err = scanConsent(r)
		return err
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get consent of user %q for client %q", truncate(userID, maxIDLen),
			truncate(clientID, maxIDLen)), err)
	}
	return &c, nil
}

func (s *sqlStore) ListConsents(ctx context.Context, userID string) ([]Consent, error) {
	out := []Consent{}
	err := queryAll(ctx, s.r(ctx), qConsentList, []any{userID, maxConsentsPerUser}, func(r rowsIter) error {
		c, err := scanConsent(r)
		out = append(out, c)
		return err
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("list consents of user %q", truncate(userID, maxIDLen)), err)
	}
	return out, nil
}

func (s *sqlStore) DeleteConsent(ctx context.Context, userID, clientID string) error {
	n, err := s.w(ctx).exec(ctx, qConsentDelete, userID, clientID)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap(fmt.Sprintf("delete consent of user %q for client %q", truncate(userID, maxIDLen),
		truncate(clientID, maxIDLen)), err)
}

// ---- login sessions ----

func (s *sqlStore) CreateLoginSession(ctx context.Context, ls *LoginSession) error {
	if ls == nil {
		return s.wrap("create login session", invalid("nil login session"))
	}
	if len(ls.IDHash) == 0 || len(ls.IDHash) > 64 {
		return s.wrap("create login session", invalid("session id hash must be 1..64 bytes"))
	}
	if err := checkID("user id", ls.UserID); err != nil {
		return s.wrap("create login session", err)
	}
	if ls.CreatedAt.IsZero() {
		ls.CreatedAt = s.stamp()
	}
	n, err := s.w(ctx).exec(ctx, qLoginInsert, ls.IDHash, ls.UserID, s.t(ls.AuthTime), s.t(ls.CreatedAt), s.t(ls.ExpiresAt))
	if err == nil && n == 0 {
		err = ErrConflict
	}
	return s.wrap(fmt.Sprintf("create login session for user %q", ls.UserID), err)
}

func (s *sqlStore) GetLoginSession(ctx context.Context, idHash []byte) (*LoginSession, error) {
	var ls LoginSession
	err := queryOne(ctx, s.r(ctx), qLoginGet, []any{idHash}, func(r rowsIter) error {
		return r.Scan(&ls.IDHash, &ls.UserID, scanTime(&ls.AuthTime), scanTime(&ls.CreatedAt), scanTime(&ls.ExpiresAt))
	})
	if err != nil {
		return nil, s.wrap("get login session", err)
	}
	return &ls, nil
}

func (s *sqlStore) DeleteLoginSession(ctx context.Context, idHash []byte) error {
	n, err := s.w(ctx).exec(ctx, qLoginDelete, idHash)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap("delete login session", err)
}

func (s *sqlStore) DeleteLoginSessionsForUser(ctx context.Context, userID string) (int64, error) {
	n, err := s.w(ctx).exec(ctx, qLoginDeleteUser, userID)
	if err != nil {
		return 0, s.wrap(fmt.Sprintf("delete login sessions of user %q", truncate(userID, maxIDLen)), err)
	}
	return n, nil
}

// ---- grant sessions ----

func validateGrant(g *GrantSession) error {
	if g == nil {
		return invalid("nil grant session")
	}
	if err := checkKind(g.Kind); err != nil {
		return err
	}
	if err := checkText("signature", g.Signature, maxSigLen, true); err != nil {
		return err
	}
	if err := checkText("request id", g.RequestID, maxIDLen, false); err != nil {
		return err
	}
	if err := checkText("client id", g.ClientID, maxIDLen, false); err != nil {
		return err
	}
	if err := checkText("subject", g.Subject, maxIDLen, false); err != nil {
		return err
	}
	if err := checkText("jti", g.JTI, maxSigLen, false); err != nil {
		return err
	}
	return checkBlob("grant session data", g.Data)
}

func (s *sqlStore) grantArgs(g *GrantSession) []any {
	return []any{g.Kind, g.Signature, g.RequestID, g.ClientID, g.Subject, g.Active, nilIfEmpty(g.Data), g.JTI,
		s.t(g.RequestedAt), s.t(g.ExpiresAt)}
}

func (s *sqlStore) CreateGrantSession(ctx context.Context, g *GrantSession) error {
	if err := validateGrant(g); err != nil {
		return s.wrap("create grant session", err)
	}
	op := "create " + g.Kind + " grant session"
	if t := s.txFrom(ctx); t != nil || s.gc == nil {
		n, err := s.w(ctx).exec(ctx, qGrantInsert, s.grantArgs(g)...)
		if err == nil && n == 0 {
			err = ErrConflict
		}
		return s.wrap(op, err)
	}
	return s.wrap(op, s.gc.do(ctx, qGrantInsert, s.grantArgs(g)))
}

func scanGrant(r rowsIter) (GrantSession, error) {
	var g GrantSession
	err := r.Scan(&g.Kind, &g.Signature, &g.RequestID, &g.ClientID, &g.Subject, &g.Active, &g.Data, &g.JTI,
		scanTime(&g.RequestedAt), scanTime(&g.ExpiresAt))
	g.Data = nilIfEmpty(g.Data)
	return g, err
}

func (s *sqlStore) GetGrantSession(ctx context.Context, kind, signature string) (*GrantSession, error) {
	var g GrantSession
	err := queryOne(ctx, s.r(ctx), qGrantGet, []any{kind, signature}, func(r rowsIter) (err error) {
		g, err = scanGrant(r)
		return err
	})
	if err != nil {
		return nil, s.wrap("get "+truncate(kind, 16)+" grant session", err)
	}
	return &g, nil
}

func (s *sqlStore) DeleteGrantSession(ctx context.Context, kind, signature string) error {
	n, err := s.w(ctx).exec(ctx, qGrantDelete, kind, signature)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap("delete "+truncate(kind, 16)+" grant session", err)
}

func (s *sqlStore) DeactivateGrantSession(ctx context.Context, kind, signature string) error {
	n, err := s.w(ctx).exec(ctx, qGrantDeactivate, false, kind, signature)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap("deactivate "+truncate(kind, 16)+" grant session", err)
}

func (s *sqlStore) DeactivateGrantSessionsByRequestID(ctx context.Context, kind, requestID string) ([]GrantSession, error) {
	out := []GrantSession{}
	err := queryAll(ctx, s.w(ctx), qGrantDeactivateReq, []any{false, kind, requestID, true}, func(r rowsIter) error {
		g, err := scanGrant(r)
		out = append(out, g)
		return err
	})
	if err != nil {
		return nil, s.wrap("deactivate "+truncate(kind, 16)+" grant sessions by request id", err)
	}
	return out, nil
}

func (s *sqlStore) DeleteGrantSessionsByRequestID(ctx context.Context, kind, requestID string) (int64, error) {
	n, err := s.w(ctx).exec(ctx, qGrantDeleteReq, kind, requestID)
	if err != nil {
		return 0, s.wrap("delete "+truncate(kind, 16)+" grant sessions by request id", err)
	}
	return n, nil
}

func (s *sqlStore) ListActiveGrantSessions(ctx context.Context, f GrantFilter) ([]GrantSession, error) {
	if err := checkKind(f.Kind); err != nil {
		return nil, s.wrap("list grant sessions", err)
	}
	after, limit, err := pageArgs(f.Page)
	if err != nil {
		return nil, s.wrap("list grant sessions", err)
	}
	var q qid
	var args []any
	switch {
	case f.ClientID != "" && f.Subject != "":
		q, args = qGrantListClientSubject, []any{f.Kind, f.Subject, f.ClientID, true, after, limit}
	case f.ClientID != "":
		q, args = qGrantListClient, []any{f.Kind, f.ClientID, true, after, limit}
	case f.Subject != "":
		q, args = qGrantListSubject, []any{f.Kind, f.Subject, true, after, limit}
	default:
		q, args = qGrantList, []any{f.Kind, true, after, limit}
	}
	out := []GrantSession{}
	err = queryAll(ctx, s.r(ctx), q, args, func(r rowsIter) error {
		g, err := scanGrant(r)
		out = append(out, g)
		return err
	})
	if err != nil {
		return nil, s.wrap("list "+f.Kind+" grant sessions", err)
	}
	return out, nil
}

// ---- signing keys ----

func (s *sqlStore) CreateSigningKey(ctx context.Context, k *SigningKey) error {
	if k == nil {
		return s.wrap("create signing key", invalid("nil signing key"))
	}
	if err := checkID("kid", k.ID); err != nil {
		return s.wrap("create signing key", err)
	}
	if err := checkText("alg", k.Alg, 16, true); err != nil {
		return s.wrap("create signing key", err)
	}
	if len(k.PrivateKeyEnc) == 0 || len(k.PublicJWK) == 0 {
		return s.wrap("create signing key", invalid("key material is empty"))
	}
	if err := checkBlob("private key", k.PrivateKeyEnc); err != nil {
		return s.wrap("create signing key", err)
	}
	if err := checkBlob("public jwk", k.PublicJWK); err != nil {
		return s.wrap("create signing key", err)
	}
	if k.ActivateAt.IsZero() || k.RetireAt.IsZero() || k.ExpireAt.IsZero() {
		return s.wrap("create signing key", invalid("activate/retire/expire times are required"))
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.stamp()
	}
	n, err := s.w(ctx).exec(ctx, qKeyInsert, k.ID, k.Alg, k.PrivateKeyEnc, k.PublicJWK, s.t(k.CreatedAt),
		s.t(k.ActivateAt), s.t(k.RetireAt), s.t(k.ExpireAt))
	if err == nil && n == 0 {
		err = ErrConflict
	}
	return s.wrap(fmt.Sprintf("create signing key %q", k.ID), err)
}

func (s *sqlStore) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	out := []SigningKey{}
	err := queryAll(ctx, s.r(ctx), qKeyList, nil, func(r rowsIter) error {
		var k SigningKey
		err := r.Scan(&k.ID, &k.Alg, &k.PrivateKeyEnc, &k.PublicJWK, scanTime(&k.CreatedAt), scanTime(&k.ActivateAt),
			scanTime(&k.RetireAt), scanTime(&k.ExpireAt))
		out = append(out, k)
		return err
	})
	if err != nil {
		return nil, s.wrap("list signing keys", err)
	}
	return out, nil
}

func (s *sqlStore) UpdateSigningKey(ctx context.Context, k *SigningKey) error {
	if k == nil {
		return s.wrap("update signing key", invalid("nil signing key"))
	}
	if k.ActivateAt.IsZero() || k.RetireAt.IsZero() || k.ExpireAt.IsZero() {
		return s.wrap("update signing key", invalid("activate/retire/expire times are required"))
	}
	n, err := s.w(ctx).exec(ctx, qKeyUpdate, s.t(k.ActivateAt), s.t(k.RetireAt), s.t(k.ExpireAt), k.ID)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap(fmt.Sprintf("update signing key %q", truncate(k.ID, maxIDLen)), err)
}

// ---- JTIs ----

func (s *sqlStore) MarkJTI(ctx context.Context, scope, jti string, exp time.Time) error {
	if err := checkText("jti scope", scope, maxIDLen, true); err != nil {
		return s.wrap("mark jti", err)
	}
	if err := checkText("jti", jti, maxSigLen, true); err != nil {
		return s.wrap("mark jti", err)
	}
	if exp.IsZero() {
		return s.wrap("mark jti", invalid("jti expiry is required"))
	}
	args := []any{scope, jti, s.t(exp), s.t(s.stamp())}
	if t := s.txFrom(ctx); t != nil || s.gc == nil {
		n, err := s.w(ctx).exec(ctx, qJTIMark, args...)
		if err == nil && n == 0 {
			err = ErrConflict
		}
		return s.wrap("mark jti", err)
	}
	return s.wrap("mark jti", s.gc.do(ctx, qJTIMark, args))
}

func (s *sqlStore) JTIUsed(ctx context.Context, scope, jti string, now time.Time) (bool, error) {
	err := queryOne(ctx, s.r(ctx), qJTIUsed, []any{scope, jti, s.t(now)}, func(r rowsIter) error {
		var one int64
		return r.Scan(&one)
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap("check jti", err)
	}
	return true, nil
}

func (s *sqlStore) ListJTIs(ctx context.Context, scope string, now time.Time, p Page) ([]JTI, error) {
	after, limit, err := pageArgs(p)
	if err != nil {
		return nil, s.wrap("list jtis", err)
	}
	out := []JTI{}
	err = queryAll(ctx, s.r(ctx), qJTIList, []any{scope, s.t(now), after, limit}, func(r rowsIter) error {
		var j JTI
		err := r.Scan(&j.Scope, &j.JTI, scanTime(&j.ExpiresAt))
		out = append(out, j)
		return err
	})
	if err != nil {
		return nil, s.wrap("list jtis", err)
	}
	return out, nil
}

// ---- API keys ----

func (s *sqlStore) CreateAPIKey(ctx context.Context, k *APIKey) error {
	if k == nil {
		return s.wrap("create api key", invalid("nil api key"))
	}
	if err := checkID("api key id", k.ID); err != nil {
		return s.wrap("create api key", err)
	}
	if err := checkText("consumer", k.Consumer, maxIDLen, false); err != nil {
		return s.wrap("create api key", err)
	}
	if err := checkList("api key scopes", k.Scopes); err != nil {
		return s.wrap("create api key", err)
	}
	if len(k.Hash) == 0 || len(k.Hash) > 128 {
		return s.wrap("create api key", invalid("api key hash must be 1..128 bytes"))
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.stamp()
	}
	var exp time.Time
	if k.ExpiresAt != nil {
		exp = *k.ExpiresAt
		if exp.IsZero() {
			return s.wrap("create api key", invalid("ExpiresAt points to a zero time; use nil for no expiry"))
		}
	}
	n, err := s.w(ctx).exec(ctx, qAPIKeyInsert, k.ID, k.Consumer, encList(k.Scopes), k.Hash, s.t(k.CreatedAt), s.t(exp), k.Revoked)
	if err == nil && n == 0 {
		err = ErrConflict
	}
	return s.wrap(fmt.Sprintf("create api key %q", k.ID), err)
}

func scanAPIKey(r rowsIter) (APIKey, error) {
	var k APIKey
	var sc string
	var exp time.Time
	if err := r.Scan(&k.ID, &k.Consumer, &sc, &k.Hash, scanTime(&k.CreatedAt), scanTime(&exp), &k.Revoked); err != nil {
		return k, err
	}
	if !exp.IsZero() {
		k.ExpiresAt = &exp
	}
	var err error
	k.Scopes, err = decList("api key scopes", sc)
	return k, err
}

func (s *sqlStore) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	var k APIKey
	err := queryOne(ctx, s.r(ctx), qAPIKeyGet, []any{id}, func(r rowsIter) (err error) {
		k, err = scanAPIKey(r)
		return err
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get api key %q", truncate(id, maxIDLen)), err)
	}
	return &k, nil
}

func (s *sqlStore) ListAPIKeys(ctx context.Context, p Page) ([]APIKey, error) {
	after, limit, err := pageArgs(p)
	if err != nil {
		return nil, s.wrap("list api keys", err)
	}
	out := []APIKey{}
	err = queryAll(ctx, s.r(ctx), qAPIKeyList, []any{after, limit}, func(r rowsIter) error {
		k, err := scanAPIKey(r)
		out = append(out, k)
		return err
	})
	if err != nil {
		return nil, s.wrap("list api keys", err)
	}
	return out, nil
}

func (s *sqlStore) RevokeAPIKey(ctx context.Context, id string) error {
	n, err := s.w(ctx).exec(ctx, qAPIKeyRevoke, true, id)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.wrap(fmt.Sprintf("revoke api key %q", truncate(id, maxIDLen)), err)
}

// ---- GC ----

// GC implements Store. Outside InTx every chunk commits on its own, so a
// large backlog never blocks the hot insert path for long.
func (s *sqlStore) GC(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, q := range []qid{qGCGrant, qGCLogin, qGCConsent, qGCJTI, qGCKeys} {
		for {
			n, err := s.w(ctx).exec(ctx, q, s.t(now), gcChunk)
			if err != nil {
				return total, s.wrap("gc", err)
			}
			total += n
			if n < gcChunk {
				break
			}
			if err := ctx.Err(); err != nil {
				return total, s.wrap("gc", err)
			}
		}
	}
	return total, nil
}
