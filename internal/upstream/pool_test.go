package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/testutil"
)

func TestRoundRobinWeights(t *testing.T) {
	a, b, c := newCountingBackend(t, "a"), newCountingBackend(t, "b"), newCountingBackend(t, "c")
	p := newPool(t, Options{Targets: []Target{{URL: a.URL, Weight: 5}, {URL: b.URL}, {URL: c.URL}}})
	var seq strings.Builder
	for range 70 {
		body, info, err := get(t, p, "/")
		if err != nil {
			t.Fatal(err)
		}
		if info.Attempts != 1 || info.Target != strings.TrimSuffix(map[string]string{"a": a.URL, "b": b.URL, "c": c.URL}[body], "/") {
			t.Fatalf("info %+v for body %q", info, body)
		}
		seq.WriteString(body)
	}
	if a.hits.Load() != 50 || b.hits.Load() != 10 || c.hits.Load() != 10 {
		t.Fatalf("hits a=%d b=%d c=%d, want 50/10/10", a.hits.Load(), b.hits.Load(), c.hits.Load())
	}
	// Smooth WRR interleaves: the 7-long cycle is a a b a c a a.
	if got, want := seq.String(), strings.Repeat("aabacaa", 10); got != want {
		t.Fatalf("sequence %s, want %s", got, want)
	}
}

func TestRoundRobinEqual(t *testing.T) {
	a, b := newCountingBackend(t, "a"), newCountingBackend(t, "b")
	p := newPool(t, Options{Targets: []Target{{URL: a.URL}, {URL: b.URL}}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, _, err := get(t, p, "/"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if a.hits.Load() != 100 || b.hits.Load() != 100 {
		t.Fatalf("hits a=%d b=%d, want 100/100", a.hits.Load(), b.hits.Load())
	}
}

func TestLeastOutstanding(t *testing.T) {
	releaseSlow, releaseFast := make(chan struct{}), make(chan struct{})
	var slowHits, fastHits atomic.Int64
	blocking := func(hits *atomic.Int64, release chan struct{}, name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	slow := blocking(&slowHits, releaseSlow, "slow")
	fast := blocking(&fastHits, releaseFast, "fast")
	p := newPool(t, Options{Balancing: LeastOutstanding, Targets: []Target{{URL: slow.URL}, {URL: fast.URL}}})

	// Six concurrent slow requests spread 3/3: each pick sees the loads.
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = get(t, p, "/")
		}()
		waitFor(t, "request to arrive", func() bool { return slowHits.Load()+fastHits.Load() == int64(i+1) })
	}
	if slowHits.Load() != 3 || fastHits.Load() != 3 {
		t.Fatalf("concurrent requests spread %d/%d, want 3/3", slowHits.Load(), fastHits.Load())
	}
	// The fast target finishes its work; the slow one stays busy with 3.
	close(releaseFast)
	waitFor(t, "fast requests to finish", func() bool { return p.targets[1].inflight.Load() == 0 })
	if got := p.targets[0].inflight.Load(); got != 3 {
		t.Fatalf("slow target in-flight = %d, want 3", got)
	}
	st := p.Targets()
	if st[0].InFlight != 3 || st[1].InFlight != 0 {
		t.Fatalf("status in-flight %d/%d", st[0].InFlight, st[1].InFlight)
	}
	// Every new request goes to the idle target (round robin would send
	// every other one to the busy target, where it would block).
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var info RequestInfo
		resp, err := p.RoundTrip(outReq(t, WithRequestInfo(ctx, &info), http.MethodGet, "/", nil))
		if err != nil {
			cancel()
			t.Fatalf("least outstanding sent a request to the busy target: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if string(b) != "fast" {
			t.Fatalf("body %q", b)
		}
	}
	if fastHits.Load() != 13 || slowHits.Load() != 3 {
		t.Fatalf("fast %d slow %d", fastHits.Load(), slowHits.Load())
	}
	close(releaseSlow)
	wg.Wait()
	waitFor(t, "slow requests to finish", func() bool { return p.targets[0].inflight.Load() == 0 })
}

func TestLeastOutstandingTiesRotate(t *testing.T) {
	a, b, c := newCountingBackend(t, "a"), newCountingBackend(t, "b"), newCountingBackend(t, "c")
	p := newPool(t, Options{Balancing: LeastOutstanding, Targets: []Target{{URL: a.URL}, {URL: b.URL}, {URL: c.URL}}})
	for range 30 {
		if _, _, err := get(t, p, "/"); err != nil {
			t.Fatal(err)
		}
	}
	if a.hits.Load() != 10 || b.hits.Load() != 10 || c.hits.Load() != 10 {
		t.Fatalf("sequential requests must rotate over idle targets: %d %d %d", a.hits.Load(), b.hits.Load(), c.hits.Load())
	}
}

func TestRetryGETGoesToOtherTarget(t *testing.T) {
	live := newCountingBackend(t, "live")
	reg := prometheus.NewPedanticRegistry()
	p := newPool(t, Options{Name: "api", Registerer: reg, Targets: []Target{{URL: deadURL(t)}, {URL: live.URL}},
		PassiveHealth: PassiveHealth{MaxFailures: -1}})
	retried := 0
	for range 10 {
		body, info, err := get(t, p, "/x")
		if err != nil || body != "live" {
			t.Fatalf("GET must be retried on the live target: body %q err %v", body, err)
		}
		if info.Target != strings.TrimSuffix(live.URL, "/") {
			t.Fatalf("info.Target = %q", info.Target)
		}
		if info.Attempts == 2 {
			retried++
		}
	}
	if retried != 5 || live.hits.Load() != 10 {
		t.Fatalf("retried %d (want 5, every other pick is the dead target), live hits %d", retried, live.hits.Load())
	}
	if got := testutil.MetricValue(p.m.retries); got != 5 {
		t.Fatalf("retries_total = %v", got)
	}
	if got := testutil.MetricValue(p.m.errors[KindConnect]); got != 5 {
		t.Fatalf("errors_total{kind=connect} = %v", got)
	}
}

func TestRetryPUTWithReplayableBody(t *testing.T) {
	var got atomic.Value
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
	}))
	defer live.Close()
	p := newPool(t, Options{Targets: []Target{{URL: deadURL(t)}, {URL: live.URL}}})
	req := outReq(t, context.Background(), http.MethodPut, "/", strings.NewReader("payload")) // GetBody set
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Load() != "payload" {
		t.Fatalf("replayed body = %q", got.Load())
	}
}

