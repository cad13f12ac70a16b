// Package shield protects the gateway's listeners at the connection level: a
// global cap on open client connections and a per-client-IP cap.
//
// # Behaviour at the limits
//
// Per-IP cap (MaxConnsPerIP): a connection from a peer that already holds
// MaxConnsPerIP connections is accepted and closed at once (with SO_LINGER 0,
// so the peer sees a reset and the server keeps no TIME_WAIT state). This is
// cheap and affects only that client. Accept does not return such connections;
// it goes on to the next one.
//
// Global cap (MaxConns): when MaxConns connections are open, Accept stops
// calling the underlying listener's Accept until a connection closes. New
// clients then wait in the kernel's listen backlog (and beyond that the kernel
// drops or refuses SYNs), which costs the process nothing. Closing and reopening
// connections at full load would waste CPU and reward clients that retry fastest.
//
// Peers are grouped by IP address: the full address for IPv4 (IPv4-mapped IPv6
// counts as IPv4), the /64 prefix for IPv6, because a single IPv6 host usually
// controls a whole /64. Connections whose remote address is not an IP (Unix
// sockets) are only subject to the global cap. Behind an L4 load balancer that
// does not preserve client addresses every connection shares one IP: set
// MaxConnsPerIP to 0 there.
//
// # Connection lifetime
//
// A connection holds its slots from Accept until its first Close; later Close
// calls do nothing more. When http.Server hijacks a connection (WebSocket
// upgrade, CONNECT) the hijacker receives this same connection (or a *tls.Conn
// wrapping it), so the slots are released when the hijacker closes it. Read and
// write deadlines pass straight through, so http.Server's ReadHeaderTimeout,
// ReadTimeout and IdleTimeout cut slow clients as usual.
//
// # TLS
//
// Wrap the raw TCP listener, then put TLS on top, so limits apply before any
// handshake work is done:
//
//	ln = tls.NewListener(shield.Listen(tcpLn, limits, metrics), tlsConfig)
//
// # Idle keep-alive connections
//
// Without help, idle keep-alive connections keep their slots until
// http.Server.IdleTimeout. If Limiter.ConnState is installed as (or called
// from) http.Server.ConnState, a listener waiting at the global cap closes the
// longest-idle connection (idle for at least one second) to make room.
//
// # HTTP/1 framing guard
//
// GuardListener (plain HTTP) and TLSListener (HTTPS, doing the handshakes
// itself) put a request-smuggling guard between the listener and
// http.Server: every HTTP/1.x request head is judged before net/http parses
// it, and ambiguous framing (Content-Length with Transfer-Encoding, duplicate
// or invalid Content-Length, any Transfer-Encoding other than "chunked",
// obs-fold, bare CR or LF, whitespace before a colon, oversized heads,
// malformed chunked bodies) is refused with an RFC 9457 problem response and
// a closed connection. Stack them on the Limiter's listener:
//
//	ln = shield.GuardListener(lim.Listen(tcpLn), opts)                  // http
//	ln = shield.TLSListener(lim.Listen(tcpLn), tlsConfig, opts, timeout) // https
//
// and set http.Server.ConnState to Limiter.ConnState (or ObserveConnState)
// so that upgraded (hijacked) connections are passed through, and
// http.Server.ConnContext to ConnContext for TLSStateFromContext.
package shield

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimits bounds client connections. The zero value means no limits.
type ConnLimits struct {
	// MaxConns caps open connections over every listener sharing the Limiter.
	// 0 means unlimited.
	MaxConns int
	// MaxConnsPerIP caps open connections per client IPv4 address or IPv6 /64.
	// 0 means unlimited.
	MaxConnsPerIP int
}

// Validate reports limits that make no sense.
func (l ConnLimits) Validate() error {
	if l.MaxConns < 0 {
		return fmt.Errorf("max_conns %d: must be 0 (unlimited) or positive", l.MaxConns)
	}
	if l.MaxConnsPerIP < 0 {
		return fmt.Errorf("max_conns_per_ip %d: must be 0 (unlimited) or positive", l.MaxConnsPerIP)
	}
	if l.MaxConns > 0 && l.MaxConnsPerIP > l.MaxConns {
		return fmt.Errorf("max_conns_per_ip %d: must not exceed max_conns %d", l.MaxConnsPerIP, l.MaxConns)
	}
	return nil
}

const (
	// defaultReclaimMinIdle is how long a connection must have been idle before
	// a saturated listener may close it. It leaves time for the last response
	// of an HTTP/2 connection to be flushed and for a client that is about to
	// reuse the connection to do so.
	defaultReclaimMinIdle = time.Second
	// reclaimPoll is how often a listener waiting at the global cap looks for
	// an idle connection that has become old enough to reclaim.
	reclaimPoll = 100 * time.Millisecond
)

// Limiter enforces ConnLimits over one or more listeners. It is safe for
// concurrent use.
type Limiter struct {
	lim ConnLimits
	m   *Metrics

	// slots is a counting semaphore for MaxConns; nil when unlimited.
	slots chan struct{}

	reclaimMinIdle time.Duration

	mu    sync.Mutex
	perIP map[netip.Addr]int // open connections per peer key; guarded by mu
	// idle list of connections in http.StateIdle, oldest first; guarded by mu.
	idleHead, idleTail *conn
}

// NewLimiter validates lim and returns a Limiter recording into m (which may be nil).
func NewLimiter(lim ConnLimits, m *Metrics) (*Limiter, error) {
	if err := lim.Validate(); err != nil {
		return nil, fmt.Errorf("connection limits: %w", err)
	}
	l := &Limiter{lim: lim, m: m, reclaimMinIdle: defaultReclaimMinIdle}
	if lim.MaxConns > 0 {
		l.slots = make(chan struct{}, lim.MaxConns)
	}
	if lim.MaxConnsPerIP > 0 {
		l.perIP = make(map[netip.Addr]int)
	}
	return l, nil
}

