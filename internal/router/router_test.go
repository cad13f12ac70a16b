package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sekisho/sekisho/internal/pathnorm"
	"github.com/sekisho/sekisho/internal/testutil"
)

func mustNew(t testing.TB, routes []Route) *Router {
	t.Helper()
	r, err := New(routes)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

type matchCase struct {
	host, method, path string
	want               Result
	id                 int    // expected RouteID when Found
	allow              string // expected Allow when MethodNotAllowed
}

func runCases(t *testing.T, r *Router, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		var m Match
		got := r.Match(c.host, c.method, c.path, &m)
		name := fmt.Sprintf("%s %s %s", c.method, c.host, c.path)
		if got != c.want {
			t.Errorf("%s: result %v (route %d), want %v (route %d)", name, got, m.RouteID, c.want, c.id)
			continue
		}
		switch got {
		case Found:
			if m.RouteID != c.id {
				t.Errorf("%s: route %d, want %d", name, m.RouteID, c.id)
			}
			if m.Allow != "" {
				t.Errorf("%s: Allow %q set on Found", name, m.Allow)
			}
		case MethodNotAllowed:
			if m.Allow != c.allow {
				t.Errorf("%s: Allow %q, want %q", name, m.Allow, c.allow)
			}
			if m.RouteID != -1 {
				t.Errorf("%s: RouteID %d on 405", name, m.RouteID)
			}
		case NotFound:
			if m.RouteID != -1 {
				t.Errorf("%s: RouteID %d on 404", name, m.RouteID)
			}
		}
	}
}

func TestSegmentBoundaryPrefix(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/api", Prefix: true},
	})
	runCases(t, r, []matchCase{
		{"h", "GET", "/api", Found, 0, ""},
		{"h", "GET", "/api/", Found, 0, ""},
		{"h", "GET", "/api/x/y", Found, 0, ""},
		{"h", "GET", "/apiary", NotFound, 0, ""},
		{"h", "GET", "/ap", NotFound, 0, ""},
		{"h", "GET", "/api;x", NotFound, 0, ""},
		{"h", "GET", "/", NotFound, 0, ""},
		{"h", "GET", "/x/api", NotFound, 0, ""},
	})
}

func TestTrailingSlash(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/a"},                // exact
		{ID: 1, Path: "/b/"},               // exact with slash
		{ID: 2, Path: "/c/", Prefix: true}, // needs something after /c/
		{ID: 3, Path: "/"},                 // exact root
	})
	runCases(t, r, []matchCase{
		{"h", "GET", "/a", Found, 0, ""},
		{"h", "GET", "/a/", NotFound, 0, ""},
		{"h", "GET", "/b/", Found, 1, ""},
		{"h", "GET", "/b", NotFound, 0, ""},
		{"h", "GET", "/c", NotFound, 0, ""},
		{"h", "GET", "/c/", Found, 2, ""},
		{"h", "GET", "/c/x/y", Found, 2, ""},
		{"h", "GET", "/", Found, 3, ""},
		{"h", "GET", "/x", NotFound, 0, ""},
	})
}

func TestRootPrefixMatchesEverything(t *testing.T) {
	r := mustNew(t, []Route{{ID: 7, Path: "/", Prefix: true}})
	for _, p := range []string{"/", "/a", "/a/", "/a/b/c", "/%41"} {
		var m Match
		if res := r.Match("", "GET", p, &m); res != Found || m.RouteID != 7 {
			t.Errorf("%q: %v %d", p, res, m.RouteID)
		}
	}
	var m Match
	if res := r.Match("", "GET", "a", &m); res != NotFound {
		t.Errorf("relative path matched: %v", res)
	}
	if res := r.Match("", "GET", "", &m); res != NotFound {
		t.Errorf("empty path matched: %v", res)
	}
}

