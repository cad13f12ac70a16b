package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/authn/anyof"
	"github.com/sekisho/sekisho/internal/authn/apikey"
	"github.com/sekisho/sekisho/internal/authn/forward"
	"github.com/sekisho/sekisho/internal/authn/introspect"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/gateway"
	"github.com/sekisho/sekisho/internal/revocation"
	"github.com/sekisho/sekisho/internal/store"
)

// extras holds the long-lived services around the gateway that outlive a
// config reload: the store, token verifiers and their caches, the
// revocation deny-list and (when enabled) the authorization server.
type extras struct {
	n      *node
	ctx    context.Context
	cancel context.CancelFunc

	st      store.Store // nil in validate-only mode
	metrics *authn.Metrics
	cache   *authn.TokenCache
	deny    *revocation.DenyList
	revoker *durableRevoker // nil in validate-only mode
	signer  *forward.EphemeralSigner
	apikeys apikey.Store

	mu       sync.Mutex
	issuers  map[string]*issuerEntry
	intro    map[string]*introEntry
	apiAuths map[string]*apikey.Authenticator // by header name

	as *authServer // nil unless authorization_server.enabled
}

type issuerEntry struct {
	cfg    config.Issuer
	is     *authn.Issuer
	cancel context.CancelFunc
}

type introEntry struct {
	cfg config.Introspection
	a   *introspect.Authenticator
}

// newExtras opens the store (unless validateOnly) and the shared caches.
func newExtras(cfg *config.Config, n *node, validateOnly bool) (*extras, error) {
	ctx, cancel := context.WithCancel(context.Background())
	e := &extras{n: n, ctx: ctx, cancel: cancel, issuers: map[string]*issuerEntry{}, intro: map[string]*introEntry{}, apiAuths: map[string]*apikey.Authenticator{}}
	fail := func(err error) (*extras, error) { e.close(); return nil, err }
	var err error
	if e.metrics, err = authn.NewMetrics(n.reg); err != nil {
		return fail(err)
	}
	if e.cache, err = authn.NewTokenCache(authn.TokenCacheOptions{}); err != nil {
		return fail(err)
	}
	denyOpts := revocation.Options{Logger: n.log}
	if as := cfg.AuthServer; as != nil && as.Enabled {
		denyOpts.Issuer = as.Issuer
	}
	if r := cfg.Revocation; r != nil && r.Issuer != "" {
		denyOpts.Issuer = r.Issuer
	}
	if e.deny, err = revocation.NewDenyList(denyOpts); err != nil {
		return fail(err)
	}
	go e.deny.Run(ctx, time.Minute)
	if e.signer, err = forward.NewEphemeralSigner(); err != nil {
		return fail(err)
	}
	if validateOnly {
		e.apikeys = apikey.NewMemStore()
		return e, nil
	}
	if e.st, err = openStore(ctx, cfg); err != nil {
		return fail(err)
	}
	if err := registerStoreMetrics(n.reg, e.st); err != nil {
		return fail(err)
	}
	e.apikeys = apiKeyStore{e.st}
	// Revocations recorded earlier (or by the CLI, or by another node)
	// apply before the first request is served.
	e.revoker = &durableRevoker{st: e.st, deny: e.deny, log: n.log}
	if err := e.revoker.load(ctx); err != nil {
		return fail(fmt.Errorf("loading revocations: %w", err))
	}
	if r := cfg.Revocation; r != nil && r.Redis != nil {
		if e.revoker.live, err = startRedisSync(ctx, r.Redis, e.deny, n.log); err != nil {
			return fail(err)
		}
	}
	go e.revoker.run(ctx, 5*time.Second)
	go store.RunGC(ctx, e.st, time.Minute, func(removed int64, err error) {
		if err != nil {
			n.log.Warn("store garbage collection failed", "error", err)
		} else if removed > 0 {
			n.log.Debug("store garbage collection", "removed", removed)
		}
	})
	if as := cfg.AuthServer; as != nil && as.Enabled {
		if e.as, err = newAuthServer(ctx, cfg, e); err != nil {
			return fail(err)
		}
	}
	return e, nil
}