func TestNoRetryForPOST(t *testing.T) {
	live := newCountingBackend(t, "live")
	p := newPool(t, Options{Targets: []Target{{URL: deadURL(t)}, {URL: live.URL}}, Retries: 5,
		PassiveHealth: PassiveHealth{MaxFailures: -1}})
	var info RequestInfo
	ctx := WithRequestInfo(context.Background(), &info)
	_, err := p.RoundTrip(outReq(t, ctx, http.MethodPost, "/", strings.NewReader("x")))
	e := mustKind(t, err, KindConnect)
	if e.Attempts != 1 || info.Attempts != 1 || live.hits.Load() != 0 {
		t.Fatalf("POST was retried: attempts %d info %+v live hits %d", e.Attempts, info, live.hits.Load())
	}
	if !strings.HasPrefix(e.Target, "http://127.0.0.1:") || e.Upstream != "test" {
		t.Fatalf("error fields %+v", e)
	}
	// A GET whose body cannot be replayed is not retried either.
	p = newPool(t, Options{Targets: []Target{{URL: deadURL(t)}, {URL: live.URL}}, Retries: 5,
		PassiveHealth: PassiveHealth{MaxFailures: -1}})
	req := outReq(t, ctx, http.MethodGet, "/", io.NopCloser(strings.NewReader("x")))
	req.ContentLength = 1
	_, err = p.RoundTrip(req)
	if e := mustKind(t, err, KindConnect); e.Attempts != 1 {
		t.Fatalf("GET with a one-shot body was retried (%d attempts)", e.Attempts)
	}
}

func TestRetryOnConnectionClosedBeforeResponse(t *testing.T) {
	closer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = c.Close()
		}
	}))
	defer closer.Close()
	live := newCountingBackend(t, "live")
	p := newPool(t, Options{Targets: []Target{{URL: closer.URL}, {URL: live.URL}}})
	body, info, err := get(t, p, "/")
	if err != nil || body != "live" || info.Attempts != 2 {
		t.Fatalf("body %q info %+v err %v", body, info, err)
	}
	p = newPool(t, Options{Targets: []Target{{URL: closer.URL}, {URL: live.URL}}})
	if e := mustKind(t, nilErr(p.RoundTrip(outReq(t, context.Background(), http.MethodPatch, "/", nil))), KindProtocol); e.Attempts != 1 {
		t.Fatalf("PATCH was retried: %+v", e)
	}
	if live.hits.Load() != 1 {
		t.Fatalf("live hits %d, want 1 (only the retried GET)", live.hits.Load())
	}
}

