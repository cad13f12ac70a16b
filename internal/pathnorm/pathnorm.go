// Package pathnorm canonicalizes the path of an incoming request before the
// gateway routes, authorizes and forwards it.
//
// The gateway must route, authorize and forward the same path, otherwise a
// request can be authorized as one resource and served as another (Envoy
// CVE-2019-9901, CVE-2021-29492, Istio CVE-2021-31920, ...). Normalize
// produces that single canonical path: the router matches it, the
// authorization layer sees it, and the proxy sends exactly it upstream.
//
// # Input
//
// The input is the request's path in escaped form, without the query: the
// path part of the request-target as the client sent it. Use EscapedPath to
// obtain it from an *http.Request.
//
// # Rules
//
// Normalize rejects (each with its own sentinel *Error, suitable for a 400
// response; the error never echoes the input):
//
//   - a path that is empty or does not start with "/" (ErrNotAbsolute);
//   - a path longer than the configured maximum, before or after
//     normalization (ErrTooLong);
//   - NUL, raw or as %00 (ErrNUL), and every other control character, raw or
//     encoded: 0x01-0x1F and 0x7F (ErrControl);
//   - malformed percent-encoding such as "%zz" or a truncated "%4"
//     (ErrBadEscape);
//   - a raw backslash (ErrBackslash), an encoded "/" (%2F, ErrEncodedSlash)
//     or an encoded "\" (%5C, ErrEncodedBackslash): upstreams disagree on
//     whether they are separators, so there is no safe canonical form;
//   - a dot segment written with any percent-encoding, such as "%2e%2e" or
//     ".%2E" (ErrEncodedDot);
//   - a dot segment carrying ";" path parameters, such as "..;" or ".;x"
//     (ErrTraversal); Tomcat-style servers strip the parameters and then
//     climb;
//   - a segment made only of dots and spaces other than the literal "." and
//     "..", such as "..." or ".. " (ErrAmbiguousDot); Windows-based
//     upstreams trim trailing dots and spaces and would climb.
//
// For the dot checks a segment is looked at up to its first ";" or "%3B",
// after decoding every percent-encoding, so "%2e%2e%3bx" is rejected too.
//
// Otherwise Normalize:
//
//   - merges repeated slashes: "//api/x" becomes "/api/x";
//   - resolves the literal dot segments "." and ".." as RFC 3986 section
//     5.2.4 does: "/public/../api/x" becomes "/api/x"; ".." at the root stays
//     at the root ("/../x" becomes "/x"); a path ending in a dot segment
//     ends in "/" ("/a/b/.." becomes "/a/");
//   - keeps a trailing slash: "/a/" stays "/a/";
//   - decodes percent-encoded unreserved characters (ALPHA DIGIT - . _ ~):
//     "/%7Euser" becomes "/~user";
//   - writes every other escape with upper-case hex ("%3a" becomes "%3A")
//     and keeps it encoded, because an encoded reserved character is not
//     the same as the raw one (RFC 3986 section 2.2);
//   - percent-encodes every raw byte that may not appear in a path segment
//     (RFC 3986 pchar): non-ASCII bytes, space, '"', '#', '<', '>', '?',
//     '[', ']', '^', '`', '{', '|', '}'. Raw non-ASCII bytes are encoded
//     rather than rejected so that clients sending raw UTF-8 keep working
//     and the upstream still receives an unambiguous ASCII path.
//
// Letter case is preserved: paths are case-sensitive, so routes in front of
// an upstream that ignores case (e.g. IIS) need to account for it. Double
// encoding
// ("%252e") is preserved as data ("%25" stays encoded); an upstream that
// decodes twice is outside what a gateway can repair.
//
// The output is idempotent (Normalize(out) == out), starts with "/", and
// never contains "//", a "." or ".." segment, %2F, %5C, a control
// character or a lower-case escape.
//
// # Performance
//
// A path that is already canonical (the common case) is returned as is, with
// zero allocations, after one pass over its bytes. A path that needs
// rewriting costs a second pass and two allocations (buffer and string);
// the work is linear in the length, which MaxLen bounds.
package pathnorm

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// DefaultMaxLen is the maximum path length in bytes used by Normalize and
// by a Normalizer whose Options.MaxLen is zero.
const DefaultMaxLen = 8192

