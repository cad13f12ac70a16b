package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeClock is an injectable clock for passive health.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newPool builds a pool and closes it at the end of the test.
func newPool(t testing.TB, o Options) *Pool {
	t.Helper()
	if o.Name == "" {
		o.Name = "test"
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// countingBackend answers 200 with its name and counts requests.
type countingBackend struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingBackend(t testing.TB, name string) *countingBackend {
	t.Helper()
	b := &countingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

// deadURL returns an http URL on loopback where nothing listens.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

// outReq builds an outbound request as ReverseProxy would hand it over:
// placeholder scheme/host, path and query set.
func outReq(t testing.TB, ctx context.Context, method, target string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, method, "http://placeholder.invalid"+target, body)
	if err != nil {
		t.Fatal(err)
	}
	r.Host = "" // as after ProxyRequest.SetURL: the Host header becomes the target's
	return r
}

// get performs a GET through p and returns the body text and RequestInfo.
func get(t testing.TB, p *Pool, path string) (string, RequestInfo, error) {
	t.Helper()
	var info RequestInfo
	ctx := WithRequestInfo(context.Background(), &info)
	resp, err := p.RoundTrip(outReq(t, ctx, http.MethodGet, path, nil))
	if err != nil {
		return "", info, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), info, err
}

func mustKind(t testing.TB, err error, want Kind) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want error of kind %s, got nil", want)
	}
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	if ue.Kind != want {
		t.Fatalf("kind = %s, want %s (err: %v)", ue.Kind, want, err)
	}
	if KindOf(err) != want {
		t.Fatalf("KindOf = %s, want %s", KindOf(err), want)
	}
	return ue
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hostOf(u string) string { return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") }

// seriesCount returns how many series of the metric family name reg exposes.
func seriesCount(reg prometheus.Gatherer, name string) (int, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric()), nil
		}
	}
	return 0, nil
}

// gathered returns the value of the series of name whose label has value.
func gathered(t testing.TB, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					switch {
					case m.Counter != nil:
						return m.GetCounter().GetValue()
					case m.Gauge != nil:
						return m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
