// Package store is Sekisho's persistence layer for the built-in authorization
// server: OAuth clients, users, consents, browser login sessions, fosite grant
// sessions (codes, PKCE, OIDC, access and refresh tokens), signing keys, JTI
// replay markers and API keys.
//
// It is a foundation package: it depends only on the standard library and the
// database drivers, imports no other Sekisho package and knows nothing about
// HTTP. Two implementations share one SQL core and one test suite
// (internal/store/storetest): embedded SQLite (OpenSQLite, the default) and
// PostgreSQL (OpenPostgres).
//
// Conventions for every method:
//   - Times are stored and returned in UTC with microsecond precision. A zero
//     time.Time means "not set" where a field documents it (stored as NULL).
//   - []string fields are never nil in returned records (empty slice instead);
//     []byte fields are nil when empty.
//   - Lookups of missing rows return an error that errors.Is(err, ErrNotFound);
//     inserts of duplicate keys return errors.Is(err, ErrConflict).
//   - A call made with the ctx that InTx passes to its fn joins that
//     transaction; any other ctx runs on its own.
//   - Errors never contain secrets, hashes or token material.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them with context; test with errors.Is.
var (
	// ErrNotFound reports that the addressed row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports a uniqueness violation (duplicate ID, username, JTI …).
	ErrConflict = errors.New("store: conflict")
	// ErrClosed reports a call on a Store after Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid reports a record that violates a documented bound
	// (empty ID, oversized field, unknown grant kind …).
	ErrInvalid = errors.New("store: invalid argument")
)

// Store is the complete storage interface of the authorization server.
type Store interface {
	ClientStore
	UserStore
	ConsentStore
	LoginSessionStore
	GrantStore
	KeyStore
	JTIStore
	APIKeyStore

	// InTx runs fn in one transaction. Store calls made with the ctx passed to
	// fn join it; calls with any other ctx do not (and on SQLite, a write with
	// an unrelated ctx inside fn would wait for the single writer connection
	// held by this transaction, i.e. deadlock until that ctx expires — always
	// pass the ctx you were given). If fn returns an error or panics, the
	// transaction is rolled back and nothing written inside it persists; the
	// error is returned unchanged (errors.Is works). A nested InTx joins the
	// outer transaction: an error from the inner fn is returned to the outer
	// fn, which decides whether to roll back everything by returning it.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error

	// GC deletes rows that expired at or before now: grant sessions (codes,
	// tokens), login sessions, consents with an expiry, JTI markers and signing
	// keys past ExpireAt. It returns the number of rows removed.
	GC(ctx context.Context, now time.Time) (removed int64, err error)

	// Ping checks that the database is reachable.
	Ping(ctx context.Context) error

	// Close flushes pending group-commit writes and releases the database.
	Close() error
}

// Page bounds list queries. Results are ordered by their key; pass the key of
// the last row of the previous page as After to continue.
type Page struct {
	// After is the exclusive lower bound of the ordering key ("" = start).
	After string
	// Limit is the maximum number of rows; <= 0 means DefaultPageLimit, and
	// values above MaxPageLimit are clamped.
	Limit int
}

// Bounds for Page.Limit.
const (
	DefaultPageLimit = 500
	MaxPageLimit     = 5000
)

// Client is an OAuth 2.0 client registration.
type Client struct {
	ID   string
	Name string
	// SecretHash is the SHA-256 of the server-generated secret; nil for public clients.
	SecretHash []byte
	Public     bool

	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	Scopes                 []string
	Audiences              []string
	// TokenEndpointAuthMethod is client_secret_basic|client_secret_post|private_key_jwt|none.
	TokenEndpointAuthMethod string
	// JWKS holds the client's public keys for private_key_jwt (JSON), or nil.
	JWKS []byte

	// AccessTokenTTL and RefreshTokenTTL override the server defaults; 0 = default.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration

	Disabled  bool
	CreatedAt time.Time // set by CreateClient when zero
	UpdatedAt time.Time // set by CreateClient/UpdateClient
}

