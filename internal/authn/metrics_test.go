package authn

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sekisho/sekisho/internal/testutil"
)

func TestMetricsAndRefusalLogs(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, nil, func(o *RouteJWTOptions) { o.Logger = logger })
	good := e.good()
	e.mustAccept(good)
	bad := tamper(good, mustJSON(t, e.claims(map[string]any{"sub": "admin"})))
	ae := e.mustRefuse(bad, ReasonSignature)

	if v := testutil.MetricValue(e.metrics.verifications.WithLabelValues("test", "ok")); v != 1 {
		t.Fatalf("ok verifications = %v", v)
	}
	if v := testutil.MetricValue(e.metrics.verifications.WithLabelValues("test", ReasonSignature)); v != 1 {
		t.Fatalf("signature verifications = %v", v)
	}
	if e.refusals(ReasonSignature) != 1 {
		t.Fatal("refusal not counted")
	}
	if v := testutil.MetricValue(e.metrics.jwksKeys.WithLabelValues("test")); v != 3 {
		t.Fatalf("keys gauge = %v", v)
	}
	if e.fetchMetric(fetchOK) < 1 {
		t.Fatal("fetch not counted")
	}

	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	if !strings.Contains(logs, `"token_hash":"`+ae.TokenHash+`"`) || !strings.Contains(logs, `"reason":"signature"`) {
		t.Fatalf("refusal log lacks hash or reason: %s", logs)
	}
	for i, part := range strings.Split(bad, ".") {
		if strings.Contains(logs, part) {
			t.Fatalf("log contains token segment %d", i)
		}
	}
	if HashToken(bad) != ae.TokenHash || len(ae.TokenHash) != 16 {
		t.Fatalf("TokenHash %q", ae.TokenHash)
	}
	// The error text itself never carries the token either.
	if strings.Contains(ae.Error(), strings.Split(bad, ".")[2]) {
		t.Fatal("error text contains the signature")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
