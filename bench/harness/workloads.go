package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// A workload is one kind of traffic the harness can drive through every
// system: the Sekisho route(s) it needs, the request wrk sends (a Lua script
// from bench/wrk) and the target the issue sets for it.
//
// Adding a workload when its feature lands (issue 3: jwt-reuse, jwt-fresh;
// issue 4: token-issue, introspect) means filling in prepare: return the
// config fragments and the script, and drop the "needs" text. Nothing else in
// the harness changes.
type workload struct {
	name    string
	summary string
	// needs, when non-empty, says what must land before the workload can
	// run; the harness then prints "not available yet" and records no
	// numbers for it.
	needs  string
	target target
	// prepare builds the workload's plan once per run. It may write files
	// (token lists) into env.tmp.
	prepare func(env *runEnv) (*plan, error)
}

// plan is a prepared workload.
type plan struct {
	// routeYAML is the workload's Sekisho route(s): YAML list items, indented
	// for the "routes:" section. Route names must start with "bench-"; the
	// upstream is always "bench".
	routeYAML string
	// topYAML is optional extra top-level config (introspection,
	// authorization_server) the route(s) need.
	topYAML string
	// issuerYAML is optional entries of the issuers section (indented by two
	// spaces); the config writer merges every plan's into one section.
	issuerYAML string
	// boundJWKS, when set, marks a workload whose every request pays one
	// ES256 verification the floor does not: the harness then also runs
	// the floor+verify system (the floor verifying against this JWK Set
	// file) and the report adds the bound that cost puts on the ratio.
	boundJWKS string
	// perOp, when set, names what the Lua script counts in its extra
	// "calls" (e.g. token+call pairs) so the report adds that rate.
	perOp string
	// routeName is the route whose request counter the harness checks.
	routeName string
	path      string // request path; wrk's URL is system base URL + path
	luaFile   string // file name in bench/wrk
	// scriptArgs returns the Lua script arguments for a system and a round
	// (round -1 is the warm-up, 0 the profiling run), so a "fresh" workload
	// can hand every round unused tokens and an authorization-server
	// workload can use the client credentials created for that system.
	scriptArgs func(system string, round int) []string
	// systems overrides which systems run the workload (default: all).
	// token-issue has no floor counterpart, so it would list only Sekisho
	// and be judged by its absolute target.
	systems []string
	// checkExtra, when set, validates the workload-specific counters the Lua
	// script reports (report.lua "extra"); an error fails the round. The
	// jwt-fresh workload uses it to refuse a round whose tokens wrapped
	// around (tokens.lua extra.wraps > 0), since those were not fresh.
	checkExtra func(system string, extra json.RawMessage) error
	// probe is the request checked once per system before the rounds:
	// method, body, headers; nil means a plain GET of path. probeFor, when
	// set, takes precedence and may differ per system (credentials).
	probe    *probeSpec
	probeFor func(system string) *probeSpec
	// beforeStart runs after a Sekisho's config is written and before the
	// server starts (e.g. creating an OAuth client with the CLI, which
	// writes the embedded store). afterStart runs once it is ready (e.g.
	// obtaining a token to introspect). Both may be nil.
	beforeStart func(ctx context.Context, si sekishoInstance) error
	afterStart  func(ctx context.Context, si sekishoInstance) error
}

// sekishoInstance is what the start hooks see of a Sekisho system.
type sekishoInstance struct {
	name    string // system name (sekisho, sekisho-alt, sekisho-pprof, …)
	bin     string // the binary, for CLI sub-commands
	cfgPath string // its generated config file
	baseURL string // http://127.0.0.1:port of its public listener
}

// probeSpec is a single request the harness sends before measuring to prove
// the system answers the workload correctly (2xx and, for proxied
// workloads, the upstream's body).
type probeSpec struct {
	method, body string
	header       map[string]string
	wantBody     bool // the response must be the sample upstream's body
	// check, when set, validates the 2xx response body (e.g. a token
	// response carries an access_token, an introspection says active).
	check func(body []byte) error
	// refusedWithout, when set, names a header (Authorization) whose
	// absence must make Sekisho refuse the request with 401, proving the
	// route really authenticates. Not applied to the floor.
	refusedWithout string
}

