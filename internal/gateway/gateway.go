// Package gateway is Sekisho's request pipeline: the checkpoint every
// request passes on its way to an upstream.
//
// The order is fixed and reads top to bottom in ServeHTTP:
//
//	connection limits (shield, at the listener) → framing checks (shield) →
//	path normalization → route match → (rate limit) → identity-header strip →
//	authentication → authorization → header transforms → proxy → access log
//
// Configuration is compiled once per load into an immutable runtime that
// ServeHTTP reads through an atomic pointer; a reload swaps the pointer and
// in-flight requests finish on the runtime they started with.
package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/authz"
	"github.com/sekisho/sekisho/internal/pathnorm"
	"github.com/sekisho/sekisho/internal/problem"
	"github.com/sekisho/sekisho/internal/router"
	"github.com/sekisho/sekisho/internal/upstream"
)

// Gateway is the http.Handler for public listeners.
type Gateway struct {
	rt       atomic.Pointer[runtime]
	log      *slog.Logger   // operational log
	access   io.Writer      // access log (JSON lines); nil when disabled
	logQuery *queryRedactor // non-nil when the (redacted) query is logged
	metrics  *Metrics
	gen      atomic.Int64
	// Extra handles requests no route matches, before the 404: the built-in
	// authorization server's endpoints are mounted here.
	extra     atomic.Pointer[prefixHandler]
	asMetrics *routeMetrics
}

// Options configure a Gateway.
type Options struct {
	Logger    *slog.Logger // operational log
	AccessLog io.Writer    // JSON lines; nil disables the access log. Writes must be safe for concurrent use.
	// LogQuery logs the query string with the values of these (and the
	// default sensitive) parameters redacted; nil leaves queries out.
	LogQuery []string
	Metrics  *Metrics
}

// New returns a gateway with no runtime; Swap one in before serving.
func New(o Options) *Gateway {
	g := &Gateway{log: o.Logger, access: o.AccessLog, metrics: o.Metrics}
	g.asMetrics = o.Metrics.forRoute("_authserver")
	if o.LogQuery != nil {
		g.logQuery = newQueryRedactor(o.LogQuery)
	}
	return g
}

// SetFallback installs a handler consulted for paths no route matches (the
// authorization server). nil removes it.
func (g *Gateway) SetFallback(h http.Handler, prefixes []string) {
	if h == nil {
		g.extra.Store(nil)
		return
	}
	g.extra.Store(&prefixHandler{h: h, prefixes: prefixes})
}

type prefixHandler struct {
	h        http.Handler
	prefixes []string
}

// Swap installs a compiled runtime and returns the previous one (nil at
// first) for the caller to retire once in-flight requests are done.
func (g *Gateway) Swap(rt *Runtime) *Runtime {
	old := g.rt.Swap(rt.rt)
	g.metrics.configGen.Set(float64(g.gen.Add(1)))
	if old == nil {
		return nil
	}
	return &Runtime{rt: old}
}

// Generation is the number of runtimes swapped in so far.
func (g *Gateway) Generation() int64 { return g.gen.Load() }

// reqState is the per-request data the proxy callbacks need. It lives in the
// request context and is pooled.
type reqState struct {
	id       string
	client   netip.Addr
	trusted  bool
	route    *route
	identity *authn.Identity
	rec      recorder
	match    router.Match
	upstream upstream.RequestInfo // filled by the pool: target, attempts
	errKind  string               // proxy error class, for the access log
	path     string               // normalized path
	tooLarge bool
}

type stateKey struct{}

