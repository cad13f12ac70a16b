package oauth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/testutil"
)

// BenchmarkClientCredentials measures client-credentials JWT (ES256)
// issuance over real loopback HTTP against the SQLite store with
// synchronous=FULL (every issued token's grant row is durably committed,
// group-committed by the store). 64 concurrent clients (SetParallelism×
// GOMAXPROCS) share keep-alive connections. Client and server run in the
// same process, so the client's HTTP work is included in the CPU budget.
//
//	go test ./internal/oauth -run '^$' -bench BenchmarkClientCredentials -benchtime 20000x
func BenchmarkClientCredentials(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run("sqlite-"+mode, func(b *testing.B) { benchCC(b, mode) })
	}
}

func benchCC(b *testing.B, mode string) {
	e := newEnvSync(b, mode)
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"orders.read"}, Audiences: []string{"https://api.example.test"}})
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}}.Encode()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), testutil.ProcessCPU()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(id, secret)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(t0))
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed, cpu := time.Since(start), testutil.ProcessCPU()-cpu0
	b.StopTimer()
	reportLatency(b, lat, elapsed, cpu)
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed, cpu time.Duration) {
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-µs/token")
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tokens/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// BenchmarkTokenHandler measures the server side alone (no HTTP client or
// network): parse, authenticate, mint and sign, persist, encode.
func BenchmarkTokenHandler(b *testing.B) {
	e := newEnvSync(b, "FULL")
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"orders.read"}, Audiences: []string{"https://api.example.test"}})
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}}.Encode()
	mux := http.NewServeMux()
	e.srv.Routes(mux)
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), testutil.ProcessCPU()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(id, secret)
			rec := httptest.NewRecorder()
			t0 := time.Now()
			mux.ServeHTTP(rec, req)
			mine = append(mine, time.Since(t0))
			if rec.Code != 200 {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed, cpu := time.Since(start), testutil.ProcessCPU()-cpu0
	b.StopTimer()
	reportLatency(b, lat, elapsed, cpu)
}

// BenchmarkIntrospect measures introspection of a JWT access token.
func BenchmarkIntrospect(b *testing.B) {
	e := newEnvSync(b, "FULL")
	id, secret := e.createClient(ClientSpec{GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"orders.read"}})
	_, tb := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}}, id, secret)
	body := url.Values{"token": {tb["access_token"].(string)}}.Encode()
	mux := http.NewServeMux()
	e.srv.Routes(mux)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), testutil.ProcessCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/introspect", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(id, secret)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"active":true`) {
				b.Errorf("introspect: %d %s", rec.Code, rec.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64((testutil.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
