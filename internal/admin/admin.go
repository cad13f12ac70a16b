// Package admin is the operator listener: Prometheus metrics, liveness and
// readiness, configuration reload and the authenticated admin API. It binds
// to loopback by default; config validation refuses a non-loopback address
// without a token.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sekisho/sekisho/internal/problem"
)

// Options configure the admin listener.
type Options struct {
	Address  string
	Token    string // bearer token for /admin/*; empty disables the admin API
	Gatherer prometheus.Gatherer
	// Ready reports whether the node should receive traffic.
	Ready func(ctx context.Context) error
	// Reload re-reads the config; its error text is shown to the operator.
	Reload func(ctx context.Context) (generation int64, err error)
	// API handlers mounted under /admin/ (key: path prefix such as
	// "/admin/clients"), all behind the token.
	API map[string]http.Handler
	// Public handlers need no token (key: exact GET path), e.g. the public
	// keys upstreams use to verify gateway-signed identity tokens.
	Public map[string]http.Handler
	Logger *slog.Logger
}

// Server is the admin HTTP server.
type Server struct {
	o     Options
	mux   *http.ServeMux
	token [32]byte
	srv   *http.Server
	ln    net.Listener
}

// New builds the admin server; Listen binds it.
func New(o Options) *Server {
	s := &Server{o: o, mux: http.NewServeMux()}
	if o.Token != "" {
		s.token = sha256.Sum256([]byte(o.Token))
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := o.Ready(ctx); err != nil {
				o.Logger.Warn("not ready", "error", err)
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	s.mux.Handle("POST /admin/reload", s.authenticated(http.HandlerFunc(s.reload)))
	for prefix, h := range o.API {
		s.mux.Handle(strings.TrimSuffix(prefix, "/")+"/", s.authenticated(h))
		s.mux.Handle(strings.TrimSuffix(prefix, "/"), s.authenticated(h))
	}
	for path, h := range o.Public {
		s.mux.Handle("GET "+path, h)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusNotFound, "no such admin endpoint")
	})
	return s
}

// Handler exposes the admin mux (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// authenticated requires "Authorization: Bearer <admin.token>", compared in
// constant time over SHA-256 digests so length is not leaked either.
func (s *Server) authenticated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.o.Token == "" {
			problem.Write(w, r, http.StatusForbidden, "the admin API is disabled: set admin.token to enable it")
			return
		}
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sekisho-admin"`)
			problem.Write(w, r, http.StatusUnauthorized, "admin token required")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		h.ServeHTTP(w, r)
	})
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.o.Reload == nil {
		problem.Write(w, r, http.StatusNotImplemented, "reload is not available")
		return
	}
	gen, err := s.o.Reload(r.Context())
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"status": "rejected", "detail": "the new configuration is invalid; the previous one stays in force",
			"errors": strings.Split(err.Error(), "\n"),
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "reloaded", "generation": gen})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Listen binds the admin address.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.o.Address)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelDebug),
	}
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
