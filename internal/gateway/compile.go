package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httputil"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/authn/forward"
	"github.com/sekisho/sekisho/internal/authz"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/router"
	"github.com/sekisho/sekisho/internal/upstream"
)

// Runtime is a compiled configuration: everything ServeHTTP needs, built
// once per load and never modified afterwards.
type Runtime struct{ rt *runtime }

type runtime struct {
	router  *router.Router
	routes  []*route
	trusted trustedProxies
	strip   *forward.Forwarder
	pools   []*upstream.Pool
	cancel  context.CancelFunc
	retire  time.Duration // how long old requests may still run after a swap
}

type route struct {
	name          string
	upstreamName  string
	matchPrefix   string
	stripPrefix   bool
	rewritePrefix string
	hostHeader    string
	maxBody       int64
	queryToken    bool                // route accepts ?access_token=: strip it before proxying
	auth          authn.Authenticator // nil: public
	policy        *authz.Policy       // nil: nothing beyond authentication
	forward       *forward.Forwarder
	reqHeaders    *headerOps
	respHeaders   *headerOps
	proxy         *httputil.ReverseProxy
	metrics       *routeMetrics
}

// AuthFactory builds the authenticator for a route's auth declaration. It
// is supplied by the caller (cmd wiring), which owns issuer key sets, API
// key stores and introspection clients that outlive one config load.
// It is never called for `auth: public`.
type AuthFactory func(path string, a *config.Auth) (authn.Authenticator, error)

// Deps are the long-lived collaborators a compile needs.
type Deps struct {
	Auth       AuthFactory
	Signer     forward.Signer // gateway-signed identity JWTs; nil disables signed_identity
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Compile turns a validated config into a runtime. Errors are config.Errors
// located in the config file. Upstream health checks start running at once;
// Close stops them.
func (g *Gateway) Compile(cfg *config.Config, deps Deps) (*Runtime, error) {
	var errs config.Errors
	rt := &runtime{}
	for _, s := range cfg.Server.TrustedProxies {
		p, _ := config.ParsePrefix(s)
		rt.trusted = append(rt.trusted, p)
	}
	strip, err := forward.Compile(forward.Options{StripHeaders: cfg.Identity.Strip})
	if err != nil {
		errs = append(errs, cfg.ErrorAt("identity_headers.strip", "%v", err))
	}
	rt.strip = strip

	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	pools := map[string]*upstream.Pool{}
	var maxTimeout time.Duration
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		u := cfg.Upstreams[name]
		opts := upstreamOptions(name, u, deps)
		p, err := upstream.New(opts)
		if err != nil {
			errs = append(errs, cfg.ErrorAt("upstreams."+name, "%v", err))
			continue
		}
		pools[name] = p
		rt.pools = append(rt.pools, p)
		maxTimeout = max(maxTimeout, u.Timeout.D())
	}
	rt.retire = min(maxTimeout+5*time.Second, 5*time.Minute)

	bufs := newBufferPool()
	var rroutes []router.Route
	for i, rc := range cfg.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		rte := &route{
			name:          rc.Name,
			upstreamName:  rc.Upstream,
			matchPrefix:   rc.Match.Path,
			stripPrefix:   rc.StripPrefix,
			rewritePrefix: rc.RewritePrefix,
			hostHeader:    rc.HostHeader,
			maxBody:       int64(rc.MaxBodyBytes),
			metrics:       g.metrics.forRoute(rc.Name),
		}
		if rc.Auth != nil && !rc.Auth.Public {
			if deps.Auth == nil {
				errs = append(errs, cfg.ErrorAt(p+".auth", "token authentication is not available in this build"))
			} else if a, err := deps.Auth(p+".auth", rc.Auth); err != nil {
				errs = append(errs, asConfigError(cfg, p+".auth", err))
			} else {
				rte.auth = a
			}
		}
		if az := rc.Authorize; az != nil {
			o := authz.Options{
				Scopes:     authz.ScopeRule{AllOf: az.Scopes.AllOf, AnyOf: az.Scopes.AnyOf},
				Policy:     az.Policy,
				Registerer: deps.Registerer,
			}
			// The policy may only name parameters the path has. (A bad
			// path is reported by the router; the check is skipped then.)
			if names, err := router.ParamNames(rc.Match.Path); err == nil {
				o.Params = names
			}
			if len(az.Methods) > 0 {
				o.MethodScopes = map[string]authz.ScopeRule{}
				for m, r := range az.Methods {
					o.MethodScopes[m] = authz.ScopeRule{AllOf: r.AllOf, AnyOf: r.AnyOf}
				}
			}
			pol, err := authz.Compile(o)
			var oe *authz.OptionError
			switch {
			case errors.As(err, &oe):
				errs = append(errs, cfg.ErrorAt(p+".authorize."+oe.Field, "%v", oe.Err))
			case err != nil:
				errs = append(errs, cfg.ErrorAt(p+".authorize", "%v", err))
			}
			rte.policy = pol
		}
		rte.queryToken = queryTokenAllowed(rc.Auth)
		fo := forward.Options{StripHeaders: cfg.Identity.Strip, CredentialHeaders: credentialHeaders(rc.Auth)}
		if f := rc.Forward; f != nil {
			fo.InjectHeaders = f.Headers
			fo.ForwardAuthorization = f.Authorization
			if f.SignedIdentity {
				if deps.Signer == nil {
					errs = append(errs, cfg.ErrorAt(p+".forward.signed_identity", "no identity signing key is available"))
				} else {
					fo.SignedIdentity = &forward.SignedIdentityOptions{Signer: deps.Signer, Audience: rc.Upstream}
				}
			}
		}
		fw, err := forward.Compile(fo)
		if err != nil {
			errs = append(errs, cfg.ErrorAt(p+".forward", "%v", err))
		}
		rte.forward = fw
		if h := rc.Headers; h != nil {
			rte.reqHeaders = compileHeaderOps(h.Request)
			rte.respHeaders = compileHeaderOps(h.Response)
		}
		pool := pools[rc.Upstream]
		if pool != nil {
			rte.proxy = g.newProxy(rte, pool, bufs, rt.trusted)
		}
		rt.routes = append(rt.routes, rte)
		rroutes = append(rroutes, router.Route{
			ID:      i,
			Hosts:   rc.Match.Hosts,
			Path:    rc.Match.Path,
			Prefix:  rc.Match.PathType == "prefix",
			Methods: rc.Match.Methods,
		})
	}
	r, err := router.New(rroutes)
	if err != nil {
		errs = append(errs, routerError(cfg, err))
	}
	rt.router = r
	if len(errs) > 0 {
		cancel()
		for _, p := range rt.pools {
			p.Close()
		}
		return nil, errs
	}
	for _, p := range rt.pools {
		p.Start(ctx)
	}
	return &Runtime{rt: rt}, nil
}