// ClientStore persists OAuth clients.
type ClientStore interface {
	// CreateClient inserts c; ErrConflict if the ID exists. Zero CreatedAt and
	// UpdatedAt are set to the store clock (the values are written back to c).
	CreateClient(ctx context.Context, c *Client) error
	// GetClient returns the client or ErrNotFound.
	GetClient(ctx context.Context, id string) (*Client, error)
	// ListClients returns clients ordered by ID.
	ListClients(ctx context.Context, p Page) ([]Client, error)
	// UpdateClient replaces every field except ID and CreatedAt and sets
	// UpdatedAt to the store clock; ErrNotFound if absent.
	UpdateClient(ctx context.Context, c *Client) error
	// DeleteClient deletes the client and its consents; ErrNotFound if absent.
	// Grant sessions are kept (callers revoke them explicitly so their JTIs can
	// be deny-listed) and expire through GC.
	DeleteClient(ctx context.Context, id string) error
}

// User is a local account of the built-in user store.
type User struct {
	ID string
	// Username is unique case-insensitively (Unicode simple lower-casing).
	Username string
	Email    string
	Name     string
	Locale   string
	// PasswordHash is a PHC-format argon2id string (opaque to the store).
	PasswordHash string
	Disabled     bool

	CreatedAt         time.Time // set by CreateUser when zero
	UpdatedAt         time.Time // set by CreateUser/UpdateUser
	PasswordChangedAt time.Time // zero = never set
}

// UserStore persists local users.
type UserStore interface {
	// CreateUser inserts u; ErrConflict if the ID or (case-insensitively) the
	// username is taken.
	CreateUser(ctx context.Context, u *User) error
	// GetUser returns the user or ErrNotFound.
	GetUser(ctx context.Context, id string) (*User, error)
	// GetUserByUsername looks the username up case-insensitively; ErrNotFound if absent.
	GetUserByUsername(ctx context.Context, username string) (*User, error)
	// ListUsers returns users ordered by ID.
	ListUsers(ctx context.Context, p Page) ([]User, error)
	// UpdateUser replaces every field except ID and CreatedAt and sets
	// UpdatedAt; ErrNotFound if absent, ErrConflict if the new username is taken.
	UpdateUser(ctx context.Context, u *User) error
}

// Consent remembers the scopes a user granted to a client.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string
	CreatedAt time.Time // set by SaveConsent when zero
	ExpiresAt time.Time // zero = no expiry
}

// ConsentStore persists remembered consents. User and client must exist.
type ConsentStore interface {
	// SaveConsent inserts or replaces the consent for (UserID, ClientID).
	// ErrNotFound if the user or client does not exist.
	SaveConsent(ctx context.Context, c *Consent) error
	// GetConsent returns the consent or ErrNotFound. An expired consent is
	// returned as-is; callers compare ExpiresAt.
	GetConsent(ctx context.Context, userID, clientID string) (*Consent, error)
	// ListConsents returns the user's consents ordered by client ID.
	ListConsents(ctx context.Context, userID string) ([]Consent, error)
	// DeleteConsent removes the consent; ErrNotFound if absent.
	DeleteConsent(ctx context.Context, userID, clientID string) error
}

// LoginSession is an authenticated browser session. The cookie value itself is
// never stored, only its SHA-256.
type LoginSession struct {
	IDHash    []byte // SHA-256 of the cookie value (32 bytes)
	UserID    string
	AuthTime  time.Time
	CreatedAt time.Time // set by CreateLoginSession when zero
	ExpiresAt time.Time
}

// LoginSessionStore persists browser login sessions.
type LoginSessionStore interface {
	// CreateLoginSession inserts s; ErrConflict on a duplicate hash,
	// ErrNotFound if the user does not exist.
	CreateLoginSession(ctx context.Context, s *LoginSession) error
	// GetLoginSession returns the session or ErrNotFound (expired sessions are
	// returned until GC; callers compare ExpiresAt).
	GetLoginSession(ctx context.Context, idHash []byte) (*LoginSession, error)
	// DeleteLoginSession removes one session; ErrNotFound if absent.
	DeleteLoginSession(ctx context.Context, idHash []byte) error
	// DeleteLoginSessionsForUser removes all sessions of the user and returns
	// how many were removed.
	DeleteLoginSessionsForUser(ctx context.Context, userID string) (int64, error)
}

