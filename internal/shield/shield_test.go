package shield

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/testutil"
)

const waitLimit = 5 * time.Second

func newTestLimiter(t *testing.T, lim ConnLimits) (*Limiter, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLimiter(lim, m)
	if err != nil {
		t.Fatal(err)
	}
	return l, m
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// echoServer serves ln until the test ends, echoing bytes back on every
// connection and closing it when the client does. It reports each accepted
// connection's remote address on the returned channel.
func echoServer(t *testing.T, ln net.Listener) <-chan net.Addr {
	t.Helper()
	accepted := make(chan net.Addr, 1024)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return accepted
}

func dialFrom(t *testing.T, addr net.Addr, localIP string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: waitLimit}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial from %q: %v", localIP, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectRejected dials from localIP and asserts that the server closes the
// connection at once. On loopback the reset can arrive before the
// non-blocking connect completes, so a reset during Dial counts too.
func expectRejected(t *testing.T, addr net.Addr, localIP string) {
	t.Helper()
	d := net.Dialer{Timeout: waitLimit, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return
		}
		t.Fatalf("dial from %s: %v", localIP, err)
	}
	defer c.Close()
	expectClosedByPeer(t, c)
}

func expectEcho(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	expectRead(t, c, msg)
}

func expectRead(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// expectClosedByPeer asserts that the server closed c (EOF or reset), not that
// the read merely timed out.
func expectClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := io.ReadAll(c)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return
	}
	t.Fatalf("connection not closed by server: %v", err)
}

// expectNoData asserts that nothing arrives on c within d (the server has not
// accepted the connection yet).
func expectNoData(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("expected no data within %v, got n=%d err=%v", d, n, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gaugeIs(m *Metrics, v float64) func() bool {
	return func() bool { return testutil.MetricValue(m.open) == v }
}

func TestPerIPCap(t *testing.T) {
	l, m := newTestLimiter(t, ConnLimits{MaxConnsPerIP: 2})
	ln := l.Listen(listenLoopback(t))
	accepted := echoServer(t, ln)

	a1 := dialFrom(t, ln.Addr(), "127.0.0.1")
	expectEcho(t, a1, "a1")
	a2 := dialFrom(t, ln.Addr(), "127.0.0.1")
	expectEcho(t, a2, "a2")

	expectRejected(t, ln.Addr(), "127.0.0.1")
	if got := testutil.MetricValue(m.rejected.WithLabelValues(ReasonPerIP)); got != 1 {
		t.Fatalf("rejected{per_ip} = %v, want 1", got)
	}

	// Another IP is not affected by 127.0.0.1 being at its cap.
	b1 := dialFrom(t, ln.Addr(), "127.0.0.2")
	expectEcho(t, b1, "b1")
	if got := testutil.MetricValue(m.open); got != 3 {
		t.Fatalf("open connections = %v, want 3", got)
	}

	// Closing one of 127.0.0.1's connections frees its per-IP slot.
	a1.Close()
	waitFor(t, "open connections to drop to 2", gaugeIs(m, 2))
	a4 := dialFrom(t, ln.Addr(), "127.0.0.1")
	expectEcho(t, a4, "a4")

	if n := len(accepted); n != 4 {
		t.Fatalf("server saw %d connections, want 4 (the rejected one must not reach it)", n)
	}
}

func TestGlobalCapBlocksThenAdmits(t *testing.T) {
	l, m := newTestLimiter(t, ConnLimits{MaxConns: 1})
	ln := l.Listen(listenLoopback(t))
	accepted := echoServer(t, ln)

	c1 := dialFrom(t, ln.Addr(), "")
	expectEcho(t, c1, "one")

	// The kernel completes the handshake (backlog) but the server does not accept.
	c2 := dialFrom(t, ln.Addr(), "")
	if _, err := c2.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	expectNoData(t, c2, 300*time.Millisecond)
	if n := len(accepted); n != 1 {
		t.Fatalf("accepted %d connections while at the global cap, want 1", n)
	}
	waitFor(t, "limit wait counted", func() bool { return testutil.MetricValue(m.waits) >= 1 })

	c1.Close()
	expectRead(t, c2, "two")
	if got := testutil.MetricValue(m.rejected.WithLabelValues(ReasonPerIP)); got != 0 {
		t.Fatalf("rejected = %v, want 0: the global cap must delay, not reject", got)
	}
}

func TestCloseUnblocksWaitingAccept(t *testing.T) {
	l, _ := newTestLimiter(t, ConnLimits{MaxConns: 1})
	ln := l.Listen(listenLoopback(t))
	dialFrom(t, ln.Addr(), "")
	s1, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()

	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Accept block on the slot
	ln.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Accept still blocked after listener Close")
	}
}

func TestDoubleCloseReleasesOnce(t *testing.T) {
	l, m := newTestLimiter(t, ConnLimits{MaxConns: 2, MaxConnsPerIP: 1})
	ln := l.Listen(listenLoopback(t))
	t.Cleanup(func() { ln.Close() })

	accept := func() <-chan net.Conn {
		ch := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}()
		return ch
	}
	recv := func(ch <-chan net.Conn) net.Conn {
		t.Helper()
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatal("Accept failed")
			}
			t.Cleanup(func() { c.Close() })
			return c
		case <-time.After(waitLimit):
			t.Fatal("Accept blocked")
			return nil
		}
	}

	dialFrom(t, ln.Addr(), "127.0.0.1")
	s1 := recv(accept())
	closed := make(chan struct{})
	go func() {
		_ = s1.Close()
		_ = s1.Close() // a second release would block on the empty semaphore or corrupt counts
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("double Close blocked")
	}
	if got := testutil.MetricValue(m.open); got != 0 {
		t.Fatalf("open connections after double close = %v, want 0", got)
	}

	// The per-IP count is exactly 0: one new connection from the same IP is
	// admitted (no leak) and a second is rejected (no over-release).
	dialFrom(t, ln.Addr(), "127.0.0.1")
	recv(accept())
	ch := accept()
	expectRejected(t, ln.Addr(), "127.0.0.1")
	dialFrom(t, ln.Addr(), "127.0.0.2")
	s4 := recv(ch)
	if ip := s4.RemoteAddr().(*net.TCPAddr).IP.String(); ip != "127.0.0.2" {
		t.Fatalf("admitted %s, want 127.0.0.2", ip)
	}
	l.mu.Lock()
	counts := map[netip.Addr]int{}
	for k, v := range l.perIP {
		counts[k] = v
	}
	l.mu.Unlock()
	if counts[netip.MustParseAddr("127.0.0.1")] != 1 || counts[netip.MustParseAddr("127.0.0.2")] != 1 || len(counts) != 2 {
		t.Fatalf("per-IP counts = %v", counts)
	}
	if n := len(l.slots); n != 2 {
		t.Fatalf("slots in use = %d, want 2", n)
	}
}