// registerStoreMetrics exports the group-commit writer's counters: rows ÷
// batches is how many durable inserts share one commit (one fsync).
func registerStoreMetrics(reg prometheus.Registerer, st store.Store) error {
	gs, ok := st.(store.GroupCommitStatser)
	if !ok {
		return nil
	}
	for _, c := range []struct {
		name, help string
		get        func(store.GroupCommitStats) uint64
	}{
		{"sekisho_store_group_commit_batches_total", "Transactions committed by the store's group-commit writer.", func(s store.GroupCommitStats) uint64 { return s.Batches }},
		{"sekisho_store_group_commit_rows_total", "Rows written by the store's group-commit writer.", func(s store.GroupCommitStats) uint64 { return s.Rows }},
		{"sekisho_store_group_commit_waits_total", "Batches for which the group-commit writer waited briefly for more rows (only under concurrent load).", func(s store.GroupCommitStats) uint64 { return s.Waits }},
		{"sekisho_store_group_commit_fallbacks_total", "Batches the group-commit writer retried row by row after an error.", func(s store.GroupCommitStats) uint64 { return s.Fallbacks }},
	} {
		get := c.get
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(get(gs.GroupCommitStats())) })); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// openStore opens the configured backend, creating the data directory for
// SQLite.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Store.Driver {
	case "postgres":
		st, err := store.OpenPostgres(ctx, cfg.Store.DSN, store.PostgresOptions{})
		if err != nil {
			return nil, fmt.Errorf("store: postgres: %w", err)
		}
		return st, nil
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
		}
		st, err := store.OpenSQLite(cfg.Store.Path, store.SQLiteOptions{})
		if err != nil {
			return nil, fmt.Errorf("store: sqlite %s: %w", cfg.Store.Path, err)
		}
		return st, nil
	}
}