func nilErr(resp *http.Response, err error) error {
	if resp != nil {
		resp.Body.Close()
	}
	return err
}

func TestNoRetryAfterResponseHeaderTimeout(t *testing.T) {
	block := make(chan struct{})
	var slowHits atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	live := newCountingBackend(t, "live")
	p := newPool(t, Options{Targets: []Target{{URL: slow.URL}, {URL: live.URL}}, ResponseHeaderTimeout: 100 * time.Millisecond})
	start := time.Now()
	_, info, err := get(t, p, "/")
	e := mustKind(t, err, KindTimeout)
	if !e.Timeout() || info.Attempts != 1 || live.hits.Load() != 0 || slowHits.Load() != 1 {
		t.Fatalf("header timeout must not be retried: info %+v live %d slow %d", info, live.hits.Load(), slowHits.Load())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestOverallTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/headers" {
			select {
			case <-block:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "first")
		http.NewResponseController(w).Flush()
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}, OverallTimeout: 200 * time.Millisecond,
		PassiveHealth: PassiveHealth{MaxFailures: -1}})

	// Timeout while reading the body: the header arrived, the body stalls.
	resp, err := p.RoundTrip(outReq(t, context.Background(), http.MethodGet, "/body", nil))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first chunk %q %v", buf, err)
	}
	_, err = io.ReadAll(resp.Body)
	mustKind(t, err, KindTimeout)
	resp.Body.Close()

	// Timeout before the header (response-header timeout is longer).
	_, err = p.RoundTrip(outReq(t, context.Background(), http.MethodGet, "/headers", nil))
	if e := mustKind(t, err, KindTimeout); !errors.Is(e, errOverallTimeout) {
		t.Fatalf("want overall timeout cause, got %v", e)
	}
	if got := p.targets[0].inflight.Load(); got != 0 {
		t.Fatalf("in-flight leak: %d", got)
	}
}

func TestCallerCancelIsNotAFailure(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}, PassiveHealth: PassiveHealth{MaxFailures: 1}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.RoundTrip(outReq(t, ctx, http.MethodGet, "/", nil))
	mustKind(t, err, KindTimeout) // caller deadline: a timeout, 504
	ctx, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel2)
	_, err = p.RoundTrip(outReq(t, ctx, http.MethodGet, "/", nil))
	mustKind(t, err, KindCanceled)
	// Neither the caller's deadline nor its cancellation says anything about
	// the target: no failure recorded, no ejection.
	if n := p.targets[0].fails.Load(); n != 0 {
		t.Fatalf("fails = %d, want 0", n)
	}
}

func TestPassiveEjectionAndRecovery(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	var flakyHits atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flakyHits.Add(1)
		if broken.Load() {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = c.Close() // transport error: connection closed before response
			}
			return
		}
		_, _ = io.WriteString(w, "flaky")
	}))
	defer flaky.Close()
	good := newCountingBackend(t, "good")
	clock := newFakeClock()
	reg := prometheus.NewPedanticRegistry()
	p := newPool(t, Options{Targets: []Target{{URL: flaky.URL}, {URL: good.URL}}, Registerer: reg,
		PassiveHealth: PassiveHealth{MaxFailures: 2, EjectFor: 30 * time.Second}})
	p.now = clock.Now
	p.Start(context.Background())

	// Requests keep succeeding (GET retries on the good target) while the
	// flaky one collects its two failures and is ejected.
	for range 4 {
		if body, _, err := get(t, p, "/"); err != nil || body != "good" {
			t.Fatalf("body %q err %v", body, err)
		}
	}
	if flakyHits.Load() != 2 {
		t.Fatalf("flaky hits %d, want 2 before ejection", flakyHits.Load())
	}
	st := p.Targets()
	if !st[0].Ejected || st[0].Healthy || !st[1].Healthy || st[0].EjectedUntil.Sub(clock.Now()) != 30*time.Second {
		t.Fatalf("status after ejection: %+v", st)
	}
	if v := testutil.MetricValue(p.m.ejections); v != 1 {
		t.Fatalf("ejections_total = %v", v)
	}
	if n, err := seriesCount(reg, "sekisho_upstream_target_healthy"); err != nil || n != 2 {
		t.Fatalf("health gauge series %d %v", n, err)
	}
	for range 10 {
		if _, info, err := get(t, p, "/"); err != nil || info.Attempts != 1 {
			t.Fatalf("ejected target must be skipped: info %+v err %v", info, err)
		}
	}
	if flakyHits.Load() != 2 {
		t.Fatalf("ejected target received traffic: %d", flakyHits.Load())
	}

	// After EjectFor it is on probation: one more failure ejects it again.
	clock.Advance(31 * time.Second)
	for range 2 {
		_, _, _ = get(t, p, "/")
	}
	if flakyHits.Load() != 3 || !p.Targets()[0].Ejected {
		t.Fatalf("probation: hits %d status %+v", flakyHits.Load(), p.Targets()[0])
	}

	// Fixed: after the next window it is readmitted by one success.
	broken.Store(false)
	clock.Advance(31 * time.Second)
	saw := 0
	for range 4 {
		body, _, err := get(t, p, "/")
		if err != nil {
			t.Fatal(err)
		}
		if body == "flaky" {
			saw++
		}
	}
	st = p.Targets()
	if saw != 2 || st[0].Ejected || !st[0].Healthy || st[0].ConsecutiveFailures != 0 {
		t.Fatalf("recovery: saw %d status %+v", saw, st[0])
	}
}