func TestPrecedence(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/", Prefix: true},
		{ID: 1, Path: "/api", Prefix: true},
		{ID: 2, Path: "/api/v1", Prefix: true},
		{ID: 3, Path: "/api/v1/users"},
		{ID: 4, Path: "/api/v1/users", Prefix: true},
		{ID: 5, Path: "/api/v1/{res}"},
		{ID: 6, Path: "/api/{ver}/users/{id}"},
		{ID: 7, Path: "/api/v1/users/me"},
		{ID: 8, Path: "/api/", Prefix: true},
		{ID: 9, Path: "/api/{ver}", Prefix: true},
	})
	runCases(t, r, []matchCase{
		{"", "GET", "/", Found, 0, ""},
		{"", "GET", "/other", Found, 0, ""},
		{"", "GET", "/apiary", Found, 0, ""},
		{"", "GET", "/api", Found, 1, ""},          // only /api covers "/api"; /api/ needs more
		{"", "GET", "/api/", Found, 8, ""},         // "/api/" prefix beats "/api" prefix
		{"", "GET", "/api/v2", Found, 9, ""},       // param prefix beats "/api/"
		{"", "GET", "/api/v1", Found, 2, ""},       // literal v1 beats {ver}
		{"", "GET", "/api/v1/users", Found, 3, ""}, // exact beats prefix on the same path
		{"", "GET", "/api/v1/users/", Found, 4, ""},
		{"", "GET", "/api/v1/users/me", Found, 7, ""}, // exact literal beats all
		{"", "GET", "/api/v1/users/42", Found, 4, ""}, // literal "v1" beats {ver} at depth 2
		{"", "GET", "/api/v2/users/42", Found, 6, ""}, // template with more literals
		{"", "GET", "/api/v2/users", Found, 9, ""},    // no exact under v2: param prefix
		{"", "GET", "/api/v1/orders", Found, 5, ""},   // template beats "/api/v1" prefix
		{"", "GET", "/api/v1/orders/1", Found, 2, ""}, // template is exact; falls back to prefix
		{"", "GET", "/api//v1", Found, 8, ""},         // empty segment matches no param
	})
}

func TestMethodFallThrough(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/api/admin", Methods: []string{"GET"}},
		{ID: 1, Path: "/api", Prefix: true},
		{ID: 2, Path: "/ro", Methods: []string{"GET"}},
		{ID: 3, Path: "/ro", Prefix: true, Methods: []string{"POST", "PUT"}},
	})
	runCases(t, r, []matchCase{
		{"", "GET", "/api/admin", Found, 0, ""},
		{"", "POST", "/api/admin", Found, 1, ""}, // example from the issue
		{"", "DELETE", "/api/admin", Found, 1, ""},
		{"", "GET", "/ro", Found, 2, ""},
		{"", "POST", "/ro", Found, 3, ""},
		{"", "DELETE", "/ro", MethodNotAllowed, 0, "GET, HEAD, POST, PUT"},
		{"", "DELETE", "/ro/x", MethodNotAllowed, 0, "POST, PUT"},
		{"", "DELETE", "/nothing", NotFound, 0, ""},
	})
}

func TestMethodSpecificBeatsAny(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/x"},                            // any method, lower ID
		{ID: 1, Path: "/x", Methods: []string{"POST"}}, // lists POST
		{ID: 2, Path: "/x", Methods: []string{"GET"}},  // lists GET
		{ID: 3, Path: "/x", Methods: []string{"HEAD"}}, // lists HEAD
		{ID: 4, Path: "/y", Methods: []string{"GET"}},  //
		{ID: 5, Path: "/y"},                            // any
		{ID: 6, Path: "/z", Methods: []string{"GET", "PURGE"}},
	})
	runCases(t, r, []matchCase{
		{"", "POST", "/x", Found, 1, ""},
		{"", "GET", "/x", Found, 2, ""},
		{"", "HEAD", "/x", Found, 3, ""}, // explicit HEAD beats GET-implied HEAD
		{"", "PUT", "/x", Found, 0, ""},
		{"", "HEAD", "/y", Found, 4, ""}, // GET-implied HEAD beats any-method
		{"", "OPTIONS", "/y", Found, 5, ""},
		{"", "HEAD", "/z", Found, 6, ""},
		{"", "PURGE", "/z", Found, 6, ""},
		{"", "purge", "/z", MethodNotAllowed, 0, "GET, HEAD, PURGE"}, // methods are case-sensitive
		{"", "POST", "/z", MethodNotAllowed, 0, "GET, HEAD, PURGE"},
	})
}

func TestHEADMatchesGET(t *testing.T) {
	r := mustNew(t, []Route{{ID: 0, Path: "/g", Methods: []string{"GET"}}, {ID: 1, Path: "/p", Methods: []string{"POST"}}})
	runCases(t, r, []matchCase{
		{"", "HEAD", "/g", Found, 0, ""},
		{"", "HEAD", "/p", MethodNotAllowed, 0, "POST"},
		{"", "GET", "/p", MethodNotAllowed, 0, "POST"},
	})
}

