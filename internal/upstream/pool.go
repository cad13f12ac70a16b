package upstream

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is an http.RoundTripper that sends each request to one target of an
// upstream: it balances, applies timeouts, retries safe failures, tracks
// passive and active health, and returns classifiable *Error values.
//
// Use it as httputil.ReverseProxy.Transport. The outbound request's URL scheme
// and host are ignored and replaced by the chosen target's; the target's base
// path is prefixed to the path. An empty Request.Host makes the Host header
// the target's host:port; set it in Rewrite to preserve the client's Host.
//
// A Pool is safe for concurrent use. It never buffers bodies: request and
// response bytes stream through.
type Pool struct {
	name             string
	targets          []*target
	leastOutstanding bool
	overall          time.Duration // <=0: none
	retries          int
	maxFailures      int64 // <=0: passive health off
	ejectFor         time.Duration
	count5xx         bool
	active           *activeConfig

	h1  *http.Transport // http:// as HTTP/1.1, https:// with ALPN (h2, http/1.1)
	h2c *http.Transport // http:// with HTTP/2 prior knowledge; nil unless Options.H2C

	log   *slog.Logger
	m     *metrics
	certs *certReloader
	now   func() time.Time // injectable clock for passive health

	mu sync.Mutex    // guards target.cw (smooth weighted round robin)
	rr atomic.Uint64 // rotation for least-outstanding ties

	life    sync.Mutex // guards started, closed, stop and wg.Add
	started bool
	closed  bool
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// target is one compiled Target plus its runtime state.
type target struct {
	index        int
	label        string // scheme://host:port[/base]: logs, errors, metrics, RequestInfo
	scheme       string
	https        bool
	host         string // host:port
	basePath     string // decoded, no trailing slash; "" for none
	baseEsc      string // escaped form of basePath
	baseNeedsRaw bool   // basePath has characters that need URL.RawPath
	weight       int64
	rt           http.RoundTripper
	h2c          bool

	inflight     atomic.Int64
	fails        atomic.Int64 // consecutive passive failures
	ejectedUntil atomic.Int64 // unix nanoseconds (Pool.now clock); 0: not ejected
	active       atomic.Int32 // activeUnknown / activeUp / activeDown

	okStreak, failStreak int   // owned by the target's probe goroutine
	cw                   int64 // smooth WRR current weight; guarded by Pool.mu
}

const (
	activeUnknown int32 = iota
	activeUp
	activeDown
)

// New validates o and builds a Pool. Call Start when the pool goes live (it
// publishes the health gauge and starts active health checks) and Close when
// it is retired.
func New(o Options) (*Pool, error) {
	c, err := compile(&o)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("upstream", c.name)
	m, err := newMetrics(o.Registerer, c.name)
	if err != nil {
		return nil, &configError{name: c.name, err: err}
	}
	p := &Pool{
		name:             c.name,
		targets:          c.targets,
		leastOutstanding: c.leastOutstanding,
		overall:          c.overallTimeout,
		retries:          c.retries,
		maxFailures:      int64(c.maxFailures),
		ejectFor:         c.ejectFor,
		count5xx:         c.count5xx,
		active:           c.active,
		log:              log,
		m:                m,
		certs:            c.certs,
		now:              time.Now,
	}
	if c.certs != nil {
		c.certs.log = log
	}
	p.h1 = newTransport(c, c.tls, false)
	if c.h2c {
		p.h2c = newTransport(c, nil, true)
	}
	for _, t := range p.targets {
		t.rt = p.h1
		if c.h2c && !t.https {
			t.rt, t.h2c = p.h2c, true
		}
	}
	return p, nil
}

type configError struct {
	name string
	err  error
}

func (e *configError) Error() string { return "upstream " + quote(e.name) + ": " + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// newTransport returns an http.Transport tuned for a reverse proxy: no proxy
// from the environment, a large keep-alive pool, bytes passed through
// untouched (no transparent gzip), bounded response headers.
func newTransport(c *compiled, tlsConf *tls.Config, h2c bool) *http.Transport {
	d := &net.Dialer{Timeout: c.connectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSHandshakeTimeout:    c.connectTimeout,
		MaxIdleConns:           0, // no global cap; per host below
		MaxIdleConnsPerHost:    c.maxIdle,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  c.responseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second, // detect dead HTTP/2 connections
			PingTimeout:     15 * time.Second,
		},
	}
	if tlsConf != nil {
		tr.TLSClientConfig = tlsConf.Clone()
	}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	} else {
		tr.ForceAttemptHTTP2 = true // ALPN h2 for https despite the custom dialer/TLS config
	}
	return tr
}