var statePool = sync.Pool{New: func() any { return new(reqState) }}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// ServeHTTP runs the pipeline.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt := g.rt.Load()
	st := statePool.Get().(*reqState)
	*st = reqState{}
	defer statePool.Put(st)
	g.metrics.inflight.Inc()
	defer g.metrics.inflight.Dec()

	// Request ID first: every response, including errors, carries it.
	st.id = requestID(r.Header)
	w.Header().Set("X-Request-Id", st.id)
	st.rec.reset(w)
	rec := &st.rec
	st.client, st.trusted = rt.trusted.clientIP(r)

	// Framing: the listener's HTTP/1 guard rejects CL+TE and duplicate
	// lengths before Go parses them; here, what reaches a handler is checked
	// once more so no future server change can weaken it.
	if reason := framingProblem(r); reason != "" {
		g.reject(rec, r, st, http.StatusBadRequest, reason, "ambiguous or invalid message framing")
		return
	}

	// Path normalization: routing, authorization and the upstream all see
	// the same canonical path.
	path, err := pathnorm.Normalize(rawPath(r))
	if err != nil {
		g.reject(rec, r, st, http.StatusBadRequest, "path", "request path is not acceptable: "+pathReason(err))
		return
	}
	st.path = path

	// The authorization server's reserved paths come before any route.
	if h := g.extra.Load(); h != nil && h.serves(path) {
		r.URL.Path, r.URL.RawPath = unescapedPath(path)
		h.h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
		g.logAccess(r, st, "_authserver", start)
		g.asMetrics.observe(rec.status, time.Since(start).Seconds())
		return
	}

	// Route match.
	switch rt.router.Match(hostOnly(r.Host), r.Method, path, &st.match) {
	case router.NotFound:
		g.reject(rec, r, st, http.StatusNotFound, "no_route", "no route matches this request")
		return
	case router.MethodNotAllowed:
		w.Header().Set("Allow", st.match.Allow)
		g.reject(rec, r, st, http.StatusMethodNotAllowed, "method", "method not allowed on this route")
		return
	}
	rte := rt.routes[st.match.RouteID]
	st.route = rte

	// Identity headers a client might send are removed on every route,
	// public ones included, before anything reads them.
	rt.strip.Strip(r.Header)

	// Body size: refuse early when the declared length is over the limit;
	// otherwise the limit is enforced while streaming.
	if rte.maxBody >= 0 {
		if r.ContentLength > rte.maxBody {
			g.reject(rec, r, st, http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than this route allows")
			return
		}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			r.Body = &limitedBody{rc: r.Body, left: rte.maxBody, st: st}
		}
	}

	// (Rate limiting plugs in here.)

	// Authentication.
	if rte.auth != nil {
		id, err := rte.auth.Authenticate(r)
		if err != nil {
			g.refuseAuthn(rec, r, st, err)
			return
		}
		st.identity = id
		// Authorization.
		if rte.policy != nil {
			if d := rte.policy.Check(id, policyView(r, path, &st.match.Params)); !d.Allowed {
				g.refuseAuthz(rec, r, st, d)
				return
			}
		}
		// Identity to the upstream is computed now so an unsafe value
		// refuses the request; Rewrite applies it again to the outbound
		// headers after hop-by-hop removal.
		if rte.forward != nil {
			if err := rte.forward.Apply(r.Header, id); err != nil {
				g.refuseIdentity(rec, r, st, err)
				return
			}
		}
	}

	// Proxy. Header transforms and identity injection happen in the proxy's
	// Rewrite, after hop-by-hop removal, so a client's Connection header
	// cannot delete what the gateway sets.
	r.URL.Path, r.URL.RawPath = unescapedPath(path)
	if rte.queryToken && st.identity != nil {
		// A token accepted from the query is neither forwarded nor logged.
		authn.RemoveQueryToken(r.URL, "")
	}
	if rte.respHeaders != nil {
		rec.onWrite = rte.respHeaders.apply
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	ctx = upstream.WithRequestInfo(ctx, &st.upstream)
	rte.proxy.ServeHTTP(rec, r.WithContext(ctx))
	g.logAccess(r, st, rte.name, start)
	rte.metrics.observe(rec.status, time.Since(start).Seconds())
}

func (p *prefixHandler) serves(path string) bool {
	for _, pre := range p.prefixes {
		if path == pre || strings.HasPrefix(path, pre) && (strings.HasSuffix(pre, "/") || path[len(pre)] == '/') {
			return true
		}
	}
	return false
}

// ClientIP is the client address the gateway determined for r (the peer, or
// the right-most untrusted hop behind trusted proxies). Handlers mounted on
// the gateway (the authorization server) use it for per-IP throttling.
func ClientIP(r *http.Request) netip.Addr {
	if st := stateFrom(r.Context()); st != nil {
		return st.client
	}
	return peerAddr(r.RemoteAddr)
}

// rawPath is the request-target's path exactly as the client sent it.
func rawPath(r *http.Request) string {
	uri := r.RequestURI
	if strings.HasPrefix(uri, "/") {
		if i := strings.IndexByte(uri, '?'); i >= 0 {
			uri = uri[:i]
		}
		return uri
	}
	// Absolute-form (proxy style) or HTTP/2 without RequestURI.
	return r.URL.EscapedPath()
}

// unescapedPath returns (Path, RawPath) for a url.URL holding the
// normalized, escaped path p.
func unescapedPath(p string) (string, string) {
	if strings.IndexByte(p, '%') < 0 {
		return p, ""
	}
	u, err := url.PathUnescape(p)
	if err != nil {
		return p, ""
	}
	return u, p
}