func TestHosts(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/", Prefix: true},
		{ID: 1, Hosts: []string{"*.example.com"}, Path: "/", Prefix: true},
		{ID: 2, Hosts: []string{"*.api.example.com"}, Path: "/", Prefix: true},
		{ID: 3, Hosts: []string{"admin.example.com", "Admin2.Example.com."}, Path: "/", Prefix: true},
		{ID: 4, Path: "/only-any"},
		{ID: 5, Hosts: []string{"[::1]"}, Path: "/v6"},
		{ID: 6, Hosts: []string{"admin.example.com"}, Path: "/exact-host", Methods: []string{"GET"}},
	})
	runCases(t, r, []matchCase{
		{"admin.example.com", "GET", "/x", Found, 3, ""},
		{"ADMIN.Example.COM", "GET", "/x", Found, 3, ""},  // case-insensitive
		{"admin.example.com.", "GET", "/x", Found, 3, ""}, // trailing dot
		{"admin2.example.com", "GET", "/x", Found, 3, ""},
		{"foo.example.com", "GET", "/x", Found, 1, ""},
		{"a.b.c.example.com", "GET", "/x", Found, 1, ""},  // one or more labels
		{"v1.api.example.com", "GET", "/x", Found, 2, ""}, // longer suffix wins
		{"x.v1.api.example.com", "GET", "/x", Found, 2, ""},
		{"api.example.com", "GET", "/x", Found, 1, ""}, // *.api.example.com needs a label
		{"example.com", "GET", "/x", Found, 0, ""},     // wildcard excludes the apex
		{"xexample.com", "GET", "/x", Found, 0, ""},
		{".example.com", "GET", "/x", Found, 0, ""},
		{"", "GET", "/x", Found, 0, ""},
		// Host specificity dominates path specificity.
		{"admin.example.com", "GET", "/only-any", Found, 3, ""},
		{"other.org", "GET", "/only-any", Found, 4, ""},
		{"[::1]", "GET", "/v6", Found, 5, ""},
		// Method fall-through crosses host groups: the exact-host route
		// allows only GET, the any-host prefix accepts POST.
		{"admin.example.com", "POST", "/exact-host", Found, 3, ""},
		{strings.Repeat("a", 300) + ".example.com", "GET", "/x", Found, 0, ""},
	})
}

func TestHostOnlyRoutes(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Hosts: []string{"a.test"}, Path: "/p", Methods: []string{"GET"}},
		{ID: 1, Hosts: []string{"*.test"}, Path: "/p", Methods: []string{"PUT"}},
	})
	runCases(t, r, []matchCase{
		{"a.test", "GET", "/p", Found, 0, ""},
		{"a.test", "PUT", "/p", Found, 1, ""},
		{"a.test", "DELETE", "/p", MethodNotAllowed, 0, "GET, HEAD, PUT"}, // union across groups
		{"b.test", "GET", "/p", MethodNotAllowed, 0, "PUT"},
		{"c.other", "GET", "/p", NotFound, 0, ""},
		{"a.test", "GET", "/q", NotFound, 0, ""},
	})
}