// TestHijackedConnHoldsSlot checks that a hijacked connection (WebSocket-like)
// keeps its slot until the handler closes it, over plain TCP and under TLS.
func TestHijackedConnHoldsSlot(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			l, m := newTestLimiter(t, ConnLimits{MaxConns: 1})
			release := make(chan struct{})
			handlerDone := make(chan struct{})
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/hijack" {
					_, _ = io.WriteString(w, "plain")
					return
				}
				defer close(handlerDone)
				c, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
				_ = brw.Flush()
				<-release
				_ = c.Close()
				_ = c.Close()
			}))
			ts.Listener = l.Listen(ts.Listener)
			ts.Config.ErrorLog = log.New(io.Discard, "", 0)
			if useTLS {
				ts.StartTLS()
			} else {
				ts.Start()
			}
			defer ts.Close()

			dial := func() net.Conn {
				addr := ts.Listener.Addr()
				raw := dialFrom(t, addr, "")
				if !useTLS {
					return raw
				}
				cfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
				cfg.NextProtos = []string{"http/1.1"}
				cfg.ServerName = "example.com" // in httptest's certificate
				tc := tls.Client(raw, cfg)
				// The handshake completes only once the server has accepted.
				return tc
			}

			hj := dial()
			if _, err := io.WriteString(hj, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(hj), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := testutil.MetricValue(m.open); got != 1 {
				t.Fatalf("open connections while hijacked = %v, want 1", got)
			}

			// A second client waits: the hijacked connection still holds the only slot.
			other := dial()
			got := make(chan string, 1)
			go func() {
				_ = other.SetDeadline(time.Now().Add(2 * waitLimit))
				if _, err := io.WriteString(other, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					got <- "write: " + err.Error()
					return
				}
				resp, err := http.ReadResponse(bufio.NewReader(other), nil)
				if err != nil {
					got <- "read: " + err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				got <- string(b)
			}()
			select {
			case s := <-got:
				t.Fatalf("second client served while the hijacked connection held the slot: %q", s)
			case <-time.After(300 * time.Millisecond):
			}

			close(release)
			<-handlerDone
			select {
			case s := <-got:
				if s != "plain" {
					t.Fatalf("second client got %q", s)
				}
			case <-time.After(waitLimit):
				t.Fatal("second client not served after the hijacked connection closed")
			}
			waitFor(t, "open connections back to 1 (only the second client)", gaugeIs(m, 1))
			hj.Close()
		})
	}
}

