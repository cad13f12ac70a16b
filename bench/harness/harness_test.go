package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/config"
)

func TestParseProcStat(t *testing.T) {
	// The command name may contain spaces and ')'.
	line := "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 100 0 0"
	d, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Duration(300 * int64(time.Second) / clockTick)
	if d != want {
		t.Fatalf("cpu time = %v, want %v (utime 250 + stime 50 ticks)", d, want)
	}
	if _, err := parseProcStat("4242 (x) S 1 2"); err == nil {
		t.Fatal("short stat line accepted")
	}
	if _, err := parseProcStat("no parens"); err == nil {
		t.Fatal("stat line without command field accepted")
	}
}

func TestParseWrkOutput(t *testing.T) {
	out := []byte("Running 10s test @ http://127.0.0.1/\n  1 threads and 64 connections\n" +
		`SEKISHO_WRK {"duration_us":10000000,"requests":60000,"bytes":1,"err_connect":0,"err_read":1,"err_write":0,"err_status":2,"err_timeout":3,` +
		`"lat_mean_us":10.5,"lat_stdev_us":1.0,"lat_max_us":900,"p50_us":100,"p90_us":200,"p99_us":300,"p999_us":400,"extra":{"wraps":0}}` + "\n")
	r, err := parseWrkOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.ReqPerSec != 6000 || r.P99US != 300 || r.errors() != 6 || string(r.Extra) != `{"wraps":0}` {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseWrkOutput([]byte("Requests/sec: 100\n")); err == nil {
		t.Fatal("output without the report line accepted")
	}
	if _, err := parseWrkOutput([]byte(`SEKISHO_WRK {"duration_us":0,"requests":1}`)); err == nil {
		t.Fatal("zero duration accepted")
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, c := range cases {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestSummarizeRatiosAndVerdict(t *testing.T) {
	mk := func(sys string, round int, rps float64, p99 int64, cpu, util float64) sample {
		return sample{System: sys, Round: round, RPS: rps, Requests: int64(rps * 10), P99us: p99, ServerCPUus: cpu, ServerUtil: util,
			AllocsPerReq: -1, AllocBytesPerReq: -1, LogLines: -1, RouteCount: -1}
	}
	res := &workloadResult{Name: "public", target: target{minThroughputRatio: 1.0}}
	res.Samples = []sample{
		mk("floor", 1, 6000, 1000, 130, 0.99), mk("sekisho", 1, 6600, 900, 118, 0.99),
		mk("sekisho", 2, 6300, 950, 120, 0.98), mk("floor", 2, 6000, 1000, 131, 0.99),
		mk("floor", 3, 5000, 1200, 140, 0.95), mk("sekisho", 3, 5500, 1100, 125, 0.50),
	}
	summarize(res, []string{"floor", "sekisho"}, 64, 0.9, 0.85)
	if len(res.Ratios) != 1 {
		t.Fatalf("ratios: %+v", res.Ratios)
	}
	r := res.Ratios[0]
	if math.Abs(r.Throughput-6300.0/6000) > 1e-9 {
		t.Errorf("throughput ratio %v, want median 6300 / median 6000", r.Throughput)
	}
	if len(r.ThroughputPairs) != 3 || math.Abs(r.ThroughputPairs[2]-1.1) > 1e-9 {
		t.Errorf("paired ratios %v", r.ThroughputPairs)
	}
	if res.Verdict != "MET" {
		t.Errorf("verdict %q, want MET", res.Verdict)
	}
	if w := strings.Join(res.Warnings, "\n"); strings.Contains(w, "used only") {
		t.Errorf("median utilisation is ≥ 0.98: no warning expected, got %v", res.Warnings)
	}
	res2 := &workloadResult{target: target{minThroughputRatio: 1.0}}
	for _, s := range res.Samples {
		s.ServerUtil = 0.4
		res2.Samples = append(res2.Samples, s)
	}
	summarize(res2, []string{"floor", "sekisho"}, 64, 0.9, 0.85)
	if !strings.Contains(strings.Join(res2.Warnings, "\n"), "sekisho used only 40%") {
		t.Errorf("no under-utilisation warning: %v", res2.Warnings)
	}
	if !strings.HasPrefix(res.VerdictBasis, "throughput") || !strings.HasPrefix(res2.VerdictBasis, "CPU per request") {
		t.Errorf("verdict basis: CPU-bound %q, not CPU-bound %q", res.VerdictBasis, res2.VerdictBasis)
	}
	// Not CPU-bound: more req/s but more CPU per request must not pass.
	res4 := &workloadResult{target: target{minThroughputRatio: 1.0}, Samples: []sample{mk("floor", 1, 4000, 1, 150, 0.6), mk("sekisho", 1, 4500, 1, 175, 0.75)}}
	summarize(res4, []string{"floor", "sekisho"}, 64, 0.9, 0.85)
	if res4.Verdict != "NOT MET" {
		t.Errorf("verdict %q with 1.17× the floor's CPU per request, want NOT MET", res4.Verdict)
	}
	// Below target.
	res3 := &workloadResult{target: target{minThroughputRatio: 1.0}, Samples: []sample{mk("floor", 1, 6000, 1, 1, 1), mk("sekisho", 1, 5000, 1, 1, 1)}}
	summarize(res3, []string{"floor", "sekisho"}, 64, 0.9, 0.85)
	if res3.Verdict != "NOT MET" {
		t.Errorf("verdict %q, want NOT MET", res3.Verdict)
	}
}

func TestSummarizeChecksAccessLogAndMetrics(t *testing.T) {
	s := sample{System: "sekisho", Round: 1, RPS: 1000, Requests: 10000, ServerUtil: 1, AllocsPerReq: 50, AllocBytesPerReq: 5000,
		LogLines: 10000 + 64, RouteCount: 10000 + 10}
	res := &workloadResult{Samples: []sample{s}}
	summarize(res, []string{"sekisho"}, 64, 0.9, 0.85)
	if len(res.Warnings) != 0 {
		t.Fatalf("in-flight requests at the round's end must be tolerated: %v", res.Warnings)
	}
	s.LogLines = 5000 // access log missing lines
	s.RouteCount = 0  // metrics not counting
	res = &workloadResult{Samples: []sample{s}}
	summarize(res, []string{"sekisho"}, 64, 0.9, 0.85)
	w := strings.Join(res.Warnings, "\n")
	if !strings.Contains(w, "access-log lines") || !strings.Contains(w, "metrics counted") {
		t.Fatalf("missing warnings: %v", res.Warnings)
	}
}

func TestSelectWorkloads(t *testing.T) {
	all, err := selectWorkloads("all")
	if err != nil || len(all) != len(workloads()) {
		t.Fatalf("all: %v %v", all, err)
	}
	got, err := selectWorkloads("public, public,jwt-reuse")
	if err != nil || len(got) != 2 || got[0].name != "public" || got[1].name != "jwt-reuse" {
		t.Fatalf("list: %v %v", got, err)
	}
	if _, err := selectWorkloads("publik"); err == nil {
		t.Fatal("unknown workload accepted")
	}
	// Workloads whose feature has not landed must not run (no fake numbers).
	for _, w := range all {
		if (w.needs == "") != (w.prepare != nil) {
			t.Errorf("workload %s: needs=%q but prepare set=%v", w.name, w.needs, w.prepare != nil)
		}
	}
}

// TestGeneratedConfigIsValid loads the generated config through Sekisho's
// own strict loader for every access-log mode and every available workload.
func TestGeneratedConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	env := &runEnv{tmp: dir} // one run: workloads share the issuer and the authorization server
	var plans []*plan
	for _, w := range workloads() {
		if w.prepare == nil {
			continue
		}
		p, err := w.prepare(env)
		if err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		plans = append(plans, p)
	}
	for _, mode := range []string{accessLogFile, accessLogDevNull, accessLogOff} {
		for _, conns := range []int{64, 1000} {
			c := sekishoConfig{listen: "127.0.0.1:18080", admin: "127.0.0.1:19090", dataDir: filepath.Join(dir, "data"),
				accessLog: mode, accessPath: filepath.Join(dir, "access.log"), upstreamURL: "http://127.0.0.1:19001",
				connections: conns, plans: plans}
			path := filepath.Join(dir, "sekisho.yaml")
			if err := os.WriteFile(path, []byte(c.yaml()), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatalf("access log %s, %d connections: generated config rejected: %v\n%s", mode, conns, err, c.yaml())
			}
			if got := *cfg.AccessLog.Enabled; got != (mode != accessLogOff) {
				t.Errorf("access log %s: enabled = %v", mode, got)
			}
			if cfg.Server.MaxConnectionsPerIP < conns {
				t.Errorf("%d connections but max_connections_per_ip %d", conns, cfg.Server.MaxConnectionsPerIP)
			}
			if len(cfg.Routes) != len(plans) || cfg.Routes[0].Auth == nil || !cfg.Routes[0].Auth.Public {
				t.Errorf("routes: %+v", cfg.Routes)
			}
		}
	}
}

func TestUpstreamBody(t *testing.T) {
	for _, n := range []int{16, 100, 4096} {
		b := upstreamBody(n)
		if n >= 56 && len(b) != n {
			t.Errorf("body(%d) has %d bytes", n, len(b))
		}
		if !strings.HasPrefix(string(b), "{") || !strings.HasSuffix(string(b), "}") {
			t.Errorf("body(%d) is not a JSON object: %s", n, b)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"-rounds", "5", "-json", "/tmp/a b.json", "it's"})
	want := `-rounds 5 -json '/tmp/a b.json' 'it'\''s'`
	if got != want {
		t.Fatalf("shellJoin = %s, want %s", got, want)
	}
}

// runWrk runs a Lua script from bench/wrk (with report.lua appended) for one
// second against url; it skips when wrk is not installed.
func runWrk(t *testing.T, luaFile, url string, conns int, args ...string) *wrkResult {
	t.Helper()
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (apt-get install -y wrk)")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset not installed")
	}
	src, err := os.ReadFile(filepath.Join("..", "wrk", luaFile))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := os.ReadFile(filepath.Join("..", "wrk", "report.lua"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := composeScript(t.TempDir(), "t", string(src), string(rep))
	if err != nil {
		t.Fatal(err)
	}
	w := wrkRun{cpu: 0, threads: 1, connections: conns, duration: time.Second, timeout: 2 * time.Second, script: script, scriptArgs: args, url: url}
	r, err := w.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWrkReportScript(t *testing.T) {
	srv := httptest.NewServer(upstreamHandler(upstreamBody(100)))
	defer srv.Close()
	r := runWrk(t, "public.lua", srv.URL+"/public/hello", 4)
	if r.Requests == 0 || r.errors() != 0 || r.P50US <= 0 || r.P99US < r.P50US {
		t.Fatalf("report: %+v", r)
	}
}

func TestWrkTokensScript(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
	}))
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens.txt")
	var lines []string
	for i := 0; i < 10; i++ {
		lines = append(lines, "tok"+string(rune('a'+i)))
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// reuse, starting at line 3: tokens c..j cycle, a and b never appear.
	r := runWrk(t, "tokens.lua", srv.URL+"/", 2, file, "reuse", "1", "3")
	if r.Requests < 20 {
		t.Fatalf("too few requests: %+v", r)
	}
	mu.Lock()
	if len(seen) != 8 || seen["Bearer toka"] != 0 || seen["Bearer tokc"] == 0 {
		t.Errorf("reuse from line 3 sent %v", seen)
	}
	mu.Unlock()
	if !strings.Contains(string(r.Extra), `"wraps":`) || strings.Contains(string(r.Extra), `"wraps":0`) {
		t.Errorf("cycling 8 tokens for %d requests must report wraps: %s", r.Requests, r.Extra)
	}
}

func TestWrkFormPostScript(t *testing.T) {
	var bad sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" || r.Header.Get("Authorization") != "Basic abc" {
			bad.Store(r.Method+" "+r.Header.Get("Content-Type"), true)
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	r := runWrk(t, "form-post.lua", srv.URL+"/oauth2/token", 2, "grant_type=client_credentials&scope=read", "Basic abc")
	if r.Requests == 0 || r.ErrStatus != 0 {
		bad.Range(func(k, _ any) bool { t.Errorf("bad request: %v", k); return true })
		t.Fatalf("report: %+v", r)
	}
}

// TestWrkTokenCallScript: every issued token is used for exactly one call
// (never reused, never a call without a token), and extra counts both.
func TestWrkTokenCallScript(t *testing.T) {
	var mu sync.Mutex
	issued, used := map[string]bool{}, map[string]int{}
	var n int
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/oauth2/token" && r.Header.Get("Authorization") == "Basic abc":
			n++
			tok := fmt.Sprintf("tok-%d", n)
			issued[tok] = true
			fmt.Fprintf(w, `{"access_token":"%s","token_type":"Bearer","expires_in":600}`, tok)
		case r.Method == http.MethodGet && r.URL.Path == "/token-call/hello":
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !issued[tok] || used[tok] > 0 {
				bad = append(bad, r.Header.Get("Authorization"))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			used[tok]++
			_, _ = w.Write([]byte(`{"ok":true}`))
		default:
			bad = append(bad, r.Method+" "+r.URL.Path)
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	r := runWrk(t, "token-call.lua", srv.URL+"/", 4, "/oauth2/token", "grant_type=client_credentials", "Basic abc", "/token-call/hello")
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 || r.ErrStatus != 0 {
		t.Fatalf("bad requests %v (report %+v)", bad[:min(len(bad), 5)], r)
	}
	var e struct{ Tokens, Calls int64 }
	if err := json.Unmarshal(r.Extra, &e); err != nil {
		t.Fatalf("extra %s: %v", r.Extra, err)
	}
	// Up to one request per connection is in flight when wrk stops: served
	// but not counted by the script.
	if e.Calls == 0 || int64(n) < e.Tokens || int64(n) > e.Tokens+4 || int64(len(used)) < e.Calls || int64(len(used)) > e.Calls+4 ||
		e.Calls > e.Tokens || e.Calls < e.Tokens-4 {
		t.Fatalf("extra %+v, server issued %d tokens and served %d calls", e, n, len(used))
	}
	if err := checkTokenCallExtra("sekisho", r.Extra); err != nil {
		t.Fatal(err)
	}
}

func TestParseProcIO(t *testing.T) {
	c, err := parseProcIO("rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 3\nread_bytes: 0\n")
	if err != nil || c.reads != 10 || c.writes != 3 {
		t.Fatalf("parseProcIO = %+v, %v", c, err)
	}
	if _, err := parseProcIO("rchar: 1\n"); err == nil {
		t.Fatal("missing syscr/syscw accepted")
	}
}

func TestCryptoBound(t *testing.T) {
	b := newCryptoBound(70, []systemSummary{{System: "floor", ServerCPUus: 64}, {System: "sekisho", ServerCPUus: 190}})
	if b == nil || math.Abs(b.Bound-64.0/134.0) > 1e-9 || b.BeyondUS != 56 {
		t.Fatalf("bound %+v", b)
	}
	// With floor+verify measured, the bound is also read off its throughput.
	b = newCryptoBound(70, []systemSummary{{System: "floor", ServerCPUus: 64, RPS: 15000}, {System: "floor+verify", ServerCPUus: 150, RPS: 6000},
		{System: "sekisho", ServerCPUus: 190, RPS: 5000}})
	if b == nil || b.MeasuredBound != 0.4 || b.FloorVerifyCPUus != 150 || math.Abs(b.SekishoOfBound-5.0/6.0) > 1e-9 {
		t.Fatalf("measured bound %+v", b)
	}
	if newCryptoBound(70, []systemSummary{{System: "sekisho", ServerCPUus: 190}}) != nil {
		t.Fatal("bound without a floor")
	}
	var out bytes.Buffer
	if err := cmdVerifyCost([]string{"-n", "20"}, &out); err != nil {
		t.Fatal(err)
	}
	var v struct {
		US float64 `json:"cpu_us_per_verify"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.US <= 0 {
		t.Fatalf("verifycost printed %q (%v)", out.String(), err)
	}
	var ue usageError
	if err := cmdVerifyCost([]string{"-n", "0"}, io.Discard); !errors.As(err, &ue) {
		t.Fatalf("-n 0: %v, want a usage error", err)
	}
}