func TestTemplates(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/tenants/{tenant}/items"},
		{ID: 1, Path: "/tenants/{tenant}/items/{item}"},
		{ID: 2, Path: "/tenants/{t}/files/", Prefix: true},
		{ID: 3, Path: "/tenants/admin/items"},
		{ID: 4, Path: "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}"},
	})
	tests := []struct {
		path   string
		id     int
		params map[string]string
	}{
		{"/tenants/acme/items", 0, map[string]string{"tenant": "acme"}},
		{"/tenants/acme/items/42", 1, map[string]string{"tenant": "acme", "item": "42"}},
		{"/tenants/a%3Ab/items/x~y", 1, map[string]string{"tenant": "a%3Ab", "item": "x~y"}},
		{"/tenants/acme/files/a/b", 2, map[string]string{"t": "acme"}},
		{"/tenants/admin/items", 3, map[string]string{}},
		{"/1/2/3/4/5/6/7/8", 4, map[string]string{"a": "1", "d": "4", "h": "8"}},
	}
	for _, tc := range tests {
		var m Match
		if res := r.Match("", "GET", tc.path, &m); res != Found || m.RouteID != tc.id {
			t.Errorf("%s: %v route %d, want %d", tc.path, res, m.RouteID, tc.id)
			continue
		}
		for k, v := range tc.params {
			if got := m.Params.Get(k); got != v {
				t.Errorf("%s: param %s = %q, want %q", tc.path, k, got, v)
			}
		}
		if tc.id != 4 && m.Params.Len() != len(tc.params) {
			t.Errorf("%s: %d params, want %d", tc.path, m.Params.Len(), len(tc.params))
		}
		if m.Params.Get("nope") != "" {
			t.Errorf("%s: unknown param not empty", tc.path)
		}
	}
	var m Match
	if r.Match("", "GET", "/1/2/3/4/5/6/7/8", &m); m.Params.Len() != 8 || m.Params.At(7) != (Param{"h", "8"}) {
		t.Errorf("params: %d %+v", m.Params.Len(), m.Params.At(7))
	}
	for _, p := range []string{"/tenants//items", "/tenants/items", "/tenants/acme/items/", "/tenants/acme/files"} {
		if res := r.Match("", "GET", p, &m); res != NotFound {
			t.Errorf("%s: %v route %d, want NotFound", p, res, m.RouteID)
		}
	}
	// A previous Match's params do not leak into the next one.
	r.Match("", "GET", "/tenants/acme/items/42", &m)
	r.Match("", "GET", "/tenants/admin/items", &m)
	if m.Params.Len() != 0 || m.Params.Get("tenant") != "" {
		t.Errorf("stale params: %d", m.Params.Len())
	}
}

// Backtracking: a literal branch that dead-ends must not leave values in
// the parameters of the branch that finally matches.
func TestTemplateBacktracking(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/a/{x}/c"},
		{ID: 1, Path: "/a/b/d"},
		{ID: 2, Path: "/{p}/b/c/{q}"},
	})
	var m Match
	if res := r.Match("", "GET", "/a/b/c", &m); res != Found || m.RouteID != 0 || m.Params.Get("x") != "b" {
		t.Fatalf("got %v %d x=%q", res, m.RouteID, m.Params.Get("x"))
	}
	if res := r.Match("", "GET", "/a/b/c/z", &m); res != Found || m.RouteID != 2 ||
		m.Params.Get("p") != "a" || m.Params.Get("q") != "z" {
		t.Fatalf("got %v %d p=%q q=%q", res, m.RouteID, m.Params.Get("p"), m.Params.Get("q"))
	}
}

func TestParamsAtPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("At out of range did not panic")
		}
	}()
	var p Params
	p.At(0)
}

func TestDuplicates(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		want   []string // substrings of the error
	}{
		{"same path any method", []Route{{ID: 3, Path: "/a"}, {ID: 9, Path: "/a"}},
			[]string{"route 9 duplicates route 3", `"/a"`}},
		{"overlapping methods", []Route{
			{ID: 1, Path: "/a", Methods: []string{"GET", "POST"}},
			{ID: 2, Path: "/a", Methods: []string{"PUT", "POST"}}},
			[]string{"route 2 duplicates route 1", "POST"}},
		{"same prefix", []Route{{ID: 1, Path: "/a", Prefix: true}, {ID: 2, Path: "/a", Prefix: true}},
			[]string{"route 2 duplicates route 1", "prefix"}},
		{"template names differ", []Route{{ID: 1, Path: "/a/{x}"}, {ID: 2, Path: "/a/{y}"}},
			[]string{"route 2 duplicates route 1"}},
		{"overlapping hosts", []Route{
			{ID: 1, Hosts: []string{"a.test", "b.test"}, Path: "/"},
			{ID: 2, Hosts: []string{"B.TEST"}, Path: "/"}},
			[]string{"route 2 duplicates route 1", "host b.test"}},
		{"same wildcard", []Route{
			{ID: 1, Hosts: []string{"*.x.test"}, Path: "/"},
			{ID: 2, Hosts: []string{"*.X.test"}, Path: "/"}},
			[]string{"route 2 duplicates route 1", "host *.x.test"}},
	}
	for _, tc := range tests {
		_, err := New(tc.routes)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
			}
		}
	}
}