// TestSlowlorisCutByReadHeaderTimeout checks that the wrapper does not get in
// the way of http.Server's header timeout and that the slot is released.
func TestSlowlorisCutByReadHeaderTimeout(t *testing.T) {
	l, m := newTestLimiter(t, ConnLimits{MaxConns: 10, MaxConnsPerIP: 5})
	ln := l.Listen(listenLoopback(t))
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 200 * time.Millisecond,
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	slow := dialFrom(t, ln.Addr(), "127.0.0.1")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		if _, err := io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
			return
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := io.WriteString(slow, "X-Slow: 1\r\n"); err != nil {
				return
			}
		}
	}()

	// A normal client is served while the slow one dribbles.
	client := &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	client.CloseIdleConnections()

	start := time.Now()
	_ = slow.SetReadDeadline(time.Now().Add(waitLimit))
	data, err := io.ReadAll(slow)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("slow client not cut: %v (after %v)", err, time.Since(start))
	}
	if len(data) > 0 && !strings.HasPrefix(string(data), "HTTP/1.1 408") {
		t.Fatalf("slow client got unexpected data %q", data)
	}
	waitFor(t, "slot of the slow client released", gaugeIs(m, 0))
}

// TestIdleReclaimAtGlobalCap checks that with the ConnState hook installed, a
// listener at the cap closes an idle keep-alive connection to admit a new one.
func TestIdleReclaimAtGlobalCap(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			l, m := newTestLimiter(t, ConnLimits{MaxConns: 1})
			l.reclaimMinIdle = 50 * time.Millisecond
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			ts.Listener = l.Listen(ts.Listener)
			ts.Config.ErrorLog = log.New(io.Discard, "", 0)
			ts.Config.ConnState = l.ConnState
			if useTLS {
				ts.StartTLS()
			} else {
				ts.Start()
			}
			defer ts.Close()

			get := func() (net.Conn, *bufio.Reader) {
				raw := dialFrom(t, ts.Listener.Addr(), "")
				var c net.Conn = raw
				if useTLS {
					cfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
					cfg.NextProtos = []string{"http/1.1"}
					cfg.ServerName = "example.com" // in httptest's certificate
					c = tls.Client(raw, cfg)
				}
				_ = c.SetDeadline(time.Now().Add(waitLimit))
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				if string(b) != "ok" {
					t.Fatalf("body %q", b)
				}
				return c, br
			}

			idle, idleBR := get() // stays open as an idle keep-alive connection
			_, _ = get()          // must reclaim the idle one rather than wait
			_ = idle.SetReadDeadline(time.Now().Add(waitLimit))
			_, err := idleBR.ReadByte()
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("idle connection not closed by the server after reclaim: %v", err)
			}
			if got := testutil.MetricValue(m.reclaimed); got != 1 {
				t.Fatalf("reclaimed = %v, want 1", got)
			}
		})
	}
}

