package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/gateway"
	"github.com/sekisho/sekisho/internal/telemetry"
)

func cmdConfig(args []string, out, errOut io.Writer) error {
	if len(args) == 0 || args[0] != "validate" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(out, "Usage: sekisho config validate FILE\n\nCheck FILE and report every problem as file:line: field.path: what is wrong (allowed values).")
			return nil
		}
		return usagef("config: expected 'config validate FILE'")
	}
	fs := newFlags("config validate", "FILE", "Check FILE and report every problem as file:line: field.path: what is wrong (allowed values).", out)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("config validate: expected exactly one FILE")
	}
	cfg, err := config.Load(fs.Arg(0))
	if err != nil {
		return configError{err}
	}
	// Compile too: route conflicts and policy errors are found there. Nothing
	// starts listening, and no upstream is contacted.
	n, err := newNode(cfg, discardLogger(), prometheus.NewRegistry(), true)
	if err != nil {
		return err
	}
	defer n.close()
	rt, err := n.compile(cfg)
	if err != nil {
		return configError{err}
	}
	rt.Close()
	fmt.Fprintf(out, "%s: OK (%d routes, %d upstreams)\n", fs.Arg(0), len(cfg.Routes), len(cfg.Upstreams))
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func cmdServe(args []string, out, errOut io.Writer) error {
	fs := newFlags("serve", "--config FILE [--log-level LEVEL]", "Run the gateway with FILE. SIGHUP or POST /admin/reload re-reads it; SIGTERM drains and stops.", out)
	cfgPath := fs.String("config", "", "config file (required)")
	level := fs.String("log-level", "info", "operational log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usagef("serve: --config FILE is required (example: sekisho serve --config examples/sekisho.yaml)")
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	log, err := newLogger(*level, errOut)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, *cfgPath, log, out, nil)
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %q is not a level (allowed: debug, info, warn, error)", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// started is called with the bound addresses once everything listens (the
// demo prints its instructions from it).
type started func(publicURLs []string, adminAddr string)

func serve(ctx context.Context, cfgPath string, log *slog.Logger, out io.Writer, onStart started) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return configError{err}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n, err := newNode(cfg, log, reg, false)
	if err != nil {
		return err
	}
	defer n.close()
	n.path = cfgPath
	rt, err := n.compile(cfg)
	if err != nil {
		return configError{err}
	}
	n.gw.Swap(rt)
	n.current = cfg

	srv, err := gateway.Listen(cfg, n.handler(), log, reg)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return configError{err}
		}
		return err
	}
	var adm *admin.Server
	if cfg.Admin.Address != "off" {
		adm = admin.New(admin.Options{
			Address: cfg.Admin.Address, Token: cfg.Admin.Token, Gatherer: reg, Logger: log,
			Ready:  n.ready,
			Reload: n.reload,
			API:    n.adminAPI(),
			Public: map[string]http.Handler{"/identity/jwks": n.identityJWKS()},
		})
		if err := adm.Listen(); err != nil {
			return configError{cfg.ErrorAt("admin.address", "cannot listen: %v", err)}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// SIGHUP reloads.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, _ = n.reload(ctx)
			}
		}
	}()

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if adm != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- adm.Serve(ctx) }()
	}
	adminAddr := ""
	if adm != nil {
		adminAddr = adm.Addr()
	}
	log.Info("sekisho started", "version", version, "listeners", strings.Join(srv.Addrs(), " "), "admin", adminAddr, "config", cfgPath, "routes", len(cfg.Routes))
	if onStart != nil {
		onStart(srv.Addrs(), adminAddr)
	}
	err = srv.Serve(ctx)
	cancel()
	wg.Wait()
	log.Info("sekisho stopped")
	return err
}

// node is one running Sekisho: the gateway and everything a config load
// builds around it.
type node struct {
	log     *slog.Logger
	reg     prometheus.Registerer
	metrics *gateway.Metrics
	gw      *gateway.Gateway
	path    string

	mu      sync.Mutex // serializes reloads
	current *config.Config
	extras  *extras // issue-specific services (auth, authorization server)

	accessBuf *telemetry.BufferedWriter // flushed on close
}

