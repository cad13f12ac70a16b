// Package upstream sends proxied requests to the targets of one upstream.
//
// A *Pool is the http.RoundTripper behind the gateway's
// httputil.ReverseProxy. For each request it
//
//   - picks a target: smooth weighted round robin, or least outstanding
//     requests (ties rotated), skipping targets that passive health ejected
//     or active health marked down; with none left it fails closed
//     (KindNoHealthy, errors.Is(err, ErrNoHealthyTarget), answer 503);
//   - rewrites the URL to the target (scheme, host:port, base path + path;
//     query kept) on a shallow copy, never on the caller's request;
//   - bounds the exchange: connect timeout (TCP and TLS handshake),
//     response-header timeout, and an overall timeout that also covers
//     reading the body, except that a 101 Switching Protocols response stops
//     it (the upgraded connection lives on);
//   - retries idempotent requests with an empty or replayable body when the
//     failure happened before any response byte, on another target when one
//     is left;
//   - returns *Error values whose Kind tells the gateway 502, 503 or 504.
//
// Hot path: the per-request state (one allocation), the shallow request copy,
// and the overall-timeout context and timer; measured +9 allocations
// (~1.1 KB) per request over a bare http.Transport, +2 with OverallTimeout
// disabled (TestHotPathAllocs guards the budget). No maps of its own, no
// goroutines, no formatting. Target choice takes a mutex (round robin, a
// handful of integer operations) or is lock free (least outstanding); both
// are 0 allocations. The Transport keeps up to 256 idle connections per
// target, where http.DefaultTransport keeps 2 and churns connections under
// concurrency.
//
// Wiring in the gateway:
//
//	pool, err := upstream.New(opts)          // once per config generation
//	pool.Start(ctx)                          // when the generation goes live
//	rp := &httputil.ReverseProxy{Transport: pool, Rewrite: ...}
//	ctx = upstream.WithRequestInfo(ctx, &info) // optional, for the access log
//	...
//	switch upstream.KindOf(err) {            // in ReverseProxy.ErrorHandler
//	case upstream.KindTimeout:   504
//	case upstream.KindNoHealthy: 503
//	case upstream.KindCanceled:  client gone, nothing to write
//	default:                     502
//	}
//	pool.Close()                             // when the generation is retired
package upstream
