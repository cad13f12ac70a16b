package shield

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/reqid"
)

const (
	// maxPendingHandshakes bounds concurrent TLS handshakes per listener.
	// When reached, the listener stops accepting (new clients wait in the
	// kernel backlog), as the Limiter does at its global cap.
	maxPendingHandshakes = 1024
	// defaultHandshakeTimeout applies when TLSListener gets no positive
	// timeout: a handshake is never unbounded.
	defaultHandshakeTimeout = 10 * time.Second
	// plainHTTPDetail answers a plain-HTTP request sent to a TLS listener.
	plainHTTPDetail = "This port expects TLS: send the request over HTTPS."
)

// TLSListener accepts connections from ln (normally already limited by a
// Limiter, so limits apply before any handshake work), performs the TLS
// handshake with cfg itself and hands out only connections whose handshake
// completed:
//
//   - ALPN "h2": the *tls.Conn itself, so http.Server serves HTTP/2 through
//     TLSNextProto (its own handshake call is then a no-op). HTTP/2 framing
//     is length-prefixed and validated by net/http.
//   - anything else (http/1.1 or no ALPN): the *tls.Conn wrapped in the
//     framing guard described at GuardListener. The wrapper implements
//     ConnectionState, so net/http still sets Request.TLS, and ConnContext
//     stores the state for TLSStateFromContext as well.
//
// Handshakes run concurrently, at most 1024 at a time, each bounded by
// handshakeTimeout (10s if not positive) so a client that never completes
// one cannot hold up others. Failed handshakes are closed silently and
// counted (HandshakeFailures on the returned listener); a client that sends
// plain HTTP gets a 400 rendered by o.ErrorWriter first. Close stops
// accepting, unblocks Accept and aborts pending handshakes.
//
// cfg.NextProtos decides what is offered: include "h2" and "http/1.1".
// HTTP/2 prior knowledge is not recognised on TLS connections.
func TLSListener(ln net.Listener, cfg *tls.Config, o FramingOptions, handshakeTimeout time.Duration) net.Listener {
	if handshakeTimeout <= 0 {
		handshakeTimeout = defaultHandshakeTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{
		inner:   ln,
		cfg:     cfg,
		guard:   newGuardConfig(o, false),
		render:  o.ErrorWriter,
		timeout: handshakeTimeout,
		ready:   make(chan net.Conn),
		done:    make(chan struct{}),
		failed:  make(chan struct{}),
		sem:     make(chan struct{}, maxPendingHandshakes),
		ctx:     ctx,
		cancel:  cancel,
	}
	go l.acceptLoop()
	return l
}

type tlsListener struct {
	inner   net.Listener
	cfg     *tls.Config
	guard   *guardConfig
	render  func(status int, detail, requestID string) []byte
	timeout time.Duration

	ready chan net.Conn   // handshaken connections waiting for Accept
	done  chan struct{}   // closed by Close
	sem   chan struct{}   // pending handshakes
	ctx   context.Context // cancelled by Close; aborts handshakes
	// failed is closed when the accept loop stops on an error other than
	// Close; failErr is set before.
	failed  chan struct{}
	failErr error

	cancel    context.CancelFunc
	closeOnce sync.Once
	failures  atomic.Uint64
}

// HandshakeFailures returns how many handshakes failed or timed out.
func (l *tlsListener) HandshakeFailures() uint64 { return l.failures.Load() }

// Addr returns the inner listener's address.
func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting and aborts pending handshakes.
func (l *tlsListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
	})
	return l.inner.Close()
}

// Accept returns the next connection whose handshake completed.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.closedErr()
	default:
	}
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.closedErr()
	case <-l.failed:
		return nil, l.failErr
	}
}

func (l *tlsListener) closedErr() error {
	a := l.inner.Addr()
	return &net.OpError{Op: "accept", Net: a.Network(), Addr: a, Err: net.ErrClosed}
}

// acceptLoop accepts raw connections and starts a handshake for each while
// fewer than maxPendingHandshakes are pending. Temporary accept errors (for
// example EMFILE) are retried with backoff as http.Server does; any other
// error stops the loop and is returned by Accept.
func (l *tlsListener) acceptLoop() {
	var delay time.Duration
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return
		}
		c, err := l.inner.Accept()
		if err != nil {
			<-l.sem
			var te interface{ Temporary() bool }
			if errors.Is(err, net.ErrClosed) || !errors.As(err, &te) || !te.Temporary() {
				l.failErr = err
				close(l.failed)
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-l.done:
				return
			}
			continue
		}
		delay = 0
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	defer func() { <-l.sem }()
	tc := tls.Server(c, l.cfg)
	_ = c.SetDeadline(time.Now().Add(l.timeout))
	if err := tc.HandshakeContext(l.ctx); err != nil {
		l.failures.Add(1)
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader) {
			if _, err := rhe.Conn.Write(renderError(l.render, 400, plainHTTPDetail, reqid.New())); err == nil {
				lingerClose(rhe.Conn, nil)
			}
		}
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	var out net.Conn = tc
	if st.NegotiatedProtocol != "h2" {
		out = &tlsGuardConn{guardConn: guardConn{Conn: tc, cfg: l.guard, f: newFramer(l.guard.maxHead, false)}, state: st}
	}
	select {
	case l.ready <- out:
	case <-l.done:
		_ = out.Close()
	}
}

// looksLikeHTTP reports whether a TLS record header is the start of a
// plain-text HTTP request (as net/http checks for the same purpose).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE":
		return true
	}
	return false
}

type tlsStateKey struct{}

// ConnContext is meant for http.Server.ConnContext: for a connection handed
// out by TLSListener it stores the TLS connection state in the context, where
// TLSStateFromContext finds it. Other connections leave ctx unchanged.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	switch c := c.(type) {
	case *tlsGuardConn:
		return context.WithValue(ctx, tlsStateKey{}, &c.state)
	case *tls.Conn:
		if st := c.ConnectionState(); st.HandshakeComplete {
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
	}
	return ctx
}

// TLSStateFromContext returns the TLS state stored by ConnContext, or nil for
// a connection that is not TLS. (net/http also sets Request.TLS itself for
// connections from TLSListener, since the guard implements ConnectionState.)
func TLSStateFromContext(ctx context.Context) *tls.ConnectionState {
	st, _ := ctx.Value(tlsStateKey{}).(*tls.ConnectionState)
	return st
}
