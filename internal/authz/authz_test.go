package authz

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/testutil"
)

func ident(scopes ...string) *authn.Identity {
	return &authn.Identity{Kind: "jwt", Subject: "alice", Scopes: scopes,
		Claims: map[string]any{"sub": "alice", "tenant": "acme", "admin": true, "level": 3.0}}
}

func mustCompile(t *testing.T, o Options) *Policy {
	t.Helper()
	p, err := Compile(o)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func TestScopesAllOf(t *testing.T) {
	p := mustCompile(t, Options{Scopes: ScopeRule{AllOf: []string{"orders:read", "orders:write"}}})
	if d := p.Check(ident("orders:read", "orders:write", "x"), RequestView{Method: "GET"}); !d.Allowed {
		t.Fatalf("both scopes granted: denied %+v", d)
	}
	d := p.Check(ident("orders:read"), RequestView{Method: "GET"})
	if d.Allowed || d.Reason != ReasonScope || d.MissingScopes != "orders:write" {
		t.Fatalf("missing one all-of scope: got %+v", d)
	}
	d = p.Check(nil, RequestView{Method: "GET"})
	if d.Allowed || d.MissingScopes != "orders:read orders:write" {
		t.Fatalf("nil identity: got %+v", d)
	}
}

func TestScopesAnyOf(t *testing.T) {
	p := mustCompile(t, Options{Scopes: ScopeRule{AnyOf: []string{"admin", "orders:read"}}})
	if d := p.Check(ident("orders:read"), RequestView{}); !d.Allowed {
		t.Fatalf("one any-of scope granted: denied %+v", d)
	}
	d := p.Check(ident("other"), RequestView{})
	if d.Allowed || d.Reason != ReasonScope || d.MissingScopes != "admin orders:read" {
		t.Fatalf("no any-of scope: got %+v", d)
	}
}

func TestScopesPerMethod(t *testing.T) {
	p := mustCompile(t, Options{
		Scopes:       ScopeRule{AllOf: []string{"orders"}},
		MethodScopes: map[string]ScopeRule{"POST": {AllOf: []string{"orders:write"}}, "DELETE": {AnyOf: []string{"admin", "orders:delete"}}},
	})
	cases := []struct {
		method  string
		scopes  []string
		allowed bool
		missing string
	}{
		{"GET", []string{"orders"}, true, ""},
		{"POST", []string{"orders"}, false, "orders:write"},
		{"POST", []string{"orders:write"}, false, "orders"}, // method rule does not replace route rule
		{"POST", []string{"orders", "orders:write"}, true, ""},
		{"DELETE", []string{"orders", "orders:write"}, false, "admin orders:delete"},
		{"DELETE", []string{"orders", "admin"}, true, ""},
		{"DELETE", nil, false, "orders admin orders:delete"},
	}
	for _, c := range cases {
		d := p.Check(ident(c.scopes...), RequestView{Method: c.method})
		if d.Allowed != c.allowed || d.MissingScopes != c.missing {
			t.Errorf("%s %v: got %+v, want allowed=%v missing=%q", c.method, c.scopes, d, c.allowed, c.missing)
		}
	}
}

func TestScopeMissingDeduplicated(t *testing.T) {
	p := mustCompile(t, Options{
		Scopes:       ScopeRule{AllOf: []string{"a"}},
		MethodScopes: map[string]ScopeRule{"GET": {AllOf: []string{"a", "b"}}},
	})
	if d := p.Check(ident(), RequestView{Method: "GET"}); d.MissingScopes != "a b" {
		t.Fatalf("MissingScopes = %q, want %q", d.MissingScopes, "a b")
	}
}

func TestCompileRejectsBadScopes(t *testing.T) {
	bad := []Options{
		{Scopes: ScopeRule{AllOf: []string{"has space"}}},
		{Scopes: ScopeRule{AllOf: []string{`quo"te`}}},
		{Scopes: ScopeRule{AnyOf: []string{`back\slash`}}},
		{Scopes: ScopeRule{AnyOf: []string{""}}},
		{Scopes: ScopeRule{AnyOf: []string{"caf\u00e9"}}},
		{Scopes: ScopeRule{AllOf: []string{"a", "a"}}},
		{MethodScopes: map[string]ScopeRule{"get": {AllOf: []string{"a"}}}},
		{MethodScopes: map[string]ScopeRule{"GET": {AllOf: []string{"a\nb"}}}},
	}
	for i, o := range bad {
		if _, err := Compile(o); err == nil {
			t.Errorf("case %d: Compile(%+v) accepted", i, o)
		}
	}
}

func TestPolicyAllowDeny(t *testing.T) {
	p := mustCompile(t, Options{Policy: `claims.tenant == params.tenant && request.method in ['GET','HEAD']`})
	req := RequestView{Method: "GET", Path: "/t/acme/orders", Params: ParamMap{"tenant": "acme"}}
	if d := p.Check(ident(), req); !d.Allowed {
		t.Fatalf("matching tenant GET denied: %+v", d)
	}
	req.Params = ParamMap{"tenant": "other"}
	if d := p.Check(ident(), req); d.Allowed || d.Reason != ReasonPolicy {
		t.Fatalf("other tenant: got %+v, want policy denial", d)
	}
	req.Params = ParamMap{"tenant": "acme"}
	req.Method = "POST"
	if d := p.Check(ident(), req); d.Allowed || d.Reason != ReasonPolicy {
		t.Fatalf("POST: got %+v, want policy denial", d)
	}
}

func TestPolicyRequestFields(t *testing.T) {
	h := http.Header{}
	h.Set("X-Tenant", "acme")
	h["x_raw"] = []string{"raw"} // non-canonical key still visible lower-case
	req := RequestView{Method: "GET", Path: "/admin/x", Header: h}
	cases := []struct {
		expr string
		want bool
	}{
		{`request.headers['x-tenant'] == claims.tenant`, true},
		{`'x-tenant' in request.headers`, true},
		{`'X-Tenant' in request.headers`, false}, // names are lower-case
		{`'x_raw' in request.headers && request.headers['x_raw'] == 'raw'`, true},
		{`request.headers.exists(k, k == 'x-tenant')`, true},
		{`size(request.headers) == 2`, true},
		{`request.path.startsWith('/admin/')`, true},
		{`claims.admin == true && claims.level >= 3.0`, true},
		{`has(claims.missing)`, false},
		{`size(params) == 0`, true},
	}
	for _, c := range cases {
		p := mustCompile(t, Options{Policy: c.expr})
		d := p.Check(ident(), req)
		if d.Allowed != c.want {
			t.Errorf("%s: got %+v, want allowed=%v", c.expr, d, c.want)
		}
	}
}

func TestPolicyNeedsScopesToo(t *testing.T) {
	p := mustCompile(t, Options{Scopes: ScopeRule{AllOf: []string{"s"}}, Policy: `true`})
	if d := p.Check(ident(), RequestView{}); d.Allowed || d.Reason != ReasonScope {
		t.Fatalf("policy true but scope missing: got %+v", d)
	}
}

func TestCompileErrorsShowPosition(t *testing.T) {
	cases := []struct{ expr, want string }{
		{`clams.tenant == 'a'`, `policy: 1:1: undeclared reference to 'clams'`},
		{`claims.tenant == clams.x`, `policy: 1:18: undeclared reference to 'clams'`},
		{"true &&\n  request.methd == 'GET'", `policy: 2:10: undeclared reference to 'request.methd' (did you mean 'request.method'?)`},
		{`claims.tenant ==`, `policy: 1:17: `},
		{`request.path.matches('[')`, `policy: 1:`},
	}
	for _, c := range cases {
		_, err := Compile(Options{Policy: c.expr})
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: error %v, want prefix %q", c.expr, err, c.want)
		}
	}
}

