package shield

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/reqid"
)

// FramingOptions configures the HTTP/1.x framing guard of GuardListener and
// TLSListener.
type FramingOptions struct {
	// MaxHeaderBytes bounds a request head: request line, header field lines
	// and the final empty line, CRLFs included. A longer head is refused with
	// 431. Use the same value as http.Server.MaxHeaderBytes (net/http allows
	// 4096 bytes more, so its own text/plain 431 never fires first). 0 or
	// less means http.DefaultMaxHeaderBytes, as in net/http.
	MaxHeaderBytes int
	// ErrorWriter renders the complete HTTP/1.1 response (status line,
	// headers with Connection: close and X-Request-Id, body) for a refusal;
	// detail is a fixed sentence, never client input, and requestID a fresh
	// random ID generated per refusal. nil sends a bodiless response with
	// only the status line, X-Request-Id and Connection: close.
	ErrorWriter func(status int, detail, requestID string) []byte
	// OnReject is called once per refused connection with a fixed reason
	// label (see FramingRejectReasons), the request ID sent to the client and
	// the peer address, for metrics and logs. It must be safe for concurrent
	// use. nil is allowed.
	OnReject func(reason, requestID string, peer net.Addr)
}

// ErrFramingRejected is the error a guarded connection's Read returns after
// the guard refused the connection. It is wrapped in a *net.OpError with Op
// "read", which net/http treats as a plain network read error (no reply of
// its own, connection closed).
var ErrFramingRejected = errors.New("shield: HTTP/1 framing violation, connection refused")

// errGuardClosed is returned by Write once the guard has refused (or given
// up on) the connection, so that net/http cannot add a response of its own.
var errGuardClosed = errors.New("shield: connection closed by the framing guard")

const (
	// minDirectRead is the smallest caller buffer read into directly;
	// smaller reads (net/http's 1-byte background read, limit-truncated
	// peeks) go through the connection's hold buffer so that a head is not
	// assembled one syscall per byte.
	minDirectRead = 512
	// holdInitial and holdPoolMax size the pooled hold buffers.
	holdInitial = 4 << 10
	holdPoolMax = 64 << 10
	// rejectWriteTimeout bounds writing the refusal response.
	rejectWriteTimeout = 2 * time.Second
	// rejectLinger and rejectDrainMax bound how long and how much a refused
	// connection is read (and discarded) after the response and a half-close,
	// so that the client receives the response instead of a TCP reset caused
	// by its unread request bytes (the same reason net/http waits 500ms in
	// closeWriteAndWait).
	rejectLinger   = 500 * time.Millisecond
	rejectDrainMax = 256 << 10
)

// guardConfig is shared by the connections of one listener.
type guardConfig struct {
	maxHead  int
	h2c      bool // plain listener: pass HTTP/2 prior knowledge through
	onReject func(reason, requestID string, peer net.Addr)
	render   func(status int, detail, requestID string) []byte
	pool     sync.Pool // *[]byte hold buffers
}

func newGuardConfig(o FramingOptions, h2c bool) *guardConfig {
	g := &guardConfig{maxHead: o.MaxHeaderBytes, h2c: h2c, onReject: o.OnReject, render: o.ErrorWriter}
	if g.maxHead <= 0 {
		g.maxHead = http.DefaultMaxHeaderBytes
	}
	g.pool.New = func() any {
		b := make([]byte, 0, holdInitial)
		return &b
	}
	return g
}

func renderError(w func(int, string, string) []byte, status int, detail, id string) []byte {
	if w != nil {
		if b := w(status, detail, id); len(b) > 0 {
			return b
		}
	}
	return []byte("HTTP/1.1 " + itoa3(status) + " " + http.StatusText(status) + "\r\nX-Request-Id: " + id + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100%10), byte('0' + n/10%10), byte('0' + n%10)})
}

