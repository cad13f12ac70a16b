package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

const token = "0123456789abcdef0123456789abcdef-token"

func newAdmin(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sekisho_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Inc()
	o.Gatherer = reg
	o.Logger = slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(New(o).Handler())
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, auth string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHealthMetricsAndPublic(t *testing.T) {
	ready := errors.New("store down")
	srv := newAdmin(t, Options{
		Ready:  func(context.Context) error { return ready },
		Public: map[string]http.Handler{"/identity/jwks": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":[]}`)) })},
	})
	if code, body, _ := do(t, "GET", srv.URL+"/metrics", ""); code != 200 || !strings.Contains(body, "sekisho_test_total 1") {
		t.Fatalf("metrics: %d %s", code, body)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/healthz", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body, _ := do(t, "GET", srv.URL+"/readyz", ""); code != 503 || strings.Contains(body, "store down") {
		t.Fatalf("readyz must be 503 without leaking the cause: %d %s", code, body)
	}
	ready = nil
	if code, _, _ := do(t, "GET", srv.URL+"/readyz", ""); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	if code, body, _ := do(t, "GET", srv.URL+"/identity/jwks", ""); code != 200 || body != `{"keys":[]}` {
		t.Fatalf("public handler: %d %s", code, body)
	}
	if code, _, h := do(t, "GET", srv.URL+"/nope", ""); code != 404 || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unknown path: %d %s", code, h.Get("Content-Type"))
	}
}

func TestAdminAPIRequiresToken(t *testing.T) {
	reloads := 0
	srv := newAdmin(t, Options{
		Token: token,
		Reload: func(context.Context) (int64, error) {
			reloads++
			if reloads == 2 {
				return 0, errors.New("cfg.yaml:3: routes: bad\ncfg.yaml:9: upstreams: worse")
			}
			return int64(reloads + 1), nil
		},
		API: map[string]http.Handler{"/admin/clients": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("clients")) })},
	})
	for _, auth := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x", "Bearer " + token[:10]} {
		if code, _, h := do(t, "POST", srv.URL+"/admin/reload", auth); code != 401 || h.Get("WWW-Authenticate") == "" {
			t.Fatalf("auth %q: %d", auth, code)
		}
		if code, _, _ := do(t, "GET", srv.URL+"/admin/clients", auth); code != 401 {
			t.Fatalf("clients with auth %q: %d", auth, code)
		}
	}
	if reloads != 0 {
		t.Fatal("reload ran without a valid token")
	}
	if code, body, _ := do(t, "POST", srv.URL+"/admin/reload", "bearer "+token); code != 200 || !strings.Contains(body, `"generation":2`) {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code, body, _ := do(t, "POST", srv.URL+"/admin/reload", "Bearer "+token); code != 422 || !strings.Contains(body, "cfg.yaml:9: upstreams: worse") || !strings.Contains(body, "previous one stays") {
		t.Fatalf("failed reload: %d %s", code, body)
	}
	if code, body, _ := do(t, "GET", srv.URL+"/admin/clients/x", "Bearer "+token); code != 200 || body != "clients" {
		t.Fatalf("mounted API: %d %s", code, body)
	}
}

func TestAdminAPIDisabledWithoutToken(t *testing.T) {
	srv := newAdmin(t, Options{Reload: func(context.Context) (int64, error) { t.Fatal("reload ran"); return 0, nil }})
	if code, body, _ := do(t, "POST", srv.URL+"/admin/reload", "Bearer anything"); code != 403 || !strings.Contains(body, "set admin.token") {
		t.Fatalf("%d %s", code, body)
	}
}