// maxMaxLen bounds Options.MaxLen; paths beyond 1 MiB are not requests but
// attacks, and net/http limits the whole header block to 1 MiB by default.
const maxMaxLen = 1 << 20

// Error is the error type returned by Normalize. Every error is one of the
// package's sentinel values, so callers compare with errors.Is and can use
// Reason as the detail of a 400 problem response: it is a short fixed text
// that never contains any part of the input.
type Error struct {
	reason string
}

// Error implements error.
func (e *Error) Error() string { return "invalid request path: " + e.reason }

// Reason returns the short, fixed, client-safe explanation.
func (e *Error) Reason() string { return e.reason }

// Sentinel errors. All of them mean "bad request".
var (
	ErrNotAbsolute      = &Error{reason: "path must start with /"}
	ErrTooLong          = &Error{reason: "path too long"}
	ErrNUL              = &Error{reason: "path contains NUL"}
	ErrControl          = &Error{reason: "path contains a control character"}
	ErrBadEscape        = &Error{reason: "path contains an invalid percent-encoding"}
	ErrBackslash        = &Error{reason: "path contains a backslash"}
	ErrEncodedSlash     = &Error{reason: "path contains an encoded slash"}
	ErrEncodedBackslash = &Error{reason: "path contains an encoded backslash"}
	ErrEncodedDot       = &Error{reason: "path contains an encoded dot segment"}
	ErrTraversal        = &Error{reason: "path contains a dot segment with parameters"}
	ErrAmbiguousDot     = &Error{reason: "path contains an ambiguous dot segment"}
)

// Options configures a Normalizer.
type Options struct {
	// MaxLen is the maximum length in bytes of the raw path and of the
	// normalized path. Zero means DefaultMaxLen.
	MaxLen int
}

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	if o.MaxLen < 0 || o.MaxLen > maxMaxLen {
		return fmt.Errorf("pathnorm: max_len %d out of range: must be 0 (default %d) or 1..%d",
			o.MaxLen, DefaultMaxLen, maxMaxLen)
	}
	return nil
}

// Normalizer normalizes paths with a fixed length bound. It is immutable
// and safe for concurrent use.
type Normalizer struct {
	maxLen int
}

// New returns a Normalizer for the given options.
func New(o Options) (*Normalizer, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	n := &Normalizer{maxLen: o.MaxLen}
	if n.maxLen == 0 {
		n.maxLen = DefaultMaxLen
	}
	return n, nil
}

// MaxLen returns the effective length bound.
func (n *Normalizer) MaxLen() int { return n.maxLen }

// Normalize returns the canonical form of raw, or an *Error. See the
// package documentation for the rules.
func (n *Normalizer) Normalize(raw string) (string, error) {
	return normalize(raw, n.maxLen)
}

// Normalize normalizes raw with DefaultMaxLen. See the package
// documentation for the rules.
func Normalize(raw string) (string, error) {
	return normalize(raw, DefaultMaxLen)
}

// EscapedPath returns the path of r exactly as the client sent it (escaped,
// without the query), which is the input Normalize expects.
//
// For an origin-form request-target ("/p?q", the usual HTTP/1.1 form and
// the HTTP/2 :path) it is the part of r.RequestURI before "?". Otherwise
// (absolute-form, or a request built without RequestURI) it falls back to
// r.URL.EscapedPath(), which net/http derives from the parsed URL.
//
// Reading RequestURI matters: r.URL.Path is already decoded, so "%2F" in it
// is indistinguishable from "/", and r.URL.EscapedPath() re-encodes from
// Path when the raw form contains bytes net/http would have escaped.
func EscapedPath(r *http.Request) string {
	if u := r.RequestURI; len(u) > 0 && u[0] == '/' {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			return u[:i]
		}
		return u
	}
	if r.URL == nil {
		return ""
	}
	return r.URL.EscapedPath()
}

