// Package forward controls the identity an upstream sees.
//
// Strip runs on every request, before authentication and on public routes
// too: it deletes client-supplied identity headers (configurable patterns,
// matched case-insensitively with '_' and '-' treated alike, because some
// upstream stacks — CGI, Rack, WSGI, nginx with underscores_in_headers —
// fold X_User_Id and X-User-Id into the same variable). Apply runs after
// successful authentication: it removes the caller's credentials (unless the
// route forwards them), injects configured identity headers, and can attach
// a short-lived gateway-signed JWT so upstreams verify the identity instead
// of trusting the network.
//
// Wiring note: call Apply from httputil.ReverseProxy's Rewrite hook (or
// after hop-by-hop removal). Director runs before hop-by-hop headers are
// removed, so a client sending "Connection: X-User-Id" could get an injected
// header deleted (Traefik CVE-2024-45410).
package forward

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sekisho/sekisho/internal/authn"
)

// DefaultStripHeaders returns the patterns stripped from every request
// unless DisableDefaultStrip is set (X-Sekisho-* is stripped regardless).
func DefaultStripHeaders() []string {
	return []string{"X-Sekisho-*", "X-User-*", "X-Forwarded-User", "X-Auth-*"}
}

// ownPrefix is the gateway's own header namespace; always stripped.
const ownPrefix = "X-Sekisho-*"

// Options configures a Forwarder for one route.
type Options struct {
	// StripHeaders are extra header patterns to strip from every request:
	// an exact name ("X-Tenant") or a prefix ending in '*' ("X-Internal-*").
	// Matching ignores case and treats '_' as '-'. They add to
	// DefaultStripHeaders.
	StripHeaders []string
	// DisableDefaultStrip drops DefaultStripHeaders except X-Sekisho-*
	// (for upstreams that legitimately take e.g. X-Auth-Token from clients).
	DisableDefaultStrip bool
	// InjectHeaders maps a header name to its source: "sub", "client_id",
	// "scope" (space-separated), "iss", "kind", or "claims.<name>" (string,
	// number or bool claims only). Injected names are also stripped from
	// every incoming request, whatever StripHeaders says. A source with no
	// value (e.g. no such claim) leaves the header absent.
	InjectHeaders map[string]string
	// ForwardAuthorization keeps the caller's Authorization header (and
	// CredentialHeaders) on the upstream request. Default false: removed.
	ForwardAuthorization bool
	// CredentialHeaders are further headers carrying credentials (e.g. the
	// API key header), removed with Authorization.
	CredentialHeaders []string
	// MaxValueLength bounds an injected value. Default 1024 bytes.
	MaxValueLength int
	// SignedIdentity, when set, attaches a gateway-signed JWT.
	SignedIdentity *SignedIdentityOptions
}

// ErrUnsafeValue is returned (wrapped) by Apply when an identity value
// cannot be put in a header safely: control characters, invalid UTF-8,
// surrounding whitespace, over MaxValueLength, or a non-scalar claim. The
// gateway should refuse the request rather than forward a partial identity.
var ErrUnsafeValue = errors.New("identity value not safe for a header")

// DefaultMaxValueLength bounds injected header values.
const DefaultMaxValueLength = 1024

type sourceKind uint8

const (
	srcSub sourceKind = iota + 1
	srcClientID
	srcScope
	srcIssuer
	srcKind
	srcClaim
)

type injection struct {
	header string // canonical
	kind   sourceKind
	claim  string
}

// pattern is a normalized strip pattern: lower-case, '_' mapped to '-'.
type pattern struct {
	s      string
	prefix bool
}

// Forwarder is a compiled Options; immutable and safe for concurrent use.
type Forwarder struct {
	patterns   []pattern
	firstByte  [256]bool // normalized first bytes of patterns: cheap pre-filter
	inject     []injection
	removeCred []string // normalized names removed in Apply
	maxValue   int
	signed     *signedIdentity
}