func TestNotDuplicates(t *testing.T) {
	mustNew(t, []Route{
		{ID: 0, Path: "/a"},
		{ID: 1, Path: "/a", Prefix: true},
		{ID: 2, Path: "/a/", Prefix: true},
		{ID: 3, Path: "/a", Methods: []string{"GET"}},
		{ID: 4, Path: "/a", Methods: []string{"HEAD"}},
		{ID: 5, Path: "/a", Methods: []string{"POST"}},
		{ID: 6, Hosts: []string{"x.test"}, Path: "/a"},
		{ID: 7, Hosts: []string{"*.x.test"}, Path: "/a"},
		{ID: 8, Path: "/a/{x}"},
		{ID: 9, Path: "/a/b"},
	})
}

func TestInvalidRoutes(t *testing.T) {
	tests := []struct {
		name  string
		route Route
		want  string
	}{
		{"relative", Route{ID: 1, Path: "api"}, "must start with /"},
		{"empty path", Route{ID: 1, Path: ""}, "must start with /"},
		{"empty param", Route{ID: 1, Path: "/a/{}"}, "empty parameter name"},
		{"unbalanced open", Route{ID: 1, Path: "/a/{x"}, "unbalanced"},
		{"unbalanced close", Route{ID: 1, Path: "/a/x}"}, "unbalanced"},
		{"partial segment", Route{ID: 1, Path: "/a/x{y}"}, "unbalanced"},
		{"nested", Route{ID: 1, Path: "/a/{{x}}"}, "parameter"},
		{"bad param name", Route{ID: 1, Path: "/a/{1x}"}, "name must be"},
		{"duplicate param", Route{ID: 1, Path: "/{x}/{x}"}, "used twice"},
		{"too many params", Route{ID: 1, Path: "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"}, "exceed"},
		{"double slash", Route{ID: 1, Path: "/a//b"}, "normalized form"},
		{"dot", Route{ID: 1, Path: "/a/./b"}, "normalized form"},
		{"dotdot", Route{ID: 1, Path: "/a/../b"}, "normalized form"},
		{"encoded unreserved", Route{ID: 1, Path: "/%7Euser"}, `"/~user"`},
		{"lower-case escape", Route{ID: 1, Path: "/a%3ab"}, "normalized form"},
		{"encoded slash", Route{ID: 1, Path: "/a%2Fb"}, "can never match"},
		{"template not normalized", Route{ID: 1, Path: "/{x}/%7e"}, "normalized form"},
		{"lower-case method", Route{ID: 1, Path: "/", Methods: []string{"get"}}, "upper-case"},
		{"empty method", Route{ID: 1, Path: "/", Methods: []string{""}}, "empty method"},
		{"bad method", Route{ID: 1, Path: "/", Methods: []string{"GE T"}}, "token"},
		{"method twice", Route{ID: 1, Path: "/", Methods: []string{"GET", "GET"}}, "twice"},
		{"empty host", Route{ID: 1, Path: "/", Hosts: []string{""}}, "empty host"},
		{"host with port", Route{ID: 1, Path: "/", Hosts: []string{"a.test:8080"}}, "port"},
		{"bare wildcard", Route{ID: 1, Path: "/", Hosts: []string{"*"}}, "'*'"},
		{"wildcard no suffix", Route{ID: 1, Path: "/", Hosts: []string{"*."}}, "leading"},
		{"inner wildcard", Route{ID: 1, Path: "/", Hosts: []string{"a.*.test"}}, "'*'"},
		{"empty label", Route{ID: 1, Path: "/", Hosts: []string{"a..test"}}, "empty label"},
		{"host twice", Route{ID: 1, Path: "/", Hosts: []string{"a.test", "A.test"}}, "twice"},
		{"bad host char", Route{ID: 1, Path: "/", Hosts: []string{"a/b"}}, "invalid character"},
		{"bad ipv6", Route{ID: 1, Path: "/", Hosts: []string{"[::1"}}, "IPv6"},
		{"negative id", Route{ID: -1, Path: "/"}, "negative"},
	}
	for _, tc := range tests {
		_, err := New([]Route{tc.route})
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not contain %q", tc.name, err, tc.want)
		}
		if tc.route.ID >= 0 && !strings.Contains(err.Error(), fmt.Sprintf("route %d", tc.route.ID)) {
			t.Errorf("%s: error %q does not name the route", tc.name, err)
		}
	}
	if _, err := New([]Route{{ID: 1, Path: "/a"}, {ID: 1, Path: "/b"}}); err == nil ||
		!strings.Contains(err.Error(), "route 1: ID used more than once") {
		t.Errorf("duplicate ID: %v", err)
	}
	_, err := New([]Route{{ID: 4, Path: "/a", Methods: []string{"GET"}}, {ID: 2, Path: "/a", Methods: []string{"GET"}}})
	var re *RouteError
	if !errors.As(err, &re) || re.ID != 4 || re.Other != 2 {
		t.Errorf("duplicate: %#v", err)
	}
	_, err = New([]Route{{ID: 5, Path: "nope"}})
	if !errors.As(err, &re) || re.ID != 5 || re.Other != -1 || re.Unwrap() == nil {
		t.Errorf("invalid: %#v", err)
	}
}

