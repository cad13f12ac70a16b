package upstream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"testing"
)

func benchBackend(b *testing.B) *httptest.Server {
	body := []byte("hello, world\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkRoundTrip compares the pool with a bare, equally tuned
// http.Transport (the cost the pool adds), sequentially and in parallel, and
// through httputil.ReverseProxy against the stdlib default transport (the
// benchmark harness's floor).
func BenchmarkRoundTrip(b *testing.B) {
	srv := benchBackend(b)
	srv2 := benchBackend(b)
	direct := func(rt http.RoundTripper) func(b *testing.B) {
		return func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/bench?x=1", nil)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	parallel := func(rt http.RoundTripper) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16) // 16×GOMAXPROCS concurrent requests, like a loaded gateway
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/bench", nil)
				for pb.Next() {
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
	proxied := func(rt http.RoundTripper) func(b *testing.B) {
		return func(b *testing.B) {
			rp := &httputil.ReverseProxy{
				Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", hostOf(srv.URL) },
				Transport: rt,
			}
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				in := httptest.NewRequest(http.MethodGet, "http://gw.example/bench", nil)
				for pb.Next() {
					rp.ServeHTTP(discardWriter{h: http.Header{}}, in)
				}
			})
		}
	}

	pool, err := New(Options{Name: "bench", Targets: []Target{{URL: srv.URL}}})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	pool2, err := New(Options{Name: "bench2", Balancing: LeastOutstanding, Targets: []Target{{URL: srv.URL}, {URL: srv2.URL}}})
	if err != nil {
		b.Fatal(err)
	}
	defer pool2.Close()
	c, _ := compile(&Options{Name: "bare", Targets: []Target{{URL: srv.URL}}})
	bare := newTransport(c, nil, false)
	defer bare.CloseIdleConnections()
	stdDefault := http.DefaultTransport.(*http.Transport).Clone()
	defer stdDefault.CloseIdleConnections()

	b.Run("sequential/bare-transport", direct(bare))
	b.Run("sequential/pool", direct(pool))
	b.Run("sequential/pool-2-targets-least", direct(pool2))
	b.Run("parallel/bare-transport", parallel(bare))
	b.Run("parallel/pool", parallel(pool))
	b.Run("parallel/stdlib-default-transport", parallel(stdDefault))
	b.Run("reverseproxy/pool", proxied(pool))
	b.Run("reverseproxy/stdlib-default-transport", proxied(stdDefault))
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// BenchmarkPick measures target selection alone.
func BenchmarkPick(b *testing.B) {
	targets := []Target{{URL: "http://10.0.0.1:80", Weight: 3}, {URL: "http://10.0.0.2:80"}, {URL: "http://10.0.0.3:80", Weight: 2}, {URL: "http://10.0.0.4:80"}}
	for _, bal := range []string{RoundRobin, LeastOutstanding} {
		p, err := New(Options{Name: "pick", Balancing: bal, Targets: targets})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bal, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var tried bitset
					if p.pick(&tried) == nil {
						b.Error("no target")
					}
				}
			})
		})
		p.Close()
	}
}

// TestHotPathAllocs guards the allocation budget of the pool on top of the
// transport (allocation counts, not timings, so it is deterministic enough
// for a unit test).
func TestHotPathAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation measurement")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}}})
	c, _ := compile(&Options{Name: "bare", Targets: []Target{{URL: srv.URL}}})
	bare := newTransport(c, nil, false)
	defer bare.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/", nil)
	measure := func(rt http.RoundTripper) float64 {
		return testing.AllocsPerRun(200, func() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	base, pooled := measure(bare), measure(p)
	t.Logf("allocs per round trip: bare transport %.1f, pool %.1f", base, pooled)
	// Budget: call state, request copy, overall-timeout context + cancel
	// func + timer + timer func, and the children map the transport's own
	// context registers in ours.
	if extra := pooled - base; extra > 10 {
		t.Fatalf("pool adds %.1f allocations per request, budget 10", extra)
	}
	p.overall = -1 // OverallTimeout disabled: no context, no timer
	noOverall := measure(p)
	t.Logf("allocs per round trip: pool without overall timeout %.1f", noOverall)
	if extra := noOverall - base; extra > 3 {
		t.Fatalf("pool without overall timeout adds %.1f allocations per request, budget 3", extra)
	}
}
