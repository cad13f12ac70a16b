package upstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newH2CBackend serves HTTP/1.1 and HTTP/2 with prior knowledge on cleartext
// and records the protocol of the last request.
func newH2CBackend(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64) {
	var proto atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int64(r.ProtoMajor))
		handler(w, r)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &proto
}

func TestH2C(t *testing.T) {
	srv, proto := newH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}, H2C: true})
	for range 3 {
		if body, _, err := get(t, p, "/"); err != nil || body != "ok" {
			t.Fatalf("body %q err %v", body, err)
		}
		if proto.Load() != 2 {
			t.Fatalf("upstream saw HTTP/%d, want 2 (h2c)", proto.Load())
		}
	}
	p = newPool(t, Options{Targets: []Target{{URL: srv.URL}}})
	if _, _, err := get(t, p, "/"); err != nil || proto.Load() != 1 {
		t.Fatalf("without H2C: HTTP/%d err %v", proto.Load(), err)
	}
}

func TestH2CResponseHeaderTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv, _ := newH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}, H2C: true, ResponseHeaderTimeout: 100 * time.Millisecond})
	_, _, err := get(t, p, "/")
	mustKind(t, err, KindTimeout)
}

// echoUpgradeHandler accepts "Upgrade: echo", answers 101 and then echoes
// bytes on the raw connection.
func echoUpgradeHandler(t *testing.T) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
			_, _ = io.WriteString(w, "plain")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw) // echo until the client closes
	}
}

func TestUpgradePassesThrough(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		name := "http1"
		if h2c {
			name = "h2c-pool"
		}
		t.Run(name, func(t *testing.T) {
			backend, proto := newH2CBackend(t, echoUpgradeHandler(t))
			p := newPool(t, Options{Targets: []Target{{URL: backend.URL}}, H2C: h2c,
				OverallTimeout: 200 * time.Millisecond})
			var attemptCtx atomic.Value // context of the request the pool sent
			front := httptest.NewServer(&httputil.ReverseProxy{
				Rewrite: func(pr *httputil.ProxyRequest) {
					pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "placeholder.invalid", ""
				},
				Transport: p,
				ModifyResponse: func(resp *http.Response) error {
					attemptCtx.Store(resp.Request.Context())
					return nil
				},
			})
			defer front.Close()

			conn, err := net.Dial("tcp", front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || proto.Load() != 1 {
				t.Fatalf("status %d, upstream HTTP/%d", resp.StatusCode, proto.Load())
			}
			// Outlive the overall timeout: the upgraded connection must stay up.
			time.Sleep(400 * time.Millisecond)
			for _, msg := range []string{"ping\n", "pong\n"} {
				if _, err := io.WriteString(conn, msg); err != nil {
					t.Fatal(err)
				}
				line, err := br.ReadString('\n')
				if err != nil || line != msg {
					t.Fatalf("echo %q err %v", line, err)
				}
			}
			if err := attemptCtx.Load().(context.Context).Err(); err != nil {
				t.Fatalf("the upgraded exchange's context was canceled after 101: %v", err)
			}
			if p.targets[0].inflight.Load() != 1 {
				t.Fatalf("upgraded connection in-flight = %d, want 1", p.targets[0].inflight.Load())
			}
			conn.Close()
			waitFor(t, "upgraded connection released", func() bool {
				return p.targets[0].inflight.Load() == 0 && attemptCtx.Load().(context.Context).Err() != nil
			})

			// Ordinary requests on the same pool keep their protocol.
			if body, _, err := get(t, p, "/"); err != nil || body != "plain" || proto.Load() != map[bool]int64{false: 1, true: 2}[h2c] {
				t.Fatalf("plain request: %q HTTP/%d %v", body, proto.Load(), err)
			}
		})
	}
}