// hostOnly lower-cases r.Host and strips the port, allocating only when the
// host has upper-case letters.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// framingProblem re-checks message framing on what the server parsed.
func framingProblem(r *http.Request) string {
	if len(r.TransferEncoding) > 0 {
		if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
			return "framing_te"
		}
		if _, ok := r.Header["Content-Length"]; ok {
			return "framing_cl_te"
		}
	}
	if cl := r.Header["Content-Length"]; len(cl) > 1 {
		return "framing_cl"
	}
	return ""
}

// reject answers a request the gateway refuses itself.
func (g *Gateway) reject(rec *recorder, r *http.Request, st *reqState, status int, reason, detail string) {
	g.metrics.rejects.WithLabelValues(reason).Inc()
	if status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge {
		rec.Header().Set("Connection", "close")
	}
	problem.WriteID(rec, st.id, status, detail)
	name := "_none"
	if st.route != nil {
		name = st.route.name
	}
	st.errKind = reason
	g.logAccess(r, st, name, time.Time{})
}

func (g *Gateway) refuseAuthn(rec *recorder, r *http.Request, st *reqState, err error) {
	reason := "no_credentials"
	tokenHash := ""
	var ae *authn.Error
	if errors.As(err, &ae) {
		reason, tokenHash = ae.Reason, ae.TokenHash
	}
	g.metrics.refusals.WithLabelValues(st.route.name, reason).Inc()
	status, code := authz.Refusal(err)
	switch status {
	case http.StatusServiceUnavailable:
		rec.Header().Set("Retry-After", "5")
		problem.WriteID(rec, st.id, status, "credentials cannot be verified right now")
	case http.StatusBadRequest:
		rec.Header().Set("WWW-Authenticate", authz.WWWAuthenticate(realm, code, "", ""))
		problem.WriteID(rec, st.id, status, "send exactly one credential, in the Authorization header")
	default:
		rec.Header().Set("WWW-Authenticate", authz.WWWAuthenticate(realm, code, "", ""))
		problem.WriteID(rec, st.id, http.StatusUnauthorized, "valid credentials are required")
	}
	st.errKind = "authn_" + reason
	if g.log.Enabled(r.Context(), slog.LevelInfo) {
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "authentication refused",
			slog.String("request_id", st.id), slog.String("route", st.route.name),
			slog.String("reason", reason), slog.String("token_hash", tokenHash))
	}
	g.logAccess(r, st, st.route.name, time.Time{})
}

// realm is the RFC 6750 realm of every challenge.
const realm = "sekisho"

func (g *Gateway) refuseAuthz(rec *recorder, r *http.Request, st *reqState, d authz.Decision) {
	g.metrics.refusals.WithLabelValues(st.route.name, d.Reason).Inc()
	status, code, scope := d.Challenge()
	rec.Header().Set("WWW-Authenticate", authz.WWWAuthenticate(realm, code, "", scope))
	problem.WriteID(rec, st.id, status, "the credentials do not permit this request")
	st.errKind = "authz_" + d.Reason
	if d.Err != nil {
		g.log.Warn("authorization policy failed; request denied", "request_id", st.id, "route", st.route.name, "error", d.Err)
	}
	g.logAccess(r, st, st.route.name, time.Time{})
}

// refuseIdentity answers when a verified identity cannot be forwarded
// faithfully (unsafe claim value): better no request than a partial identity.
func (g *Gateway) refuseIdentity(rec *recorder, r *http.Request, st *reqState, err error) {
	g.metrics.refusals.WithLabelValues(st.route.name, "identity_unsafe").Inc()
	g.log.Warn("identity cannot be forwarded; request refused", "request_id", st.id, "route", st.route.name, "error", err)
	problem.WriteID(rec, st.id, http.StatusForbidden, "the verified identity cannot be forwarded to this route")
	st.errKind = "identity_unsafe"
	g.logAccess(r, st, st.route.name, time.Time{})
}

// limitedBody enforces a route's body limit while streaming.
type limitedBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	left int64
	st   *reqState
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.st.tooLarge = true
		return n - 1, errBodyTooLarge
	}
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

type bodyTooLarge struct{}

func (bodyTooLarge) Error() string { return "request body too large" }

var errBodyTooLarge error = bodyTooLarge{}

// pathReason is the client-safe reason of a normalization error.
func pathReason(err error) string {
	var pe *pathnorm.Error
	if errors.As(err, &pe) {
		return pe.Reason()
	}
	return "invalid path"
}