func TestEmptyRouter(t *testing.T) {
	r := mustNew(t, nil)
	var m Match
	if r.Len() != 0 {
		t.Fatalf("Len() = %d", r.Len())
	}
	if res := r.Match("a.test", "GET", "/", &m); res != NotFound {
		t.Fatalf("empty router: %v", res)
	}
}

func TestAllowStringFallback(t *testing.T) {
	// Two literal/param branches both match the path but not the method;
	// the union is not a precomputed combination.
	r := mustNew(t, []Route{
		{ID: 0, Path: "/a/b", Methods: []string{"PATCH"}},
		{ID: 1, Path: "/a/{x}", Methods: []string{"DELETE"}},
		{ID: 2, Path: "/a/{x}", Methods: []string{"MKCOL"}},
	})
	runCases(t, r, []matchCase{
		{"", "GET", "/a/b", MethodNotAllowed, 0, "PATCH, DELETE, MKCOL"},
		{"", "GET", "/a/c", MethodNotAllowed, 0, "DELETE, MKCOL"},
	})
}

func TestResultString(t *testing.T) {
	for res, want := range map[Result]string{NotFound: "not_found", Found: "found", MethodNotAllowed: "method_not_allowed", 9: "result(9)"} {
		if res.String() != want {
			t.Errorf("%d: %q", res, res.String())
		}
	}
}

func TestMatchNoAlloc(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	r, reqs := benchRouter(t, 1000)
	var m Match
	for _, q := range reqs[:50] {
		allocs := testing.AllocsPerRun(20, func() { r.Match(q.host, q.method, q.path, &m) })
		if allocs != 0 {
			t.Errorf("Match(%q %q %q): %v allocs", q.host, q.method, q.path, allocs)
		}
	}
	// Upper-case host and HEAD take other code paths.
	allocs := testing.AllocsPerRun(20, func() { r.Match("H3.EXAMPLE.COM", "HEAD", "/svc30/v30/items/list", &m) })
	if allocs != 0 {
		t.Errorf("upper-case host: %v allocs", allocs)
	}
}

// TestBenchRouterSanity makes sure the benchmark requests exercise real
// matches rather than 404s.
func TestBenchRouterSanity(t *testing.T) {
	r, reqs := benchRouter(t, 1000)
	counts := map[Result]int{}
	var m Match
	for _, q := range reqs {
		res := r.Match(q.host, q.method, q.path, &m)
		counts[res]++
		if res == Found && m.RouteID != q.want {
			t.Errorf("%s %s %s: route %d, want %d", q.method, q.host, q.path, m.RouteID, q.want)
		}
	}
	if counts[Found] < len(reqs)*9/10 {
		t.Errorf("only %d of %d benchmark requests found a route: %v", counts[Found], len(reqs), counts)
	}
}

type benchReq struct {
	host, method, path string
	want               int
}