func TestCompileRejectsNonBool(t *testing.T) {
	for _, expr := range []string{`claims.admin`, `request.method`, `1 + 2`, `params`} {
		_, err := Compile(Options{Policy: expr})
		if err == nil || !strings.Contains(err.Error(), "must evaluate to bool") {
			t.Errorf("%q: error %v, want non-bool rejection", expr, err)
		}
	}
}

func TestRuntimeErrorDenies(t *testing.T) {
	reg := prometheus.NewRegistry()
	cases := []string{
		`claims.nonexistent == 'x'`,        // missing key
		`request.headers['absent'] == 'x'`, // missing header
		`params.tenant == 'x'`,             // no params at all
		`int(claims.tenant) > 0`,           // bad conversion
	}
	for _, expr := range cases {
		p := mustCompile(t, Options{Policy: expr, Registerer: reg})
		d := p.Check(ident(), RequestView{Method: "GET"})
		if d.Allowed || d.Reason != ReasonPolicyError || d.Err == nil {
			t.Errorf("%s: got %+v, want policy_error denial", expr, d)
		}
	}
	if got := testutil.CounterValue(t, reg, "sekisho_authz_denials_total", "reason", ReasonPolicyError); got != float64(len(cases)) {
		t.Fatalf("policy_error denials counted %v, want %d", got, len(cases))
	}
}

func TestCostLimitDenies(t *testing.T) {
	// Quadratic comprehension over a list built in the expression.
	expr := `[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, [1,2,3,4,5,6,7,8,9,10].all(z, x+y+z > 0)))`
	p := mustCompile(t, Options{Policy: expr, CostLimit: 100})
	d := p.Check(ident(), RequestView{})
	if d.Allowed || d.Reason != ReasonPolicyError || !strings.Contains(d.Err.Error(), "cost") {
		t.Fatalf("over-cost policy: got %+v", d)
	}
	p = mustCompile(t, Options{Policy: expr})
	if d := p.Check(ident(), RequestView{}); !d.Allowed {
		t.Fatalf("same policy under default limit: got %+v", d)
	}
}