// TestConcurrentChurn hammers a limiter from several IPs and checks the caps
// are never exceeded and every count returns to zero.
func TestConcurrentChurn(t *testing.T) {
	const maxConns, perIP = 6, 2
	l, m := newTestLimiter(t, ConnLimits{MaxConns: maxConns, MaxConnsPerIP: perIP})
	ln := l.Listen(listenLoopback(t))

	var mu sync.Mutex
	active := map[string]int{}
	total, maxTotal := 0, 0
	maxPerIP := 0
	var served atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ip := c.RemoteAddr().(*net.TCPAddr).IP.String()
			mu.Lock()
			active[ip]++
			total++
			maxTotal = max(maxTotal, total)
			maxPerIP = max(maxPerIP, active[ip])
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1)
				if _, err := io.ReadFull(c, buf); err == nil {
					_, _ = c.Write(buf)
					served.Add(1)
				}
				mu.Lock()
				active[ip]--
				total--
				mu.Unlock()
				c.Close()
				c.Close()
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 4*waitLimit)
	defer cancel()
	var clients sync.WaitGroup
	for i := range 8 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%4))}}
			for range 25 {
				c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
				if errors.Is(err, syscall.ECONNRESET) {
					continue // rejected over the per-IP cap before connect returned
				}
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(2 * waitLimit))
				_, _ = c.Write([]byte{'x'})
				var b [1]byte
				_, _ = c.Read(b[:]) // echo, or EOF/reset when over the per-IP cap
				c.Close()
			}
		}()
	}
	clients.Wait()
	waitFor(t, "all connections released", gaugeIs(m, 0))
	ln.Close()
	wg.Wait()

	if maxTotal > maxConns {
		t.Fatalf("saw %d concurrent connections, cap %d", maxTotal, maxConns)
	}
	if maxPerIP > perIP {
		t.Fatalf("saw %d concurrent connections from one IP, cap %d", maxPerIP, perIP)
	}
	if served.Load() == 0 {
		t.Fatal("no connection was served")
	}
	rejected := testutil.MetricValue(m.rejected.WithLabelValues(ReasonPerIP))
	if int(served.Load())+int(rejected) > 200 || served.Load() < 1 {
		t.Fatalf("served %d + rejected %v out of 200 dials", served.Load(), rejected)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.perIP) != 0 || len(l.slots) != 0 || l.idleHead != nil {
		t.Fatalf("leaked state: perIP=%v slots=%d idle=%v", l.perIP, len(l.slots), l.idleHead != nil)
	}
}

func TestPeerKey(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	cases := []struct {
		addr net.Addr
		want string // "" = no key
	}{
		{tcp("192.0.2.1:1234"), "192.0.2.1"},
		{tcp("[::ffff:192.0.2.1]:1234"), "192.0.2.1"},
		{tcp("[2001:db8:1:2:aaaa::1]:1"), "2001:db8:1:2::"},
		{tcp("[2001:db8:1:2:ffff:ffff:ffff:ffff]:2"), "2001:db8:1:2::"},
		{tcp("[2001:db8:1:3::1]:1"), "2001:db8:1:3::"},
		{tcp("[fe80::1%eth0]:1"), "fe80::"},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, ""},
		{nil, ""},
	}
	for _, c := range cases {
		got, ok := peerKey(c.addr)
		gs := ""
		if ok {
			gs = got.String()
		}
		if gs != c.want {
			t.Errorf("peerKey(%v) = %q, want %q", c.addr, gs, c.want)
		}
	}
}

func TestValidateAndConstructors(t *testing.T) {
	bad := []ConnLimits{{MaxConns: -1}, {MaxConnsPerIP: -1}, {MaxConns: 2, MaxConnsPerIP: 3}}
	for _, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", b)
		}
		if _, err := NewLimiter(b, nil); err == nil {
			t.Errorf("NewLimiter(%+v) = nil error", b)
		}
	}
	for _, g := range []ConnLimits{{}, {MaxConns: 10}, {MaxConnsPerIP: 3}, {MaxConns: 3, MaxConnsPerIP: 3}} {
		if err := g.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", g, err)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Listen with invalid limits did not panic")
			}
		}()
		Listen(listenLoopback(t), ConnLimits{MaxConns: -1}, nil)
	}()

	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("second NewMetrics on the same registry did not report the duplicate")
	}
}

func TestNilMetricsAndUnlimited(t *testing.T) {
	ln := Listen(listenLoopback(t), ConnLimits{}, nil)
	echoServer(t, ln)
	for i := range 3 {
		c := dialFrom(t, ln.Addr(), "127.0.0.1")
		expectEcho(t, c, string(rune('a'+i)))
	}
}

type fakeConn struct {
	net.Conn
	remote net.Addr
}

func (f *fakeConn) RemoteAddr() net.Addr { return f.remote }
func (f *fakeConn) Close() error         { return nil }

func BenchmarkAdmitRelease(b *testing.B) {
	m, _ := NewMetrics(nil)
	l, err := NewLimiter(ConnLimits{MaxConns: 1 << 16, MaxConnsPerIP: 1 << 10}, m)
	if err != nil {
		b.Fatal(err)
	}
	fc := &fakeConn{remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}}
	b.ReportAllocs()
	for b.Loop() {
		l.slots <- struct{}{}
		c := l.admit(fc)
		_ = c.Close()
	}
}
