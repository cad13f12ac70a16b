package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBodyAndHeaderLimits: 413 for a body over the route's limit (declared
// or chunked), 431 for a header block over max_header_bytes; both as
// problem+json, and nothing oversized reaches the upstream.
func TestBodyAndHeaderLimits(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  max_header_bytes: 4KiB
  max_body_bytes: 64KiB
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}], retries: 0}
routes:
  - name: small
    match: {path: /small}
    upstream: app
    max_body_bytes: 1KiB
    auth: public
  - name: default
    match: {path: /}
    upstream: app
    auth: public
`, "UP", up.URL)
	addr := g.Addr()
	big := strings.Repeat("a", 2048)

	t.Run("declared length over limit", func(t *testing.T) {
		before := up.Count()
		resp, body, _, _ := rawExchange(t, addr, fmt.Sprintf("POST /small/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
		problemDoc(t, resp, body, 413, true)
		if up.Count() != before {
			t.Errorf("upstream received a request whose declared body is over the limit")
		}
	})
	t.Run("chunked over limit", func(t *testing.T) {
		before := up.Count()
		chunked := fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 600, big[:600], 600, big[:600])
		resp, body, _, _ := rawExchange(t, addr, "POST /small/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked)
		problemDoc(t, resp, body, 413, true)
		for _, r := range up.Requests()[before:] {
			if r.BodyErr == nil && len(r.Body) > 1024 {
				t.Errorf("upstream received a complete %d-byte body over the 1 KiB limit", len(r.Body))
			}
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		resp, body, _, _ := rawExchange(t, addr, fmt.Sprintf("POST /small/ok HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n%s", big[:1024]))
		if resp.StatusCode != 200 {
			t.Fatalf("1 KiB body on a 1 KiB route: status %d body %s", resp.StatusCode, body)
		}
		if got := up.Last(t); len(got.Body) != 1024 {
			t.Errorf("upstream body %d bytes, want 1024", len(got.Body))
		}
		// Chunked within the limit passes too.
		resp, body, _, _ = rawExchange(t, addr, "POST /small/ok HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n200\r\n"+big[:512]+"\r\n0\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("512-byte chunked body: status %d body %s", resp.StatusCode, body)
		}
		// The other route has the server default (64 KiB).
		resp, _, _, _ = rawExchange(t, addr, fmt.Sprintf("POST /other HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(big), big))
		if resp.StatusCode != 200 {
			t.Fatalf("2 KiB body on the default route: status %d", resp.StatusCode)
		}
	})
	t.Run("header block over max_header_bytes", func(t *testing.T) {
		before := up.Count()
		resp, body, _, _ := rawExchange(t, addr, "GET /x HTTP/1.1\r\nHost: gw.test\r\nX-Big: "+strings.Repeat("b", 8<<10)+"\r\n\r\n")
		problemDoc(t, resp, body, 431, false)
		// Many small headers adding up over the limit.
		var many strings.Builder
		for i := range 200 {
			fmt.Fprintf(&many, "X-H%d: %s\r\n", i, strings.Repeat("c", 40))
		}
		resp, body, _, _ = rawExchange(t, addr, "GET /x HTTP/1.1\r\nHost: gw.test\r\n"+many.String()+"\r\n")
		problemDoc(t, resp, body, 431, false)
		if up.Count() != before {
			t.Errorf("upstream received a request whose header block is over the limit")
		}
		// Well under the limit passes.
		resp, _, _, _ = rawExchange(t, addr, "GET /x HTTP/1.1\r\nHost: gw.test\r\nX-Big: "+strings.Repeat("b", 2<<10)+"\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Errorf("2 KiB header under a 4 KiB limit: status %d, want 200", resp.StatusCode)
		}
	})
}

// TestConnectionsPerIP: with max_connections_per_ip 3, a fourth connection
// from 127.0.0.1 is closed at once while 127.0.0.2 still gets through.
func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  max_connections_per_ip: 3
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - name: app
    match: {path: /}
    upstream: app
    auth: public
`, "UP", up.URL)
	addr := g.Addr()

	dialFrom := func(src string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		return d.Dial("tcp", addr)
	}
	// request sends one keep-alive request on conn and reads the answer.
	request := func(conn net.Conn, br *bufio.Reader) (int, error) {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: gw.test\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, _, err := readResponse(br)
		if err != nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 3 {
		c, err := dialFrom("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if st, err := request(c, bufio.NewReader(c)); err != nil || st != 200 {
			t.Fatalf("connection %d of 3 from 127.0.0.1: status %d err %v; want 200", i+1, st, err)
		}
	}
	// The fourth is accepted by the kernel and then closed by the gateway.
	c4, err := dialFrom("127.0.0.1")
	if err == nil {
		defer c4.Close()
		if st, err := request(c4, bufio.NewReader(c4)); err == nil {
			t.Fatalf("4th connection from 127.0.0.1 was served (status %d); want it closed", st)
		}
	}
	// Another client IP is unaffected.
	c5, err := dialFrom("127.0.0.2")
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	defer c5.Close()
	if st, err := request(c5, bufio.NewReader(c5)); err != nil || st != 200 {
		t.Fatalf("connection from 127.0.0.2 while 127.0.0.1 is at its cap: status %d err %v; want 200", st, err)
	}
	// Releasing one slot lets 127.0.0.1 in again.
	held[0].Close()
	held = held[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		c, err := dialFrom("127.0.0.1")
		if err == nil {
			st, rerr := request(c, bufio.NewReader(c))
			if rerr == nil && st == 200 {
				held = append(held, c)
				break
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			t.Fatal("127.0.0.1 could not connect again after closing one of its connections")
		case <-time.After(100 * time.Millisecond):
		}
	}
	m := g.metrics()
	if v := metricValue(m, `sekisho_connections_rejected_total{reason="per_ip"}`); v < 1 {
		t.Errorf(`sekisho_connections_rejected_total{reason="per_ip"} = %v, want >= 1`, v)
	}
}

// TestSlowloris: a client trickling header bytes is cut after
// read_header_timeout while a normal client keeps being served.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  read_header_timeout: 1s
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - name: app
    match: {path: /}
    upstream: app
    auth: public
`, "UP", up.URL)
	addr := g.Addr()
	const (
		slowConns = 20
		timeout   = time.Second
		margin    = 4 * time.Second // generous: a loaded 2-core machine
	)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Normal client: sequential requests until the slow clients are done.
	var okCount, failCount atomic.Int64
	var worst atomic.Int64
	normalDone := make(chan struct{})
	stopNormal := make(chan struct{})
	c := newClient(t)
	go func() {
		defer close(normalDone)
		for i := 0; i < 2000; i++ {
			select {
			case <-stopNormal:
				return
			case <-ctx.Done():
				return
			default:
			}
			start := time.Now()
			req, _ := newReq(ctx, "GET", "http://"+addr+"/normal", nil)
			resp, err := c.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			d := time.Since(start)
			if err != nil || resp.StatusCode != 200 {
				failCount.Add(1)
			} else {
				okCount.Add(1)
			}
			for {
				w := worst.Load()
				if int64(d) <= w || worst.CompareAndSwap(w, int64(d)) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	type result struct {
		closedAfter time.Duration
		err         error
	}
	results := make(chan result, slowConns)
	var wg sync.WaitGroup
	for range slowConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer conn.Close()
			start := time.Now()
			closed := make(chan struct{})
			go func() {
				// The server closes the connection (possibly after a 408).
				_ = conn.SetReadDeadline(time.Now().Add(timeout + margin + time.Second))
				_, _ = io.Copy(io.Discard, conn)
				close(closed)
			}()
			head := "GET /slow HTTP/1.1\r\nHost: gw.test\r\n" + strings.Repeat("X-Slow: y\r\n", 100)
			for i := 0; i < len(head); i++ {
				if _, err := conn.Write([]byte{head[i]}); err != nil {
					break
				}
				select {
				case <-closed:
					results <- result{closedAfter: time.Since(start)}
					return
				case <-time.After(50 * time.Millisecond):
				}
				if time.Since(start) > timeout+margin {
					break
				}
			}
			select {
			case <-closed:
				results <- result{closedAfter: time.Since(start)}
			case <-time.After(time.Second):
				results <- result{err: errors.New("slow connection still open")}
			}
		}()
	}
	wg.Wait()
	close(stopNormal)
	<-normalDone
	close(results)
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("slow client: %v", r.err)
		case r.closedAfter < timeout/2:
			t.Errorf("slow client cut after %s, before the 1s header timeout could apply", r.closedAfter)
		case r.closedAfter > timeout+margin:
			t.Errorf("slow client cut only after %s (header timeout 1s)", r.closedAfter)
		}
	}
	if n := up.Count(); n != int(okCount.Load()) {
		t.Errorf("upstream received %d requests, the normal client got %d answers: a slow request reached the upstream?", n, okCount.Load())
	}
	t.Logf("normal client: %d ok, %d failed, slowest %s", okCount.Load(), failCount.Load(), time.Duration(worst.Load()))
	if failCount.Load() != 0 {
		t.Errorf("normal client had %d failed requests while slow clients were connected", failCount.Load())
	}
	// Throughput rather than a tight latency bound: had the slow clients
	// stalled the server, the normal client would have managed one or two
	// requests in the ~1s the slow clients were connected (it sleeps 20ms
	// between requests, so ~40 is typical).
	if okCount.Load() < 5 {
		t.Errorf("normal client completed only %d requests while slow clients were connected", okCount.Load())
	}
	if w := time.Duration(worst.Load()); w >= timeout+margin {
		t.Errorf("normal client's slowest request took %s (header timeout 1s): slow clients slowed it down", w)
	}
}

// TestGlobalLimitAndIdleTimeout: an idle keep-alive connection is closed
// after idle_timeout; at max_connections the next client waits (it is not
// served) until a connection closes, then it is served.
func TestGlobalLimitAndIdleTimeout(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  idle_timeout: 1s
  max_connections: 2
  max_connections_per_ip: 2
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - {name: app, match: {path: /}, upstream: app, auth: public}
`, "UP", up.URL)
	addr := g.Addr()
	get := "GET /x HTTP/1.1\r\nHost: gw.test\r\n\r\n"

	t.Run("idle timeout", func(t *testing.T) {
		resp, _, conn, br := rawExchange(t, addr, get)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		start := time.Now()
		if !connClosed(conn, br, 5*time.Second) {
			t.Fatalf("idle keep-alive connection still open 5s after its request (idle_timeout 1s)")
		}
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("idle connection closed after %s, before idle_timeout 1s", d)
		}
		conn.Close()
	})

	t.Run("global cap", func(t *testing.T) {
		// Two connections that have not sent anything yet are not idle:
		// they hold both slots.
		var held []net.Conn
		for range 2 {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		time.Sleep(200 * time.Millisecond) // let the gateway accept both
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		third, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("third client: dial: %v (the kernel backlog should take it)", err)
		}
		defer third.Close()
		if _, err := io.WriteString(third, get); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(third)
		_ = third.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		if _, err := br.ReadByte(); err == nil {
			t.Fatalf("third connection was served while max_connections (2) were open")
		}
		held[0].Close()
		_ = third.SetReadDeadline(time.Now().Add(ioTimeout))
		resp, _, err := readResponse(br)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("third connection after a slot freed: %v", err)
		}
	})
}
