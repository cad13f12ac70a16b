package upstream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// healthBackend answers /healthz with a switchable status and counts the
// other requests.
type healthBackend struct {
	*httptest.Server
	status       atomic.Int64
	probes, hits atomic.Int64
}

func newHealthBackend(t *testing.T, name string) *healthBackend {
	b := &healthBackend{}
	b.status.Store(200)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			b.probes.Add(1)
			if r.Header.Get("User-Agent") != "sekisho-health-check" {
				t.Errorf("probe User-Agent %q", r.Header.Get("User-Agent"))
			}
			w.WriteHeader(int(b.status.Load()))
			return
		}
		b.hits.Add(1)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

func TestActiveHealthDownAndUp(t *testing.T) {
	a, b := newHealthBackend(t, "a"), newHealthBackend(t, "b")
	p := newPool(t, Options{
		Targets:       []Target{{URL: a.URL}, {URL: b.URL}},
		ActiveHealth:  &ActiveHealth{Path: "/healthz", Interval: 100 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 2},
		PassiveHealth: PassiveHealth{MaxFailures: -1},
	})
	if st := p.Targets(); st[0].Active != "unknown" || !st[0].Healthy {
		t.Fatalf("before Start: %+v (unknown targets receive traffic)", st[0])
	}
	p.Start(context.Background())
	waitFor(t, "first probes", func() bool { st := p.Targets(); return st[0].Active == "up" && st[1].Active == "up" })

	a.status.Store(503)
	waitFor(t, "a marked down", func() bool { return p.Targets()[0].Active == "down" })
	if p.Targets()[0].Healthy {
		t.Fatal("a target marked down must not be healthy")
	}
	before := a.hits.Load()
	for range 10 {
		if body, _, err := get(t, p, "/"); err != nil || body != "b" {
			t.Fatalf("body %q err %v: traffic must avoid the down target", body, err)
		}
	}
	if a.hits.Load() != before {
		t.Fatal("down target received traffic")
	}

	a.status.Store(204) // in the default healthy range 200–399
	waitFor(t, "a marked up", func() bool { return p.Targets()[0].Active == "up" })
	saw := false
	for range 4 {
		if body, _, _ := get(t, p, "/"); body == "a" {
			saw = true
		}
	}
	if !saw {
		t.Fatal("recovered target receives no traffic")
	}

	a.status.Store(500)
	b.status.Store(500)
	waitFor(t, "all down", func() bool { st := p.Targets(); return st[0].Active == "down" && st[1].Active == "down" })
	_, _, err := get(t, p, "/")
	mustKind(t, err, KindNoHealthy)

	p.Close()
	n := a.probes.Load()
	time.Sleep(300 * time.Millisecond)
	if a.probes.Load() != n {
		t.Fatal("probes continue after Close")
	}
}

func TestActiveHealthThresholds(t *testing.T) {
	p := newPool(t, Options{Targets: []Target{{URL: "http://127.0.0.1:1"}},
		ActiveHealth: &ActiveHealth{Path: "/h", HealthyThreshold: 2, UnhealthyThreshold: 3}})
	tg := p.targets[0]
	steps := []struct {
		ok   bool
		want int32
	}{
		{true, activeUp},                                       // unknown: the first result decides
		{false, activeUp}, {false, activeUp}, {true, activeUp}, // streak broken
		{false, activeUp}, {false, activeUp}, {false, activeDown}, // 3 in a row
		{true, activeDown}, {false, activeDown}, {true, activeDown}, {true, activeUp}, // 2 in a row
	}
	for i, s := range steps {
		p.recordProbe(tg, s.ok, "test")
		if got := tg.active.Load(); got != s.want {
			t.Fatalf("step %d (ok=%v): state %d, want %d", i, s.ok, got, s.want)
		}
	}
	p2 := newPool(t, Options{Targets: []Target{{URL: "http://127.0.0.1:1"}}, ActiveHealth: &ActiveHealth{Path: "/h"}})
	p2.recordProbe(p2.targets[0], false, "test")
	if p2.targets[0].active.Load() != activeDown {
		t.Fatal("a first failed probe must mark an unknown target down")
	}
}

func TestActiveHealthCustomStatusesAndTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	var slow atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			select {
			case <-block:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusTeapot)
	}))
	defer srv.Close()
	p := newPool(t, Options{Targets: []Target{{URL: srv.URL}},
		ActiveHealth: &ActiveHealth{Path: "/h", Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond,
			HealthyStatuses: []int{418}, HealthyThreshold: 1, UnhealthyThreshold: 1}})
	p.Start(context.Background())
	waitFor(t, "418 counted as healthy", func() bool { return p.Targets()[0].Active == "up" })
	slow.Store(true)
	waitFor(t, "probe timeout marks down", func() bool { return p.Targets()[0].Active == "down" })
}
