package gateway

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/jsonenc"
)

// logBufs recycles access-log line buffers.
var logBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// logAccess writes one JSON line per request, in the shape of slog's JSON
// handler (time, level, msg, then fields), encoded by hand because it runs on
// every request. It records what the gateway decided and did — never
// Authorization, cookies, bodies, or query values configured as sensitive
// (the query is left out unless enabled).
func (g *Gateway) logAccess(r *http.Request, st *reqState, routeName string, start time.Time) {
	if g.access == nil {
		return
	}
	now := time.Now()
	var dur time.Duration
	if !start.IsZero() {
		dur = now.Sub(start)
	}
	bp := logBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request"`...)
	b = appendField(b, "request_id", st.id)
	b = appendField(b, "route", routeName)
	b = appendField(b, "method", r.Method)
	b = appendField(b, "path", st.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(st.rec.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, st.rec.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(dur.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"client_ip":"`...)
	b = st.client.AppendTo(b)
	b = append(b, '"')
	b = appendField(b, "proto", r.Proto)
	if st.upstream.Target != "" {
		b = appendField(b, "upstream", st.upstream.Target)
		if st.upstream.Attempts > 1 {
			b = append(b, `,"attempts":`...)
			b = strconv.AppendInt(b, int64(st.upstream.Attempts), 10)
		}
	}
	if st.errKind != "" {
		b = appendField(b, "error", st.errKind)
	}
	if st.identity != nil {
		b = appendField(b, "auth", st.identity.Kind)
		b = appendField(b, "subject_hash", st.identity.TokenHash)
	}
	if g.logQuery != nil && r.URL.RawQuery != "" {
		b = appendField(b, "query", g.logQuery.redact(r.URL.RawQuery))
	}
	b = append(b, "}\n"...)
	_, _ = g.access.Write(b)
	*bp = b
	logBufs.Put(bp)
}

// appendField appends ,"key":"value" with value JSON-escaped.
func appendField(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":`...)
	return jsonenc.AppendString(b, value)
}

// queryRedactor replaces the values of sensitive query parameters.
type queryRedactor struct{ sensitive map[string]bool }

func newQueryRedactor(names []string) *queryRedactor {
	q := &queryRedactor{sensitive: map[string]bool{}}
	for _, n := range names {
		q.sensitive[strings.ToLower(n)] = true
	}
	return q
}

func (q *queryRedactor) redact(raw string) string {
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || q.sensitive[strings.ToLower(name)] {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}
