package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Argon2Params are argon2id cost parameters. The zero value of a field means
// its default.
//
// Defaults follow the OWASP Password Storage Cheat Sheet's first argon2id
// option, m=19 MiB, t=2, p=1: 50-68 ms per hash on the shared 2-core
// reference machine (docs/decisions/0440-identity-argon2id-sessions-csrf.md),
// which keeps a login affordable while making offline guessing expensive.
// Memory use is bounded by PasswordOptions.MaxConcurrent × Memory.
type Argon2Params struct {
	Memory  uint32 // KiB (default 19456 = 19 MiB; 8 MiB .. 1 GiB)
	Time    uint32 // iterations (default 2; 1 .. 16)
	Threads uint8  // lanes (default 1; 1 .. 16)
	SaltLen uint32 // bytes (default 16; 16 .. 64)
	KeyLen  uint32 // bytes (default 32; 16 .. 64)
}

// Default argon2id parameters (OWASP: m=19 MiB, t=2, p=1).
const (
	DefaultArgon2Memory  = 19 * 1024
	DefaultArgon2Time    = 2
	DefaultArgon2Threads = 1
	defaultSaltLen       = 16
	defaultKeyLen        = 32
)

// Bounds on parameters, for configuration and for PHC strings read from the
// store (a tampered row must not make a login allocate gigabytes).
const (
	minArgon2Memory = 8 * 1024
	maxArgon2Memory = 1024 * 1024
	maxArgon2Time   = 16
	maxArgon2Lanes  = 16
	minSaltLen      = 8 // accepted when parsing (libargon2 minimum); we generate >= 16
	maxSaltLen      = 64
	minKeyLen       = 16
	maxKeyLen       = 64
	maxPHCLen       = 256
)

// PasswordOptions configures hashing and the password policy.
type PasswordOptions struct {
	Argon2 Argon2Params
	// MinLength is the minimum number of characters (Unicode code points after
	// NFKC normalization). Default 12, at least 8 (NIST SP 800-63B).
	MinLength int
	// MaxLength is the maximum size in bytes (default 1024, at most 4096). It
	// bounds the work an attacker can make one login cost.
	MaxLength int
	// MaxConcurrent bounds simultaneous argon2id computations, and so memory:
	// MaxConcurrent × Argon2.Memory. Default max(2, GOMAXPROCS). Requests
	// beyond it wait (bounded by their context).
	MaxConcurrent int
}

// Password policy errors. They are returned wrapped with a message that
// states the limit; test with errors.Is.
var (
	ErrPasswordTooShort = errors.New("password too short")
	ErrPasswordTooLong  = errors.New("password too long")
	ErrPasswordEncoding = errors.New("password is not valid UTF-8")
	// ErrInvalidHash reports a stored password hash that is not a supported
	// argon2id PHC string within bounds.
	ErrInvalidHash = errors.New("invalid argon2id PHC string")
)

// PasswordHasher hashes and verifies passwords with argon2id in PHC string
// format. It is safe for concurrent use.
type PasswordHasher struct {
	p      Argon2Params
	min    int
	max    int
	sem    chan struct{}
	dummy  string // hash of a random password with p, for unknown users
	prefix string // "$argon2id$v=19$m=..,t=..,p=..$" of the current parameters
	count  atomic.Uint64
}