// GuardListener wraps ln so that every accepted connection passes through the
// HTTP/1.x framing guard before net/http sees a byte of it.
//
// net/http resolves ambiguous framing on its own terms (it drops
// Content-Length when Transfer-Encoding is present, merges duplicate
// Content-Lengths, unfolds obs-fold lines, accepts bare LF line endings) and
// answers malformed or oversized heads itself with text/plain. A proxy in
// front of the gateway may resolve the same bytes differently, which is how
// requests are smuggled. The guard refuses every such message instead, with
// an RFC 9457 problem response rendered by o.ErrorWriter (400, 417 or 431),
// then closes the connection. parseHead documents the exact rules.
//
// The guard follows the request stream byte for byte: it holds back a request
// head until the head is complete and accepted (up to 4 leading bytes of it
// are released early so that http.Server's ReadHeaderTimeout still starts
// when a keep-alive request begins), then follows the body by Content-Length
// or chunked framing to find the next head, so pipelined requests are judged
// one by one and a request hidden in a body is never parsed as a request.
// Bytes reach net/http unchanged.
//
// Not HTTP/1 any more:
//   - HTTP/2 prior knowledge (the client preface at connection start) switches
//     the connection to passthrough; HTTP/2 frames are length-prefixed and
//     net/http validates them.
//   - After http.Server reports the connection hijacked (a 101 upgrade such as
//     WebSocket, proxied by httputil.ReverseProxy), the guard passes bytes
//     through, because net/http no longer parses requests on it. This needs
//     http.Server.ConnState to be Limiter.ConnState or to call
//     ObserveConnState; without it, data after an upgrade is judged as
//     HTTP/1 and the connection is refused (fail closed).
//
// Read deadlines, write deadlines, CloseWrite and NetConn (used by
// Limiter.ConnState to find its connection) are passed through. Read must
// not be called concurrently with itself, as for any net.Conn used by
// net/http.
func GuardListener(ln net.Listener, o FramingOptions) net.Listener {
	return &guardListener{Listener: ln, cfg: newGuardConfig(o, true)}
}

type guardListener struct {
	net.Listener
	cfg *guardConfig
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newGuardConn(c, l.cfg, l.cfg.h2c), nil
}

// ObserveConnState lets the framing guard follow http.Server's view of a
// connection; install it as (or call it from) http.Server.ConnState when the
// server does not use Limiter.ConnState, which already calls it. Only
// http.StateHijacked matters: from then on the guard passes bytes through.
// Other connections are ignored.
func ObserveConnState(c net.Conn, st http.ConnState) {
	if g, ok := c.(interface{ guard() *guardConn }); ok && st == http.StateHijacked {
		g.guard().hijacked.Store(true)
	}
}

// guardConn is a connection guarded by the framer.
type guardConn struct {
	net.Conn
	cfg *guardConfig

	// wmu serializes Write with the refusal response so that the two never
	// interleave within one write. dead (guarded by wmu) makes later writes
	// fail: after a refusal nothing else may be sent, in particular not
	// net/http's own text/plain error.
	wmu  sync.Mutex
	dead bool

	hijacked atomic.Bool // http.StateHijacked observed
	rdAbort  atomic.Bool // the last read deadline set was already past (an abort, not a timeout)

	// Read side; only the single reader touches these.
	f    framer
	pass bool  // passthrough
	rerr error // sticky read error after a refusal
	// hold keeps bytes the caller has not received: hold[hr:hv] are
	// validated, hold[f.headStart:] may be an incomplete head.
	hold   []byte
	holdp  *[]byte
	hr, hv int
}

func newGuardConn(c net.Conn, cfg *guardConfig, h2c bool) *guardConn {
	return &guardConn{Conn: c, cfg: cfg, f: newFramer(cfg.maxHead, h2c)}
}

func (g *guardConn) guard() *guardConn { return g }

// NetConn returns the wrapped connection.
func (g *guardConn) NetConn() net.Conn { return g.Conn }

// CloseWrite half-closes the wrapped connection if it supports it.
func (g *guardConn) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SetDeadline forwards to the wrapped connection.
func (g *guardConn) SetDeadline(t time.Time) error {
	g.noteReadDeadline(t)
	return g.Conn.SetDeadline(t)
}

// SetReadDeadline forwards to the wrapped connection.
func (g *guardConn) SetReadDeadline(t time.Time) error {
	g.noteReadDeadline(t)
	return g.Conn.SetReadDeadline(t)
}