// newNode builds a node; validateOnly opens no store and starts no
// authorization server (config validate).
func newNode(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, validateOnly bool) (*node, error) {
	m := gateway.NewMetrics(reg)
	var access io.Writer
	var accessBuf *telemetry.BufferedWriter
	if *cfg.AccessLog.Enabled {
		w, err := accessLogWriter(cfg.AccessLog.Output)
		if err != nil {
			return nil, configError{cfg.ErrorAt("access_log.output", "%v", err)}
		}
		// Batched: one write per ~100 ms instead of one per request.
		accessBuf = telemetry.NewBufferedWriter(w, 100*time.Millisecond, 64<<10)
		access = accessBuf
	}
	var logQuery []string
	if cfg.AccessLog.IncludeQuery {
		logQuery = append(append([]string{}, config.DefaultSensitiveQueryParams...), cfg.AccessLog.SensitiveQueryParams...)
	}
	n := &node{log: log, reg: reg, metrics: m, accessBuf: accessBuf,
		gw: gateway.New(gateway.Options{Logger: log, AccessLog: access, Metrics: m, LogQuery: logQuery})}
	ex, err := newExtras(cfg, n, validateOnly)
	if err != nil {
		return nil, err
	}
	n.extras = ex
	return n, nil
}

func accessLogWriter(out string) (io.Writer, error) {
	switch out {
	case "stdout":
		return os.Stdout, nil
	case "stderr":
		return os.Stderr, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
		return nil, err
	}
	return os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
}

func (n *node) compile(cfg *config.Config) (*gateway.Runtime, error) {
	if err := n.extras.prepare(cfg); err != nil {
		return nil, err
	}
	return n.gw.Compile(cfg, n.extras.deps(cfg))
}

// reload validates and compiles the file again and swaps it in; on any
// error the running config stays and the reason is logged.
func (n *node) reload(ctx context.Context) (int64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	start := time.Now()
	cfg, err := config.Load(n.path)
	if err == nil {
		if msg := restartOnlyChanges(n.current, cfg); msg != "" {
			err = fmt.Errorf("%s: %s; restart to apply it (reload refused, previous config kept)", n.path, msg)
		}
	}
	var rt *gateway.Runtime
	if err == nil {
		rt, err = n.compile(cfg)
	}
	if err != nil {
		n.metrics.Reloads.WithLabelValues("failure").Inc()
		n.log.Error("config reload rejected; previous config stays in force", "error", err.Error())
		return 0, err
	}
	old := n.gw.Swap(rt)
	n.current = cfg
	n.metrics.Reloads.WithLabelValues("success").Inc()
	n.log.Info("config reloaded", "routes", len(cfg.Routes), "duration_ms", time.Since(start).Milliseconds())
	if old != nil {
		time.AfterFunc(old.RetireAfter(), old.Close)
	}
	return n.gw.Generation(), nil
}

// restartOnlyChanges names settings a reload cannot apply (bound sockets,
// data location), so the operator is told instead of silently ignored.
func restartOnlyChanges(old, cur *config.Config) string {
	switch {
	case !reflect.DeepEqual(old.Server.Listeners, cur.Server.Listeners):
		return "server.listeners changed"
	case old.Admin != cur.Admin:
		return "admin changed"
	case old.DataDir != cur.DataDir:
		return "data_dir changed"
	case old.Store != cur.Store:
		return "store changed"
	case !reflect.DeepEqual(old.AuthServer, cur.AuthServer):
		return "authorization_server changed"
	case old.Server.MaxConnections != cur.Server.MaxConnections || old.Server.MaxConnectionsPerIP != cur.Server.MaxConnectionsPerIP ||
		old.Server.ReadHeaderTimeout != cur.Server.ReadHeaderTimeout || old.Server.MaxHeaderBytes != cur.Server.MaxHeaderBytes ||
		old.Server.IdleTimeout != cur.Server.IdleTimeout || old.Server.ReadTimeout != cur.Server.ReadTimeout:
		return "server connection settings changed"
	case !reflect.DeepEqual(old.AccessLog, cur.AccessLog):
		return "access_log changed"
	case !reflect.DeepEqual(old.Revocation, cur.Revocation):
		return "revocation changed"
	}
	return ""
}

func (n *node) ready(ctx context.Context) error { return n.extras.ready(ctx) }

func (n *node) close() {
	if n.extras != nil {
		n.extras.close()
	}
	if n.accessBuf != nil {
		_ = n.accessBuf.Close()
	}
}
