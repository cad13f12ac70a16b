package shield

import (
	"net"
	"net/http"
	"time"
)

// ConnState records which connections are idle between keep-alive requests so
// that a listener waiting at the global cap can close the longest-idle one
// instead of leaving new clients in the backlog until http.Server.IdleTimeout.
// Install it as http.Server.ConnState or call it from your own hook. It accepts
// the connection http.Server sees, including a *tls.Conn over a connection of
// this Limiter; other connections are ignored. Without a global cap it does
// nothing for the limits. It also calls ObserveConnState, so connections of
// GuardListener and TLSListener learn when http.Server hijacks them.
//
// A connection must have been idle for at least one second before it is
// reclaimed. Closing an idle connection is allowed by HTTP (RFC 9112 §9.3.1);
// a client that sends a request at that same moment sees a closed connection
// and, for idempotent requests, retries.
func (l *Limiter) ConnState(nc net.Conn, st http.ConnState) {
	ObserveConnState(nc, st)
	if l.slots == nil {
		return
	}
	c := l.find(nc)
	if c == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateIdle {
		if !c.released && !c.idle {
			c.idle = true
			c.idleSince = time.Now()
			c.prev, c.next = l.idleTail, nil
			if l.idleTail != nil {
				l.idleTail.next = c
			} else {
				l.idleHead = c
			}
			l.idleTail = c
		}
		return
	}
	l.idleRemoveLocked(c)
}

// find unwraps nc (for example a *tls.Conn) down to a connection admitted by l.
func (l *Limiter) find(nc net.Conn) *conn {
	for range 4 {
		if c, ok := nc.(*conn); ok {
			if c.l == l {
				return c
			}
			return nil
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// idleRemoveLocked takes c off the idle list if it is on it. l.mu must be held.
func (l *Limiter) idleRemoveLocked(c *conn) {
	if !c.idle {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.idleHead = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.idleTail = c.prev
	}
	c.prev, c.next, c.idle = nil, nil, false
}

// reclaimIdle closes the longest-idle connection if it has been idle long
// enough. Closing it releases its slot.
func (l *Limiter) reclaimIdle() {
	l.mu.Lock()
	c := l.idleHead
	if c == nil || time.Since(c.idleSince) < l.reclaimMinIdle {
		l.mu.Unlock()
		return
	}
	l.idleRemoveLocked(c)
	l.mu.Unlock()
	l.m.reclaimedIdle()
	_ = c.Close()
}
