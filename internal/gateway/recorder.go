package gateway

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"time"
)

// recorder wraps the client's ResponseWriter to learn the status and byte
// count for the access log and metrics. It implements Unwrap so
// http.ResponseController (which ReverseProxy uses for flushing and for
// hijacking on protocol upgrades) reaches the real connection.
type recorder struct {
	w       http.ResponseWriter
	status  int
	bytes   int64
	wrote   bool
	onWrite func(http.Header) // response header transforms, run once before the header is sent
}

func (r *recorder) reset(w http.ResponseWriter) {
	*r = recorder{w: w}
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) WriteHeader(code int) {
	if r.wrote {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational responses (103 Early Hints, 100) pass through.
		r.w.WriteHeader(code)
		return
	}
	r.wrote = true
	r.status = code
	if r.onWrite != nil {
		r.onWrite(r.w.Header())
	}
	r.w.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.w.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	if f, ok := r.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack is used for protocol upgrades (WebSocket).
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
		r.wrote = true
	}
	conn, brw, err := h.Hijack()
	if err == nil {
		// The server's read deadline (server.read_timeout) was for one
		// request; an upgraded connection (WebSocket) lives on its own.
		_ = conn.SetDeadline(time.Time{})
	}
	return conn, brw, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.w }