// Character classes as 128-bit masks over ASCII, split into two uint64
// halves. Untyped constant arithmetic keeps them free of runtime state.
const (
	maskAlpha  = (1<<('Z'+1) - 1<<'A') | (1<<('z'+1) - 1<<'a')
	maskDigit  = 1<<('9'+1) - 1<<'0'
	maskUnres  = maskAlpha | maskDigit | 1<<'-' | 1<<'.' | 1<<'_' | 1<<'~'
	maskSubDel = 1<<'!' | 1<<'$' | 1<<'&' | 1<<'\'' | 1<<'(' | 1<<')' |
		1<<'*' | 1<<'+' | 1<<',' | 1<<';' | 1<<'='
	// maskPchar is RFC 3986 pchar without pct-encoded.
	maskPchar = maskUnres | maskSubDel | 1<<':' | 1<<'@'

	unresLo = uint64(maskUnres & (1<<64 - 1))
	unresHi = uint64(maskUnres >> 64)
	pcharLo = uint64(maskPchar & (1<<64 - 1))
	pcharHi = uint64(maskPchar >> 64)
)

func inMask(lo, hi uint64, c byte) bool {
	if c < 64 {
		return lo&(1<<c) != 0
	}
	if c < 128 {
		return hi&(1<<(c-64)) != 0
	}
	return false
}

func isUnreserved(c byte) bool { return inMask(unresLo, unresHi, c) }
func isPchar(c byte) bool      { return inMask(pcharLo, pcharHi, c) }

// unhex returns the value of a hex digit and whether c is one.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

// lazybuf builds the output, allocating only once the output first differs
// from the input. While buf is nil the output is s[:w]; afterwards it is
// buf.
type lazybuf struct {
	s   string
	buf []byte
	w   int
}

func (b *lazybuf) append(c byte) {
	if b.buf != nil {
		b.buf = append(b.buf, c)
		return
	}
	if b.w < len(b.s) && b.s[b.w] == c {
		b.w++ // output still equals the input so far
		return
	}
	b.diverge(c)
}

// diverge copies the output so far into a new buffer and appends c.
func (b *lazybuf) diverge(c byte) {
	// Room for the common growth (a few escapes) without regrowing.
	b.buf = make([]byte, b.w, len(b.s)+32)
	copy(b.buf, b.s[:b.w])
	b.buf = append(b.buf, c)
}

func (b *lazybuf) appendEscaped(c byte) {
	b.append('%')
	b.append(upperHex[c>>4])
	b.append(upperHex[c&0x0F])
}

// len returns the length of the output so far.
func (b *lazybuf) len() int {
	if b.buf != nil {
		return len(b.buf)
	}
	return b.w
}

// truncate shortens the output to n bytes.
func (b *lazybuf) truncate(n int) {
	if b.buf != nil {
		b.buf = b.buf[:n]
	} else {
		b.w = n
	}
}

func (b *lazybuf) index(i int) byte {
	if b.buf != nil {
		return b.buf[i]
	}
	return b.s[i]
}

func (b *lazybuf) string() string {
	if b.buf != nil {
		return string(b.buf)
	}
	return b.s[:b.w]
}

func normalize(raw string, maxLen int) (string, error) {
	if len(raw) == 0 || raw[0] != '/' {
		return "", ErrNotAbsolute
	}
	if len(raw) > maxLen {
		return "", ErrTooLong
	}
	if isCanonical(raw) {
		return raw, nil
	}
	return rewrite(raw, maxLen)
}

