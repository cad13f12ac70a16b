package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/problem"
	"github.com/sekisho/sekisho/internal/shield"
	"github.com/sekisho/sekisho/internal/telemetry"
	"github.com/sekisho/sekisho/internal/tlsconf"
)

// Server owns the public listeners: connection limits, framing guard, TLS,
// HTTP/1.1 and HTTP/2, and graceful shutdown.
type Server struct {
	log       *slog.Logger
	servers   []*http.Server
	listeners []net.Listener
	tls       []*tlsconf.Server
	drain     time.Duration
	addrs     []string
}

// Listen binds every listener in cfg (so a busy port fails at start, not
// later) and prepares the servers; Serve starts them.
func Listen(cfg *config.Config, h http.Handler, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	sm, err := shield.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	lim, err := shield.NewLimiter(shield.ConnLimits{MaxConns: cfg.Server.MaxConnections, MaxConnsPerIP: cfg.Server.MaxConnectionsPerIP}, sm)
	if err != nil {
		return nil, err
	}
	s := &Server{log: log, drain: cfg.Server.ShutdownTimeout.D()}
	fail := func(err error) (*Server, error) {
		for _, l := range s.listeners {
			l.Close()
		}
		return nil, err
	}
	guard := shield.FramingOptions{MaxHeaderBytes: int(cfg.Server.MaxHeaderBytes), ErrorWriter: problem.Raw, OnReject: framingRejects(reg, log)}
	for i, lc := range cfg.Server.Listeners {
		path := fmt.Sprintf("server.listeners[%d]", i)
		raw, err := net.Listen("tcp", lc.Address)
		if err != nil {
			return fail(cfg.ErrorAt(path+".address", "cannot listen: %v", err))
		}
		ln := lim.Listen(raw)
		srv := s.newHTTPServer(cfg, h, lim)
		if lc.TLS != nil {
			ts, err := tlsconf.NewServer(tlsconf.ServerOptions{
				Certificates:   certPairs(lc.TLS.Certificates),
				ClientAuth:     lc.TLS.ClientAuth,
				ClientCAFile:   lc.TLS.ClientCAFile,
				MinVersion:     lc.TLS.MinVersion,
				ReloadInterval: lc.TLS.ReloadInterval.D(),
			}, log)
			if err != nil {
				raw.Close()
				return fail(cfg.ErrorAt(path+".tls", "%v", err))
			}
			s.tls = append(s.tls, ts)
			tcfg := ts.TLSConfig()
			srv.TLSConfig = tcfg
			srv.Handler = withTLSState(srv.Handler)
			if lc.HSTS != nil {
				srv.Handler = hsts(srv.Handler, tlsconf.HSTSHeader(lc.HSTS.MaxAge.D(), lc.HSTS.IncludeSubdomains, lc.HSTS.Preload))
			}
			ln = shield.TLSListener(ln, tcfg, guard, cfg.Server.ReadHeaderTimeout.D())
			if hf, ok := ln.(interface{ HandshakeFailures() uint64 }); ok {
				_ = reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name:        "sekisho_tls_handshake_failures_total",
					Help:        "TLS handshakes that failed or timed out, by listener.",
					ConstLabels: prometheus.Labels{"listener": lc.Name},
				}, func() float64 { return float64(hf.HandshakeFailures()) }))
			}
			if lc.RedirectFrom != "" {
				rraw, err := net.Listen("tcp", lc.RedirectFrom)
				if err != nil {
					raw.Close()
					return fail(cfg.ErrorAt(path+".redirect_http_from", "cannot listen: %v", err))
				}
				_, port, _ := net.SplitHostPort(raw.Addr().String())
				rh, err := tlsconf.NewRedirectHandler(tlsconf.RedirectOptions{HTTPSPort: port, OnError: problem.Write})
				if err != nil {
					rraw.Close()
					raw.Close()
					return fail(cfg.ErrorAt(path+".redirect_http_from", "%v", err))
				}
				rs := s.newHTTPServer(cfg, rh, lim)
				s.servers = append(s.servers, rs)
				s.listeners = append(s.listeners, shield.GuardListener(lim.Listen(rraw), guard))
				s.addrs = append(s.addrs, "http://"+rraw.Addr().String())
			}
			s.addrs = append(s.addrs, "https://"+raw.Addr().String())
		} else {
			ln = shield.GuardListener(ln, guard)
			s.addrs = append(s.addrs, "http://"+raw.Addr().String())
		}
		s.servers = append(s.servers, srv)
		s.listeners = append(s.listeners, ln)
	}
	return s, nil
}

func certPairs(c []config.CertPair) []tlsconf.CertPair {
	out := make([]tlsconf.CertPair, len(c))
	for i, p := range c {
		out[i] = tlsconf.CertPair{CertFile: p.CertFile, KeyFile: p.KeyFile}
	}
	return out
}

func (s *Server) newHTTPServer(cfg *config.Config, h http.Handler, lim *shield.Limiter) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true) // h2c with prior knowledge on plain listeners
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(),
		ReadTimeout:       cfg.Server.ReadTimeout.D(),
		IdleTimeout:       cfg.Server.IdleTimeout.D(),
		MaxHeaderBytes:    int(cfg.Server.MaxHeaderBytes),
		ConnState:         lim.ConnState,
		Protocols:         &protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: cfg.Server.HTTP2.MaxConcurrentStreams,
			MaxReadFrameSize:     1 << 20,
		},
		ConnContext: shield.ConnContext,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// withTLSState restores r.TLS for HTTP/1.1-over-TLS connections, which the
// framing guard hands to http.Server as plain connections.
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			r.TLS = shield.TLSStateFromContext(r.Context())
		}
		h.ServeHTTP(w, r)
	})
}

// framingRejects counts and logs connections the framing guard refused
// (they never reach the access log, which is written by the handler).
func framingRejects(reg prometheus.Registerer, log *slog.Logger) func(string, string, net.Addr) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sekisho_framing_rejections_total",
		Help: "Connections refused by the HTTP/1 framing guard before parsing, by reason.",
	}, []string{"reason"})
	// A registration conflict leaves c unregistered but counting: the guard
	// must never fail for want of a metric.
	c, _ = telemetry.RegisterOrReuse(reg, c)
	for _, r := range shield.FramingRejectReasons() {
		c.WithLabelValues(r)
	}
	return func(reason, requestID string, peer net.Addr) {
		c.WithLabelValues(reason).Inc()
		client := ""
		if peer != nil {
			client = peerAddr(peer.String()).String()
		}
		log.Warn("request refused before parsing", "reason", reason, "request_id", requestID, "client_ip", client)
	}
}

func hsts(h http.Handler, value string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", value)
		h.ServeHTTP(w, r)
	})
}

// Addrs are the bound listener URLs (useful with port 0).
func (s *Server) Addrs() []string { return s.addrs }

// Serve runs every listener until ctx is done, then shuts down gracefully:
// listeners close at once, in-flight requests get up to the drain timeout.
func (s *Server) Serve(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, t := range s.tls {
		go t.Run(runCtx)
	}
	errc := make(chan error, len(s.servers))
	for i, srv := range s.servers {
		go func() {
			err := srv.Serve(s.listeners[i])
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.log.Error("listener failed", "error", err)
	}
	s.shutdown()
	return err
}

func (s *Server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				s.log.Warn("drain timeout reached; closing remaining connections", "error", err)
				srv.Close()
			}
		}()
	}
	wg.Wait()
}