func TestPassiveCount5xx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}, PassiveHealth: PassiveHealth{MaxFailures: 2, Count5xx: true}})
	for range 2 {
		resp, err := p.RoundTrip(outReq(t, context.Background(), http.MethodGet, "/", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	_, err := p.RoundTrip(outReq(t, context.Background(), http.MethodGet, "/", nil))
	mustKind(t, err, KindNoHealthy)
}

func TestAllEjectedFailsClosed(t *testing.T) {
	p := newPool(t, Options{Targets: []Target{{URL: deadURL(t)}, {URL: deadURL(t)}}, Retries: -1,
		PassiveHealth: PassiveHealth{MaxFailures: 1}})
	for range 2 {
		_, _, err := get(t, p, "/")
		mustKind(t, err, KindConnect)
	}
	var info RequestInfo
	_, err := p.RoundTrip(outReq(t, WithRequestInfo(context.Background(), &info), http.MethodGet, "/", nil))
	e := mustKind(t, err, KindNoHealthy)
	if !errors.Is(err, ErrNoHealthyTarget) || e.Target != "" || info.Attempts != 0 {
		t.Fatalf("err %v info %+v", err, info)
	}
}

func TestPathJoinAndHost(t *testing.T) {
	type seen struct{ uri, host string }
	var last atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(seen{r.RequestURI, r.Host})
	}))
	defer srv.Close()
	host := hostOf(srv.URL)
	cases := []struct{ base, path, rawPath, query, want string }{
		{"", "/x/y", "", "a=1", "/x/y?a=1"},
		{"/base", "/x", "", "", "/base/x"},
		{"/base/", "/x", "", "", "/base/x"},
		{"/base", "/", "", "", "/base/"},
		{"/base", "/a%2Fb", "/a%2Fb", "", "/base/a%2Fb"},
		{"/a%3Ab", "/c", "", "q", "/a%3Ab/c?q"},
		{"/sp ace", "/x y", "", "", "/sp%20ace/x%20y"},
	}
	for _, tc := range cases {
		p := newPool(t, Options{Targets: []Target{{URL: srv.URL + tc.base}}})
		req := outReq(t, context.Background(), http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawPath, req.URL.RawQuery = tc.path, tc.rawPath, tc.query
		if tc.rawPath != "" {
			req.URL.Path = strings.ReplaceAll(tc.path, "%2F", "/")
		}
		orig := *req.URL
		resp, err := p.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := last.Load().(seen)
		if got.uri != tc.want || got.host != host {
			t.Errorf("base %q path %q: upstream saw %q host %q, want %q host %q", tc.base, tc.path, got.uri, got.host, tc.want, host)
		}
		if *req.URL != orig {
			t.Errorf("RoundTrip modified the caller's URL: %+v", req.URL)
		}
		if resp.Request.URL.Host != host {
			t.Errorf("resp.Request.URL.Host = %q", resp.Request.URL.Host)
		}
	}
	// A Host set by the gateway (preserve host) is kept.
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}})
	req := outReq(t, context.Background(), http.MethodGet, "/", nil)
	req.Host = "public.example"
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := last.Load().(seen); got.host != "public.example" {
		t.Fatalf("Host = %q", got.host)
	}
}