// NewPasswordHasher validates o and returns a hasher.
func NewPasswordHasher(o PasswordOptions) (*PasswordHasher, error) {
	p := o.Argon2
	if p.Memory == 0 {
		p.Memory = DefaultArgon2Memory
	}
	if p.Time == 0 {
		p.Time = DefaultArgon2Time
	}
	if p.Threads == 0 {
		p.Threads = DefaultArgon2Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = defaultSaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = defaultKeyLen
	}
	switch {
	case p.Memory < minArgon2Memory || p.Memory > maxArgon2Memory:
		return nil, fmt.Errorf("identity: argon2 memory %d KiB outside [%d, %d]", p.Memory, minArgon2Memory, maxArgon2Memory)
	case p.Time > maxArgon2Time:
		return nil, fmt.Errorf("identity: argon2 time %d outside [1, %d]", p.Time, maxArgon2Time)
	case p.Threads > maxArgon2Lanes:
		return nil, fmt.Errorf("identity: argon2 threads %d outside [1, %d]", p.Threads, maxArgon2Lanes)
	case p.SaltLen < 16 || p.SaltLen > maxSaltLen:
		return nil, fmt.Errorf("identity: argon2 salt length %d outside [16, %d]", p.SaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return nil, fmt.Errorf("identity: argon2 key length %d outside [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	case p.Memory < 8*uint32(p.Threads):
		return nil, fmt.Errorf("identity: argon2 memory %d KiB below 8 KiB per thread", p.Memory)
	}
	h := &PasswordHasher{p: p, min: o.MinLength, max: o.MaxLength}
	switch {
	case h.min == 0:
		h.min = 12
	case h.min < 8:
		return nil, fmt.Errorf("identity: password MinLength %d below 8", h.min)
	}
	switch {
	case h.max == 0:
		h.max = 1024
	case h.max > 4096:
		return nil, fmt.Errorf("identity: password MaxLength %d above 4096 bytes", h.max)
	}
	if h.max < 4*h.min {
		return nil, fmt.Errorf("identity: password MaxLength %d bytes must be at least 4×MinLength (%d)", h.max, 4*h.min)
	}
	n := o.MaxConcurrent
	if n == 0 {
		n = max(2, runtime.GOMAXPROCS(0))
	}
	if n < 1 || n > 1024 {
		return nil, fmt.Errorf("identity: password MaxConcurrent %d outside [1, 1024]", n)
	}
	h.sem = make(chan struct{}, n)
	h.prefix = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, p.Memory, p.Time, p.Threads)
	var pw [32]byte
	_, _ = rand.Read(pw[:])
	dummy, err := h.hash(context.Background(), pw[:])
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Computations returns how many argon2id computations this hasher has run
// (tests use it to check that failed logins always spend one).
func (h *PasswordHasher) Computations() uint64 { return h.count.Load() }

// Params returns the effective argon2id parameters.
func (h *PasswordHasher) Params() Argon2Params { return h.p }

// CheckPolicy reports whether password may be set: valid UTF-8, at most
// MaxLength bytes, at least MinLength characters after NFKC normalization.
// The error says which rule failed and the limit (never the password).
func (h *PasswordHasher) CheckPolicy(password string) error {
	_, err := h.normalize(password)
	return err
}

func (h *PasswordHasher) normalize(password string) ([]byte, error) {
	if len(password) > h.max {
		return nil, fmt.Errorf("%w: at most %d bytes", ErrPasswordTooLong, h.max)
	}
	if !utf8.ValidString(password) {
		return nil, ErrPasswordEncoding
	}
	// NFKC (NIST SP 800-63B 5.1.1.2) so that the same password typed as
	// full-width or half-width characters (common with Japanese IMEs), or
	// composed differently, hashes the same.
	n := norm.NFKC.String(password)
	if len(n) > h.max {
		return nil, fmt.Errorf("%w: at most %d bytes after normalization", ErrPasswordTooLong, h.max)
	}
	if utf8.RuneCountInString(n) < h.min {
		return nil, fmt.Errorf("%w: at least %d characters", ErrPasswordTooShort, h.min)
	}
	return []byte(n), nil
}

// Hash checks the policy and returns the PHC string of password with a fresh
// random salt. ctx bounds the wait for a hashing slot.
func (h *PasswordHasher) Hash(ctx context.Context, password string) (string, error) {
	pw, err := h.normalize(password)
	if err != nil {
		return "", err
	}
	return h.hash(ctx, pw)
}

func (h *PasswordHasher) hash(ctx context.Context, pw []byte) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("identity: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey(pw, salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen)
	h.release()
	h.count.Add(1)
	var b strings.Builder
	b.Grow(len(h.prefix) + 2 + base64.RawStdEncoding.EncodedLen(len(salt)+len(key)))
	b.WriteString(h.prefix)
	b.WriteString(base64.RawStdEncoding.EncodeToString(salt))
	b.WriteByte('$')
	b.WriteString(base64.RawStdEncoding.EncodeToString(key))
	return b.String(), nil
}

// Verify reports whether password matches the PHC string phc, and whether
// phc should be replaced by a hash with the current parameters. The
// comparison is constant-time. A malformed phc returns ErrInvalidHash; a
// password outside the policy's byte bounds is simply a mismatch (it could
// never have been set), without hashing.
func (h *PasswordHasher) Verify(ctx context.Context, password, phc string) (ok, needsRehash bool, err error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, false, err
	}
	if len(password) > h.max || !utf8.ValidString(password) {
		return false, false, nil
	}
	pw := []byte(norm.NFKC.String(password))
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	h.release()
	h.count.Add(1)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	needsRehash = p.Memory != h.p.Memory || p.Time != h.p.Time || p.Threads != h.p.Threads ||
		uint32(len(salt)) != h.p.SaltLen || uint32(len(want)) != h.p.KeyLen
	return true, needsRehash, nil
}

// VerifyDummy spends the same time as Verify against a real hash, for logins
// of unknown users (no user enumeration through timing). It always fails.
func (h *PasswordHasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

func (h *PasswordHasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("identity: waiting for a password hashing slot: %w", ctx.Err())
	}
}

func (h *PasswordHasher) release() { <-h.sem }

// parsePHC parses "$argon2id$v=19$m=<KiB>,t=<iter>,p=<lanes>$<salt>$<hash>"
// with unpadded standard base64 (the reference implementation's encoding).
// It is strict: exactly that field order, canonical decimal numbers, and
// every parameter within the bounds above, so a tampered store row cannot
// make verification arbitrarily expensive.
func parsePHC(s string) (p Argon2Params, salt, key []byte, err error) {
	if len(s) > maxPHCLen {
		return p, nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHash, maxPHCLen)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, fmt.Errorf("%w: want 5 '$'-separated fields", ErrInvalidHash)
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: algorithm is not argon2id", ErrInvalidHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported version", ErrInvalidHash)
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, nil, nil, fmt.Errorf("%w: want m,t,p parameters", ErrInvalidHash)
	}
	m, err1 := phcUint(params[0], "m=", minArgon2Memory, maxArgon2Memory)
	t, err2 := phcUint(params[1], "t=", 1, maxArgon2Time)
	l, err3 := phcUint(params[2], "p=", 1, maxArgon2Lanes)
	if err := errors.Join(err1, err2, err3); err != nil {
		return p, nil, nil, err
	}
	if m < 8*l {
		return p, nil, nil, fmt.Errorf("%w: memory below 8 KiB per lane", ErrInvalidHash)
	}
	salt, err = phcB64(parts[4], minSaltLen, maxSaltLen)
	if err != nil {
		return p, nil, nil, fmt.Errorf("salt: %w", err)
	}
	key, err = phcB64(parts[5], minKeyLen, maxKeyLen)
	if err != nil {
		return p, nil, nil, fmt.Errorf("hash: %w", err)
	}
	p = Argon2Params{Memory: m, Time: t, Threads: uint8(l), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

func phcUint(field, name string, lo, hi uint32) (uint32, error) {
	v, ok := strings.CutPrefix(field, name)
	if !ok || v == "" || len(v) > 10 || (len(v) > 1 && v[0] == '0') {
		return 0, fmt.Errorf("%w: parameter %q malformed", ErrInvalidHash, strings.TrimSuffix(name, "="))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("%w: parameter %q malformed", ErrInvalidHash, strings.TrimSuffix(name, "="))
		}
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || uint32(n) < lo || uint32(n) > hi {
		return 0, fmt.Errorf("%w: parameter %q outside [%d, %d]", ErrInvalidHash, strings.TrimSuffix(name, "="), lo, hi)
	}
	return uint32(n), nil
}

func phcB64(s string, lo, hi int) ([]byte, error) {
	if len(s) > base64.RawStdEncoding.EncodedLen(hi) {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHash, hi)
	}
	// encoding/base64 skips '\r' and '\n' even in strict mode; the PHC
	// alphabet has neither, and a hash has exactly one spelling.
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: bad base64", ErrInvalidHash)
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64", ErrInvalidHash)
	}
	if len(b) < lo || len(b) > hi {
		return nil, fmt.Errorf("%w: length %d outside [%d, %d]", ErrInvalidHash, len(b), lo, hi)
	}
	return b, nil
}

// normalizeForRehash normalizes a password that was just verified, without
// the minimum-length rule (a policy raised since it was set must not block
// upgrading its hash).
func (h *PasswordHasher) normalizeForRehash(password string) ([]byte, error) {
	if len(password) > h.max || !utf8.ValidString(password) {
		return nil, ErrPasswordTooLong
	}
	return []byte(norm.NFKC.String(password)), nil
}