// prepare builds or reuses the verifiers cfg needs. An issuer whose config is
// unchanged keeps its key set cache across reloads.
func (e *extras) prepare(cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs config.Errors
	for _, name := range slices.Sorted(maps.Keys(cfg.Issuers)) {
		ic := cfg.Issuers[name]
		if old, ok := e.issuers[name]; ok && reflect.DeepEqual(old.cfg, *ic) {
			continue
		}
		is, err := e.newIssuer(cfg, name, ic)
		if err != nil {
			errs = append(errs, cfg.ErrorAt("issuers."+name, "%v", err))
			continue
		}
		ictx, cancel := context.WithCancel(e.ctx)
		is.Start(ictx)
		if old, ok := e.issuers[name]; ok {
			old.cancel()
		}
		e.issuers[name] = &issuerEntry{cfg: *ic, is: is, cancel: cancel}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Intro)) {
		ic := cfg.Intro[name]
		if old, ok := e.intro[name]; ok && old.cfg == *ic {
			continue
		}
		a, err := introspect.New(introspect.Options{
			Endpoint: ic.Endpoint, ClientID: ic.ClientID, ClientSecret: ic.ClientSecret,
			Timeout: ic.Timeout.D(), PositiveCacheTTL: ic.PositiveTTL.D(), NegativeCacheTTL: ic.NegativeTTL.D(),
			DenyList:   introspect.DenyListFunc(func(jti string) bool { return e.deny.Revoked(revocation.Token{JTI: jti}) }),
			Registerer: e.n.reg, Logger: e.n.log,
		})
		if err != nil {
			errs = append(errs, cfg.ErrorAt("introspection."+name, "%v", err))
			continue
		}
		e.intro[name] = &introEntry{cfg: *ic, a: a}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (e *extras) newIssuer(cfg *config.Config, name string, ic *config.Issuer) (*authn.Issuer, error) {
	o := authn.IssuerOptions{
		Name: name, Issuer: ic.Issuer, JWKSURL: ic.JWKSURL, JWKSFile: ic.JWKSFile,
		Algorithms: ic.Algorithms, Audiences: ic.Audiences, RequiredType: ic.RequiredType,
		Leeway: ic.Leeway.D(), MaxTokenBytes: int(ic.MaxTokenBytes),
		JWKS: authn.JWKSOptions{
			RefreshMin: ic.JWKS.RefreshMin.D(), RefreshMax: ic.JWKS.RefreshMax.D(),
			StaleGrace: ic.JWKS.StaleGrace.D(), MaxJWKSBytes: int64(ic.JWKS.MaxBytes), FetchTimeout: ic.JWKS.FetchTimeout.D(),
		},
		Logger: e.n.log,
	}
	if ic.HMACSecret != "" {
		o.HMACSecret = []byte(ic.HMACSecret)
	}
	if ic.Builtin && e.st == nil { // config validate: check the rest, keys come at run time
		o.Issuer = cfg.AuthServer.Issuer
		o.KeySource = noKeys{}
	} else if ic.Builtin {
		if e.as == nil {
			return nil, errors.New("the built-in issuer needs the authorization server, which is not running (restart after enabling it)")
		}
		o.Issuer = cfg.AuthServer.Issuer
		o.KeySource = e.as.keySource()
		if o.RequiredType == "" {
			o.RequiredType = "at+jwt"
		}
	}
	return authn.NewIssuer(o, e.metrics)
}

// deps are the gateway's collaborators for one compile of cfg.
func (e *extras) deps(cfg *config.Config) gateway.Deps {
	return gateway.Deps{Auth: e.authFactory(cfg), Signer: e.signer, Logger: e.n.log, Registerer: e.n.reg}
}

// authFactory builds the authenticator of one route's auth declaration.
func (e *extras) authFactory(cfg *config.Config) gateway.AuthFactory {
	var build func(path string, a *config.Auth) (authn.Authenticator, error)
	build = func(path string, a *config.Auth) (authn.Authenticator, error) {
		switch {
		case a.JWT != nil:
			e.mu.Lock()
			var iss []*authn.Issuer
			for _, name := range a.JWT.Issuers {
				iss = append(iss, e.issuers[name].is)
			}
			e.mu.Unlock()
			return authn.NewJWT(iss, authn.RouteJWTOptions{AllowQueryToken: a.JWT.AllowQueryToken, Logger: e.n.log}, e.cache, e.deny, e.metrics)
		case a.APIKey != nil:
			header := a.APIKey.Header
			if header == "" {
				header = apikey.DefaultHeader
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			if au, ok := e.apiAuths[header]; ok {
				return au, nil
			}
			au, err := apikey.NewAuthenticator(e.apikeys, apikey.Options{Header: header, AllowAuthorization: true, Registerer: e.n.reg, Logger: e.n.log})
			if err != nil {
				return nil, err
			}
			e.apiAuths[header] = au
			return au, nil
		case a.Introspection != nil:
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.intro[a.Introspection.Endpoint].a, nil
		case a.AnyOf != nil:
			var subs []authn.Authenticator
			hasIntro := false
			for _, s := range a.AnyOf {
				hasIntro = hasIntro || s.Introspection != nil
			}
			for i, s := range a.AnyOf {
				sub, err := build(fmt.Sprintf("%s.any_of[%d]", path, i), s)
				if err != nil {
					return nil, err
				}
				if s.JWT != nil && hasIntro {
					// Opaque tokens go to introspection: a bearer token
					// that is not a compact JWS is not the JWT kind's.
					sub = jwsOnly{sub}
				}
				subs = append(subs, sub)
			}
			return anyof.AnyOf(subs...), nil
		}
		return nil, fmt.Errorf("no auth kind")
	}
	return build
}

func (e *extras) ready(ctx context.Context) error {
	if e.st != nil {
		if err := e.st.Ping(ctx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, ie := range e.issuers {
		if !ie.is.Ready() {
			return fmt.Errorf("issuer %s: no verification keys loaded yet", name)
		}
	}
	return nil
}

func (e *extras) close() {
	e.cancel()
	if e.as != nil {
		e.as.close()
	}
	if e.st != nil {
		e.st.Close()
	}
}

func (n *node) adminAPI() map[string]http.Handler {
	api := map[string]http.Handler{}
	if n.extras.as != nil {
		for k, v := range n.extras.as.adminAPI() {
			api[k] = v
		}
	}
	return api
}

// handler is the public listeners' handler: the gateway, with the
// authorization server mounted on its reserved paths.
func (n *node) handler() http.Handler { return n.gw }

// apiKeyStore adapts the durable store to what the API key authenticator
// and CLI need.
type apiKeyStore struct{ st store.Store }

func (s apiKeyStore) GetAPIKey(ctx context.Context, id string) (*apikey.Record, error) {
	k, err := s.st.GetAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apikey.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r := fromStoreKey(*k)
	return &r, nil
}

func (s apiKeyStore) CreateAPIKey(ctx context.Context, r *apikey.Record) error {
	err := s.st.CreateAPIKey(ctx, &store.APIKey{ID: r.ID, Consumer: r.Consumer, Scopes: r.Scopes, Hash: r.Hash, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, Revoked: r.Revoked})
	if errors.Is(err, store.ErrConflict) {
		return apikey.ErrExists
	}
	return err
}

func (s apiKeyStore) ListAPIKeys(ctx context.Context) ([]apikey.Record, error) {
	var out []apikey.Record
	err := eachPage(ctx, s.st.ListAPIKeys, func(k store.APIKey) string { return k.ID }, func(k store.APIKey) {
		out = append(out, fromStoreKey(k))
	})
	return out, err
}

// eachPage calls fn for every row of a paged store listing, in order.
func eachPage[T any](ctx context.Context, list func(context.Context, store.Page) ([]T, error), key func(T) string, fn func(T)) error {
	p := store.Page{Limit: store.MaxPageLimit}
	for {
		rows, err := list(ctx, p)
		if err != nil {
			return err
		}
		for _, r := range rows {
			fn(r)
		}
		if len(rows) < p.Limit {
			return nil
		}
		p.After = key(rows[len(rows)-1])
	}
}

func (s apiKeyStore) RevokeAPIKey(ctx context.Context, id string) error {
	err := s.st.RevokeAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return apikey.ErrNotFound
	}
	return err
}

func fromStoreKey(k store.APIKey) apikey.Record {
	return apikey.Record{ID: k.ID, Consumer: k.Consumer, Scopes: k.Scopes, Hash: k.Hash, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, Revoked: k.Revoked}
}

// noKeys is the built-in issuer's key source under `config validate`.
type noKeys struct{}

func (noKeys) Keys(context.Context) ([]jose.JSONWebKey, error) { return nil, nil }
func (noKeys) KeysChanged() <-chan struct{}                    { return nil }

// identityJWKS serves the public key of the gateway's identity signer, for
// upstreams that verify `forward.signed_identity` tokens. The key is made at
// start, so upstreams should refetch on an unknown kid.
func (n *node) identityJWKS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(n.extras.signer.JWKS())
	})
}

// jwsOnly passes a request to the JWT authenticator only when its bearer
// token has the compact JWS shape (three dot-separated parts); otherwise it
// reports no credentials of its kind, so any_of tries introspection.
type jwsOnly struct{ a authn.Authenticator }

func (j jwsOnly) Authenticate(r *http.Request) (*authn.Identity, error) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && strings.Count(h, ".") != 2 {
		return nil, authn.ErrNoCredentials
	}
	return j.a.Authenticate(r)
}