// Grant session kinds (GrantSession.Kind).
const (
	KindCode    = "code"
	KindPKCE    = "pkce"
	KindOIDC    = "oidc"
	KindAccess  = "access"
	KindRefresh = "refresh"
)

// GrantSession is a fosite request persisted under a token/code signature.
type GrantSession struct {
	Kind string // one of the Kind* constants
	// Signature is the fosite signature, stored as given: it is already an
	// HMAC/hash of the token, never the token itself.
	Signature string
	RequestID string
	ClientID  string
	Subject   string
	Active    bool
	// Data is the serialized fosite request, opaque to the store.
	Data []byte
	// JTI of the issued access token (KindAccess), "" otherwise.
	JTI         string
	RequestedAt time.Time
	ExpiresAt   time.Time
}

// GrantFilter selects grant sessions for ListActiveGrantSessions. Empty fields
// match everything; Kind is required.
type GrantFilter struct {
	Kind     string
	ClientID string
	Subject  string
	// Page orders by Signature.
	Page Page
}

// GrantStore persists fosite grant sessions. CreateGrantSession is on the
// token-issuance hot path and is group-committed (see SQLiteOptions).
type GrantStore interface {
	// CreateGrantSession inserts s; ErrConflict if (Kind, Signature) exists.
	// It returns only after the row is durably committed (or, inside InTx,
	// written into the caller's transaction).
	CreateGrantSession(ctx context.Context, s *GrantSession) error
	// GetGrantSession returns the session even if inactive (callers check
	// Active); ErrNotFound if absent.
	GetGrantSession(ctx context.Context, kind, signature string) (*GrantSession, error)
	// DeleteGrantSession removes one session; ErrNotFound if absent.
	DeleteGrantSession(ctx context.Context, kind, signature string) error
	// DeactivateGrantSession sets Active=false; ErrNotFound if absent
	// (deactivating an inactive session is not an error).
	DeactivateGrantSession(ctx context.Context, kind, signature string) error
	// DeactivateGrantSessionsByRequestID deactivates every active session of
	// the kind with that request ID and returns exactly the ones it
	// deactivated (Active=false), so callers can deny-list their JTIs.
	DeactivateGrantSessionsByRequestID(ctx context.Context, kind, requestID string) ([]GrantSession, error)
	// DeleteGrantSessionsByRequestID deletes every session of the kind with
	// that request ID and returns how many were deleted.
	DeleteGrantSessionsByRequestID(ctx context.Context, kind, requestID string) (int64, error)
	// ListActiveGrantSessions returns active sessions matching f, ordered by
	// Signature, at most f.Page.Limit (paginate with f.Page.After).
	ListActiveGrantSessions(ctx context.Context, f GrantFilter) ([]GrantSession, error)
}

// SigningKey is a token signing key as persisted by internal/keys.
type SigningKey struct {
	ID  string // kid
	Alg string // JWS alg: ES256, EdDSA, RS256
	// PrivateKeyEnc is the encrypted private key, opaque to the store.
	PrivateKeyEnc []byte
	// PublicJWK is the public key as a JSON Web Key.
	PublicJWK  []byte
	CreatedAt  time.Time
	ActivateAt time.Time // starts signing
	RetireAt   time.Time // stops signing
	ExpireAt   time.Time // dropped from JWKS (and deleted by GC)
}

// KeyStore persists signing keys.
type KeyStore interface {
	// CreateSigningKey inserts k; ErrConflict if the kid exists.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// ListSigningKeys returns all keys (including expired ones not yet
	// collected) ordered by CreatedAt, then ID.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// UpdateSigningKey updates ActivateAt, RetireAt and ExpireAt only (key
	// material is immutable); ErrNotFound if absent.
	UpdateSigningKey(ctx context.Context, k *SigningKey) error
}

// JTI is a replay marker.
type JTI struct {
	Scope     string
	JTI       string
	ExpiresAt time.Time
}

