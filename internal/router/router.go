// Package router matches a request's host, method and normalized path
// against a compiled, immutable set of routes.
//
// New compiles the routes once (per config load); Router.Match runs per
// request without allocating. Paths given to Match must already be
// normalized by package pathnorm: the router compares segments literally
// and route paths are required to be in that same canonical form, so a
// route can never be bypassed by an alternative spelling of its path.
//
// # Route paths
//
// A route path starts with "/" and is split into segments at "/". A segment
// is either a literal or a parameter "{name}" that matches exactly one
// non-empty segment; a parameter must be a whole segment (name: letter or
// "_" followed by letters, digits or "_"; at most MaxParams per route).
// Parameter values are substrings of the normalized path and therefore
// still percent-encoded (pathnorm keeps reserved characters encoded); use
// url.PathUnescape if the decoded value is needed.
//
//   - Exact route "/a" matches "/a" only; it does not match "/a/". Exact
//     "/a/" matches "/a/" only. "/" matches only "/".
//   - Prefix route "/a" matches on segment boundaries: "/a", "/a/" and
//     "/a/x/y", never "/apiary" for "/api". Prefix "/a/" matches "/a/" and
//     "/a/x" but not "/a". Prefix "/" matches every path.
//
// # Hosts
//
// Route hosts are exact names ("api.example.com") or wildcards
// ("*.example.com", which matches one or more labels in front of
// ".example.com" but not "example.com" itself); no hosts means any host.
// Host comparison is ASCII case-insensitive and a single trailing dot is
// ignored ("API.Example.com." equals "api.example.com"). Match lower-cases
// the host itself; the caller must strip the port (IPv6 literals keep their
// brackets: "[::1]").
//
// # Methods
//
// Methods are case-sensitive tokens (RFC 9110); route methods must be
// written in upper case. No methods means any method. A route that allows
// GET also answers HEAD.
//
// # Precedence
//
// Every route that matches host, path and method is a candidate; the most
// specific candidate wins, compared in this order:
//
//  1. Host: an exact host beats a wildcard, a wildcard with a longer
//     suffix beats a shorter one, and any wildcard beats a route without
//     hosts. Host specificity dominates: an exact-host prefix "/" route
//     beats an any-host exact "/api/x" route.
//  2. Path, compared segment by segment from the left; at the first
//     position where two routes differ, a literal segment beats a
//     parameter, a parameter beats a prefix that requires at least one
//     more segment ("/a/" prefix), which beats a prefix that requires none
//     ("/a" prefix). Where the path ends, an exact route beats a prefix
//     route. Consequences: an exact path beats everything else on the same
//     host; a longer prefix beats a shorter one; "/a/b" (prefix) beats
//     "/a/{x}/c" for "/a/b/c", because "b" is a literal where the other
//     has a parameter.
//  3. Method: a route that lists the request method beats a route that
//     lists GET when the request is HEAD, which beats a route that accepts
//     any method.
//  4. Lower ID (configuration order).
//
// Because only candidates that match the method compete, a request whose
// method the most specific path does not allow falls through to a less
// specific route that does allow it: with "GET /api/admin" (exact) and
// "/api" (prefix, any method), POST /api/admin goes to "/api". Match
// reports MethodNotAllowed only when no route matches host, path and
// method but at least one matches host and path; Match.Allow then holds the
// Allow header value (the union of the methods those routes list). The
// fall-through crosses host groups too. Security consequence: listing
// methods on a route does not deny the other methods when a broader route
// (a shorter prefix, "/", or an any-host route) also matches; that broader
// route, with its own auth, receives them.
//
// New rejects two routes that would compete as equals: the same host, the
// same path shape (parameter names do not matter) and kind (exact or
// prefix), and overlapping methods (two any-method routes overlap).
//
// # Performance
//
// Each host group is a segment trie. Literal children sit in an
// open-addressing table keyed by the segment itself (up to 8 bytes) or its
// FNV-1a hash; chains of literal segments without routes or parameters are
// compressed into one edge. Match visits each trie node at most once, so
// its worst case is bounded by the size of the route set; parameters are
// substrings of the path and stored inline in Match. An Allow value that is
// not one of the combinations precomputed by New is built on demand (one
// allocation, 405 responses only).
package router

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sekisho/sekisho/internal/pathnorm"
)