// Compile validates o and precomputes the matchers.
func Compile(o Options) (*Forwarder, error) {
	f := &Forwarder{maxValue: o.MaxValueLength}
	if f.maxValue == 0 {
		f.maxValue = DefaultMaxValueLength
	}
	if f.maxValue < 0 || f.maxValue > 16<<10 {
		return nil, fmt.Errorf("forward: max value length %d outside 1..16384", o.MaxValueLength)
	}
	strip := []string{ownPrefix}
	if !o.DisableDefaultStrip {
		strip = append(strip, DefaultStripHeaders()...)
	}
	strip = append(strip, o.StripHeaders...)
	for _, p := range strip {
		if err := f.addPattern(p); err != nil {
			return nil, err
		}
	}
	for name, src := range o.InjectHeaders {
		inj, err := parseInjection(name, src)
		if err != nil {
			return nil, err
		}
		f.inject = append(f.inject, inj)
		if err := f.addPattern(inj.header); err != nil {
			return nil, err
		}
	}
	// Deterministic order (map iteration is random) for stable output.
	slices.SortStableFunc(f.inject, func(a, b injection) int { return strings.Compare(a.header, b.header) })
	if !o.ForwardAuthorization {
		f.removeCred = append(f.removeCred, normalize("Authorization"))
		for _, h := range o.CredentialHeaders {
			if !authn.ValidHeaderName(h) {
				return nil, fmt.Errorf("forward: credential header %q is not a valid header name", h)
			}
			f.removeCred = append(f.removeCred, normalize(h))
		}
	}
	if o.SignedIdentity != nil {
		s, err := newSignedIdentity(*o.SignedIdentity)
		if err != nil {
			return nil, err
		}
		f.signed = s
		if err := f.addPattern(s.header); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *Forwarder) addPattern(p string) error {
	name, prefix := strings.CutSuffix(p, "*")
	if name == "" || !authn.ValidHeaderName(name) {
		return fmt.Errorf("forward: strip pattern %q: want a header name, optionally ending in '*'", p)
	}
	if prefix && len(name) < 2 {
		return fmt.Errorf("forward: strip pattern %q is too broad", p)
	}
	n := normalize(name)
	for _, q := range f.patterns {
		if q.s == n && q.prefix == prefix {
			return nil
		}
	}
	f.patterns = append(f.patterns, pattern{s: n, prefix: prefix})
	f.firstByte[n[0]] = true
	return nil
}

func normalize(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = normByte(c)
	}
	return string(b)
}

func normByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	if c == '_' {
		return '-'
	}
	return c
}

// matches reports whether header name k matches a pattern, comparing in
// normalized form without allocating.
func (f *Forwarder) matches(k string) bool {
	for _, p := range f.patterns {
		if len(k) < len(p.s) || (!p.prefix && len(k) != len(p.s)) {
			continue
		}
		eq := true
		for i := 0; i < len(p.s); i++ {
			if normByte(k[i]) != p.s[i] {
				eq = false
				break
			}
		}
		if eq {
			return true
		}
	}
	return false
}

// isCredential reports whether k is, after normalization, one of the
// credential headers removed by Apply.
func (f *Forwarder) isCredential(k string) bool {
	for _, c := range f.removeCred {
		if len(k) != len(c) {
			continue
		}
		eq := true
		for i := 0; i < len(c); i++ {
			if normByte(k[i]) != c[i] {
				eq = false
				break
			}
		}
		if eq {
			return true
		}
	}
	return false
}

// Strip deletes every header matching the strip patterns (and every header
// this Forwarder injects). Call it on every request before authentication,
// including public routes and requests that will be refused. One pass over
// h; no allocation.
func (f *Forwarder) Strip(h http.Header) {
	for k := range h {
		if k != "" && f.firstByte[normByte(k[0])] && f.matches(k) {
			delete(h, k)
		}
	}
}

