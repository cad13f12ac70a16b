package gateway

import (
	"errors"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"

	"github.com/sekisho/sekisho/internal/problem"
	"github.com/sekisho/sekisho/internal/upstream"
)

// bufferPool recycles the 32 KiB copy buffers ReverseProxy would otherwise
// allocate per request.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

// newProxy builds the ReverseProxy for one route. Rewrite runs after the
// proxy removed hop-by-hop headers (including any named in Connection), so
// everything the gateway sets here survives.
func (g *Gateway) newProxy(rte *route, pool http.RoundTripper, bufs *bufferPool, trusted trustedProxies) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport:  pool,
		BufferPool: bufs,
		// 0: one write per response for fixed-length bodies (a negative
		// interval costs a flush goroutine and an extra write per request).
		// ReverseProxy still flushes every write for text/event-stream and
		// for bodies of unknown length, so streaming is unaffected.
		FlushInterval: 0,
		Rewrite: func(pr *httputil.ProxyRequest) {
			st := stateFrom(pr.In.Context())
			out := pr.Out
			// Path: the normalized path, with the route's prefix edits.
			out.URL.Path, out.URL.RawPath = unescapedPath(rte.outboundPath(st.path))
			out.URL.RawQuery = pr.In.URL.RawQuery
			out.URL.Scheme, out.URL.Host = "http", rte.upstreamName // the pool sets the real target
			switch rte.hostHeader {
			case "upstream":
				out.Host = ""
			case "preserve":
				out.Host = pr.In.Host
			default:
				out.Host = rte.hostHeader
			}
			setForwarded(pr.In, out, st.client, st.trusted, forwardedProto(pr.In, st.trusted), forwardedHost(pr.In, st.trusted))
			out.Header.Set("X-Request-Id", st.id)
			if tp := out.Header.Get("Traceparent"); tp != "" && !validTraceparent(tp) {
				out.Header.Del("Traceparent")
				out.Header.Del("Tracestate")
			}
			// Identity to the upstream: strip again (the outbound header set
			// is what counts), then inject what was verified.
			if rte.forward != nil {
				rte.forward.Strip(out.Header)
				if st.identity != nil {
					// Same inputs as the Apply in ServeHTTP, which succeeded.
					_ = rte.forward.Apply(out.Header, st.identity)
				}
			}
			if rte.reqHeaders != nil {
				rte.reqHeaders.apply(out.Header)
			}
			// An empty User-Agent must stay empty (Go would add its own).
			if _, ok := out.Header["User-Agent"]; !ok {
				out.Header["User-Agent"] = nil
			}
		},
		ModifyResponse: func(res *http.Response) error {
			// The response already carries the gateway's request ID; the
			// upstream cannot replace or duplicate it.
			res.Header.Del("X-Request-Id")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			st := stateFrom(r.Context())
			status, kind, detail := classify(r, err, st)
			st.errKind = kind
			g.metrics.upErrors.WithLabelValues(rte.name, kind).Inc()
			if kind != "client_gone" {
				g.log.Warn("upstream exchange failed", "route", rte.name, "request_id", st.id, "kind", kind, "target", st.upstream.Target, "error", err)
			}
			if rec, ok := w.(*recorder); ok && rec.wrote {
				return // headers already sent: nothing more to say
			}
			problem.WriteID(w, st.id, status, detail)
		},
	}
}

// classify maps a proxy error to the response status and a metric kind.
func classify(r *http.Request, err error, st *reqState) (int, string, string) {
	var ue *upstream.Error
	switch {
	case st.tooLarge || errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than this route allows"
	case errors.Is(err, upstream.ErrNoHealthyTarget):
		return http.StatusServiceUnavailable, "no_healthy_target", "the upstream service is unavailable"
	case errors.As(err, &ue) && ue.Kind == upstream.KindTimeout:
		return http.StatusGatewayTimeout, "timeout", "the upstream service did not answer in time"
	case r.Context().Err() != nil:
		return 499, "client_gone", "client closed the request"
	default:
		if ue != nil && ue.Kind == upstream.KindConnect {
			return http.StatusBadGateway, "connect", "the upstream service could not be reached"
		}
		return http.StatusBadGateway, "upstream", "the upstream service failed"
	}
}

// outboundPath applies strip_prefix / rewrite_prefix to the normalized path.
func (rte *route) outboundPath(p string) string {
	if !rte.stripPrefix && rte.rewritePrefix == "" {
		return p
	}
	rest := strings.TrimPrefix(p, rte.matchPrefix)
	if rte.matchPrefix == "/" {
		rest = p
	}
	base := rte.rewritePrefix
	if base == "" {
		base = "/"
	}
	switch {
	case rest == "":
		return base
	case strings.HasSuffix(base, "/") && strings.HasPrefix(rest, "/"):
		return base + rest[1:]
	case !strings.HasSuffix(base, "/") && !strings.HasPrefix(rest, "/"):
		return base + "/" + rest
	}
	return base + rest
}