func TestCancelledContextDenies(t *testing.T) {
	expr := `[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, [1,2,3,4,5,6,7,8,9,10].all(z, x+y+z > 0)))`
	p := mustCompile(t, Options{Policy: expr})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := p.Check(ident(), RequestView{Context: ctx}); d.Allowed || d.Reason != ReasonPolicyError {
		t.Fatalf("cancelled evaluation: got %+v", d)
	}
}

func TestNilPolicyDenies(t *testing.T) {
	var p *Policy
	if d := p.Check(ident(), RequestView{}); d.Allowed {
		t.Fatal("nil policy allowed a request")
	}
}

func TestEmptyOptionsAllow(t *testing.T) {
	p := mustCompile(t, Options{})
	if d := p.Check(nil, RequestView{}); !d.Allowed {
		t.Fatalf("no requirements: got %+v", d)
	}
}

func TestLazyActivation(t *testing.T) {
	// A policy that reads only claims and method must not touch params:
	// a Params that fails the test on any access proves it.
	p := mustCompile(t, Options{Policy: `claims.tenant == 'acme' && request.method == 'GET'`})
	d := p.Check(ident(), RequestView{Method: "GET", Params: panicParams{t}})
	if !d.Allowed {
		t.Fatalf("got %+v", d)
	}
}

type panicParams struct{ t *testing.T }

func (p panicParams) Get(string) (string, bool)       { p.t.Fatal("params read"); return "", false }
func (p panicParams) Range(func(string, string) bool) { p.t.Fatal("params ranged") }

func TestScopeCheckDoesNotAllocate(t *testing.T) {
	p := mustCompile(t, Options{Scopes: ScopeRule{AllOf: []string{"a", "b"}, AnyOf: []string{"c", "d"}},
		MethodScopes: map[string]ScopeRule{"GET": {AllOf: []string{"e"}}}})
	id := ident("a", "b", "d", "e")
	req := RequestView{Method: "GET", Path: "/x", Header: http.Header{"X": {"y"}}}
	allocs := testing.AllocsPerRun(100, func() {
		if !p.Check(id, req).Allowed {
			t.Fatal("denied")
		}
	})
	if allocs != 0 {
		t.Fatalf("scope-only Check allocates %v times, want 0", allocs)
	}
}

func TestRefusalMapping(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{authn.ErrNoCredentials, 401, ""},
		{&authn.Error{Reason: authn.ReasonExpired}, 401, ErrCodeInvalidToken},
		{&authn.Error{Reason: authn.ReasonMultipleTokens}, 400, ErrCodeInvalidRequest},
		{&authn.Error{Reason: authn.ReasonQueryToken}, 400, ErrCodeInvalidRequest},
		{&authn.Error{Reason: authn.ReasonUnavailable}, 503, ""},
		{context.DeadlineExceeded, 503, ""},
	}
	for _, c := range cases {
		s, code := Refusal(c.err)
		if s != c.status || code != c.code {
			t.Errorf("Refusal(%v) = %d %q, want %d %q", c.err, s, code, c.status, c.code)
		}
	}
	s, code, scope := Decision{Reason: ReasonScope, MissingScopes: "a b"}.Challenge()
	if s != 403 || code != ErrCodeInsufficientScope || scope != "a b" {
		t.Errorf("scope challenge = %d %q %q", s, code, scope)
	}
	if s, _, scope := (Decision{Reason: ReasonPolicyError}).Challenge(); s != 403 || scope != "" {
		t.Errorf("policy error challenge = %d %q", s, scope)
	}
}

// TestPolicyParamRefs: with the route's parameters known, a policy reading
// another parameter by a constant name is a compile error naming it and its
// position; computed names and rebinding comprehensions are left alone.
func TestPolicyParamRefs(t *testing.T) {
	tenant := []string{"tenant", "id"}
	for _, c := range []struct {
		expr   string
		params []string
		want   string // error substring; "" = compiles
	}{
		{`params.tenant == 'a' && params["id"] == 'b' && has(params.tenant) && 'id' in params`, tenant, ""},
		{`params[request.method] == 'a'`, tenant, ""},
		{`claims.tenant == params.tenantx`, tenant, `policy: 1:18: the route's path has no parameter "tenantx" (it has: tenant, id)`},
		{`params["tennant"] == 'a'`, tenant, `no parameter "tennant"`},
		{`has(params.ID)`, tenant, `no parameter "ID"`},
		{"true &&\n 'org' in params", tenant, `policy: 2:`},
		{`params.tenant == 'a'`, []string{}, `no parameter "tenant" (it has none)`},
		{`params.anything == 'a'`, nil, ""}, // not checked without the route's names
		{`[{'x': 'a'}].exists(params, params.x == 'a')`, tenant, ""},
		{`[{'x': 'a'}].exists(p, p.x == params.nope)`, tenant, `no parameter "nope"`},
	} {
		_, err := Compile(Options{Policy: c.expr, Params: c.params})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.expr, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want %q", c.expr, err, c.want)
		}
		var oe *OptionError
		if err != nil && (!errors.As(err, &oe) || oe.Field != "policy") {
			t.Errorf("%q: error %T %v is not an OptionError for policy", c.expr, err, err)
		}
	}
}