// MaxParams is the maximum number of path parameters in one route.
const MaxParams = 8

const (
	maxRoutes    = 100_000
	maxHostLen   = 253 // DNS name limit, without trailing dot
	maxMethodLen = 32
)

// Route is one routing rule as the caller registers it.
type Route struct {
	// ID identifies the route in the caller's own table; Match returns it.
	// IDs must be unique and non-negative. Lower IDs win ties.
	ID int
	// Hosts lists exact host names or "*.suffix" wildcards. Empty means any
	// host.
	Hosts []string
	// Path is an exact path, a prefix (with Prefix) or a template with
	// "{name}" segments, in pathnorm canonical form.
	Path string
	// Prefix makes Path match on segment boundaries: "/api" matches
	// "/api", "/api/" and "/api/x", never "/apiary".
	Prefix bool
	// Methods lists upper-case HTTP methods. Empty means any method.
	// GET implies HEAD.
	Methods []string
}

// Param is one path parameter captured by a template route.
type Param struct {
	Name  string
	Value string
}

// Params holds the captured parameters inline, so a Match needs no heap
// allocation.
type Params struct {
	list [MaxParams]Param
	n    int
}

// Len returns the number of parameters.
func (p *Params) Len() int { return p.n }

// At returns the i-th parameter in path order; it panics if i is out of
// range.
func (p *Params) At(i int) Param {
	if i < 0 || i >= p.n {
		panic(fmt.Sprintf("router: Params.At(%d) with %d params", i, p.n))
	}
	return p.list[i]
}

// Get returns the value of the named parameter, or "" if absent.
func (p *Params) Get(name string) string {
	for i := 0; i < p.n; i++ {
		if p.list[i].Name == name {
			return p.list[i].Value
		}
	}
	return ""
}

// Match receives the outcome of Router.Match. Reuse one per request; Match
// resets it.
type Match struct {
	// RouteID is the ID of the matched route, or -1.
	RouteID int
	// Params holds the template parameters of the matched route.
	Params Params
	// Allow is the Allow header value when the result is MethodNotAllowed,
	// e.g. "GET, HEAD, POST"; empty otherwise.
	Allow string
}

func (m *Match) reset() {
	m.RouteID = -1
	m.Params.n = 0
	m.Allow = ""
}

// Result classifies the outcome of Router.Match.
type Result uint8

const (
	// NotFound: no route matches this host and path (answer 404).
	NotFound Result = iota
	// Found: Match.RouteID and Match.Params are set.
	Found
	// MethodNotAllowed: some route matches host and path, none the method
	// (answer 405 with Match.Allow).
	MethodNotAllowed
)

