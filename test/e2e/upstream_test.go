package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestUpstreamFailures: 502 when the upstream is down, 503 once every target
// is ejected, 504 on a response-header timeout — all problem+json with the
// request ID and no internal address; GETs are retried on another target,
// POSTs are not.
func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	live := newUpstream(t, "live", nil)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		w.WriteHeader(200)
	})
	dead1, dead2, dead3 := deadAddr(t), deadAddr(t), deadAddr(t)
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  down:
    targets: [{url: "http://@DEAD1@"}]
    retries: 0
    passive_health: {max_failures: 0}
  ejected:
    targets: [{url: "http://@DEAD2@"}]
    retries: 0
    passive_health: {max_failures: 1, eject_for: 10m}
  slow:
    targets: [{url: "@SLOW@"}]
    response_header_timeout: 300ms
    retries: 0
    passive_health: {max_failures: 0}
  mixed:
    targets: [{url: "http://@DEAD3@"}, {url: "@LIVE@"}]
    retries: 1
    passive_health: {max_failures: 0}
  mixedpost:
    targets: [{url: "http://@DEAD3@"}, {url: "@LIVE@"}]
    retries: 1
    passive_health: {max_failures: 0}
routes:
  - {name: down, match: {path: /down}, upstream: down, auth: public}
  - {name: ejected, match: {path: /ejected}, upstream: ejected, auth: public}
  - {name: slow, match: {path: /slow}, upstream: slow, auth: public}
  - {name: mixed, match: {path: /mixed}, upstream: mixed, auth: public}
  - {name: mixedpost, match: {path: /mixedpost}, upstream: mixedpost, auth: public}
`, "DEAD1", dead1, "DEAD2", dead2, "DEAD3", dead3, "SLOW", slow.URL, "LIVE", live.URL)
	c := newClient(t)
	base := g.URL("http")

	noLeak := func(t *testing.T, body []byte, addrs ...string) {
		t.Helper()
		for _, a := range addrs {
			_, port, _ := strings.Cut(a, ":")
			if strings.Contains(string(body), port) {
				t.Errorf("problem body leaks the upstream port %s: %s", port, body)
			}
		}
	}

	t.Run("502 upstream down", func(t *testing.T) {
		resp, body := do(t, c, "GET", base+"/down/x", nil, nil)
		problemDoc(t, resp, body, 502, true)
		noLeak(t, body, dead1)
	})
	t.Run("503 all targets ejected", func(t *testing.T) {
		resp, body := do(t, c, "GET", base+"/ejected/x", nil, nil)
		problemDoc(t, resp, body, 502, true) // the failure that ejects the only target
		resp, body = do(t, c, "GET", base+"/ejected/x", nil, nil)
		problemDoc(t, resp, body, 503, true)
		noLeak(t, body, dead2)
	})
	t.Run("504 response header timeout", func(t *testing.T) {
		start := time.Now()
		resp, body := do(t, c, "GET", base+"/slow/x", nil, nil)
		problemDoc(t, resp, body, 504, true)
		noLeak(t, body, hostPort(t, slow.URL))
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("504 took %s; the response-header timeout is 300ms", d)
		}
	})
	t.Run("GET retried on the live target", func(t *testing.T) {
		before := live.Count()
		for i := range 6 {
			resp, body := do(t, c, "GET", base+"/mixed/x", nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %d to a pool with one dead and one live target: %d %s", i+1, resp.StatusCode, body)
			}
		}
		if n := live.Count() - before; n != 6 {
			t.Errorf("live target received %d GETs, want 6", n)
		}
		// The access log is written in batches (every ~100 ms): wait for it.
		if _, _, err := g.stdout.Wait(0, 5*time.Second, func(s string) bool {
			return strings.Contains(s, `"route":"mixed"`) && strings.Contains(s, `"attempts":2`)
		}); err != nil {
			t.Errorf("no access log line shows attempts=2 for route mixed: the dead target was never tried first? (%v)", err)
		}
	})
	t.Run("POST not retried", func(t *testing.T) {
		before := live.Count()
		codes := map[int]int{}
		for range 4 {
			resp, body := do(t, c, "POST", base+"/mixedpost/x", map[string]string{"Content-Type": "text/plain"}, strings.NewReader("order=1"))
			codes[resp.StatusCode]++
			if resp.StatusCode != 200 {
				problemDoc(t, resp, body, 502, true)
			}
		}
		// Round robin over two targets: two POSTs go to the dead one and
		// must fail rather than be replayed on the live one.
		if codes[502] != 2 || codes[200] != 2 {
			t.Errorf("4 POSTs round-robined over a dead and a live target: %v; want 2×200 and 2×502 (no retry)", codes)
		}
		if n := live.Count() - before; n != codes[200] {
			t.Errorf("live target received %d POSTs, but %d succeeded", n, codes[200])
		}
	})
	m := g.metrics()
	if !strings.Contains(m, `sekisho_proxy_errors_total{kind="connect",route="down"}`) {
		t.Errorf("metrics lack sekisho_proxy_errors_total for route down")
	}
}
