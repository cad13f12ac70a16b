package identity

import (
	"container/list"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ThrottleOptions bounds failed logins. Zero values take the defaults.
type ThrottleOptions struct {
	// AccountFailures failed logins for one username within AccountWindow
	// lock that username until the oldest of them leaves the window
	// (default 5 per 15 minutes). Unknown usernames are counted the same way
	// so the lock reveals nothing about existence.
	AccountFailures int
	AccountWindow   time.Duration
	// IPFailures failed logins from one client address (IPv4 /32, IPv6 /64)
	// within IPWindow block that address (default 20 per minute).
	IPFailures int
	IPWindow   time.Duration
	// MaxEntries bounds each table (accounts, addresses); when full the least
	// recently used entry is evicted (default 100000).
	MaxEntries int
}

func (o *ThrottleOptions) setDefaults() error {
	if o.AccountFailures == 0 {
		o.AccountFailures = 5
	}
	if o.AccountWindow == 0 {
		o.AccountWindow = 15 * time.Minute
	}
	if o.IPFailures == 0 {
		o.IPFailures = 20
	}
	if o.IPWindow == 0 {
		o.IPWindow = time.Minute
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 100_000
	}
	switch {
	case o.AccountFailures < 1 || o.AccountFailures > 1000:
		return fmt.Errorf("identity: throttle AccountFailures %d outside [1, 1000]", o.AccountFailures)
	case o.IPFailures < 1 || o.IPFailures > 10000:
		return fmt.Errorf("identity: throttle IPFailures %d outside [1, 10000]", o.IPFailures)
	case o.AccountWindow < time.Second || o.AccountWindow > 24*time.Hour:
		return fmt.Errorf("identity: throttle AccountWindow %v outside [1s, 24h]", o.AccountWindow)
	case o.IPWindow < time.Second || o.IPWindow > 24*time.Hour:
		return fmt.Errorf("identity: throttle IPWindow %v outside [1s, 24h]", o.IPWindow)
	case o.MaxEntries < 16 || o.MaxEntries > 10_000_000:
		return fmt.Errorf("identity: throttle MaxEntries %d outside [16, 10000000]", o.MaxEntries)
	}
	return nil
}

// Throttler limits login attempts per account and per client address with a
// sliding-window log held in memory (per node: in a cluster each node
// enforces its own limits). It is safe for concurrent use.
//
// Attempt reserves a slot before the password is checked, so parallel
// requests cannot exceed the limit; Succeeded releases it. A blocked attempt
// is not counted (it costs no hash) and does not extend the lock.
type Throttler struct {
	o   ThrottleOptions
	now func() time.Time

	mu       sync.Mutex
	accounts *window
	ips      *window
}

// NewThrottler validates o and returns a Throttler using clock now
// (time.Now when nil).
func NewThrottler(o ThrottleOptions, now func() time.Time) (*Throttler, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Throttler{
		o:        o,
		now:      now,
		accounts: newWindow(o.AccountFailures, o.AccountWindow, o.MaxEntries),
		ips:      newWindow(o.IPFailures, o.IPWindow, o.MaxEntries),
	}, nil
}

// Attempt reports whether a login for username from ip may proceed. When it
// may, the attempt is counted as a failure for both keys until Succeeded is
// called. When it may not, retryAfter says when the earliest slot frees up.
func (t *Throttler) Attempt(username string, ip netip.Addr) (allowed bool, retryAfter time.Duration) {
	now := t.now().UnixNano()
	ak, ik := accountKey(username), ipKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	ra := t.accounts.blockedFor(ak, now)
	ri := t.ips.blockedFor(ik, now)
	if ra > 0 || ri > 0 {
		return false, time.Duration(max(ra, ri))
	}
	t.accounts.add(ak, now)
	t.ips.add(ik, now)
	return true, 0
}

// Succeeded records that the attempt for username from ip succeeded: the
// account's failures are forgotten and the address's reserved slot is
// returned.
func (t *Throttler) Succeeded(username string, ip netip.Addr) {
	ak, ik := accountKey(username), ipKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accounts.reset(ak)
	t.ips.popNewest(ik)
}

// Len returns the number of tracked accounts and addresses.
func (t *Throttler) Len() (accounts, ips int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.accounts.m), len(t.ips.m)
}

// accountKey hashes the case-folded username (the store's uniqueness rule)
// so the table holds no usernames and every key has the same size.
func accountKey(username string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(username)))
	return string(sum[:16])
}

// ipKey groups IPv6 clients by /64 (one host usually controls a /64).
func ipKey(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.Is4():
		b := ip.As4()
		return string(b[:])
	default:
		b := ip.As16()
		return string(b[:8])
	}
}

// window is a bounded map of sliding-window logs with LRU eviction.
type window struct {
	limit int
	span  int64 // nanoseconds
	max   int
	m     map[string]*list.Element
	lru   *list.List // front = most recently used; values *windowEntry
}

type windowEntry struct {
	key   string
	times []int64 // unix nanos, oldest first, len <= limit
}

func newWindow(limit int, span time.Duration, maxEntries int) *window {
	return &window{limit: limit, span: int64(span), max: maxEntries, m: make(map[string]*list.Element), lru: list.New()}
}

// blockedFor returns how long key stays blocked at now (0 = not blocked),
// dropping timestamps that left the window.
func (w *window) blockedFor(key string, now int64) int64 {
	el, ok := w.m[key]
	if !ok {
		return 0
	}
	e := el.Value.(*windowEntry)
	e.prune(now - w.span)
	if len(e.times) == 0 {
		w.lru.Remove(el)
		delete(w.m, key)
		return 0
	}
	if len(e.times) < w.limit {
		return 0
	}
	return e.times[0] + w.span - now
}

func (w *window) add(key string, now int64) {
	el, ok := w.m[key]
	if !ok {
		if len(w.m) >= w.max {
			oldest := w.lru.Back()
			w.lru.Remove(oldest)
			delete(w.m, oldest.Value.(*windowEntry).key)
		}
		el = w.lru.PushFront(&windowEntry{key: key, times: make([]int64, 0, min(w.limit, 8))})
		w.m[key] = el
	} else {
		w.lru.MoveToFront(el)
	}
	e := el.Value.(*windowEntry)
	if len(e.times) == w.limit { // only reachable if callers skip blockedFor
		e.times = e.times[1:]
	}
	e.times = append(e.times, now)
}

func (w *window) reset(key string) {
	if el, ok := w.m[key]; ok {
		w.lru.Remove(el)
		delete(w.m, key)
	}
}

func (w *window) popNewest(key string) {
	el, ok := w.m[key]
	if !ok {
		return
	}
	e := el.Value.(*windowEntry)
	if len(e.times) > 0 {
		e.times = e.times[:len(e.times)-1]
	}
	if len(e.times) == 0 {
		w.lru.Remove(el)
		delete(w.m, key)
	}
}

func (e *windowEntry) prune(cutoff int64) {
	i := 0
	for i < len(e.times) && e.times[i] <= cutoff {
		i++
	}
	if i > 0 {
		e.times = append(e.times[:0], e.times[i:]...)
	}
}
