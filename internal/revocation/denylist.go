// Package revocation keeps the deny-list of access tokens revoked before
// their expiry: single tokens by jti, and every token issued before a point in
// time for a subject (user) or a client. The authorization server feeds it;
// the gateway's token verifier reads it on every request, including cache
// hits, so a revoked token is refused at once.
//
// DenyList is the in-memory, per-node state. RedisSync (redis.go) shares
// revocations between nodes of a cluster.
//
// This package must not import internal/authn (authn imports it).
package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Token is what a Checker needs to know about a verified token.
type Token struct {
	Issuer   string
	JTI      string
	Subject  string
	ClientID string
	IssuedAt time.Time // zero when the token carried no iat
}

// Checker answers whether a verified token has been revoked. It is called on
// the request hot path and must be fast and safe for concurrent use.
type Checker interface {
	Revoked(t Token) bool
}

// Revoker records revocations. DenyList implements it for a single node,
// RedisSync for a cluster.
type Revoker interface {
	// RevokeToken revokes one token by jti until exp (its expiry, after
	// which the entry is useless and purged).
	RevokeToken(ctx context.Context, jti string, exp time.Time) error
	// RevokeSubject revokes every token of subject sub issued before
	// issuedBefore; the entry is kept until until (≥ the longest token
	// lifetime after issuedBefore).
	RevokeSubject(ctx context.Context, sub string, issuedBefore, until time.Time) error
	// RevokeClient is RevokeSubject for a client_id.
	RevokeClient(ctx context.Context, clientID string, issuedBefore, until time.Time) error
}

// Options configure a DenyList.
type Options struct {
	// Issuer, when set, scopes the list to tokens of that issuer: a token of
	// another issuer is never reported revoked. Set it to the built-in
	// authorization server's issuer so that a subject or jti revoked there
	// cannot collide with the same string at an external issuer. Empty
	// applies every entry to all issuers.
	Issuer string
	// MaxEntries bounds the number of live entries (default 1,000,000).
	// Revocations are never dropped silently: when full, expired entries
	// are purged and, if still full, the revocation is refused with
	// ErrFull so the caller can alert.
	MaxEntries int
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Logger receives purge and overflow messages; default slog.Default().
	Logger *slog.Logger
}

// ErrFull is returned when the deny-list holds MaxEntries live entries.
var ErrFull = errors.New("revocation: deny-list full")

const defaultMaxEntries = 1_000_000

// DenyList is an in-memory deny-list, safe for concurrent use. Reads take a
// read lock and up to three map lookups; an empty list is a single atomic
// load.
type DenyList struct {
	issuer string
	max    int
	now    func() time.Time
	log    *slog.Logger

	size atomic.Int64 // live entries, for the empty fast path

	mu       sync.RWMutex
	tokens   map[string]int64      // jti → exp (unix nanoseconds)
	subjects map[string]windowRule // sub → rule
	clients  map[string]windowRule // client_id → rule
}

// windowRule revokes tokens issued before issuedBefore; it is dropped after until.
type windowRule struct {
	issuedBefore int64 // unix nanoseconds
	until        int64
}

