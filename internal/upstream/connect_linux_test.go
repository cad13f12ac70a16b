//go:build linux

package upstream

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// blackholeAddr returns a loopback address whose listen backlog is full, so
// the kernel drops further SYNs and connects hang until the dialer's timeout.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // never accepted
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for i := 0; ; i++ {
		if i == 32 {
			t.Skip("could not fill the listen backlog on this kernel")
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // backlog full: connects now time out
		}
		t.Cleanup(func() { _ = c.Close() })
	}
}

func TestConnectTimeout(t *testing.T) {
	hole := "http://" + blackholeAddr(t)
	p := newPool(t, Options{Targets: []Target{{URL: hole}}, ConnectTimeout: 150 * time.Millisecond,
		PassiveHealth: PassiveHealth{MaxFailures: -1}})
	start := time.Now()
	_, info, err := get(t, p, "/")
	e := mustKind(t, err, KindTimeout)
	if !e.Timeout() || info.Attempts != 2 { // a connect timeout is retried (nothing was sent)
		t.Fatalf("err %v info %+v", err, info)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Fatalf("two connect timeouts of 150ms took %v", d)
	}

	// With a second target the retry succeeds there.
	live := newCountingBackend(t, "live")
	p = newPool(t, Options{Targets: []Target{{URL: hole}, {URL: live.URL}}, ConnectTimeout: 150 * time.Millisecond})
	body, info, err := get(t, p, "/")
	if err != nil || body != "live" || info.Attempts != 2 {
		t.Fatalf("body %q info %+v err %v", body, info, err)
	}
}
