package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown: after SIGTERM an in-flight request (upstream takes
// 1 s) completes with 200, new connections are refused, and the process
// exits 0 within shutdown_timeout.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	up := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "finished")
	})
	const shutdownTimeout = 5 * time.Second
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  shutdown_timeout: 5s
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - {name: app, match: {path: /}, upstream: app, auth: public}
`, "UP", up.URL)
	addr := g.Addr()
	c := newClient(t)

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
		resp, err := c.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-arrived:
	case <-time.After(ioTimeout):
		t.Fatal("the slow request never reached the upstream")
	}
	sigAt := time.Now()
	g.signal(syscall.SIGTERM, true)

	// New connections are refused once the listener is closed (well before
	// the in-flight request ends).
	refused := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		conn.Close()
	}
	if !refused {
		t.Errorf("new connections were still accepted 3s after SIGTERM")
	}

	select {
	case r := <-done:
		if r.err != nil || r.status != 200 || r.body != "finished" {
			t.Errorf("in-flight request across SIGTERM: status %d body %q err %v; want 200 finished", r.status, r.body, r.err)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatal("in-flight request did not complete")
	}
	code, exited := g.waitExit(shutdownTimeout + 5*time.Second)
	if !exited {
		t.Fatalf("process still running %s after SIGTERM (shutdown_timeout 5s)", time.Since(sigAt).Round(time.Millisecond))
	}
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\nstderr:\n%s", code, tail(g.stderr.Lines(), 20))
	}
	if d := time.Since(sigAt); d > shutdownTimeout+2*time.Second {
		t.Errorf("exit took %s after SIGTERM, beyond shutdown_timeout 5s", d)
	}
	if _, _, err := g.stderr.Wait(0, time.Second, func(s string) bool { return strings.Contains(s, `"msg":"sekisho stopped"`) }); err != nil {
		t.Errorf("no 'sekisho stopped' log line")
	}
}

// TestShutdownDrainTimeout: a request longer than shutdown_timeout does not
// keep the process alive: it exits soon after the drain timeout.
func TestShutdownDrainTimeout(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	up := newUpstream(t, "stuck", func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
		}
	})
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  shutdown_timeout: 1s
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - {name: app, match: {path: /}, upstream: app, auth: public}
`, "UP", up.URL)
	c := newClient(t)
	go func() {
		req, _ := http.NewRequest("GET", g.URL("http")+"/stuck", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-arrived:
	case <-time.After(ioTimeout):
		t.Fatal("the request never reached the upstream")
	}
	sigAt := time.Now()
	g.signal(syscall.SIGTERM, true)
	code, exited := g.waitExit(8 * time.Second)
	if !exited {
		t.Fatalf("process still running 8s after SIGTERM with shutdown_timeout 1s")
	}
	t.Logf("exit %d after %s", code, time.Since(sigAt).Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit code %d, want 0 (a drain timeout is a normal stop)", code)
	}
}
