package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sekisho/sekisho/internal/store"
)

// UserOptions configures a UserService.
type UserOptions struct {
	Password PasswordOptions
	// OnUserDisabled is called (after the change is committed) with the ID of
	// a user that Disable disabled, so the caller can revoke its tokens.
	OnUserDisabled func(userID string)
	Logger         *slog.Logger
	Now            func() time.Time
}

// User management errors; test with errors.Is.
var (
	ErrUserNotFound    = errors.New("user not found")
	ErrUserExists      = errors.New("username already taken")
	ErrInvalidUsername = errors.New("invalid username")
	ErrInvalidEmail    = errors.New("invalid email address")
	ErrInvalidName     = errors.New("invalid display name")
)

// errLoginFailed is the single outcome of a failed login, whatever the cause
// (unknown user, wrong password, disabled user, unreadable hash); the
// *loginError wrapping it tells the log why, never the client.
var errLoginFailed = errors.New("identity: login failed")

// loginError is a failed login with its cause for the log.
type loginError struct {
	userID string // "" for unknown users
	reason string // unknown_user, bad_password, disabled, bad_hash
}

func (e *loginError) Error() string { return "identity: login failed: " + e.reason }
func (e *loginError) Unwrap() error { return errLoginFailed }

// Username bounds.
const (
	maxUsernameLen = 64
	// maxLoginNameLen bounds what the login form accepts before lookup.
	maxLoginNameLen = 256
	maxNameRunes    = 200
	maxEmailLen     = 254
)

// UserService manages local users: creation, listing, disabling and
// password changes (the `sekisho users` CLI), and checks passwords at login.
// Returned users never carry the password hash.
type UserService struct {
	st  store.Store
	h   *PasswordHasher
	o   UserOptions
	log *slog.Logger
	now func() time.Time
}

// NewUserService returns a UserService on st (for the CLI, which needs no
// HTTP Service).
func NewUserService(st store.Store, o UserOptions) (*UserService, error) {
	return newUserService(st, o)
}

func newUserService(st store.Store, o UserOptions) (*UserService, error) {
	if st == nil {
		return nil, errors.New("identity: nil store")
	}
	h, err := NewPasswordHasher(o.Password)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &UserService{st: st, h: h, o: o, log: o.Logger, now: o.Now}, nil
}

// Hasher returns the password hasher (parameters, policy checks).
func (u *UserService) Hasher() *PasswordHasher { return u.h }

// Create adds an enabled user. username: 1-64 characters from
// [A-Za-z0-9._@+-] starting with a letter or digit (unique
// case-insensitively); password: the policy of PasswordOptions; email and
// name are optional.
func (u *UserService) Create(ctx context.Context, username, password, email, name string) (*store.User, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if err := checkEmail(email); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	phc, err := u.h.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	now := u.now().UTC()
	usr := &store.User{
		ID:                newUserID(),
		Username:          username,
		Email:             email,
		Name:              name,
		PasswordHash:      phc,
		CreatedAt:         now,
		UpdatedAt:         now,
		PasswordChangedAt: now,
	}
	if err := u.st.CreateUser(ctx, usr); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("create user %q: %w", username, ErrUserExists)
		}
		return nil, fmt.Errorf("create user %q: %w", username, err)
	}
	u.log.InfoContext(ctx, "identity: user created", "user_id", usr.ID)
	usr.PasswordHash = ""
	return usr, nil
}

// Get returns the user with ID or username ref (ErrUserNotFound if none).
func (u *UserService) Get(ctx context.Context, ref string) (*store.User, error) {
	usr, err := u.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	usr.PasswordHash = ""
	return usr, nil
}