// RoundTrip implements http.RoundTripper. It does not modify req; it sends a
// shallow copy whose URL points at the chosen target.
//
// Errors are *Error (see Kind). On success, resp.Request.URL is the URL that
// was sent (scheme, target host, joined path).
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	info, _ := parent.Value(infoKey{}).(*RequestInfo)

	c := &call{p: p, ctx: parent}
	if p.overall > 0 {
		c.ctx, c.cancel = context.WithCancelCause(parent)
		c.timer = time.AfterFunc(p.overall, c.expire)
	}
	retries := 0
	if p.retries > 0 && idempotent(req.Method) &&
		(req.Body == nil || req.Body == http.NoBody || req.GetBody != nil) {
		retries = p.retries
	}

	var tried bitset
	var last *Error
	for attempt := 1; ; attempt++ {
		t := p.pick(&tried)
		if t == nil {
			c.finish()
			if last != nil {
				return nil, last
			}
			p.m.errors[KindNoHealthy].Inc()
			if info != nil {
				info.Target, info.Attempts = "", 0
			}
			return nil, &Error{Kind: KindNoHealthy, Upstream: p.name, Err: ErrNoHealthyTarget}
		}
		tried.set(t.index)

		out, err := c.outRequest(req, t, attempt)
		if err != nil { // GetBody failed: nothing was sent on this attempt
			c.finish()
			return nil, last
		}
		rt := t.rt
		if t.h2c && len(req.Header["Upgrade"]) > 0 {
			rt = p.h1 // HTTP/2 has no Upgrade; WebSocket needs HTTP/1.1
		}
		c.tries = attempt
		if info != nil {
			info.Target, info.Attempts = t.label, attempt
		}

		t.inflight.Add(1)
		resp, err := rt.RoundTrip(out)
		if err == nil {
			p.observeStatus(t, resp.StatusCode)
			return c.wrap(resp, t), nil
		}
		t.inflight.Add(-1)

		kind, retryable := classify(c.ctx, err)
		if parent.Err() == nil {
			// Our own timeouts and transport errors count against the
			// target; the caller's cancellation or deadline does not.
			p.failure(t)
		}
		if kind != KindCanceled {
			p.m.errors[kind].Inc()
		}
		last = &Error{Kind: kind, Upstream: p.name, Target: t.label, Attempts: attempt, Err: err}
		if !retryable || attempt > retries {
			c.finish()
			return nil, last
		}
		p.m.retries.Inc()
	}
}

// idempotent reports whether RFC 9110 defines method as idempotent.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// call is the per-request state. One allocation holds the state, the first
// attempt's URL and the response body wrapper.
type call struct {
	p      *Pool
	ctx    context.Context
	cancel context.CancelCauseFunc // nil without overall timeout
	timer  *time.Timer             // nil without overall timeout
	t      *target                 // target whose response is being read
	tries  int                     // attempts made
	body   io.ReadCloser           // the transport's response body
	done   atomic.Bool
	url    url.URL
}

// outRequest builds the attempt's request: a shallow copy of req with the
// attempt context and a URL pointing at t.
func (c *call) outRequest(req *http.Request, t *target, attempt int) (*http.Request, error) {
	out := req.WithContext(c.ctx)
	u := &c.url
	if attempt > 1 {
		u = new(url.URL) // the transport may still reference the previous attempt's URL
	}
	*u = *req.URL
	u.Scheme, u.Host, u.User, u.Opaque = t.scheme, t.host, nil, ""
	if t.basePath != "" {
		path := req.URL.Path
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		u.Path = t.basePath + path
		if t.baseNeedsRaw || req.URL.RawPath != "" {
			esc := req.URL.EscapedPath()
			if esc == "" || esc[0] != '/' {
				esc = "/" + esc
			}
			u.RawPath = t.baseEsc + esc
		} else {
			u.RawPath = ""
		}
	}
	out.URL = u
	out.RequestURI = ""
	if attempt > 1 && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		out.Body = body
	}
	return out, nil
}

// wrap installs the body wrapper that ends the call when the body is done.
func (c *call) wrap(resp *http.Response, t *target) *http.Response {
	c.t = t
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			// The overall timeout covered the wait for the header only. The
			// context must stay alive for the upgraded connection, so stop the
			// timer without canceling; Close ends the call.
			if c.timer != nil {
				c.timer.Stop()
			}
			c.body = rwc
			resp.Body = (*upgradeBody)(c)
			return resp
		}
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		c.finish() // nothing to read (HEAD, 204, 304): the connection is already reusable
		return resp
	}
	c.body = resp.Body
	resp.Body = c
	return resp
}

// Read implements io.Reader for the response body.
func (c *call) Read(b []byte) (int, error) {
	n, err := c.body.Read(b)
	if err != nil {
		if err == io.EOF {
			c.finish()
		} else if context.Cause(c.ctx) == errOverallTimeout {
			err = &Error{Kind: KindTimeout, Upstream: c.p.name, Target: c.t.label, Attempts: c.tries, Err: errOverallTimeout}
		}
	}
	return n, err
}

