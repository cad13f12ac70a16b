package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// This file holds the two helper servers the harness starts as separate
// processes (sub-commands of the harness binary): the sample upstream and
// the floor. Each prints "LISTEN <addr>" on stdout once it accepts
// connections, so the harness can bind port 0 without races.

// upstreamBody returns the sample upstream's fixed response body: n bytes of
// JSON (n is clamped to at least the fixed part), the same for every request.
func upstreamBody(n int) []byte {
	const head, tail = `{"service":"sekisho-bench-upstream","ok":true,"pad":"`, `"}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		pad = 0
	}
	b := make([]byte, 0, len(head)+pad+len(tail))
	b = append(b, head...)
	for i := 0; i < pad; i++ {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// upstreamHandler answers every request with the fixed body. It drains a
// request body first (POST workloads) so keep-alive stays usable.
func upstreamHandler(body []byte) http.Handler {
	ct := []string{"application/json"}
	cl := []string{strconv.Itoa(len(body))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		}
		h := w.Header()
		h["Content-Type"] = ct
		h["Content-Length"] = cl
		_, _ = w.Write(body)
	})
}

// cmdUpstream runs the sample upstream until ctx is done.
func cmdUpstream(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	size := fs.Int("body-bytes", 100, "response body size in bytes (16–65536)")
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if *size < 16 || *size > 65536 {
		return usagef("upstream: -body-bytes %d out of range 16–65536", *size)
	}
	srv := &http.Server{
		Handler:           upstreamHandler(upstreamBody(*size)),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	return serveLoopback(ctx, srv, *addr, out)
}

// floorTransport is the floor's tuned Transport: keep-alive with a large
// idle pool per host (so 64+ client connections never force new upstream
// connections), no proxy from the environment, no transparent compression.
// These are the settings a careful operator of a plain Go proxy would use;
// nothing else is changed from the defaults.
func floorTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0, // no global cap
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
}

// floorProxy is the floor: httputil.ReverseProxy pointed at target with the
// tuned Transport and nothing else — no BufferPool, no logging, no metrics,
// no header work beyond what ReverseProxy always does (hop-by-hop removal).
func floorProxy(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: floorTransport(),
	}
}

// cmdFloor runs the floor proxy until ctx is done.
func cmdFloor(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	target := fs.String("target", "", "upstream base URL, e.g. http://127.0.0.1:9001 (required)")
	pprofAddr := fs.String("pprof-addr", "", "also serve net/http/pprof on this loopback address (to profile the floor itself)")
	verifyJWKS := fs.String("verify-jwks", "", "JWK Set file with one P-256 key: verify every request's Bearer ES256 signature against it first (the measured crypto bound; see cryptobound.go)")
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if *pprofAddr != "" {
		if err := servePprof(ctx, *pprofAddr); err != nil {
			return err
		}
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return usagef("floor: -target %q must be an http:// URL with a host", *target)
	}
	var h http.Handler = floorProxy(u)
	if *verifyJWKS != "" {
		key, err := loadP256Key(*verifyJWKS)
		if err != nil {
			return usagef("floor: -verify-jwks: %v", err)
		}
		h = rawVerify(key, h)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	return serveLoopback(ctx, srv, *addr, out)
}

// serveLoopback listens on a loopback address, announces it and serves until
// ctx is done. Benchmark helpers never listen beyond loopback.
func serveLoopback(ctx context.Context, srv *http.Server, addr string, out io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("-addr %q: %v", addr, err)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return usagef("-addr %q: only loopback addresses are allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	fmt.Fprintf(out, "LISTEN %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// servePprof serves net/http/pprof on its own loopback listener until ctx is
// done.
func servePprof(ctx context.Context, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("-pprof-addr %q: %v", addr, err)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return usagef("-pprof-addr %q: only loopback addresses are allowed", addr)
	}
	go func() { _ = serveLoopback(ctx, srv, addr, io.Discard) }()
	return nil
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usagef("%v", err)
}