// JTIStore records one-time identifiers (client assertion jti, revoked access
// token jti …) until they expire.
type JTIStore interface {
	// MarkJTI atomically records (scope, jti) until exp. It returns
	// ErrConflict if the pair is already recorded and not yet expired (an
	// expired marker is replaced). Concurrent calls for the same pair: exactly
	// one succeeds. Group-committed like CreateGrantSession.
	MarkJTI(ctx context.Context, scope, jti string, exp time.Time) error
	// JTIUsed reports whether (scope, jti) is recorded and unexpired at now.
	JTIUsed(ctx context.Context, scope, jti string, now time.Time) (bool, error)
	// ListJTIs returns unexpired markers of the scope ordered by JTI (for
	// loading a deny-list at startup).
	ListJTIs(ctx context.Context, scope string, now time.Time, p Page) ([]JTI, error)
}

// APIKey is a gateway API key. Only a hash of the secret part is stored.
type APIKey struct {
	ID        string
	Consumer  string
	Scopes    []string
	Hash      []byte
	CreatedAt time.Time  // set by CreateAPIKey when zero
	ExpiresAt *time.Time // nil = no expiry
	Revoked   bool
}

// APIKeyStore persists API keys.
type APIKeyStore interface {
	// CreateAPIKey inserts k; ErrConflict if the ID exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKey returns the key (even if revoked or expired) or ErrNotFound.
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns keys ordered by ID.
	ListAPIKeys(ctx context.Context, p Page) ([]APIKey, error)
	// RevokeAPIKey sets Revoked; ErrNotFound if absent (revoking twice is not an error).
	RevokeAPIKey(ctx context.Context, id string) error
}

// GroupCommitOptions tunes batching of hot inserts (CreateGrantSession,
// MarkJTI). A single writer goroutine takes the queued requests, writes up to
// MaxBatch of them in one transaction and commits once; each caller waits for
// its own result. Requests queue up while the previous batch commits; under
// concurrent load the writer also waits briefly for more (MaxWait), which
// halves the commits per row and lowers tail latency; an idle server never
// waits.
type GroupCommitOptions struct {
	// Disabled makes every hot insert its own transaction.
	Disabled bool
	// MaxBatch is the maximum rows per transaction (default 256, max 4096).
	MaxBatch int
	// MaxWait is how long the writer waits for more requests after the first
	// one when the batch is not full, applied only while the previous batch
	// held more than one row (default 300µs, max 50ms; negative: never wait).
	MaxWait time.Duration
}

// SQLiteOptions configures OpenSQLite. The zero value is the production default.
type SQLiteOptions struct {
	// Synchronous is "FULL" (default: a commit is on stable storage before the
	// call returns, surviving power loss) or "NORMAL" (WAL is fsynced only at
	// checkpoints: survives a process crash, may lose the last commits on
	// power loss/OS crash; never corrupts).
	Synchronous string
	// BusyTimeout is how long a connection waits for a lock held by another
	// process (e.g. the CLI) before failing (default 5s).
	BusyTimeout time.Duration
	// ReadConns is the size of the read-only connection pool (default 4).
	ReadConns int
	// GroupCommit tunes batching of hot inserts.
	GroupCommit GroupCommitOptions
	// Now is the clock for CreatedAt/UpdatedAt defaults (default time.Now).
	Now func() time.Time
}

// PostgresOptions configures OpenPostgres. The zero value is the production default.
type PostgresOptions struct {
	// MaxConns is the pool size (default 16).
	MaxConns int32
	// GroupCommit tunes batching of hot inserts (also useful on PostgreSQL:
	// one round trip and one WAL flush per batch).
	GroupCommit GroupCommitOptions
	// Now is the clock for CreatedAt/UpdatedAt defaults (default time.Now).
	Now func() time.Time
}

// GroupCommitStatser is implemented by the stores returned by OpenSQLite and
// OpenPostgres (type-assert a Store to export the counters as metrics).
type GroupCommitStatser interface {
	GroupCommitStats() GroupCommitStats
}