// target is the issue's goal for a workload. A benchmark, not a test: the
// harness reports MET / NOT MET and never fails the run on it.
type target struct {
	minThroughputRatio float64       // Sekisho req/s ÷ floor req/s; 0: none
	minRPS             float64       // absolute Sekisho req/s; 0: none
	maxP99             time.Duration // absolute Sekisho p99; 0: none
	source             string        // where the target comes from
}

func (t target) String() string {
	var parts []string
	if t.minThroughputRatio > 0 {
		parts = append(parts, fmt.Sprintf("throughput ≥ %.2f× the floor", t.minThroughputRatio))
	}
	if t.minRPS > 0 {
		parts = append(parts, fmt.Sprintf("≥ %.0f req/s", t.minRPS))
	}
	if t.maxP99 > 0 {
		parts = append(parts, fmt.Sprintf("p99 < %v", t.maxP99))
	}
	if len(parts) == 0 {
		return "none (measured for the notes)"
	}
	return strings.Join(parts, ", ") + " (" + t.source + ")"
}

// workloads is the registry, in the order they are run.
func workloads() []*workload {
	return []*workload{
		{
			name:    "public",
			summary: "GET of a public route (no auth), access log and metrics on",
			target:  target{minThroughputRatio: 1.0, source: "issue 2 point 11"},
			prepare: func(env *runEnv) (*plan, error) {
				return &plan{
					routeYAML: "  - name: bench-public\n" +
						"    match: {path: /public, path_type: prefix}\n" +
						"    upstream: bench\n" +
						"    auth: public\n",
					routeName:  "bench-public",
					path:       "/public/hello",
					luaFile:    "public.lua",
					scriptArgs: func(string, int) []string { return nil },
				}, nil
			},
		},
		{
			name:    "jwt-reuse",
			summary: "GET of a jwt route, 1,000 distinct ES256 tokens cycled (bench/wrk/tokens.lua reuse)",
			prepare: prepareJWTReuse,
			target:  target{minThroughputRatio: 0.95, source: "issue 3 Benchmarks (a)"},
		},
		{
			name:    "jwt-fresh",
			summary: "GET of a jwt route, every request a never-seen token (bench/wrk/tokens.lua fresh, distinct slice per round)",
			prepare: prepareJWTFresh,
			target:  target{minThroughputRatio: 0.5, source: "issue 3 Benchmarks (b)"},
		},
		{
			name:    "token-issue",
			summary: "client-credentials POSTs to /oauth2/token (bench/wrk/form-post.lua), Sekisho only",
			prepare: prepareTokenIssue,
			target:  target{minRPS: 6000, maxP99: 20 * time.Millisecond, source: "issue 4 Benchmarks"},
		},
		{
			name:    "token-call",
			summary: "get a token, call a protected route with it: token POST + GET of a jwt route trusting the built-in issuer, every token used once (bench/wrk/token-call.lua), Sekisho only",
			prepare: prepareTokenCall,
			target:  target{source: "issue 4 Benchmarks"},
		},
		{
			name:    "introspect",
			summary: "RFC 7662 introspection POSTs of a valid token (bench/wrk/form-post.lua), Sekisho only",
			prepare: prepareIntrospect,
			target:  target{source: "issue 4 Benchmarks"},
		},
	}
}

// selectWorkloads resolves the -workloads flag: a comma-separated list of
// names, or "all".
func selectWorkloads(spec string) ([]*workload, error) {
	all := workloads()
	if spec == "all" {
		return all, nil
	}
	byName := map[string]*workload{}
	var names []string
	for _, w := range all {
		byName[w.name] = w
		names = append(names, w.name)
	}
	sort.Strings(names)
	var out []*workload
	seen := map[string]bool{}
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		w, ok := byName[n]
		if !ok {
			return nil, usagef("-workloads: unknown workload %q (known: %s, or all)", n, strings.Join(names, ", "))
		}
		seen[n] = true
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, usagef("-workloads: no workload selected")
	}
	return out, nil
}