// NewDenyList returns an empty deny-list.
func NewDenyList(opts Options) (*DenyList, error) {
	if opts.MaxEntries < 0 {
		return nil, fmt.Errorf("revocation: MaxEntries %d is negative", opts.MaxEntries)
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &DenyList{
		issuer:   opts.Issuer,
		max:      opts.MaxEntries,
		now:      opts.Clock,
		log:      opts.Logger,
		tokens:   make(map[string]int64),
		subjects: make(map[string]windowRule),
		clients:  make(map[string]windowRule),
	}, nil
}

// Revoked implements Checker. A subject or client rule revokes a token whose
// iat is before the rule's issuedBefore; a token without iat cannot prove it
// was issued afterwards and is revoked (fail closed).
//
// Revoked reads no clock: an entry applies until Purge removes it, which is
// never before its expiry. That is safe because a jti entry expires with its
// token and a subject/client rule's until is at least the lifetime of the
// tokens it revokes, so an entry kept a little longer only refuses tokens
// that are expired anyway.
func (d *DenyList) Revoked(t Token) bool {
	if d.size.Load() == 0 {
		return false
	}
	if d.issuer != "" && t.Issuer != d.issuer {
		return false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if t.JTI != "" {
		if _, ok := d.tokens[t.JTI]; ok {
			return true
		}
	}
	if len(d.subjects) > 0 && t.Subject != "" {
		if rule, ok := d.subjects[t.Subject]; ok && rule.revokes(t.IssuedAt) {
			return true
		}
	}
	if len(d.clients) > 0 && t.ClientID != "" {
		if rule, ok := d.clients[t.ClientID]; ok && rule.revokes(t.IssuedAt) {
			return true
		}
	}
	return false
}

func (r windowRule) revokes(iat time.Time) bool {
	return iat.IsZero() || iat.UnixNano() < r.issuedBefore
}

// RevokeToken implements Revoker. Entries already expired are ignored.
func (d *DenyList) RevokeToken(_ context.Context, jti string, exp time.Time) error {
	if jti == "" {
		return errors.New("revocation: empty jti")
	}
	now := d.now()
	if !exp.After(now) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.tokens[jti]; ok {
		d.tokens[jti] = max(old, exp.UnixNano())
		return nil
	}
	if err := d.reserveLocked(now); err != nil {
		return err
	}
	d.tokens[jti] = exp.UnixNano()
	d.size.Add(1)
	return nil
}

// RevokeSubject implements Revoker.
func (d *DenyList) RevokeSubject(_ context.Context, sub string, issuedBefore, until time.Time) error {
	if sub == "" {
		return errors.New("revocation: empty subject")
	}
	return d.addRule(d.subjects, sub, issuedBefore, until)
}

// RevokeClient implements Revoker.
func (d *DenyList) RevokeClient(_ context.Context, clientID string, issuedBefore, until time.Time) error {
	if clientID == "" {
		return errors.New("revocation: empty client_id")
	}
	return d.addRule(d.clients, clientID, issuedBefore, until)
}

func (d *DenyList) addRule(m map[string]windowRule, key string, issuedBefore, until time.Time) error {
	if issuedBefore.IsZero() {
		return errors.New("revocation: zero issuedBefore")
	}
	now := d.now()
	if !until.After(now) {
		return nil
	}
	rule := windowRule{issuedBefore: issuedBefore.UnixNano(), until: until.UnixNano()}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := m[key]; ok {
		// Widen, never narrow: a later, shorter revocation must not
		// resurrect tokens an earlier one revoked.
		m[key] = windowRule{issuedBefore: max(old.issuedBefore, rule.issuedBefore), until: max(old.until, rule.until)}
		return nil
	}
	if err := d.reserveLocked(now); err != nil {
		return err
	}
	m[key] = rule
	d.size.Add(1)
	return nil
}

// reserveLocked makes room for one entry. d.mu must be held.
func (d *DenyList) reserveLocked(now time.Time) error {
	if int(d.size.Load()) < d.max {
		return nil
	}
	d.purgeLocked(now.UnixNano())
	if int(d.size.Load()) < d.max {
		return nil
	}
	d.log.Error("revocation deny-list full: revocation refused", "max_entries", d.max)
	return ErrFull
}

// Purge drops expired entries and returns how many it dropped.
func (d *DenyList) Purge() int {
	now := d.now().UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.purgeLocked(now)
}

func (d *DenyList) purgeLocked(now int64) int {
	n := 0
	for k, exp := range d.tokens {
		if now >= exp {
			delete(d.tokens, k)
			n++
		}
	}
	for _, m := range []map[string]windowRule{d.subjects, d.clients} {
		for k, r := range m {
			if now >= r.until {
				delete(m, k)
				n++
			}
		}
	}
	d.size.Add(int64(-n))
	return n
}

// Len returns the number of entries, including expired ones not yet purged.
func (d *DenyList) Len() int { return int(d.size.Load()) }

// Run purges expired entries every interval (default 1 minute) until ctx is
// done.
func (d *DenyList) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := d.Purge(); n > 0 {
				d.log.Debug("revocation deny-list purged", "entries", n)
			}
		}
	}
}

var _ Checker = (*DenyList)(nil)
var _ Revoker = (*DenyList)(nil)