// List returns one page of users ordered by ID (see store.Page).
func (u *UserService) List(ctx context.Context, p store.Page) ([]store.User, error) {
	users, err := u.st.ListUsers(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	for i := range users {
		users[i].PasswordHash = ""
	}
	return users, nil
}

// Disable disables the user with ID or username ref, ends all of its login
// sessions (in the same transaction) and then calls OnUserDisabled so its
// tokens get revoked. Disabling a disabled user is not an error (the hook
// runs again, which is harmless and retries a revocation that failed).
func (u *UserService) Disable(ctx context.Context, ref string) (*store.User, error) {
	usr, err := u.setDisabled(ctx, ref, true)
	if err != nil {
		return nil, err
	}
	if u.o.OnUserDisabled != nil {
		u.o.OnUserDisabled(usr.ID)
	}
	return usr, nil
}

// Enable re-enables the user with ID or username ref.
func (u *UserService) Enable(ctx context.Context, ref string) (*store.User, error) {
	return u.setDisabled(ctx, ref, false)
}

func (u *UserService) setDisabled(ctx context.Context, ref string, disabled bool) (*store.User, error) {
	var out *store.User
	err := u.st.InTx(ctx, func(ctx context.Context) error {
		usr, err := u.lookup(ctx, ref)
		if err != nil {
			return err
		}
		usr.Disabled = disabled
		if err := u.st.UpdateUser(ctx, usr); err != nil {
			return fmt.Errorf("update user %s: %w", usr.ID, err)
		}
		if disabled {
			if _, err := u.st.DeleteLoginSessionsForUser(ctx, usr.ID); err != nil {
				return fmt.Errorf("end sessions of user %s: %w", usr.ID, err)
			}
		}
		out = usr
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.log.InfoContext(ctx, "identity: user disabled state changed", "user_id", out.ID, "disabled", disabled)
	out.PasswordHash = ""
	return out, nil
}

// SetPassword replaces the password of the user with ID or username ref
// (policy-checked) and ends all of its login sessions.
func (u *UserService) SetPassword(ctx context.Context, ref, password string) (*store.User, error) {
	phc, err := u.h.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	var out *store.User
	err = u.st.InTx(ctx, func(ctx context.Context) error {
		usr, err := u.lookup(ctx, ref)
		if err != nil {
			return err
		}
		usr.PasswordHash = phc
		usr.PasswordChangedAt = u.now().UTC()
		if err := u.st.UpdateUser(ctx, usr); err != nil {
			return fmt.Errorf("update user %s: %w", usr.ID, err)
		}
		if _, err := u.st.DeleteLoginSessionsForUser(ctx, usr.ID); err != nil {
			return fmt.Errorf("end sessions of user %s: %w", usr.ID, err)
		}
		out = usr
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.log.InfoContext(ctx, "identity: password changed", "user_id", out.ID)
	out.PasswordHash = ""
	return out, nil
}

// lookup resolves ref as a user ID when it has the ID format (usernames can
// never have it), else as a username.
func (u *UserService) lookup(ctx context.Context, ref string) (*store.User, error) {
	var (
		usr *store.User
		err error
	)
	switch {
	case ref == "" || len(ref) > maxLoginNameLen:
		return nil, fmt.Errorf("user %q: %w", truncate(ref, 64), ErrUserNotFound)
	case looksLikeUserID(ref):
		usr, err = u.st.GetUser(ctx, ref)
	default:
		usr, err = u.st.GetUserByUsername(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("user %q: %w", ref, ErrUserNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("look up user %q: %w", ref, err)
	}
	return usr, nil
}

// authenticate checks username and password. Every path that does not find
// a usable user still runs one argon2id computation, so response time does
// not reveal whether the username exists. Failures return errLoginFailed;
// other errors are internal (store unavailable, context cancelled).
func (u *UserService) authenticate(ctx context.Context, username, password string) (*store.User, error) {
	if len(username) > maxLoginNameLen || !utf8.ValidString(username) {
		return nil, u.failDummy(ctx, password, "", "unknown_user")
	}
	usr, err := u.st.GetUserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, u.failDummy(ctx, password, "", "unknown_user")
	}
	if err != nil {
		return nil, fmt.Errorf("identity: look up user: %w", err)
	}
	ok, rehash, err := u.h.Verify(ctx, password, usr.PasswordHash)
	if errors.Is(err, ErrInvalidHash) {
		u.log.ErrorContext(ctx, "identity: stored password hash unusable; login refused", "user_id", usr.ID, "err", err)
		return nil, u.failDummy(ctx, password, usr.ID, "bad_hash")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		return nil, &loginError{userID: usr.ID, reason: "bad_password"}
	case usr.Disabled:
		return nil, &loginError{userID: usr.ID, reason: "disabled"}
	}
	if rehash {
		u.rehash(ctx, usr, password)
	}
	usr.PasswordHash = ""
	return usr, nil
}

func (u *UserService) failDummy(ctx context.Context, password, userID, reason string) error {
	if err := u.h.VerifyDummy(ctx, password); err != nil {
		return err
	}
	return &loginError{userID: userID, reason: reason}
}

// rehash upgrades a verified password's hash to the current parameters. It
// writes only if the stored hash is still the one just verified (a
// concurrent SetPassword wins), and keeps PasswordChangedAt so sessions stay
// valid. Failures are logged; the login proceeds.
func (u *UserService) rehash(ctx context.Context, usr *store.User, password string) {
	old := usr.PasswordHash
	pw, err := u.h.normalizeForRehash(password)
	if err != nil {
		return
	}
	phc, err := u.h.hash(ctx, pw)
	if err != nil {
		u.log.WarnContext(ctx, "identity: rehash password", "user_id", usr.ID, "err", err)
		return
	}
	err = u.st.InTx(ctx, func(ctx context.Context) error {
		cur, err := u.st.GetUser(ctx, usr.ID)
		if err != nil {
			return err
		}
		if cur.PasswordHash != old {
			return nil
		}
		cur.PasswordHash = phc
		return u.st.UpdateUser(ctx, cur)
	})
	if err != nil {
		u.log.WarnContext(ctx, "identity: store rehashed password", "user_id", usr.ID, "err", err)
		return
	}
	u.log.InfoContext(ctx, "identity: password rehashed with current parameters", "user_id", usr.ID)
}

func checkUsername(n string) error {
	if n == "" || len(n) > maxUsernameLen {
		return fmt.Errorf("%w: must be 1-%d characters", ErrInvalidUsername, maxUsernameLen)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("%w: must start with a letter or digit", ErrInvalidUsername)
		}
		if !alnum && c != '.' && c != '_' && c != '@' && c != '+' && c != '-' {
			return fmt.Errorf("%w: only letters, digits and . _ @ + - are allowed", ErrInvalidUsername)
		}
	}
	if looksLikeUserID(n) {
		return fmt.Errorf("%w: must not have the format of a user ID", ErrInvalidUsername)
	}
	return nil
}

func checkEmail(e string) error {
	if e == "" {
		return nil
	}
	if len(e) > maxEmailLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidEmail, maxEmailLen)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return fmt.Errorf("%w: want a plain address like name@example.com", ErrInvalidEmail)
	}
	return nil
}

func checkName(n string) error {
	if !utf8.ValidString(n) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	}
	if utf8.RuneCountInString(n) > maxNameRunes {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidName, maxNameRunes)
	}
	if strings.IndexFunc(n, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) >= 0 {
		return fmt.Errorf("%w: contains control characters", ErrInvalidName)
	}
	return nil
}

// newUserID returns a random (version 4) UUID, the OIDC "sub" of the user.
func newUserID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// looksLikeUserID reports whether s has the 8-4-4-4-12 hex UUID format.
func looksLikeUserID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