// queryTokenAllowed reports whether a route accepts ?access_token=; the
// gateway then removes it before proxying and logging.
func queryTokenAllowed(a *config.Auth) bool {
	if a == nil {
		return false
	}
	if a.JWT != nil && a.JWT.AllowQueryToken {
		return true
	}
	for _, sub := range a.AnyOf {
		if queryTokenAllowed(sub) {
			return true
		}
	}
	return false
}

// credentialHeaders are the non-Authorization headers a route's auth reads
// credentials from; they never reach the upstream.
func credentialHeaders(a *config.Auth) []string {
	if a == nil {
		return nil
	}
	var hs []string
	if a.APIKey != nil {
		h := a.APIKey.Header
		if h == "" {
			h = "X-API-Key"
		}
		hs = append(hs, h)
	}
	for _, sub := range a.AnyOf {
		hs = append(hs, credentialHeaders(sub)...)
	}
	return hs
}

// Close stops the runtime's health checks and closes idle upstream
// connections. In-flight requests on it are not interrupted.
func (r *Runtime) Close() {
	if r == nil || r.rt == nil {
		return
	}
	r.rt.cancel()
	for _, p := range r.rt.pools {
		p.Close()
	}
}

// RetireAfter is how long to keep a swapped-out runtime open for requests
// that started on it.
func (r *Runtime) RetireAfter() time.Duration { return r.rt.retire }

func asConfigError(cfg *config.Config, path string, err error) *config.Error {
	var ce *config.Error
	if errors.As(err, &ce) {
		return ce
	}
	return cfg.ErrorAt(path, "%v", err)
}

var routeIDRE = regexp.MustCompile(`route (\d+)`)