// isCanonical is the fast path: it reports whether s (which starts with
// "/") is certainly already in normalized form. It may report false for a
// canonical path, e.g. one with a segment starting with "." or "%"; rewrite
// then returns that path unchanged, still without allocating.
func isCanonical(s string) bool {
	// Bytes that may appear as they are anywhere in a canonical segment.
	plain := [4]uint64{pcharLo, pcharHi, 0, 0}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain[c>>6]&(1<<(c&63)) != 0 {
			continue
		}
		switch c {
		case '/':
			if i+1 == len(s) {
				break // trailing slash
			}
			switch s[i+1] {
			case '/', '%':
				// Empty segment; or a segment whose first byte may decode
				// to a dot (left to rewrite).
				return false
			case '.':
				// Leading dots are fine if a plain byte other than ';'
				// follows them (".well-known"); "." and ".." segments,
				// "..;x" and "...%20" are not.
				j := i + 1
				for j < len(s) && s[j] == '.' {
					j++
				}
				if j == len(s) || s[j] == '/' || s[j] == ';' || s[j] == '%' {
					return false
				}
				i = j - 1
			}
		case '%':
			if i+2 >= len(s) {
				return false
			}
			hi, lo := s[i+1], s[i+2]
			if !isUpperHex(hi) || !isUpperHex(lo) {
				return false
			}
			v, _ := unhex(hi)
			w, _ := unhex(lo)
			v = v<<4 | w
			if v < 0x20 || v == 0x7F || v == '/' || v == '\\' || isUnreserved(v) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

func isUpperHex(c byte) bool { return ('0' <= c && c <= '9') || ('A' <= c && c <= 'F') }

// rewrite is the full normalization; see the package documentation.
func rewrite(raw string, maxLen int) (string, error) {
	b := lazybuf{s: raw}
	b.append('/')
	// Invariant at the top of each iteration: the output ends with "/"
	// and i is the start of the next raw segment.
	i := 1
	for i <= len(raw) {
		segStart := b.len()
		// Classification of the segment's decoded prefix before the first
		// ';' (raw or %3B), for the dot-segment checks.
		var (
			prefixLen int  // decoded bytes in the prefix
			dots      int  // '.' among them
			spaces    int  // ' ' among them
			escaped   bool // the prefix used percent-encoding
			params    bool // the segment has ';' parameters
		)
		for i < len(raw) && raw[i] != '/' {
			c := raw[i]
			wasEscape := false
			switch {
			case c == '%':
				if i+2 >= len(raw) {
					return "", ErrBadEscape
				}
				hi, ok1 := unhex(raw[i+1])
				lo, ok2 := unhex(raw[i+2])
				if !ok1 || !ok2 {
					return "", ErrBadEscape
				}
				c = hi<<4 | lo
				switch {
				case c == 0:
					return "", ErrNUL
				case c < 0x20 || c == 0x7F:
					return "", ErrControl
				case c == '/':
					return "", ErrEncodedSlash
				case c == '\\':
					return "", ErrEncodedBackslash
				}
				if isUnreserved(c) {
					b.append(c)
				} else {
					b.appendEscaped(c)
				}
				wasEscape = true
				i += 3
			case c == 0:
				return "", ErrNUL
			case c < 0x20 || c == 0x7F:
				return "", ErrControl
			case c == '\\':
				return "", ErrBackslash
			default:
				if isPchar(c) {
					b.append(c)
				} else {
					b.appendEscaped(c)
				}
				i++
			}
			if params {
				continue
			}
			switch c {
			case ';':
				params = true
				continue
			case '.':
				dots++
			case ' ':
				spaces++
			}
			prefixLen++
			if wasEscape {
				escaped = true
			}
		}
		atEnd := i >= len(raw)
		switch {
		case b.len() == segStart:
			// Empty segment: merged into the preceding slash. At the end of
			// the path the output keeps its trailing slash.
		case prefixLen > 0 && dots > 0 && dots+spaces == prefixLen:
			// A segment made of dots (and spaces) before any parameters.
			literal := !escaped && !params && spaces == 0 && dots <= 2
			if !literal {
				switch {
				case escaped:
					return "", ErrEncodedDot
				case params:
					return "", ErrTraversal
				default:
					return "", ErrAmbiguousDot
				}
			}
			b.truncate(segStart) // drop the segment itself
			if dots == 2 && segStart > 1 {
				// Remove the previous segment: output is ".../prev/".
				j := segStart - 2
				for b.index(j) != '/' {
					j--
				}
				b.truncate(j + 1)
			}
		default:
			if !atEnd {
				b.append('/')
			}
		}
		i++ // skip the '/'
	}
	if b.len() > maxLen {
		return "", ErrTooLong
	}
	return b.string(), nil
}

// Reason returns the client-safe reason of a Normalize error, for the
// detail of a 400 response. It never contains any part of the request.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.reason
	}
	return "invalid request path"
}

// IsBadRequest reports whether err is (or wraps) an error from this
// package, i.e. the client sent a path that must be answered with 400
// (or 414 for ErrTooLong, at the caller's choice).
func IsBadRequest(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