// String returns a short lower-case name, usable as a log field.
func (r Result) String() string {
	switch r {
	case NotFound:
		return "not_found"
	case Found:
		return "found"
	case MethodNotAllowed:
		return "method_not_allowed"
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// RouteError reports a route that New rejects. The message names the
// route IDs as "route N", so callers can map them back to their own
// configuration.
type RouteError struct {
	// ID is the rejected route.
	ID int
	// Other is the ID of the route it duplicates, or -1.
	Other int
	// Err says what is wrong.
	Err error
}

func (e *RouteError) Error() string {
	if e.Other >= 0 {
		return fmt.Sprintf("router: route %d duplicates route %d: %v", e.ID, e.Other, e.Err)
	}
	return fmt.Sprintf("router: route %d: %v", e.ID, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// Router is a compiled, immutable route set, safe for concurrent use.
type Router struct {
	exact    map[string]*node // host -> path trie
	wild     map[string]*node // ".suffix" -> path trie
	wildMin  int              // shortest wildcard suffix length
	exactLen lenSet           // lengths of the exact hosts
	wildLen  lenSet           // lengths of the wildcard suffixes
	any      *node            // routes without hosts; nil if none
	custom   map[string]uint64
	bitNames []string // method bit -> name
	allow    map[uint64]string
	nroutes  int
}

// Standard methods have fixed bits; custom methods get the following bits.
const (
	bitGET uint64 = 1 << iota
	bitHEAD
	bitPOST
	bitPUT
	bitPATCH
	bitDELETE
	bitOPTIONS
	bitCONNECT
	bitTRACE
	numStdMethods = iota
)

var stdMethodNames = [numStdMethods]string{
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
}

func stdMethodBit(m string) uint64 {
	switch m {
	case "GET":
		return bitGET
	case "HEAD":
		return bitHEAD
	case "POST":
		return bitPOST
	case "PUT":
		return bitPUT
	case "PATCH":
		return bitPATCH
	case "DELETE":
		return bitDELETE
	case "OPTIONS":
		return bitOPTIONS
	case "CONNECT":
		return bitCONNECT
	case "TRACE":
		return bitTRACE
	}
	return 0
}

// route is the compiled form of a Route.
type route struct {
	id        int
	anyMethod bool
	mask      uint64
	params    []string // parameter names in path order
	path      string   // for error messages
}

// node is one position in a path trie. A route ending at a node is listed
// by kind; each list is sorted by ID.
type node struct {
	table      []litSlot // literal children: open addressing, see child
	shift      uint8     // 64 - log2(len(table))
	param      *node     // "{name}" child
	exact      []*route  // exact routes ending here
	prefixMore []*route  // prefix routes "/here/": need >= 1 more segment
	prefix     []*route  // prefix routes "/here": need >= 0 more segments

	build map[string]*node // literal children while compiling; nil afterwards
}

// litSlot is one slot of a node's literal-children table; next == nil
// marks an empty slot. Chains of route-less nodes with a single literal
// child and no parameter child are compressed into one edge: seg is the
// first segment and rest the following ones ("/items/list"), so a deep
// literal path costs one table lookup and one string comparison.
type litSlot struct {
	key  uint64 // segKey(seg)
	seg  string
	rest string // "" or "/seg2/seg3..."
	next *node
}

// Segment keys. A segment of up to 8 bytes is its own key: the bytes packed
// little-endian, so equal length and key mean equal segments and no string
// comparison is needed. Longer segments use FNV-1a and are compared in full.
//
// The tables hold only configured segments and keep at least half of their
// slots empty, so a lookup ends within the longest run of occupied slots
// (fixed at compile time) whatever the request contains; a keyed hash would
// add cost without bounding anything further.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
	fibMul    uint64 = 0x9E3779B97F4A7C15 // 2^64 / golden ratio
)

func packSeg(s string) uint64 {
	var w uint64
	for i := 0; i < len(s) && i < 8; i++ {
		w |= uint64(s[i]) << (8 * i)
	}
	return w
}

func hashLong(s string) uint64 {
	h := fnvOffset
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

func segKey(s string) uint64 {
	if len(s) <= 8 {
		return packSeg(s)
	}
	return hashLong(s)
}

// edge returns the literal edge whose first segment is seg (key is
// segKey(seg)), or nil.
func (n *node) edge(seg string, key uint64) *litSlot {
	t := n.table
	mask := uint64(len(t) - 1)
	for i := (key * fibMul) >> n.shift; ; i = (i + 1) & mask {
		sl := &t[i]
		if sl.next == nil {
			return nil
		}
		if sl.key == key && len(sl.seg) == len(seg) && (len(seg) <= 8 || sl.seg == seg) {
			return sl
		}
	}
}

func (n *node) addChild(seg string) *node {
	if c := n.build[seg]; c != nil {
		return c
	}
	if n.build == nil {
		n.build = make(map[string]*node)
	}
	c := &node{}
	n.build[seg] = c
	return c
}

// seal builds the lookup table from the compile-time map.
func (n *node) seal() {
	if len(n.build) == 0 {
		n.build = nil
		return
	}
	size, log := 2, 1
	for size < 2*len(n.build) {
		size, log = size*2, log+1
	}
	n.table = make([]litSlot, size)
	n.shift = uint8(64 - log)
	mask := uint64(size - 1)
	for seg, c := range n.build {
		// Children are sealed first, so c's own edges are final.
		var rest string
		for c.param == nil && len(c.exact) == 0 && len(c.prefixMore) == 0 && len(c.prefix) == 0 {
			e := c.onlyEdge()
			if e == nil {
				break
			}
			rest += "/" + e.seg + e.rest
			c = e.next
		}
		key := segKey(seg)
		i := (key * fibMul) >> n.shift
		for n.table[i].next != nil {
			i = (i + 1) & mask
		}
		n.table[i] = litSlot{key: key, seg: seg, rest: rest, next: c}
	}
	n.build = nil
}

// onlyEdge returns the single literal edge of a sealed node, or nil if it
// has none or several.
func (n *node) onlyEdge() *litSlot {
	var only *litSlot
	for i := range n.table {
		if n.table[i].next == nil {
			continue
		}
		if only != nil {
			return nil
		}
		only = &n.table[i]
	}
	return only
}

// New compiles routes into a Router. It fails on invalid routes and on
// duplicates, naming the route IDs involved.
func New(routes []Route) (*Router, error) {
	if len(routes) > maxRoutes {
		return nil, fmt.Errorf("router: %d routes exceed the limit of %d", len(routes), maxRoutes)
	}
	r := &Router{
		exact:   make(map[string]*node),
		wild:    make(map[string]*node),
		custom:  make(map[string]uint64),
		allow:   make(map[uint64]string),
		nroutes: len(routes),
	}
	groupName := make(map[*node]string) // host group names for error messages
	r.bitNames = append(r.bitNames, stdMethodNames[:]...)

	// Assign bits to custom methods in sorted order, so the Allow header
	// order does not depend on route order.
	var customs []string
	for _, rt := range routes {
		for _, m := range rt.Methods {
			if stdMethodBit(m) == 0 && !slices.Contains(customs, m) {
				customs = append(customs, m)
			}
		}
	}
	slices.Sort(customs)
	if len(customs) > 64-numStdMethods {
		return nil, fmt.Errorf("router: %d distinct non-standard methods exceed the limit of %d",
			len(customs), 64-numStdMethods)
	}
	for i, m := range customs {
		r.custom[m] = 1 << (numStdMethods + i)
		r.bitNames = append(r.bitNames, m)
	}

	ids := make(map[int]struct{}, len(routes))
	for i := range routes {
		rt := &routes[i]
		if rt.ID < 0 {
			return nil, &RouteError{ID: rt.ID, Other: -1, Err: errors.New("negative ID")}
		}
		if _, dup := ids[rt.ID]; dup {
			return nil, &RouteError{ID: rt.ID, Other: -1, Err: errors.New("ID used more than once")}
		}
		ids[rt.ID] = struct{}{}
		if err := r.add(rt, groupName); err != nil {
			return nil, &RouteError{ID: rt.ID, Other: -1, Err: err}
		}
	}

	// Finalize every trie: sort lists, detect duplicates, build the
	// literal-children tables, precompute Allow strings.
	groups := make([]*node, 0, len(r.exact)+len(r.wild)+1)
	for _, g := range r.exact {
		groups = append(groups, g)
	}
	for _, g := range r.wild {
		groups = append(groups, g)
	}
	if r.any != nil {
		groups = append(groups, r.any)
	}
	// Deterministic error reporting regardless of map order.
	slices.SortFunc(groups, func(a, b *node) int { return cmp.Compare(groupName[a], groupName[b]) })
	for _, g := range groups {
		if err := r.finalize(g, groupName[g], 0); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// add validates rt and inserts it into the trie of each of its host groups.
func (r *Router) add(rt *Route, groupName map[*node]string) error {
	c := &route{id: rt.ID, path: rt.Path}

	// Methods.
	if len(rt.Methods) == 0 {
		c.anyMethod = true
	}
	for _, m := range rt.Methods {
		if err := validMethod(m); err != nil {
			return err
		}
		bit := r.methodBit(m)
		if c.mask&bit != 0 {
			return fmt.Errorf("method %q listed twice", m)
		}
		c.mask |= bit
	}

	// Path.
	segs, params, err := parsePath(rt.Path)
	if err != nil {
		return err
	}
	c.params = params
	more := rt.Prefix && strings.HasSuffix(rt.Path, "/")
	if more {
		segs = segs[:len(segs)-1] // "/a/" prefix: node "a", needs one more segment
	}

	// Hosts.
	var roots []*node
	if len(rt.Hosts) == 0 {
		if r.any == nil {
			r.any = &node{}
			groupName[r.any] = "any host"
		}
		roots = append(roots, r.any)
	}
	seen := make(map[string]struct{}, len(rt.Hosts))
	for _, h := range rt.Hosts {
		key, wildcard, err := canonicalHost(h)
		if err != nil {
			return err
		}
		if _, dup := seen[key]; dup {
			return fmt.Errorf("host %q listed twice", h)
		}
		seen[key] = struct{}{}
		m, name := r.exact, "host "+key
		if wildcard {
			m, name = r.wild, "host *"+key
			if r.wildMin == 0 || len(key) < r.wildMin {
				r.wildMin = len(key)
			}
			r.wildLen.add(len(key))
		} else {
			r.exactLen.add(len(key))
		}
		g := m[key]
		if g == nil {
			g = &node{}
			m[key] = g
			groupName[g] = name
		}
		roots = append(roots, g)
	}

	for _, n := range roots {
		for _, s := range segs {
			if s.param {
				if n.param == nil {
					n.param = &node{}
				}
				n = n.param
			} else {
				n = n.addChild(s.lit)
			}
		}
		switch {
		case !rt.Prefix:
			n.exact = append(n.exact, c)
		case more:
			n.prefixMore = append(n.prefixMore, c)
		default:
			n.prefix = append(n.prefix, c)
		}
	}
	return nil
}

// finalize sorts the route lists of n and its descendants, rejects
// duplicates, builds the literal-children tables and records the Allow
// strings for the method sets a 405 under this node typically reports.
// acc is the union of the methods of prefix routes on the ancestors.
func (r *Router) finalize(n *node, host string, acc uint64) error {
	kinds := [...]struct {
		name string
		list []*route
	}{{"exact", n.exact}, {"prefix with trailing slash", n.prefixMore}, {"prefix", n.prefix}}
	for _, k := range kinds {
		slices.SortFunc(k.list, func(a, b *route) int { return cmp.Compare(a.id, b.id) })
		for i, a := range k.list {
			r.cacheAllow(a.mask)
			for _, b := range k.list[i+1:] {
				if (a.anyMethod && b.anyMethod) || a.mask&b.mask != 0 {
					return &RouteError{ID: b.id, Other: a.id, Err: fmt.Errorf(
						"same %s, same %s path %q and overlapping methods %s",
						host, k.name, b.path, r.methodList(a, b))}
				}
			}
		}
	}
	prefixes := maskOf(n.prefix) | maskOf(n.prefixMore)
	r.cacheAllow(acc | maskOf(n.exact) | maskOf(n.prefix))
	r.cacheAllow(acc | prefixes)
	acc |= prefixes

	// Deterministic order, so the first duplicate reported does not depend
	// on map iteration.
	segs := make([]string, 0, len(n.build))
	for seg := range n.build {
		segs = append(segs, seg)
	}
	slices.Sort(segs)
	for _, seg := range segs {
		if err := r.finalize(n.build[seg], host, acc); err != nil {
			return err
		}
	}
	if n.param != nil {
		if err := r.finalize(n.param, host, acc); err != nil {
			return err
		}
	}
	n.seal()
	return nil
}

func (r *Router) methodList(a, b *route) string {
	if a.anyMethod && b.anyMethod {
		return "(any method)"
	}
	return r.allowString(a.mask & b.mask)
}

func maskOf(list []*route) uint64 {
	var m uint64
	for _, rt := range list {
		m |= rt.mask
	}
	return m
}

func withHEAD(mask uint64) uint64 {
	if mask&bitGET != 0 {
		mask |= bitHEAD
	}
	return mask
}

func (r *Router) cacheAllow(mask uint64) {
	mask = withHEAD(mask)
	if mask == 0 {
		return
	}
	if _, ok := r.allow[mask]; !ok {
		r.allow[mask] = r.allowString(mask)
	}
}

// allowString renders mask as an Allow header value in bit order:
// standard methods first, then custom methods alphabetically.
func (r *Router) allowString(mask uint64) string {
	var b strings.Builder
	for i, name := range r.bitNames {
		if mask&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// Len returns the number of routes compiled into r.
func (r *Router) Len() int { return r.nroutes }

// methodBit returns the bit of a request method, or 0 if no route lists it.
func (r *Router) methodBit(m string) uint64 {
	if b := stdMethodBit(m); b != 0 {
		return b
	}
	return r.custom[m]
}

func validMethod(m string) error {
	if m == "" {
		return fmt.Errorf("empty method")
	}
	if len(m) > maxMethodLen {
		return fmt.Errorf("method longer than %d bytes", maxMethodLen)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if 'a' <= c && c <= 'z' {
			return fmt.Errorf("method %q must be upper-case (methods are case-sensitive)", m)
		}
		if !isTokenChar(c) {
			return fmt.Errorf("method %q is not an HTTP token", m)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// canonicalHost validates a route host and returns its lookup key: the
// lower-cased name without trailing dot, or for a wildcard the suffix
// including its leading dot (".example.com").
func canonicalHost(h string) (key string, wildcard bool, err error) {
	if h == "" {
		return "", false, fmt.Errorf("empty host")
	}
	key = strings.ToLower(strings.TrimSuffix(h, "."))
	if strings.HasPrefix(key, "*.") {
		wildcard = true
		key = key[1:]
	}
	name := key
	if wildcard {
		name = key[1:]
	}
	if name == "" {
		return "", false, fmt.Errorf("host %q: wildcard needs a suffix", h)
	}
	if len(name) > maxHostLen {
		return "", false, fmt.Errorf("host %q longer than %d bytes", h[:32]+"...", maxHostLen)
	}
	if name[0] == '[' {
		if wildcard || name[len(name)-1] != ']' || len(name) < 3 {
			return "", false, fmt.Errorf("host %q: malformed IPv6 literal", h)
		}
		for i := 1; i < len(name)-1; i++ {
			c := name[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || c == ':' || c == '.') {
				return "", false, fmt.Errorf("host %q: malformed IPv6 literal", h)
			}
		}
		return key, wildcard, nil
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			if i == 0 || name[i-1] == '.' {
				return "", false, fmt.Errorf("host %q: empty label", h)
			}
		case c == ':':
			return "", false, fmt.Errorf("host %q must not include a port", h)
		case c == '*':
			return "", false, fmt.Errorf("host %q: '*' is only allowed in a leading \"*.\" label", h)
		default:
			return "", false, fmt.Errorf("host %q: invalid character %q", h, c)
		}
	}
	return key, wildcard, nil
}

type segment struct {
	lit   string
	param bool
}

// ParamNames returns the parameter names of a route path in path order
// ("/tenants/{tenant}/orders" → [tenant]; none → an empty, non-nil slice).
// The error is the one New reports for an invalid path.
func ParamNames(path string) ([]string, error) {
	_, names, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// parsePath validates a route path and splits it into segments.
func parsePath(p string) ([]segment, []string, error) {
	if p == "" || p[0] != '/' {
		return nil, nil, fmt.Errorf("path %q must start with /", p)
	}
	if len(p) > pathnorm.DefaultMaxLen {
		return nil, nil, fmt.Errorf("path longer than %d bytes", pathnorm.DefaultMaxLen)
	}
	raw := strings.Split(p[1:], "/")
	segs := make([]segment, 0, len(raw))
	var names []string
	var probe strings.Builder // p with parameters replaced, for the canonical check
	for _, s := range raw {
		probe.WriteByte('/')
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) >= 2 {
			name := s[1 : len(s)-1]
			if name == "" {
				return nil, nil, fmt.Errorf("path %q: empty parameter name {}", p)
			}
			if !validParamName(name) {
				return nil, nil, fmt.Errorf("path %q: parameter {%s}: name must be a letter or _ followed by letters, digits or _", p, name)
			}
			if slices.Contains(names, name) {
				return nil, nil, fmt.Errorf("path %q: parameter {%s} used twice", p, name)
			}
			names = append(names, name)
			segs = append(segs, segment{param: true})
			probe.WriteByte('p')
			continue
		}
		if strings.ContainsAny(s, "{}") {
			return nil, nil, fmt.Errorf("path %q: unbalanced braces or a parameter that is not a whole segment", p)
		}
		segs = append(segs, segment{lit: s})
		probe.WriteString(s)
	}
	if len(names) > MaxParams {
		return nil, nil, fmt.Errorf("path %q: %d parameters exceed the limit of %d", p, len(names), MaxParams)
	}
	canon, err := pathnorm.Normalize(probe.String())
	if err != nil {
		return nil, nil, fmt.Errorf("path %q can never match a request: %w", p, err)
	}
	if canon != probe.String() {
		if len(names) == 0 {
			return nil, nil, fmt.Errorf("path %q is not in normalized form (requests arrive as %q)", p, canon)
		}
		return nil, nil, fmt.Errorf("path %q is not in normalized form (no '//', '.', '..', encoded unreserved characters or lower-case escapes)", p)
	}
	return segs, names, nil
}

func validParamName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// matcher carries the per-request state of one Match call.
type matcher struct {
	path    string
	bit     uint64 // request method bit, 0 if no route lists it
	head    bool
	m       *Match
	allow   uint64 // methods of routes that matched the path but not the method
	matched bool   // some route matched host and path
}

// Match finds the route for host (without port), method and path (as
// returned by pathnorm) and fills m. It does not allocate, except for an
// Allow value on MethodNotAllowed that combines routes in an unusual way
// (not precomputed); see the package documentation for precedence.
func (r *Router) Match(host, method, path string, m *Match) Result {
	m.reset()
	if path == "" || path[0] != '/' {
		return NotFound
	}
	s := matcher{path: path, m: m, bit: r.methodBit(method), head: method == "HEAD"}

	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	if (len(r.exact) > 0 || len(r.wild) > 0) && len(host) <= maxHostLen {
		if isLower(host) {
			if matchHost(r, &s, host) {
				return Found
			}
		} else {
			var buf [maxHostLen]byte
			h := buf[:len(host)]
			for i := 0; i < len(host); i++ {
				c := host[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				h[i] = c
			}
			if matchHost(r, &s, h) {
				return Found
			}
		}
	}
	if r.any != nil && s.run(r.any) {
		return Found
	}
	if !s.matched {
		return NotFound
	}
	mask := withHEAD(s.allow)
	a, ok := r.allow[mask]
	if !ok {
		a = r.allowString(mask)
	}
	m.Allow = a
	return MethodNotAllowed
}

func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}

// matchHost tries the exact-host group of h, then its wildcard groups from
// the longest suffix. h is lower-case; it is a string or, when the caller
// had to lower-case it, a stack buffer (map lookups with string(h) do not
// allocate).
func matchHost[H string | []byte](r *Router, s *matcher, h H) bool {
	if r.exactLen.has(len(h)) {
		if g := r.exact[string(h)]; g != nil && s.run(g) {
			return true
		}
	}
	if len(r.wild) == 0 {
		return false
	}
	// A wildcard needs at least one label in front of its suffix.
	for i := 1; i < len(h); i++ {
		if h[i] != '.' {
			continue
		}
		n := len(h) - i
		if n < r.wildMin {
			break
		}
		if !r.wildLen.has(n) {
			continue
		}
		if g := r.wild[string(h[i:])]; g != nil && s.run(g) {
			return true
		}
	}
	return false
}

// lenSet is a set of host lengths (0..255); Match skips map lookups for
// lengths no configured host has.
type lenSet [4]uint64

func (l *lenSet) add(n int) { l[n>>6&3] |= 1 << (n & 63) }

func (l *lenSet) has(n int) bool { return n < 256 && l[n>>6&3]&(1<<(n&63)) != 0 }

// run matches the path in one host group and fills s.m on success.
func (s *matcher) run(root *node) bool {
	rt := s.walk(root, 1, 0)
	if rt == nil {
		return false
	}
	s.m.RouteID = rt.id
	for i, name := range rt.params {
		s.m.Params.list[i].Name = name
	}
	s.m.Params.n = len(rt.params)
	return true
}

// walk visits n, whose segments end just before path[pos] (pos beyond the
// path means every segment is consumed), in precedence order and returns
// the first route that matches the method. np is the number of parameter
// values captured so far.
func (s *matcher) walk(n *node, pos, np int) *route {
	if pos > len(s.path) {
		if rt := s.pick(n.exact); rt != nil {
			return rt
		}
		return s.pick(n.prefix)
	}
	// Find the end of the segment, packing its first 8 bytes on the way.
	var w uint64
	end := pos
	for end < len(s.path) {
		c := s.path[end]
		if c == '/' {
			break
		}
		if k := end - pos; k < 8 {
			w |= uint64(c) << (8 * k)
		}
		end++
	}
	seg := s.path[pos:end]
	if len(n.table) > 0 {
		if len(seg) > 8 {
			w = hashLong(seg)
		}
		if e := n.edge(seg, w); e != nil {
			if next, ok := s.follow(e, end); ok {
				if rt := s.walk(e.next, next+1, np); rt != nil {
					return rt
				}
			}
		}
	}
	if n.param != nil && seg != "" && np < MaxParams {
		s.m.Params.list[np].Value = seg
		if rt := s.walk(n.param, end+1, np+1); rt != nil {
			return rt
		}
	}
	if rt := s.pick(n.prefixMore); rt != nil {
		return rt
	}
	return s.pick(n.prefix)
}

// follow checks the compressed segments of e (if any) against the path
// after the segment ending at end, and returns where they end: they must
// follow in full, up to a segment boundary.
func (s *matcher) follow(e *litSlot, end int) (int, bool) {
	if e.rest == "" {
		return end, true
	}
	next := end + len(e.rest)
	if !strings.HasPrefix(s.path[end:], e.rest) || (next < len(s.path) && s.path[next] != '/') {
		return 0, false
	}
	return next, true
}

// pick returns the best route in list (all of equal path specificity) for
// the request method, recording the methods of the ones that do not match.
func (s *matcher) pick(list []*route) *route {
	var best *route
	bestRank := -1
	for _, rt := range list {
		rank := -1
		switch {
		case rt.mask&s.bit != 0:
			rank = 2
		case s.head && rt.mask&bitGET != 0:
			rank = 1
		case rt.anyMethod:
			rank = 0
		}
		if rank < 0 {
			s.matched = true
			s.allow |= rt.mask
			continue
		}
		if rank > bestRank { // list is sorted by ID: the first of a rank wins
			best, bestRank = rt, rank
		}
	}
	return best
}
