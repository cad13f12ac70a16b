package router

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// naiveMatch is a brute-force reference for the precedence rules in the
// package documentation: it checks every route and keeps the most specific
// candidate by comparing explicit keys. The trie must agree with it.
func naiveMatch(routes []Route, host, method, path string) (Result, int, []string) {
	if path == "" || path[0] != '/' {
		return NotFound, -1, nil
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	toks := strings.Split(path[1:], "/")
	var (
		best     *Route
		bestKey  []int
		matched  bool
		allowSet []string
	)
	for i := range routes {
		rt := &routes[i]
		hk, ok := naiveHostRank(rt.Hosts, host)
		if !ok {
			continue
		}
		pk, ok := naivePathKey(rt, toks)
		if !ok {
			continue
		}
		mrank := -1
		switch {
		case slices.Contains(rt.Methods, method):
			mrank = 2
		case method == "HEAD" && slices.Contains(rt.Methods, "GET"):
			mrank = 1
		case len(rt.Methods) == 0:
			mrank = 0
		}
		if mrank < 0 {
			matched = true
			allowSet = append(allowSet, rt.Methods...)
			continue
		}
		key := append(append([]int{hk}, pk...), mrank, -rt.ID)
		if best == nil || slices.Compare(key, bestKey) > 0 {
			best, bestKey = rt, key
		}
	}
	if best != nil {
		return Found, best.ID, nil
	}
	if matched {
		if slices.Contains(allowSet, "GET") {
			allowSet = append(allowSet, "HEAD")
		}
		slices.Sort(allowSet)
		return MethodNotAllowed, -1, slices.Compact(allowSet)
	}
	return NotFound, -1, nil
}

// naiveHostRank: exact host > wildcard (longer suffix first) > any host.
func naiveHostRank(hosts []string, host string) (int, bool) {
	if len(hosts) == 0 {
		return 0, true
	}
	best, ok := -1, false
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if suf, wild := strings.CutPrefix(h, "*"); wild {
			if len(host) > len(suf) && strings.HasSuffix(host, suf) {
				best, ok = max(best, len(suf)), true
			}
		} else if h == host {
			best, ok = max(best, 1<<20), true
		}
	}
	return best, ok
}

// Element ranks at one position of the path key.
const (
	kRest     = 1 // prefix "/a": zero or more further segments
	kRestMore = 2 // prefix "/a/": one or more further segments
	kEnd      = 3 // exact route ends here
	kParam    = 4
	kLiteral  = 5
)

// naivePathKey returns the route's path key if it matches toks.
func naivePathKey(rt *Route, toks []string) ([]int, bool) {
	segs := strings.Split(rt.Path[1:], "/")
	term := kEnd
	if rt.Prefix {
		term = kRest
		if strings.HasSuffix(rt.Path, "/") {
			segs, term = segs[:len(segs)-1], kRestMore
		}
	}
	if len(toks) < len(segs) {
		return nil, false
	}
	var key []int
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			if toks[i] == "" {
				return nil, false
			}
			key = append(key, kParam)
			continue
		}
		if s != toks[i] {
			return nil, false
		}
		key = append(key, kLiteral)
	}
	rest := len(toks) - len(segs)
	switch {
	case term == kEnd && rest != 0, term == kRestMore && rest == 0:
		return nil, false
	}
	return append(key, term), true
}

func randomRoutes(rng *rand.Rand, n int) []Route {
	segs := []string{"a", "b", "abcdefghij", "", "{p}"}
	hosts := [][]string{nil, nil, {"x.test"}, {"*.test"}, {"*.y.test"}, {"x.test", "*.y.test"}}
	methods := [][]string{nil, nil, {"GET"}, {"POST"}, {"HEAD"}, {"GET", "PUT"}, {"PURGE"}}
	var routes []Route
	for id := 0; len(routes) < n && id < 10*n; id++ {
		depth := rng.IntN(4)
		var b strings.Builder
		params := 0
		for d := 0; d < depth; d++ {
			s := segs[rng.IntN(len(segs))]
			if s == "" && d != depth-1 {
				s = "c" // empty segments only at the end (canonical form)
			}
			if s == "{p}" {
				s = "{p" + string(rune('0'+params)) + "}"
				params++
			}
			b.WriteString("/" + s)
		}
		if b.Len() == 0 {
			b.WriteString("/")
		}
		rt := Route{ID: id, Path: b.String(), Prefix: rng.IntN(2) == 0,
			Hosts: hosts[rng.IntN(len(hosts))], Methods: methods[rng.IntN(len(methods))]}
		// Keep only routes the router accepts alongside the others.
		if _, err := New(append(slices.Clone(routes), rt)); err != nil {
			continue
		}
		routes = append(routes, rt)
	}
	return routes
}

func randomRequest(rng *rand.Rand) (host, method, path string) {
	hosts := []string{"", "x.test", "X.TEST.", "z.test", "a.y.test", "y.test", "other"}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PURGE"}
	segs := []string{"a", "b", "abcdefghij", "abcdefghiX", "", "c", "zz"}
	var b strings.Builder
	for d, n := 0, 1+rng.IntN(5); d < n; d++ {
		b.WriteString("/" + segs[rng.IntN(len(segs))])
	}
	return hosts[rng.IntN(len(hosts))], methods[rng.IntN(len(methods))], b.String()
}

func TestDifferentialAgainstNaive(t *testing.T) {
	for seed := uint64(1); seed <= 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		routes := randomRoutes(rng, 4+rng.IntN(30))
		r := mustNew(t, routes)
		for q := 0; q < 400; q++ {
			host, method, path := randomRequest(rng)
			compareNaive(t, r, routes, host, method, path)
		}
	}
}

func compareNaive(t *testing.T, r *Router, routes []Route, host, method, path string) {
	t.Helper()
	var m Match
	got := r.Match(host, method, path, &m)
	want, wantID, wantAllow := naiveMatch(routes, host, method, path)
	if got != want || m.RouteID != wantID {
		t.Fatalf("%s %s %s: got %v route %d, want %v route %d\nroutes: %+v", method, host, path, got, m.RouteID, want, wantID, routes)
	}
	if got == MethodNotAllowed {
		gotAllow := strings.Split(m.Allow, ", ")
		slices.Sort(gotAllow)
		if !slices.Equal(gotAllow, wantAllow) {
			t.Fatalf("%s %s %s: Allow %q, want %v", method, host, path, m.Allow, wantAllow)
		}
	}
}

// FuzzDifferential lets the fuzzer pick the route set (by seed) and the
// request; the trie must agree with the brute-force reference.
func FuzzDifferential(f *testing.F) {
	f.Add(uint64(1), "x.test", "GET", "/a/b")
	f.Add(uint64(7), "a.y.test", "HEAD", "/abcdefghij/")
	f.Add(uint64(9), "", "DELETE", "/a//b")
	f.Fuzz(func(t *testing.T, seed uint64, host, method, path string) {
		rng := rand.New(rand.NewPCG(seed, 42))
		routes := randomRoutes(rng, 4+rng.IntN(12))
		r, err := New(routes)
		if err != nil {
			t.Fatal(err)
		}
		compareNaive(t, r, routes, host, method, path)
	})
}
