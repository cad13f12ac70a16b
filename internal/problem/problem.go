// Package problem writes the responses the gateway makes itself as RFC 9457
// problem details. Details are fixed strings chosen by the caller: nothing a
// client sent and nothing internal (addresses, errors) is ever echoed.
package problem

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/sekisho/sekisho/internal/jsonenc"
)

type requestIDKey struct{}

// WithRequestID returns a context carrying the request ID for problem bodies.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID stored by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Type URIs are stable identifiers users can branch on.
const typeBase = "https://sekisho.dev/problems/"

// Write sends status with an application/problem+json body. detail must be a
// constant or otherwise safe text; it is JSON-escaped but never interpreted.
func Write(w http.ResponseWriter, r *http.Request, status int, detail string) {
	WriteID(w, RequestID(r.Context()), status, detail)
}

// WriteID is Write for callers that hold the request ID directly.
func WriteID(w http.ResponseWriter, requestID string, status int, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	title := http.StatusText(status)
	if title == "" {
		title = "Error"
	}
	var b strings.Builder
	b.Grow(160 + len(detail) + len(requestID))
	b.WriteString(`{"type":"`)
	b.WriteString(typeBase)
	b.WriteString(slug(status))
	b.WriteString(`","title":`)
	b.WriteString(strconv.Quote(title))
	b.WriteString(`,"status":`)
	b.WriteString(strconv.Itoa(status))
	if detail != "" {
		b.WriteString(`,"detail":`)
		b.WriteString(quoteJSON(detail))
	}
	if requestID != "" {
		b.WriteString(`,"request_id":`)
		b.WriteString(quoteJSON(requestID))
	}
	b.WriteString("}\n")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func slug(status int) string {
	switch status {
	case 400:
		return "bad-request"
	case 401:
		return "unauthorized"
	case 403:
		return "forbidden"
	case 404:
		return "no-route"
	case 405:
		return "method-not-allowed"
	case 408:
		return "request-timeout"
	case 411:
		return "length-required"
	case 413:
		return "body-too-large"
	case 414:
		return "uri-too-long"
	case 429:
		return "rate-limited"
	case 431:
		return "headers-too-large"
	case 500:
		return "internal"
	case 502:
		return "bad-gateway"
	case 503:
		return "unavailable"
	case 504:
		return "gateway-timeout"
	}
	return strconv.Itoa(status)
}

// quoteJSON quotes s as a JSON string (strconv.Quote is not JSON).
func quoteJSON(s string) string { return string(jsonenc.AppendString(nil, s)) }

// Raw renders a complete HTTP/1.1 response carrying a problem body, for
// connection-level guards that answer before any http.Handler runs. The
// connection is closed after it. requestID must be a gateway-generated ID.
func Raw(status int, detail, requestID string) []byte {
	rec := &rawWriter{h: http.Header{}}
	WriteID(rec, requestID, status, detail)
	var b strings.Builder
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(status))
	b.WriteString("\r\nContent-Type: application/problem+json\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nX-Request-Id: ")
	b.WriteString(requestID)
	b.WriteString("\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(rec.body)))
	b.WriteString("\r\n\r\n")
	b.Write(rec.body)
	return []byte(b.String())
}

type rawWriter struct {
	h    http.Header
	body []byte
}

func (w *rawWriter) Header() http.Header         { return w.h }
func (w *rawWriter) WriteHeader(int)             {}
func (w *rawWriter) Write(p []byte) (int, error) { w.body = append(w.body, p...); return len(p), nil }