// noteReadDeadline remembers whether a read deadline is set in the past:
// net/http does that to abort its background read (a timeout it ignores),
// while a deadline that expires later is a real timeout.
func (g *guardConn) noteReadDeadline(t time.Time) {
	g.rdAbort.Store(!t.IsZero() && !t.After(time.Now()))
}

// Write sends p unless the guard has refused the connection.
func (g *guardConn) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.dead {
		return 0, &net.OpError{Op: "write", Net: netName(g.Conn), Source: g.Conn.LocalAddr(), Addr: g.Conn.RemoteAddr(), Err: errGuardClosed}
	}
	return g.Conn.Write(p)
}

// Read returns the next validated bytes of the client's stream.
func (g *guardConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if g.hr < g.hv {
			n := copy(b, g.hold[g.hr:g.hv])
			g.hr += n
			g.releaseDrained()
			return n, nil
		}
		if g.rerr != nil {
			return 0, g.rerr
		}
		if !g.pass && g.hijacked.Load() {
			g.startPass()
			continue
		}
		if g.pass {
			g.releaseDrained()
			return g.Conn.Read(b)
		}
		if g.hold == nil && len(b) >= minDirectRead {
			if n, err := g.readDirect(b); n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if err := g.readHold(); err != nil {
			return 0, err
		}
	}
}

// startPass hands everything held to the caller as is and stops judging.
func (g *guardConn) startPass() {
	g.pass = true
	g.f.st = stPass
	g.hv = len(g.hold)
}

// readDirect reads into the caller's buffer, the steady-state path: complete
// requests are judged in place and returned without copying.
func (g *guardConn) readDirect(b []byte) (int, error) {
	n, err := g.Conn.Read(b)
	if n > 0 {
		if g.hijacked.Load() { // hijacked while this read was blocked
			g.startPass()
			return n, nil
		}
		valid, r := g.f.scan(b[:n], 0)
		if r != rNone {
			return 0, g.reject(r, b)
		}
		if g.f.st == stPass {
			g.pass = true
			return n, nil
		}
		if g.f.st == stHead {
			// Head indexes must refer to the next buffer: the hold buffer
			// if an incomplete head is kept, else the caller's next one.
			hs := g.f.headStart
			if hs < n {
				// Keep the incomplete head (including any early released
				// bytes, already in b[:valid]) for the next read.
				g.getHold()
				g.hold = append(g.hold, b[hs:n]...)
				g.hr, g.hv = valid-hs, valid-hs
			}
			g.f.rebase(hs)
		}
		if valid > 0 {
			// A read error that came with the data repeats on the next
			// read (EOF, reset) or is a deadline net/http handles then.
			return valid, nil
		}
	}
	if err != nil {
		return 0, g.readErr(err)
	}
	return 0, nil
}

// readHold reads more bytes into the hold buffer and judges them.
func (g *guardConn) readHold() error {
	if g.hold == nil {
		g.getHold()
	}
	g.compact()
	if cap(g.hold)-len(g.hold) < minDirectRead {
		nb := make([]byte, len(g.hold), 2*cap(g.hold))
		copy(nb, g.hold)
		g.hold = nb
	}
	from := len(g.hold)
	m, err := g.Conn.Read(g.hold[from:cap(g.hold)])
	if m > 0 {
		g.hold = g.hold[:from+m]
		if g.hijacked.Load() { // hijacked while this read was blocked
			g.startPass()
			return nil
		}
		valid, r := g.f.scan(g.hold, from)
		if r != rNone {
			return g.reject(r, nil)
		}
		if g.f.st == stPass {
			g.startPass()
			return nil
		}
		g.hv = max(g.hv, valid)
		if g.hv > g.hr {
			return nil // deliver; a read error repeats on the next read
		}
	}
	if err != nil {
		return g.readErr(err)
	}
	return nil
}

