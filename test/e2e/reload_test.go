package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const adminToken = "e2e-admin-token-0123456789abcdef0123456789"

// reloadConfig is generation gen of the config: the load route's request
// header X-Gen changes every time, and an extra route /extra<gen> exists on
// even generations only.
func reloadConfig(dir, upURL string, gen int) string {
	extra := ""
	if gen%2 == 0 {
		extra = fmt.Sprintf(`
  - name: extra%d
    match: {path: /extra%d}
    upstream: app
    auth: public
`, gen, gen)
	}
	return configText(`
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin:
  address: "127.0.0.1:0"
  token: "@TOKEN@"
upstreams:
  app: {targets: [{url: "@UP@"}]}
routes:
  - name: load
    match: {path: /load}
    upstream: app
    auth: public
    headers:
      request: {set: {X-Gen: "@GEN@"}}
      response: {set: {X-Gen-Seen: "@GEN@"}}
`+extra, dir, "TOKEN", adminToken, "UP", upURL, "GEN", fmt.Sprint(gen))
}

// TestReloadUnderLoad: 20 reloads (SIGHUP and POST /admin/reload
// alternating), each changing the config, during a bounded load test: zero
// failed requests, every change takes effect, the success counter says 20;
// then an invalid config is refused (422 / log line) and the old one keeps
// serving.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "app", nil)
	dir := t.TempDir()
	path := dir + "/sekisho.yaml"
	writeFileAtomic(t, path, []byte(reloadConfig(dir, up.URL, 0)))
	g := startGatewayFile(t, dir, path)
	base := g.URL("http")
	admin := "http://" + g.admin
	c := newClient(t)

	// The admin API refuses a missing or wrong token.
	resp, _ := do(t, c, "POST", admin+"/admin/reload", nil, nil)
	if resp.StatusCode != 401 {
		t.Errorf("POST /admin/reload without token: %d, want 401", resp.StatusCode)
	}
	resp, _ = do(t, c, "POST", admin+"/admin/reload", map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(adminToken))}, nil)
	if resp.StatusCode != 401 {
		t.Errorf("POST /admin/reload with a wrong token: %d, want 401", resp.StatusCode)
	}

	const (
		reloads    = 20
		workers    = 8
		maxReqs    = 50_000
		maxLoadFor = 15 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), maxLoadFor)
	defer cancel()
	var total, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	loadTr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers, ResponseHeaderTimeout: ioTimeout}
	defer loadTr.CloseIdleConnections()
	load := &http.Client{Transport: loadTr, Timeout: ioTimeout}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && total.Add(1) <= maxReqs {
				req, _ := newReq(context.Background(), "GET", base+"/load", nil)
				resp, err := load.Do(req)
				var msg string
				if err != nil {
					msg = err.Error()
				} else {
					_, rerr := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || rerr != nil {
						msg = fmt.Sprintf("status %d, body read error %v", resp.StatusCode, rerr)
					}
				}
				if msg != "" {
					failed.Add(1)
					failMu.Lock()
					if len(failures) < 10 {
						failures = append(failures, msg)
					}
					failMu.Unlock()
				}
			}
		}()
	}

	reloadStart := time.Now()
	for gen := 1; gen <= reloads && ctx.Err() == nil; gen++ {
		writeFileAtomic(t, path, []byte(reloadConfig(dir, up.URL, gen)))
		if gen%2 == 1 {
			from := countLines(g.stderr, `"msg":"config reloaded"`)
			g.signal(syscall.SIGHUP, false)
			if _, _, err := g.stderr.Wait(0, 10*time.Second, nthLine(`"msg":"config reloaded"`, from+1)); err != nil {
				t.Fatalf("reload %d (SIGHUP): no 'config reloaded' log line: %v", gen, err)
			}
		} else {
			resp, body := do(t, c, "POST", admin+"/admin/reload", map[string]string{"Authorization": "Bearer " + adminToken}, nil)
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"reloaded"`) {
				t.Fatalf("reload %d (POST /admin/reload): %d %s", gen, resp.StatusCode, body)
			}
		}
		// The change took effect: the response transform carries the new generation.
		resp, _ := do(t, c, "GET", base+"/load", nil, nil)
		if got := resp.Header.Get("X-Gen-Seen"); got != fmt.Sprint(gen) {
			t.Errorf("after reload %d: response X-Gen-Seen %q, want %d", gen, got, gen)
		}
		// Let the load run on this generation for a moment.
		time.Sleep(50 * time.Millisecond)
		// Routes appear and disappear with the generation.
		resp, _ = do(t, c, "GET", fmt.Sprintf("%s/extra%d", base, gen), nil, nil)
		if want := map[bool]int{true: 200, false: 404}[gen%2 == 0]; resp.StatusCode != want {
			t.Errorf("after reload %d: GET /extra%d = %d, want %d", gen, gen, resp.StatusCode, want)
		}
		if gen%2 == 1 && gen > 1 {
			resp, _ = do(t, c, "GET", fmt.Sprintf("%s/extra%d", base, gen-1), nil, nil)
			if resp.StatusCode != 404 {
				t.Errorf("after reload %d: route /extra%d of the previous generation still answers %d", gen, gen-1, resp.StatusCode)
			}
		}
	}
	reloadTook := time.Since(reloadStart)
	// Keep the load going a little after the last swap, then stop.
	select {
	case <-ctx.Done():
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	wg.Wait()
	n := min(total.Load(), maxReqs)
	t.Logf("%d reloads in %s; %d requests, %d failed", reloads, reloadTook.Round(time.Millisecond), n, failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across reloads; first: %q", failed.Load(), n, failures)
	}
	if n < 100 {
		t.Errorf("only %d requests ran during the reloads: the load test did not exercise anything", n)
	}
	// The upstream saw the last generation's request transform.
	if got := up.Last(t).Header.Get("X-Gen"); got != fmt.Sprint(reloads) {
		t.Errorf("upstream X-Gen %q after %d reloads, want %d", got, reloads, reloads)
	}
	m := g.metrics()
	if v := metricValue(m, `sekisho_config_reloads_total{result="success"}`); v != reloads {
		t.Errorf(`sekisho_config_reloads_total{result="success"} = %v, want %d`, v, reloads)
	}

	// An invalid config: refused, reason reported, old config keeps serving.
	bad := strings.Replace(reloadConfig(dir, up.URL, 99), "upstream: app", "upstream: nosuch", 1)
	writeFileAtomic(t, path, []byte(bad))
	resp, body := do(t, c, "POST", admin+"/admin/reload", map[string]string{"Authorization": "Bearer " + adminToken}, nil)
	if resp.StatusCode != 422 || !strings.Contains(string(body), "nosuch") {
		t.Errorf("invalid config via POST /admin/reload: %d %s; want 422 naming the problem", resp.StatusCode, body)
	}
	from := countLines(g.stderr, `config reload rejected`)
	g.signal(syscall.SIGHUP, false)
	if _, _, err := g.stderr.Wait(0, 10*time.Second, nthLine(`config reload rejected`, from+1)); err != nil {
		t.Errorf("invalid config via SIGHUP: no 'config reload rejected' log line: %v", err)
	}
	// A config with a YAML syntax error too.
	writeFileAtomic(t, path, []byte("version: 1\nroutes: [\n"))
	resp, _ = do(t, c, "POST", admin+"/admin/reload", map[string]string{"Authorization": "Bearer " + adminToken}, nil)
	if resp.StatusCode != 422 {
		t.Errorf("unparsable config via POST /admin/reload: %d, want 422", resp.StatusCode)
	}
	resp, _ = do(t, c, "GET", base+"/load", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Gen-Seen") != fmt.Sprint(reloads) {
		t.Errorf("after rejected reloads: GET /load = %d with X-Gen-Seen %q; want 200 from generation %d", resp.StatusCode, resp.Header.Get("X-Gen-Seen"), reloads)
	}
	m = g.metrics()
	if v := metricValue(m, `sekisho_config_reloads_total{result="failure"}`); v != 3 {
		t.Errorf(`sekisho_config_reloads_total{result="failure"} = %v, want 3`, v)
	}
	if v := metricValue(m, `sekisho_config_reloads_total{result="success"}`); v != reloads {
		t.Errorf(`after failures, sekisho_config_reloads_total{result="success"} = %v, want still %d`, v, reloads)
	}
	// A reload that needs a restart (listeners changed) is refused too.
	writeFileAtomic(t, path, []byte(strings.Replace(reloadConfig(dir, up.URL, 21), `address: "127.0.0.1:0"}]`, `address: "127.0.0.1:1"}]`, 1)))
	resp, body = do(t, c, "POST", admin+"/admin/reload", map[string]string{"Authorization": "Bearer " + adminToken}, nil)
	if resp.StatusCode != 422 || !strings.Contains(string(body), "restart") {
		t.Errorf("listener change via reload: %d %s; want 422 saying a restart is needed", resp.StatusCode, body)
	}
	// So is one that changes how revocations arrive (a Redis connection).
	writeFileAtomic(t, path, []byte(reloadConfig(dir, up.URL, 21)+"revocation:\n  redis: {address: 127.0.0.1:6379}\n"))
	resp, body = do(t, c, "POST", admin+"/admin/reload", map[string]string{"Authorization": "Bearer " + adminToken}, nil)
	if resp.StatusCode != 422 || !strings.Contains(string(body), "revocation changed") {
		t.Errorf("revocation change via reload: %d %s; want 422 saying revocation needs a restart", resp.StatusCode, body)
	}
	_ = os.Remove(path + ".tmp")
}

func countLines(l *lineLog, substr string) int {
	n := 0
	for _, s := range l.Lines() {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// nthLine matches the n-th line (1-based) containing substr.
func nthLine(substr string, n int) func(string) bool {
	seen := 0
	return func(s string) bool {
		if strings.Contains(s, substr) {
			seen++
		}
		return seen >= n
	}
}
