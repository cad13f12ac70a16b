package authz

import (
	"context"
	"net/http"
	"testing"
)

func BenchmarkScopeCheck(b *testing.B) {
	p, err := Compile(Options{Scopes: ScopeRule{AllOf: []string{"orders:read"}, AnyOf: []string{"admin", "orders"}},
		MethodScopes: map[string]ScopeRule{"POST": {AllOf: []string{"orders:write"}}}})
	if err != nil {
		b.Fatal(err)
	}
	id := ident("openid", "profile", "orders:read", "orders")
	req := RequestView{Method: "GET", Path: "/orders/1", Header: http.Header{"Accept": {"*/*"}}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Check(id, req).Allowed {
			b.Fatal("denied")
		}
	}
}

func BenchmarkPolicyTypical(b *testing.B) {
	p, err := Compile(Options{Policy: `claims.tenant == params.tenant && request.method in ['GET','HEAD']`})
	if err != nil {
		b.Fatal(err)
	}
	id := ident("orders:read")
	req := RequestView{Method: "GET", Path: "/t/acme/orders", Header: http.Header{"Accept": {"*/*"}},
		Params: ParamMap{"tenant": "acme"}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Check(id, req).Allowed {
			b.Fatal("denied")
		}
	}
}

func BenchmarkPolicyHeader(b *testing.B) {
	p, err := Compile(Options{Policy: `request.headers['x-tenant'] == claims.tenant`})
	if err != nil {
		b.Fatal(err)
	}
	id := ident()
	h := http.Header{"Accept": {"*/*"}, "X-Tenant": {"acme"}, "User-Agent": {"bench"}}
	req := RequestView{Method: "GET", Path: "/orders", Header: h}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Check(id, req).Allowed {
			b.Fatal("denied")
		}
	}
}

// BenchmarkPolicyTypicalCancellable is the gateway's real call: the request
// context can be cancelled, so evaluation goes through ContextEval with
// interrupt checks.
func BenchmarkPolicyTypicalCancellable(b *testing.B) {
	p, err := Compile(Options{Policy: `claims.tenant == params.tenant && request.method in ['GET','HEAD']`})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id := ident("orders:read")
	req := RequestView{Context: ctx, Method: "GET", Path: "/t/acme/orders", Header: http.Header{"Accept": {"*/*"}},
		Params: ParamMap{"tenant": "acme"}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Check(id, req).Allowed {
			b.Fatal("denied")
		}
	}
}