// Close implements io.Closer for the response body.
func (c *call) Close() error {
	err := c.body.Close()
	c.finish()
	return err
}

// finish releases the call's timer, context and in-flight slot, once.
func (c *call) finish() {
	if !c.done.CompareAndSwap(false, true) {
		return
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.cancel != nil {
		c.cancel(nil)
	}
	if c.t != nil {
		c.t.inflight.Add(-1)
	}
}

// expire runs when the overall timeout fires.
func (c *call) expire() { c.cancel(errOverallTimeout) }

// upgradeBody is the body of a 101 response: the upgraded connection.
// httputil.ReverseProxy requires it to be an io.ReadWriteCloser.
type upgradeBody call

func (u *upgradeBody) Read(b []byte) (int, error)  { return u.body.Read(b) }
func (u *upgradeBody) Write(b []byte) (int, error) { return u.body.(io.Writer).Write(b) }
func (u *upgradeBody) Close() error {
	err := u.body.Close()
	(*call)(u).finish()
	return err
}

// bitset records the targets already tried by one request.
type bitset [MaxTargets / 64]uint64

func (b *bitset) set(i int)      { b[i/64] |= 1 << (uint(i) % 64) }
func (b *bitset) has(i int) bool { return b[i/64]&(1<<(uint(i)%64)) != 0 }
func (b *bitset) empty() bool    { return *b == bitset{} }

// RequestInfo receives, for the access log, which target served a request
// and how many attempts were made. The gateway puts it into the request
// context with WithRequestInfo before proxying; the pool fills it.
type RequestInfo struct {
	Target   string // target URL (scheme://host:port[/base]) of the last attempt; "" if none
	Attempts int    // attempts made, 0 when no target was available
}

type infoKey struct{}

// WithRequestInfo returns a context carrying info for Pool.RoundTrip to fill.
func WithRequestInfo(ctx context.Context, info *RequestInfo) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// RequestInfoFrom returns the *RequestInfo stored by WithRequestInfo, or nil.
func RequestInfoFrom(ctx context.Context) *RequestInfo {
	info, _ := ctx.Value(infoKey{}).(*RequestInfo)
	return info
}

// Name returns the upstream name.
func (p *Pool) Name() string { return p.name }

// TargetStatus is a snapshot of one target for the admin/health view.
type TargetStatus struct {
	URL                 string    `json:"url"`
	Weight              int       `json:"weight"`
	Healthy             bool      `json:"healthy"` // may receive traffic now
	Ejected             bool      `json:"ejected"` // passive health ejection in force
	EjectedUntil        time.Time `json:"ejected_until,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Active              string    `json:"active"` // disabled | unknown | up | down
	InFlight            int64     `json:"in_flight"`
}

// Targets returns the current state of every target, in configuration order.
func (p *Pool) Targets() []TargetStatus {
	out := make([]TargetStatus, len(p.targets))
	now := p.now().UnixNano()
	for i, t := range p.targets {
		u := t.ejectedUntil.Load()
		s := TargetStatus{
			URL:                 t.label,
			Weight:              int(t.weight),
			Ejected:             u != 0 && now < u,
			ConsecutiveFailures: int(t.fails.Load()),
			InFlight:            t.inflight.Load(),
			Active:              "disabled",
		}
		if s.Ejected {
			s.EjectedUntil = time.Unix(0, u)
		}
		if p.active != nil {
			switch t.active.Load() {
			case activeUp:
				s.Active = "up"
			case activeDown:
				s.Active = "down"
			default:
				s.Active = "unknown"
			}
		}
		n := now
		s.Healthy = p.eligible(t, &n)
		out[i] = s
	}
	return out
}

// Start publishes the pool's target health gauge and starts the active
// health checks (if configured). The checks stop when ctx is done or Close is
// called. Calling Start again, or after Close, does nothing.
func (p *Pool) Start(ctx context.Context) {
	p.life.Lock()
	defer p.life.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	p.m.attach(p)
	if p.active == nil {
		return
	}
	ctx, p.stop = context.WithCancel(ctx)
	for _, t := range p.targets {
		p.wg.Add(1)
		go p.probeLoop(ctx, t)
	}
}

// Close stops the health checks, withdraws the health gauge and closes idle
// connections. In-flight requests are not interrupted, and the pool still
// serves requests made after Close (a reload may retire a pool while
// requests are under way).
func (p *Pool) Close() {
	p.life.Lock()
	if p.closed {
		p.life.Unlock()
		return
	}
	p.closed = true
	stop := p.stop
	p.life.Unlock()
	if stop != nil {
		stop()
	}
	p.wg.Wait()
	p.m.detach(p)
	p.h1.CloseIdleConnections()
	if p.h2c != nil {
		p.h2c.CloseIdleConnections()
	}
}