// Listen wraps ln with a new Limiter for lim. It panics if lim is invalid;
// validate limits with ConnLimits.Validate when loading configuration, or use
// NewLimiter and Limiter.Listen to get an error instead.
func Listen(ln net.Listener, lim ConnLimits, m *Metrics) net.Listener {
	l, err := NewLimiter(lim, m)
	if err != nil {
		panic("shield.Listen: " + err.Error())
	}
	return l.Listen(ln)
}

// Listen wraps ln so that its connections count against the Limiter. Several
// listeners may share one Limiter; MaxConns then caps their total.
func (l *Limiter) Listen(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l, done: make(chan struct{})}
}

type listener struct {
	net.Listener
	l         *Limiter
	done      chan struct{}
	closeOnce sync.Once
}

// Accept waits for a free global slot, accepts a connection, and returns it if
// its peer is under the per-IP cap; connections over the per-IP cap are closed
// and Accept continues with the next one.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		if err := ln.acquire(); err != nil {
			return nil, err
		}
		c, err := ln.Listener.Accept()
		if err != nil {
			ln.l.releaseSlot()
			return nil, err
		}
		if wc := ln.l.admit(c); wc != nil {
			return wc, nil
		}
		// Counted before the reset, so that whoever sees the reset also
		// finds it counted.
		ln.l.m.rejectedConn(ReasonPerIP)
		rejectConn(c)
		ln.l.releaseSlot()
	}
}

// Close closes the underlying listener and wakes an Accept waiting for a slot.
func (ln *listener) Close() error {
	ln.closeOnce.Do(func() { close(ln.done) })
	return ln.Listener.Close()
}

// acquire takes a global slot, waiting while the limit is reached. While it
// waits it reclaims idle connections that are old enough.
func (ln *listener) acquire() error {
	slots := ln.l.slots
	if slots == nil {
		return nil
	}
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case <-ln.done:
		return ln.closedErr()
	default:
	}
	ln.l.m.waited()
	var tick *time.Ticker
	for {
		ln.l.reclaimIdle()
		if tick == nil {
			select {
			case slots <- struct{}{}:
				return nil
			default:
			}
			tick = time.NewTicker(reclaimPoll)
			defer tick.Stop()
		}
		select {
		case slots <- struct{}{}:
			return nil
		case <-ln.done:
			return ln.closedErr()
		case <-tick.C:
		}
	}
}

func (ln *listener) closedErr() error {
	a := ln.Listener.Addr()
	return &net.OpError{Op: "accept", Net: a.Network(), Addr: a, Err: net.ErrClosed}
}

func (l *Limiter) releaseSlot() {
	if l.slots != nil {
		<-l.slots
	}
}

// admit accounts c to its peer and wraps it, or returns nil when the peer is
// over the per-IP cap. The caller already holds a global slot for c.
func (l *Limiter) admit(c net.Conn) *conn {
	wc := &conn{Conn: c, l: l}
	if l.perIP != nil {
		if key, ok := peerKey(c.RemoteAddr()); ok {
			l.mu.Lock()
			n := l.perIP[key]
			if n >= l.lim.MaxConnsPerIP {
				l.mu.Unlock()
				return nil
			}
			l.perIP[key] = n + 1
			l.mu.Unlock()
			wc.key, wc.hasKey = key, true
		}
	}
	l.m.connOpened()
	return wc
}

// release gives back c's per-IP count and global slot. Called exactly once per
// admitted connection.
func (l *Limiter) release(c *conn) {
	l.mu.Lock()
	c.released = true
	l.idleRemoveLocked(c)
	if c.hasKey {
		if n := l.perIP[c.key] - 1; n > 0 {
			l.perIP[c.key] = n
		} else {
			delete(l.perIP, c.key)
		}
	}
	l.mu.Unlock()
	l.m.connClosed()
	l.releaseSlot()
}

// rejectConn closes a connection over the per-IP cap. SO_LINGER 0 makes the
// close send a reset, so a flood of rejected connections leaves no TIME_WAIT
// sockets behind.
func rejectConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// peerKey returns the accounting key of a remote address: the IPv4 address, or
// the IPv6 /64 prefix (as its first address). ok is false for non-IP addresses.
func peerKey(a net.Addr) (key netip.Addr, ok bool) {
	var ip netip.Addr
	switch t := a.(type) {
	case *net.TCPAddr:
		ip = t.AddrPort().Addr()
	case *net.UDPAddr:
		ip = t.AddrPort().Addr()
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.Is4():
		return ip, true
	case ip.Is6():
		p, err := ip.Prefix(64)
		if err != nil {
			return netip.Addr{}, false
		}
		return p.Addr(), true
	default:
		return netip.Addr{}, false
	}
}

// conn is an admitted connection. It releases its slots on the first Close.
type conn struct {
	net.Conn
	l      *Limiter
	key    netip.Addr
	hasKey bool
	closed atomic.Bool

	// guarded by l.mu
	released   bool
	idle       bool
	idleSince  time.Time
	prev, next *conn
}

// Close closes the connection and, the first time, releases its slots.
func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c)
	}
	return err
}

// NetConn returns the underlying connection. Closing it directly bypasses the
// limiter's accounting; close the wrapper instead.
func (c *conn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the connection if the underlying connection supports
// it (http.Server uses this for a graceful close).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ReadFrom keeps the kernel fast paths (sendfile/splice) of the underlying
// connection available to http.Server.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// WriteTo keeps the splice fast path of the underlying connection available.
func (c *conn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, c.Conn)
}
