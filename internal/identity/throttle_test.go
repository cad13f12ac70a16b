package identity

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestThrottlerAccountWindow(t *testing.T) {
	c := newClock()
	th, err := NewThrottler(ThrottleOptions{}, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 5; i++ {
		if ok, _ := th.Attempt("alice", ip); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		c.Advance(time.Minute)
	}
	ok, retry := th.Attempt("ALICE", netip.MustParseAddr("198.51.100.7"))
	if ok {
		t.Fatal("6th failure within 15 min allowed (case-folded username, other IP)")
	}
	if retry != 10*time.Minute { // oldest failure was 5 min ago
		t.Errorf("retryAfter = %v, want 10m", retry)
	}
	c.Advance(10 * time.Minute) // the oldest failure leaves the window
	if ok, _ := th.Attempt("alice", ip); !ok {
		t.Fatal("sliding window did not free a slot")
	}
	if ok, _ := th.Attempt("alice", ip); ok {
		t.Fatal("only one slot should have freed")
	}
}

func TestThrottlerSuccessResetsAccount(t *testing.T) {
	c := newClock()
	th, _ := NewThrottler(ThrottleOptions{}, c.Now)
	ip := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 4; i++ {
		th.Attempt("alice", ip)
	}
	th.Attempt("alice", ip)
	th.Succeeded("alice", ip)
	for i := 0; i < 5; i++ {
		if ok, _ := th.Attempt("alice", ip); !ok {
			t.Fatalf("after success, attempt %d refused", i+1)
		}
	}
}

func TestThrottlerPerIP(t *testing.T) {
	c := newClock()
	th, _ := NewThrottler(ThrottleOptions{}, c.Now)
	ip := netip.MustParseAddr("2001:db8:1:2::10")
	for i := 0; i < 20; i++ {
		if ok, _ := th.Attempt("user"+strconv.Itoa(i), ip); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	// Same /64, other host: same bucket.
	if ok, retry := th.Attempt("fresh", netip.MustParseAddr("2001:db8:1:2::99")); ok || retry != time.Minute {
		t.Fatalf("21st attempt from the /64: ok=%v retry=%v", ok, retry)
	}
	if ok, _ := th.Attempt("fresh", netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Fatal("another /64 throttled")
	}
	if ok, _ := th.Attempt("fresh2", netip.MustParseAddr("::ffff:192.0.2.1")); !ok {
		t.Fatal("unrelated IPv4 throttled")
	}
	c.Advance(time.Minute)
	if ok, _ := th.Attempt("fresh3", ip); !ok {
		t.Fatal("IP still throttled after its window")
	}
}

// TestThrottlerConcurrent: parallel attempts cannot exceed the limit.
func TestThrottlerConcurrent(t *testing.T) {
	th, _ := NewThrottler(ThrottleOptions{}, nil)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ip := netip.AddrFrom4([4]byte{10, 0, byte(i), 1})
			if ok, _ := th.Attempt("alice", ip); ok {
				allowed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if n := allowed.Load(); n != 5 {
		t.Fatalf("%d parallel attempts allowed, want exactly 5", n)
	}
}

func TestThrottlerBounded(t *testing.T) {
	th, _ := NewThrottler(ThrottleOptions{MaxEntries: 16}, nil)
	for i := 0; i < 1000; i++ {
		th.Attempt("user"+strconv.Itoa(i), netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	if a, i := th.Len(); a > 16 || i > 16 {
		t.Fatalf("tables grew to %d accounts, %d IPs; bound 16", a, i)
	}
	// The most recent key survived eviction.
	for j := 0; j < 4; j++ {
		th.Attempt("user999", netip.AddrFrom4([4]byte{10, 2, 0, byte(j)}))
	}
	if ok, _ := th.Attempt("user999", netip.AddrFrom4([4]byte{10, 3, 0, 1})); ok {
		t.Fatal("recent entry was evicted (LRU broken)")
	}
}

func BenchmarkThrottlerAttempt(b *testing.B) {
	th, _ := NewThrottler(ThrottleOptions{AccountFailures: 1000, IPFailures: 10000}, nil)
	i := 0
	for b.Loop() {
		i++
		th.Attempt("user"+strconv.Itoa(i%50000), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
}