// benchRouter builds n routes: 20% on 20 exact hosts, 10% on 10 wildcard
// hosts, the rest on any host; a mix of exact paths, prefixes and
// templates over 50 services; and a request for every route.
func benchRouter(t testing.TB, n int) (*Router, []benchReq) {
	t.Helper()
	routes := make([]Route, 0, n)
	reqs := make([]benchReq, 0, n)
	for i := 0; i < n; i++ {
		svc := i % 50
		rt := Route{ID: i}
		req := benchReq{host: "any.test", method: "GET", want: i}
		switch {
		case i%10 < 2:
			h := fmt.Sprintf("h%d.example.com", (i/10)%20)
			rt.Hosts = []string{h}
			req.host = h
		case i%10 == 2:
			h := fmt.Sprintf("w%d.example.net", (i/10)%10)
			rt.Hosts = []string{"*." + h}
			req.host = "x." + h
		}
		switch i % 4 {
		case 0:
			rt.Path = fmt.Sprintf("/svc%d/v%d/items/list", svc, i)
			req.path = rt.Path
		case 1:
			rt.Path = fmt.Sprintf("/svc%d/p%d", svc, i)
			rt.Prefix = true
			req.path = rt.Path + "/deep/er/path"
		case 2:
			rt.Path = fmt.Sprintf("/svc%d/t%d/{tenant}/items/{item}", svc, i)
			req.path = fmt.Sprintf("/svc%d/t%d/acme/items/42", svc, i)
		case 3:
			rt.Path = fmt.Sprintf("/svc%d/m%d", svc, i)
			rt.Methods = []string{"GET", "POST"}
			req.path = rt.Path
			req.method = "POST"
		}
		routes = append(routes, rt)
		reqs = append(reqs, req)
	}
	r, err := New(routes)
	if err != nil {
		t.Fatal(err)
	}
	return r, reqs
}

func BenchmarkMatch1000(b *testing.B) {
	r, reqs := benchRouter(b, 1000)
	var m Match
	b.ReportAllocs()
	ct := testutil.StartCPUTimer(b)
	defer ct.Stop()
	i := 0
	for b.Loop() {
		q := &reqs[i%len(reqs)]
		if r.Match(q.host, q.method, q.path, &m) != Found {
			b.Fatalf("no match for %s %s", q.host, q.path)
		}
		i++
	}
}

// BenchmarkMatch1000NotFound measures the miss path, which searches every
// host group.
func BenchmarkMatch1000NotFound(b *testing.B) {
	r, _ := benchRouter(b, 1000)
	var m Match
	b.ReportAllocs()
	ct := testutil.StartCPUTimer(b)
	defer ct.Stop()
	for b.Loop() {
		if r.Match("x.w3.example.net", "GET", "/nope/a/b/c", &m) != NotFound {
			b.Fatal("matched")
		}
	}
}

