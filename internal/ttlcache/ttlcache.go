// Package ttlcache is a small bounded map with per-entry expiry, shared by
// the credential caches (API keys, introspection, signed identities).
package ttlcache

import (
	"sync"
	"time"
)

// Cache is a bounded map with per-entry expiry. When full, an insert
// first drops expired entries among a few it samples and otherwise evicts a
// sampled entry (Go's randomized map iteration makes this random eviction),
// so an insert is O(1) and the cache never exceeds max entries.
type Cache[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]entry[V]
	max int
}

type entry[V any] struct {
	v     V
	until time.Time
}

const evictSample = 8

func New[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{m: make(map[K]entry[V]), max: max}
}

func (c *Cache[K, V]) Get(k K, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *Cache[K, V]) Put(k K, v V, until, now time.Time) {
	if !now.Before(until) || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.m[k]; !exists && len(c.m) >= c.max {
		var victim K
		n, evicted, haveVictim := 0, false, false
		for key, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, key)
				evicted = true
			} else if !haveVictim {
				victim, haveVictim = key, true
			}
			n++
			if n >= evictSample {
				break
			}
		}
		if !evicted && haveVictim {
			delete(c.m, victim)
		}
	}
	c.m[k] = entry[V]{v: v, until: until}
}

func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// deleteFunc removes every entry for which drop returns true. O(n): meant
// for rare events such as revocation.
func (c *Cache[K, V]) DeleteFunc(drop func(K, V) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, e := range c.m {
		if drop(k, e.v) {
			delete(c.m, k)
			n++
		}
	}
	return n
}

func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