func TestStreamingNotBuffered(t *testing.T) {
	next := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "one;")
		http.NewResponseController(w).Flush()
		<-next
		_, _ = io.WriteString(w, "two")
	}))
	defer srv.Close()
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}})
	resp, err := p.RoundTrip(outReq(t, context.Background(), http.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "one;" {
		t.Fatalf("first chunk before the upstream finished: %q %v", buf, err)
	}
	close(next)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "two" {
		t.Fatalf("rest %q %v", rest, err)
	}
	if p.targets[0].inflight.Load() != 0 {
		t.Fatal("in-flight not released at EOF")
	}
}

func TestRequestBodyStreamsUpstream(t *testing.T) {
	var got bytes.Buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(&got, r.Body)
	}))
	defer srv.Close()
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}})
	pr, pw := io.Pipe()
	go func() {
		for range 100 {
			_, _ = pw.Write(bytes.Repeat([]byte("x"), 1000))
		}
		_ = pw.Close()
	}()
	resp, err := p.RoundTrip(outReq(t, context.Background(), http.MethodPost, "/", pr))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Len() != 100000 {
		t.Fatalf("upstream received %d bytes", got.Len())
	}
}

func TestHeadAndNoBodyRelease(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}})
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		resp, err := p.RoundTrip(outReq(t, context.Background(), m, "/", nil))
		if err != nil {
			t.Fatal(err)
		}
		if p.targets[0].inflight.Load() != 0 {
			t.Fatalf("%s: in-flight not released for a body-less response", m)
		}
		resp.Body.Close()
	}
}

func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := newCountingBackend(t, "a")
	p1 := newPool(t, Options{Name: "one", Registerer: reg, Targets: []Target{{URL: a.URL}}})
	p2 := newPool(t, Options{Name: "two", Registerer: reg, Targets: []Target{{URL: a.URL}}})
	p1.Start(context.Background())
	p2.Start(context.Background())
	// Reload: a new generation of "one" replaces the old in the gauge.
	p1b := newPool(t, Options{Name: "one", Registerer: reg, Targets: []Target{{URL: a.URL}, {URL: deadURL(t)}}})
	p1b.Start(context.Background())
	if n, err := seriesCount(reg, "sekisho_upstream_target_healthy"); err != nil || n != 3 {
		t.Fatalf("healthy series = %d (%v), want 3 (two of the new 'one', one of 'two')", n, err)
	}
	p1.Close() // retiring the old generation must not remove the new one
	if n, _ := seriesCount(reg, "sekisho_upstream_target_healthy"); n != 3 {
		t.Fatalf("healthy series after closing the old pool = %d", n)
	}
	if _, _, err := get(t, p1b, "/"); err != nil {
		t.Fatal(err)
	}
	_, _, _ = get(t, p1b, "/") // dead target, retried on a
	if v := gathered(t, reg, "sekisho_upstream_retries_total", "upstream", "one"); v != 1 {
		t.Fatalf("retries_total{upstream=one} = %v", v)
	}
	if v := gathered(t, reg, "sekisho_upstream_retries_total", "upstream", "two"); v != 0 {
		t.Fatalf("retries_total{upstream=two} = %v", v)
	}
	if v := testutil.MetricValue(p1b.m.errors[KindConnect]); v != 1 {
		t.Fatalf("connect errors = %v", v)
	}
	// No label carries anything but upstream, kind and target URL.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "@") {
					t.Fatalf("label %s=%s", l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestClassify(t *testing.T) {
	bg := context.Background()
	canceled, cancel := context.WithCancel(bg)
	cancel()
	overall, cancelOverall := context.WithCancelCause(bg)
	cancelOverall(errOverallTimeout)
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		ctx       context.Context
		err       error
		kind      Kind
		retryable bool
	}{
		{bg, dialRefused, KindConnect, true},
		{bg, &net.OpError{Op: "dial", Err: timeoutErr{}}, KindTimeout, true},
		{bg, &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, KindTLS, true},
		{bg, timeoutErr{}, KindTimeout, false},
		{bg, io.EOF, KindProtocol, true},
		{bg, errors.New("malformed HTTP response"), KindProtocol, false},
		{canceled, io.EOF, KindCanceled, false},
		{overall, io.EOF, KindTimeout, false},
	}
	for i, tc := range cases {
		k, r := classify(tc.ctx, tc.err)
		if k != tc.kind || r != tc.retryable {
			t.Errorf("case %d (%v): got %s/%v want %s/%v", i, tc.err, k, r, tc.kind, tc.retryable)
		}
	}
	e := &Error{Kind: KindTimeout, Upstream: "api", Target: "http://10.0.0.1:80", Err: errOverallTimeout}
	if e.Error() != `upstream "api" target http://10.0.0.1:80: timeout: overall timeout exceeded` {
		t.Errorf("Error() = %q", e.Error())
	}
	var ne net.Error = e
	if !ne.Timeout() {
		t.Error("Timeout() = false")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