func FuzzMatch(f *testing.F) {
	r, err := New([]Route{
		{ID: 0, Path: "/", Prefix: true, Methods: []string{"GET"}},
		{ID: 1, Path: "/api", Prefix: true},
		{ID: 2, Path: "/api/{v}/users/{id}", Methods: []string{"GET", "PUT"}},
		{ID: 3, Hosts: []string{"*.example.com"}, Path: "/api/", Prefix: true},
		{ID: 4, Hosts: []string{"a.example.com"}, Path: "/api/admin", Methods: []string{"DELETE"}},
		{ID: 5, Path: "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}"},
		{ID: 6, Path: "/x/"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("a.example.com", "GET", "/api/v1/users/1")
	f.Add("A.EXAMPLE.COM.", "HEAD", "/api/admin")
	f.Add("", "POST", "/")
	f.Add("x", "DELETE", "//api/")
	f.Add(".", "GET", "/1/2/3/4/5/6/7/8/9")
	f.Fuzz(func(t *testing.T, host, method, path string) {
		var m Match
		res := r.Match(host, method, path, &m)
		switch res {
		case Found:
			if m.RouteID < 0 || m.RouteID > 6 || m.Allow != "" {
				t.Fatalf("Found with route %d allow %q", m.RouteID, m.Allow)
			}
			if m.Params.Len() > MaxParams {
				t.Fatalf("%d params", m.Params.Len())
			}
			for i := 0; i < m.Params.Len(); i++ {
				p := m.Params.At(i)
				if p.Name == "" || p.Value == "" || strings.Contains(p.Value, "/") || !strings.Contains(path, p.Value) {
					t.Fatalf("bad param %+v for %q", p, path)
				}
			}
		case MethodNotAllowed:
			if m.Allow == "" || m.RouteID != -1 {
				t.Fatalf("405 with allow %q route %d", m.Allow, m.RouteID)
			}
		case NotFound:
			if strings.HasPrefix(path, "/") && method == "GET" {
				t.Fatalf("GET %q not found despite the GET / prefix route", path)
			}
		default:
			t.Fatalf("result %v", res)
		}
	})
}

// The router is shared by every request goroutine; run under -race.
func TestConcurrentMatch(t *testing.T) {
	r, reqs := benchRouter(t, 200)
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			var m Match
			for i := 0; i < 2000; i++ {
				q := reqs[(i*7+g)%len(reqs)]
				if res := r.Match(q.host, q.method, q.path, &m); res != Found || m.RouteID != q.want {
					done <- fmt.Errorf("%s %s: %v %d, want %d", q.host, q.path, res, m.RouteID, q.want)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// Chains of literal segments are compressed into one edge; partial and
// misaligned matches of such an edge must fall back to the alternatives
// at the node where the edge starts.
func TestCompressedEdges(t *testing.T) {
	r := mustNew(t, []Route{
		{ID: 0, Path: "/a/b/c/d"},
		{ID: 1, Path: "/a/{x}/c/e"},
		{ID: 2, Path: "/a", Prefix: true},
		{ID: 3, Path: "/q/r/s/", Prefix: true},
		{ID: 4, Path: "/long-segment-name/another-long-one/leaf"},
	})
	runCases(t, r, []matchCase{
		{"", "GET", "/a/b/c/d", Found, 0, ""},
		{"", "GET", "/a/b/c/e", Found, 1, ""},  // edge "b/c/d" fails at "e"
		{"", "GET", "/a/b/c/dd", Found, 2, ""}, // edge matches bytes but not the boundary
		{"", "GET", "/a/b/c/d/", Found, 2, ""}, // exact does not take a trailing slash
		{"", "GET", "/a/b/c", Found, 2, ""},    // path ends inside the edge
		{"", "GET", "/a/b", Found, 2, ""},
		{"", "GET", "/q/r/s", NotFound, 0, ""},
		{"", "GET", "/q/r/s/", Found, 3, ""},
		{"", "GET", "/q/r/s/t", Found, 3, ""},
		{"", "GET", "/q/r/st/t", NotFound, 0, ""},
		{"", "GET", "/long-segment-name/another-long-one/leaf", Found, 4, ""},
		{"", "GET", "/long-segment-name/another-long-one/lea", NotFound, 0, ""},
		{"", "GET", "/long-segment-name/another-long-onX/leaf", NotFound, 0, ""},
	})
	var m Match
	if r.Match("", "GET", "/a/zz/c/e", &m); m.RouteID != 1 || m.Params.Get("x") != "zz" {
		t.Errorf("param through compressed edge: route %d x=%q", m.RouteID, m.Params.Get("x"))
	}
}

// TestIssuePathsNeverBypassAPI runs the paths from issue 2 point 6 through
// pathnorm and the router: each one is either rejected or routed to the
// /api route (and so to its auth), never to /public or the catch-all.
func TestIssuePathsNeverBypassAPI(t *testing.T) {
	const public, api, catchAll = 0, 1, 2
	r := mustNew(t, []Route{
		{ID: public, Path: "/public", Prefix: true},
		{ID: api, Path: "/api", Prefix: true},
		{ID: catchAll, Path: "/", Prefix: true},
	})
	tests := []struct {
		raw      string
		rejected bool
	}{
		{"/public/../api/x", false},
		{"/public/%2e%2e/api/x", true},
		{"/public/%2E%2E%2Fapi/x", true},
		{"//api/x", false},
		{"/api%2fx", true},
		{"/public/..;/api/x", true},
		{"/./api/x", false},
		{"/api/x\x00", true},
		{"/public/x%00/../../api/x", true},
		{"/public\\..\\api\\x", true},
		{"/public%5c..%5capi/x", true},
		{"/%61pi/x", false},
		{"/public/./../api/./x", false},
		{"/public/...;/api/x", true},
	}
	for _, tc := range tests {
		p, err := pathnorm.Normalize(tc.raw)
		if tc.rejected {
			if err == nil {
				t.Errorf("%q: accepted as %q, want rejection", tc.raw, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: rejected: %v", tc.raw, err)
			continue
		}
		var m Match
		if res := r.Match("gw.test", "GET", p, &m); res != Found || m.RouteID != api {
			t.Errorf("%q -> %q: %v route %d, want the /api route", tc.raw, p, res, m.RouteID)
		}
	}
}

func TestParamNames(t *testing.T) {
	if got, err := ParamNames("/tenants/{tenant}/orders/{id}"); err != nil || !slices.Equal(got, []string{"tenant", "id"}) {
		t.Errorf("two params: %v %v", got, err)
	}
	if got, err := ParamNames("/static"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("no params: %#v %v (want an empty, non-nil slice)", got, err)
	}
	if _, err := ParamNames("/a/{}"); err == nil {
		t.Error("empty parameter name accepted")
	}
}
