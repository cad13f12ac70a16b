package authn

import (
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/revocation"
)

// TokenCacheOptions configure a TokenCache.
type TokenCacheOptions struct {
	// MaxEntries bounds the cache (default 100,000; at least 64).
	MaxEntries int
}

const (
	cacheShards            = 64 // power of two
	defaultCacheMaxEntries = 100_000
	evictionSample         = 8
)

// TokenCache remembers verified tokens so a client reusing its token costs a
// hash, a map lookup and a string comparison instead of a signature check.
//
// Design, for a hit well under 1 µs on a ~540-byte token:
//   - the index is a 64-bit maphash (per-cache random seed) of the token's
//     last 48 bytes (inside the signature segment, which differs between
//     any two distinct signed tokens) and its length, mixed with the route's
//     issuer-set id. Hashing the whole token, let alone SHA-256, would cost
//     a large share of the budget on this machine;
//   - the hash is never trusted alone: an entry stores the full token and a
//     hit requires entry.token == token, so a collision (accidental or
//     engineered) is just a miss. Only verified tokens are inserted, so an
//     attacker cannot flood a bucket;
//   - expiry is checked against the monotonic clock (one clock read per
//     hit) unless a test clock is injected;
//   - 64 shards with a RWMutex each; when a shard is full, the entry closest
//     to expiry among a few sampled ones is evicted (O(1));
//   - admission on the second verification: a small direct-mapped
//     doorkeeper per shard remembers the keys of recent first
//     verifications, and only a key seen there enters the cache. A client
//     that reuses its token pays one extra verification per token lifetime;
//     a stream of one-off tokens no longer fills the cache with entries that
//     are never hit, whose churn and GC marking cost 40 µs per request and
//     doubled p99 in the jwt-fresh benchmark (docs/decisions/0002).
//
// Entries expire at the token's exp (never later), are invalidated when the
// issuer's key set changes (a removed key stops vouching for cached tokens),
// and every hit consults the revocation deny-list. Failures are never
// cached: a forged token costs one verification each time, the same as a
// fresh forgery would.
//
// One TokenCache may be shared by all routes; it is safe for concurrent use.
type TokenCache struct {
	seed     maphash.Seed
	base     time.Time // monotonic origin of cacheEntry.deadline
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]*cacheEntry
	// seen is the doorkeeper: keys of tokens verified once, direct-mapped.
	seen [doorSlots]uint64
	_    [32]byte // keep hot shards on separate cache lines
}

// doorSlots per shard (64 × 512 keys, 256 KiB in all): a token must be
// verified again before about this many other first verifications hit its
// slot to be admitted.
const doorSlots = 512

// cacheEntry is immutable once stored.
type cacheEntry struct {
	token    string
	issuer   *Issuer
	gen      uint64
	expires  int64         // unix nanoseconds: the token's exp
	deadline time.Duration // the same instant on the monotonic clock, since TokenCache.base
	id       *Identity
	rev      revocation.Token
}

// NewTokenCache returns an empty cache.
func NewTokenCache(opts TokenCacheOptions) (*TokenCache, error) {
	if opts.MaxEntries == 0 {
		opts.MaxEntries = defaultCacheMaxEntries
	}
	if opts.MaxEntries < cacheShards {
		return nil, fmt.Errorf("token cache: max_entries %d is below %d", opts.MaxEntries, cacheShards)
	}
	c := &TokenCache{seed: maphash.MakeSeed(), base: time.Now(), perShard: opts.MaxEntries / cacheShards}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c, nil
}

// keySuffix is how many trailing bytes of the token are hashed.
const keySuffix = 48

// key computes the index of token for a route (issuer-set id routeKey).
func (c *TokenCache) key(token string, routeKey uint64) uint64 {
	tail := token[max(0, len(token)-keySuffix):]
	return maphash.String(c.seed, tail) ^ uint64(len(token))*0xC2B2AE3D27D4EB4F ^ routeKey
}

// sinceBase reads the monotonic clock.
func (c *TokenCache) sinceBase() time.Duration { return time.Since(c.base) }

// get returns the entry for token, or nil. The caller validates issuer,
// generation, expiry and revocation.
func (c *TokenCache) get(k uint64, token string) *cacheEntry {
	s := &c.shards[k&(cacheShards-1)]
	s.mu.RLock()
	e := s.m[k]
	s.mu.RUnlock()
	if e == nil || e.token != token {
		return nil
	}
	return e
}

// admit stores e under k if k's token was verified before (the
// doorkeeper saw it) or is already cached; otherwise it only records k and
// reports false.
func (c *TokenCache) admit(k uint64, e *cacheEntry) bool {
	s := &c.shards[k&(cacheShards-1)]
	slot := &s.seen[(k/cacheShards)&(doorSlots-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, cached := s.m[k]; !cached {
		if *slot != k {
			*slot = k
			return false
		}
		*slot = 0
	}
	c.putLocked(s, k, e)
	return true
}

// putLocked stores e under k, evicting if the shard is full.
func (c *TokenCache) putLocked(s *cacheShard, k uint64, e *cacheEntry) {
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		// Go map iteration starts at a random position: sample a few
		// entries and evict the one that expires first.
		var victim uint64
		var soonest int64
		n := 0
		for vk, ve := range s.m {
			if n == 0 || ve.expires < soonest {
				victim, soonest = vk, ve.expires
			}
			if n++; n == evictionSample {
				break
			}
		}
		delete(s.m, victim)
	}
	s.m[k] = e
}

// remove deletes the entry under k if it still holds token.
func (c *TokenCache) remove(k uint64, token string) {
	s := &c.shards[k&(cacheShards-1)]
	s.mu.Lock()
	if e := s.m[k]; e != nil && e.token == token {
		delete(s.m, k)
	}
	s.mu.Unlock()
}

// Len returns the number of cached entries (including expired ones not yet
// evicted).
func (c *TokenCache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Purge removes entries whose token has expired and returns how many. Run it
// periodically (e.g. every minute) to return memory early; correctness does
// not depend on it.
func (c *TokenCache) Purge(now time.Time) int {
	t := now.UnixNano()
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if t >= e.expires {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}