// compact drops bytes the caller has received and that are not part of an
// incomplete head.
func (g *guardConn) compact() {
	base := g.hr
	if g.f.pendingHead(len(g.hold)) {
		base = min(base, g.f.headStart)
	}
	if base == 0 {
		return
	}
	n := copy(g.hold, g.hold[base:])
	g.hold = g.hold[:n]
	g.hr -= base
	g.hv -= base
	if g.f.st == stHead {
		g.f.rebase(base)
	}
}

func (g *guardConn) getHold() {
	p := g.cfg.pool.Get().(*[]byte)
	g.hold, g.holdp = (*p)[:0], p
	g.hr, g.hv = 0, 0
}

// releaseDrained returns the hold buffer to the pool once the caller has
// received everything in it and no incomplete head is kept, so an idle
// keep-alive connection holds no buffer.
func (g *guardConn) releaseDrained() {
	if g.hold == nil || g.hr < len(g.hold) || g.f.pendingHead(len(g.hold)) {
		return
	}
	if g.f.st == stHead {
		g.f.rebase(len(g.hold))
	}
	if cap(g.hold) <= holdPoolMax {
		*g.holdp = g.hold[:0]
		g.cfg.pool.Put(g.holdp)
	}
	g.hold, g.holdp, g.hr, g.hv = nil, nil, 0, 0
}

// readErr handles an error from the wrapped connection. If net/http already
// has the first bytes of a request line it cannot complete (early release),
// it would treat them as a line and answer its own text/plain 400, so the
// connection is marked dead first; net/http's own abort of its background
// read is the one error that is not final.
func (g *guardConn) readErr(err error) error {
	if g.f.pendingHead(len(g.hold)) && g.hr > g.f.headStart {
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout() && g.rdAbort.Load()) {
			g.wmu.Lock()
			g.dead = true
			g.wmu.Unlock()
			g.rerr = err
		}
	}
	return err
}

// reject reports the refusal for r, sends it, half-closes, briefly drains
// what the client still sends, and returns the sticky read error. scratch
// may be used as the drain buffer.
func (g *guardConn) reject(r reason, scratch []byte) error {
	id := reqid.New()
	// Report before answering, so that whoever reads the refusal also
	// finds it counted and logged.
	if g.cfg.onReject != nil {
		g.cfg.onReject(reasonInfo[r].label, id, g.Conn.RemoteAddr())
	}
	g.wmu.Lock()
	if !g.dead {
		g.dead = true
		_ = g.Conn.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
		_, _ = g.Conn.Write(renderError(g.cfg.render, reasonInfo[r].status, reasonInfo[r].detail, id))
	}
	g.wmu.Unlock()
	if len(scratch) < minDirectRead && cap(g.hold) >= minDirectRead {
		scratch = g.hold[:cap(g.hold)]
	}
	lingerClose(g.Conn, scratch)
	g.hold, g.holdp, g.hr, g.hv = nil, nil, 0, 0
	g.rerr = &net.OpError{Op: "read", Net: netName(g.Conn), Source: g.Conn.LocalAddr(), Addr: g.Conn.RemoteAddr(), Err: ErrFramingRejected}
	return g.rerr
}

// lingerClose half-closes c after a final response and reads (discarding)
// what the client still sends, for at most rejectLinger and rejectDrainMax
// bytes, so that the client reads the response instead of a reset caused by
// unread request bytes. The caller closes c afterwards. scratch may be nil.
func lingerClose(c net.Conn, scratch []byte) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if len(scratch) < minDirectRead {
		scratch = make([]byte, holdInitial)
	}
	_ = c.SetReadDeadline(time.Now().Add(rejectLinger))
	for total := 0; total < rejectDrainMax; {
		n, err := c.Read(scratch)
		total += n
		if err != nil {
			return
		}
	}
}

func netName(c net.Conn) string {
	if a := c.LocalAddr(); a != nil {
		return a.Network()
	}
	return "tcp"
}

// tlsGuardConn is a guarded HTTP/1.1-over-TLS connection. ConnectionState
// makes net/http set Request.TLS for it as it does for a *tls.Conn.
type tlsGuardConn struct {
	guardConn
	state tls.ConnectionState
}

// ConnectionState returns the state of the completed TLS handshake.
func (c *tlsGuardConn) ConnectionState() tls.ConnectionState { return c.state }