// Apply prepares an authenticated request's headers for the upstream:
// removes credentials unless forwarded, sets the injected identity headers
// and the signed identity token. It returns an error wrapping
// ErrUnsafeValue (or a signing error) when the identity cannot be forwarded
// faithfully; the request must then be refused. Call Strip first.
func (f *Forwarder) Apply(h http.Header, id *authn.Identity) error {
	if id == nil {
		return errors.New("forward: Apply without an identity")
	}
	if len(f.removeCred) > 0 {
		// Also catch case/underscore variants (X_API_Key): the gateway only
		// reads the canonical name, but an upstream that folds '_' into '-'
		// would see the variant as a second, unverified credential.
		for k := range h {
			if f.isCredential(k) {
				delete(h, k)
			}
		}
	}
	for _, inj := range f.inject {
		v, ok, err := inj.value(id)
		if err != nil {
			return fmt.Errorf("forward: header %s: %w", inj.header, err)
		}
		if !ok {
			delete(h, inj.header)
			continue
		}
		if err := checkValue(v, f.maxValue); err != nil {
			return fmt.Errorf("forward: header %s: %w", inj.header, err)
		}
		h[inj.header] = []string{v}
	}
	if f.signed != nil {
		tok, err := f.signed.token(id)
		if err != nil {
			return fmt.Errorf("forward: signed identity: %w", err)
		}
		h[f.signed.header] = []string{tok}
	}
	return nil
}

func (inj injection) value(id *authn.Identity) (string, bool, error) {
	switch inj.kind {
	case srcSub:
		return id.Subject, id.Subject != "", nil
	case srcClientID:
		return id.ClientID, id.ClientID != "", nil
	case srcScope:
		s := strings.Join(id.Scopes, " ")
		return s, s != "", nil
	case srcIssuer:
		return id.Issuer, id.Issuer != "", nil
	case srcKind:
		return id.Kind, id.Kind != "", nil
	case srcClaim:
		v, ok := id.Claims[inj.claim]
		if !ok || v == nil {
			return "", false, nil
		}
		s, err := scalarString(v)
		if err != nil {
			return "", false, fmt.Errorf("claim %q: %w", inj.claim, err)
		}
		return s, true, nil
	}
	return "", false, fmt.Errorf("unknown source")
}

// scalarString renders a JSON scalar claim.
func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case json.Number:
		return x.String(), nil
	}
	return "", fmt.Errorf("%w: %T is not a string, number or bool", ErrUnsafeValue, v)
}

// checkValue rejects values a header cannot carry faithfully.
func checkValue(v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrUnsafeValue, len(v), max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: invalid UTF-8", ErrUnsafeValue)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7F {
			return fmt.Errorf("%w: control character 0x%02x", ErrUnsafeValue, c)
		}
	}
	// HTTP parsers trim surrounding whitespace, so "alice " would reach the
	// upstream as "alice": refuse rather than alias two identities.
	if v != "" && (v[0] == ' ' || v[len(v)-1] == ' ') {
		return fmt.Errorf("%w: leading or trailing space", ErrUnsafeValue)
	}
	return nil
}

// reserved reports whether a canonical header name may not be injected:
// framing, routing, hop-by-hop or credential headers.
func reserved(canon string) bool {
	switch canon {
	case "Authorization", "Proxy-Authorization", "Cookie", "Host",
		"Connection", "Content-Length", "Transfer-Encoding", "Te",
		"Trailer", "Upgrade", "Keep-Alive", "Proxy-Connection",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

func parseInjection(name, src string) (injection, error) {
	if !authn.ValidHeaderName(name) {
		return injection{}, fmt.Errorf("forward: inject header %q is not a valid header name", name)
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if reserved(canon) {
		return injection{}, fmt.Errorf("forward: inject header %q is reserved", name)
	}
	inj := injection{header: canon}
	switch src {
	case "sub":
		inj.kind = srcSub
	case "client_id":
		inj.kind = srcClientID
	case "scope":
		inj.kind = srcScope
	case "iss":
		inj.kind = srcIssuer
	case "kind":
		inj.kind = srcKind
	default:
		claim, ok := strings.CutPrefix(src, "claims.")
		if !ok || claim == "" || len(claim) > 128 || strings.ContainsAny(claim, ". \t\r\n") {
			return injection{}, fmt.Errorf(`forward: inject header %s: source %q: want sub, client_id, scope, iss, kind or claims.<name>`, canon, src)
		}
		inj.kind, inj.claim = srcClaim, claim
	}
	return inj, nil
}
