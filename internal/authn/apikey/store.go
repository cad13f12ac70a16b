package apikey

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"
)

// ErrNotFound is returned by Store.GetAPIKey and RevokeAPIKey for an
// unknown id.
var ErrNotFound = errors.New("apikey: not found")

// ErrExists is returned by CreateAPIKey when the id is already taken
// (astronomically unlikely with random ids; callers may regenerate).
var ErrExists = errors.New("apikey: id already exists")

// Record is a stored API key. Hash is SHA-256 of the full key; the key
// itself is never stored.
type Record struct {
	ID        string
	Consumer  string
	Scopes    []string
	CreatedAt time.Time
	ExpiresAt *time.Time // nil: never expires
	Revoked   bool
	Hash      []byte
}

// Store is what the authenticator and CLI need from persistence. It is
// implemented by the persistent store (internal/store) and by MemStore.
// Implementations must return copies: callers may keep the returned values.
type Store interface {
	GetAPIKey(ctx context.Context, id string) (*Record, error) // ErrNotFound if unknown
	CreateAPIKey(ctx context.Context, r *Record) error         // ErrExists if id is taken
	ListAPIKeys(ctx context.Context) ([]Record, error)
	RevokeAPIKey(ctx context.Context, id string) error // ErrNotFound if unknown
}

// MemStore is an in-memory Store for tests and demos. Nothing survives a
// restart. Safe for concurrent use.
type MemStore struct {
	mu   sync.RWMutex
	recs map[string]Record
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{recs: map[string]Record{}} }

var _ Store = (*MemStore)(nil)

func cloneRecord(r Record) Record {
	r.Scopes = slices.Clone(r.Scopes)
	r.Hash = slices.Clone(r.Hash)
	if r.ExpiresAt != nil {
		t := *r.ExpiresAt
		r.ExpiresAt = &t
	}
	return r
}

// GetAPIKey implements Store.
func (s *MemStore) GetAPIKey(ctx context.Context, id string) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	r, ok := s.recs[id]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	c := cloneRecord(r)
	return &c, nil
}

// CreateAPIKey implements Store.
func (s *MemStore) CreateAPIKey(ctx context.Context, r *Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r == nil || !ValidID(r.ID) {
		return fmt.Errorf("apikey: create: invalid id")
	}
	if len(r.Hash) != 32 {
		return fmt.Errorf("apikey: create %s: hash must be 32 bytes (SHA-256)", r.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[r.ID]; ok {
		return fmt.Errorf("apikey: create %s: %w", r.ID, ErrExists)
	}
	s.recs[r.ID] = cloneRecord(*r)
	return nil
}

// ListAPIKeys implements Store; records are ordered by CreatedAt, then ID.
func (s *MemStore) ListAPIKeys(ctx context.Context) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	out := make([]Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, cloneRecord(r))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// RevokeAPIKey implements Store.
func (s *MemStore) RevokeAPIKey(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return fmt.Errorf("apikey: revoke %s: %w", id, ErrNotFound)
	}
	r.Revoked = true
	s.recs[id] = r
	return nil
}

// maxConsumerLen bounds a consumer name.
const maxConsumerLen = 256

// Create generates a key for consumer with the given scopes and optional
// expiry, stores its record (hash only) in s, and returns the key, to be
// shown to the operator exactly once, and the stored record. It retries
// generation if the random id collides with an existing one.
func Create(ctx context.Context, s Store, rand io.Reader, consumer string, scopes []string, expiresAt *time.Time, now time.Time) (string, Record, error) {
	if consumer == "" || len(consumer) > maxConsumerLen {
		return "", Record{}, fmt.Errorf("apikey: consumer name must be 1..%d bytes", maxConsumerLen)
	}
	for i := 0; i < len(consumer); i++ {
		if c := consumer[i]; c < 0x21 || c > 0x7E {
			return "", Record{}, fmt.Errorf("apikey: consumer name %q: only printable ASCII without spaces", consumer)
		}
	}
	for _, sc := range scopes {
		if !validScope(sc) {
			return "", Record{}, fmt.Errorf("apikey: scope %q is not an RFC 6749 scope-token", sc)
		}
	}
	if expiresAt != nil && !expiresAt.After(now) {
		return "", Record{}, fmt.Errorf("apikey: expiry %s is not in the future", expiresAt.Format(time.RFC3339))
	}
	for attempt := 0; attempt < 3; attempt++ {
		key, id, hash, err := Generate(rand)
		if err != nil {
			return "", Record{}, err
		}
		rec := Record{ID: id, Consumer: consumer, Scopes: slices.Clone(scopes), CreatedAt: now, ExpiresAt: expiresAt, Hash: hash}
		err = s.CreateAPIKey(ctx, &rec)
		if errors.Is(err, ErrExists) {
			continue
		}
		if err != nil {
			return "", Record{}, fmt.Errorf("apikey: store key %s: %w", id, err)
		}
		return key, rec, nil
	}
	return "", Record{}, fmt.Errorf("apikey: could not allocate a unique id: %w", ErrExists)
}

// validScope is the RFC 6749 §3.3 scope-token grammar, bounded to 256 bytes.
func validScope(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)) {
			return false
		}
	}
	return true
}
