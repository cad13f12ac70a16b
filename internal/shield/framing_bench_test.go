package shield

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// benchRequest is a 1 KiB keep-alive request with a Content-Length body.
var benchRequest = func() string {
	head := "POST /api/v1/items HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench/1.0\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: %04d\r\n\r\n"
	body := 1024 - len(fmt.Sprintf(head, 0))
	return fmt.Sprintf(head, body) + strings.Repeat("b", body)
}()

// requestConn serves an endless keep-alive stream of req, one request per
// Read at most, as a client waiting for each response delivers it.
type requestConn struct {
	scriptConn
	req string
	off int
}

func (c *requestConn) Read(b []byte) (int, error) {
	n := copy(b, c.req[c.off:])
	c.off = (c.off + n) % len(c.req)
	return n, nil
}

// BenchmarkGuardKeepAlive measures the guard on 1 KiB keep-alive requests
// with Content-Length bodies.
//
//   - mem/plain vs mem/guard: reading the request stream from an in-memory
//     connection with a 4 KiB buffer (as net/http's bufio.Reader does),
//     without and with the guard; the difference is the guard's CPU cost per
//     request.
//   - tcp/plain vs tcp/guard: one client doing sequential requests against
//     http.Server over loopback, without and with GuardListener.
func BenchmarkGuardKeepAlive(b *testing.B) {
	reqLen := len(benchRequest)
	readAll := func(b *testing.B, c net.Conn) {
		buf := make([]byte, 4096)
		b.SetBytes(int64(reqLen))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			for got := 0; got < reqLen; {
				n, err := c.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
		}
	}
	b.Run("mem/plain", func(b *testing.B) {
		readAll(b, &requestConn{req: benchRequest})
	})
	b.Run("mem/guard", func(b *testing.B) {
		cfg := newGuardConfig(FramingOptions{}, true)
		readAll(b, newGuardConn(&requestConn{req: benchRequest}, cfg, true))
	})

	for _, guarded := range []bool{false, true} {
		name := map[bool]string{false: "tcp/plain", true: "tcp/guard"}[guarded]
		b.Run(name, func(b *testing.B) {
			var ln net.Listener
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			if guarded {
				ln = GuardListener(ln, FramingOptions{})
			}
			srv := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Length", "2")
					_, _ = io.WriteString(w, "ok")
				}),
				ReadHeaderTimeout: 10 * time.Second,
				ErrorLog:          log.New(io.Discard, "", 0),
			}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			req := []byte(benchRequest)
			const respLen = 2
			b.SetBytes(int64(reqLen))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				if n, _ := io.Copy(io.Discard, resp.Body); n != respLen || resp.StatusCode != 200 {
					b.Fatalf("response %d, %d bytes", resp.StatusCode, n)
				}
				resp.Body.Close()
			}
		})
	}
}