// routerError locates a router error at the route it names (route IDs are
// config indexes).
func routerError(cfg *config.Config, err error) *config.Error {
	msg := strings.TrimPrefix(err.Error(), "router: ")
	if m := routeIDRE.FindStringSubmatch(msg); m != nil {
		id, _ := strconv.Atoi(m[1])
		msg = routeIDRE.ReplaceAllStringFunc(msg, func(s string) string {
			n, _ := strconv.Atoi(routeIDRE.FindStringSubmatch(s)[1])
			if n >= 0 && n < len(cfg.Routes) {
				return fmt.Sprintf("route %q (routes[%d])", cfg.Routes[n].Name, n)
			}
			return s
		})
		return cfg.ErrorAt(fmt.Sprintf("routes[%d].match", id), "%s", msg)
	}
	return cfg.ErrorAt("routes", "%s", msg)
}

func upstreamOptions(name string, u *config.Upstream, deps Deps) upstream.Options {
	o := upstream.Options{
		Name:                  name,
		Balancing:             u.Balancing,
		ConnectTimeout:        u.ConnectTimeout.D(),
		ResponseHeaderTimeout: u.ResponseHeaderTimeout.D(),
		OverallTimeout:        u.Timeout.D(),
		Retries:               *u.Retries,
		H2C:                   u.H2C,
		MaxIdleConnsPerHost:   u.MaxIdleConnsPerHost,
		Logger:                deps.Logger,
		Registerer:            deps.Registerer,
	}
	if o.Retries == 0 {
		o.Retries = -1 // upstream: 0 means default, negative disables
	}
	for _, t := range u.Targets {
		o.Targets = append(o.Targets, upstream.Target{URL: t.URL, Weight: t.Weight})
	}
	o.PassiveHealth = upstream.PassiveHealth{MaxFailures: u.PassiveHealth.MaxFailures, EjectFor: u.PassiveHealth.EjectFor.D()}
	if u.PassiveHealth.MaxFailures == 0 {
		o.PassiveHealth.MaxFailures = -1
	}
	if a := u.ActiveHealth; a != nil {
		o.ActiveHealth = &upstream.ActiveHealth{
			Path: a.Path, Interval: a.Interval.D(), Timeout: a.Timeout.D(),
			HealthyStatuses: a.HealthyStatuses, HealthyThreshold: a.HealthyThreshold, UnhealthyThreshold: a.UnhealthyThreshold,
		}
	}
	if t := u.TLS; t != nil {
		o.TLS = &upstream.TLSOptions{CAFile: t.CAFile, ServerName: t.ServerName, CertFile: t.CertFile, KeyFile: t.KeyFile}
		if t.MinVersion == "1.3" {
			o.TLS.MinVersion = tls.VersionTLS13
		}
	}
	return o
}

// headerOps is a compiled set/remove list.
type headerOps struct {
	set    [][2]string // canonical name, value
	remove []string
}

func compileHeaderOps(o config.HeaderOps) *headerOps {
	if len(o.Set) == 0 && len(o.Remove) == 0 {
		return nil
	}
	h := &headerOps{}
	for _, k := range slices.Sorted(maps.Keys(o.Set)) {
		h.set = append(h.set, [2]string{http.CanonicalHeaderKey(k), o.Set[k]})
	}
	for _, k := range o.Remove {
		h.remove = append(h.remove, http.CanonicalHeaderKey(k))
	}
	return h
}

func (h *headerOps) apply(hdr http.Header) {
	for _, k := range h.remove {
		delete(hdr, k)
	}
	for _, kv := range h.set {
		hdr[kv[0]] = []string{kv[1]}
	}
}

// requestView adapts a request to what authz policies read.
func policyView(r *http.Request, path string, params *router.Params) authz.RequestView {
	v := authz.RequestView{Context: r.Context(), Method: r.Method, Path: path, Header: r.Header}
	if params.Len() > 0 {
		v.Params = routerParams{params}
	}
	return v
}

type routerParams struct{ p *router.Params }

func (rp routerParams) Get(name string) (string, bool) {
	for i := 0; i < rp.p.Len(); i++ {
		if pr := rp.p.At(i); pr.Name == name {
			return pr.Value, true
		}
	}
	return "", false
}

func (rp routerParams) Range(fn func(name, value string) bool) {
	for i := 0; i < rp.p.Len(); i++ {
		pr := rp.p.At(i)
		if !fn(pr.Name, pr.Value) {
			return
		}
	}
}
