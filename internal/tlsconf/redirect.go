package tlsconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrorWriter writes an error response. Its signature matches the gateway's
// RFC 9457 writer (problem.Write), so the redirect listener's errors carry the
// request ID like every other gateway response.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, detail string)

// RedirectOptions configures the HTTP→HTTPS redirect handler.
type RedirectOptions struct {
	// HTTPSPort is the port of the HTTPS listener; "" or "443" leaves it out of
	// the Location URL.
	HTTPSPort string
	// AllowedHosts, when not empty, restricts redirects to these host names
	// (exact, or "*.example.com" for one extra label); other hosts get 400.
	// Empty means any syntactically valid host.
	AllowedHosts []string
	// OnError writes the 400 response. Nil writes a minimal
	// application/problem+json body.
	OnError ErrorWriter
}

// RedirectHandler answers every request with a redirect to the same host, path
// and query over HTTPS: 301 for GET and HEAD, 308 (method and body preserved)
// otherwise. It panics if httpsPort is not a valid port; use NewRedirectHandler
// to get an error instead.
func RedirectHandler(httpsPort string) http.Handler {
	h, err := NewRedirectHandler(RedirectOptions{HTTPSPort: httpsPort})
	if err != nil {
		panic("tlsconf.RedirectHandler: " + err.Error())
	}
	return h
}

// NewRedirectHandler validates o and returns the redirect handler.
//
// The target host comes from the request's Host header. A client can only
// redirect itself that way, but the value still must not be able to turn the
// Location header into something else: it must be a DNS name of
// letter-digit-hyphen labels, a dotted-quad IPv4 address or a bracketed IPv6
// address, optionally with a port (which is replaced by HTTPSPort). Anything
// else — userinfo ("evil.com@x"), paths, backslashes, percent-encoding,
// control characters, non-ASCII, numeric forms that browsers would reinterpret
// ("0x7f.1") — gets 400 and no Location.
func NewRedirectHandler(o RedirectOptions) (http.Handler, error) {
	h := &redirectHandler{onError: o.OnError}
	switch o.HTTPSPort {
	case "", "443":
	default:
		if !validPort(o.HTTPSPort) {
			return nil, fmt.Errorf("https_port %q: must be a number from 1 to 65535", o.HTTPSPort)
		}
		h.portSuffix = ":" + o.HTTPSPort
	}
	for _, a := range o.AllowedHosts {
		name := a
		wild := strings.HasPrefix(a, "*.")
		if wild {
			name = a[2:]
		}
		n, ok := parseHostname(name)
		if !ok || strings.Contains(n, ":") {
			return nil, fmt.Errorf("allowed_hosts %q: not a valid host name", a)
		}
		if wild {
			h.allowedWild = append(h.allowedWild, n)
		} else {
			h.allowed = append(h.allowed, n)
		}
	}
	if h.onError == nil {
		h.onError = writeProblem
	}
	return h, nil
}

type redirectHandler struct {
	portSuffix  string
	allowed     []string
	allowedWild []string
	onError     ErrorWriter
}

func (h *redirectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, ok := parseHostHeader(r.Host)
	if !ok || !h.hostAllowed(host) {
		h.onError(w, r, http.StatusBadRequest, "invalid or unknown Host header")
		return
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	if path[0] != '/' { // "OPTIONS *" and other non-origin forms
		h.onError(w, r, http.StatusBadRequest, "request target cannot be redirected")
		return
	}
	var b strings.Builder
	b.Grow(len("https://") + len(host) + len(h.portSuffix) + len(path) + 1 + len(r.URL.RawQuery))
	b.WriteString("https://")
	b.WriteString(host)
	b.WriteString(h.portSuffix)
	writeURLSafe(&b, path)
	if r.URL.RawQuery != "" {
		b.WriteByte('?')
		writeURLSafe(&b, r.URL.RawQuery)
	}
	status := http.StatusPermanentRedirect
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		status = http.StatusMovedPermanently
	}
	w.Header().Set("Location", b.String())
	w.WriteHeader(status)
}

func (h *redirectHandler) hostAllowed(host string) bool {
	if len(h.allowed) == 0 && len(h.allowedWild) == 0 {
		return true
	}
	for _, a := range h.allowed {
		if host == a {
			return true
		}
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		parent := host[i+1:]
		for _, a := range h.allowedWild {
			if parent == a {
				return true
			}
		}
	}
	return false
}

// writeURLSafe copies s, percent-encoding bytes that are not visible ASCII and
// the few visible ones that are never valid raw in a URL. The server already
// rejects control characters; raw non-ASCII bytes in a query would otherwise
// reach the Location header unencoded, and a raw '#' (never sent by real
// clients) would turn the rest of the query into a fragment.
func writeURLSafe(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '#' || c == '<' || c == '>' || c == '\\' || c == '`' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// parseHostHeader validates a Host header value and returns the host part in
// canonical form (lowercase name without trailing dot, canonical IPv4, or
// bracketed canonical IPv6), without the port.
func parseHostHeader(h string) (string, bool) {
	if h == "" || len(h) > 253+1+6 {
		return "", false
	}
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		if rest := h[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return "", false
		}
		ip, err := netip.ParseAddr(h[1:end])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", false
		}
		return "[" + ip.String() + "]", true
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if !validPort(h[i+1:]) {
			return "", false
		}
		h = h[:i]
	}
	name, ok := parseHostname(h)
	if !ok || strings.Contains(name, ":") { // unbracketed IPv6 is not a Host
		return "", false
	}
	return name, true
}

// parseHostname validates a DNS name made of letter-digit-hyphen labels, or an
// IP address literal (IPv6 without brackets, no zone), and returns it in
// canonical form: lowercase, without a trailing dot.
func parseHostname(s string) (string, bool) {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return "", false
		}
		return ip.String(), true
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	lastStart := 0
	labelLen := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if labelLen == 0 || s[i-1] == '-' {
				return "", false
			}
			labelLen = 0
			lastStart = i + 1
			continue
		case c == '-':
			if labelLen == 0 {
				return "", false
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			return "", false
		}
		labelLen++
		if labelLen > 63 {
			return "", false
		}
	}
	if labelLen == 0 || s[len(s)-1] == '-' {
		return "", false
	}
	// A name whose last label is numeric is an IPv4 address to URL parsers
	// (WHATWG "ends in a number"), including forms like "0x7f.1"; it is only
	// accepted as a canonical dotted quad, which ParseAddr already handled.
	if endsInNumber(s[lastStart:]) {
		return "", false
	}
	return strings.ToLower(s), true
}

func endsInNumber(label string) bool {
	if label == "" {
		return false
	}
	digits := true
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			digits = false
			break
		}
	}
	if digits {
		return true
	}
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		for i := 2; i < len(label); i++ {
			c := label[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	return false
}

// writeProblem is the default ErrorWriter: a minimal RFC 9457 body.
func writeProblem(w http.ResponseWriter, _ *http.Request, status int, detail string) {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// HSTSHeader returns a Strict-Transport-Security value (RFC 6797). maxAge is
// truncated to whole seconds; a negative value gives max-age=0, which tells
// browsers to forget the policy. Send it only on HTTPS responses (browsers
// ignore it over HTTP). Preload lists additionally require includeSubDomains
// and a max-age of at least one year; this function does not enforce that.
func HSTSHeader(maxAge time.Duration, includeSubdomains, preload bool) string {
	secs := max(int64(maxAge/time.Second), 0)
	v := "max-age=" + strconv.FormatInt(secs, 10)
	if includeSubdomains {
		v += "; includeSubDomains"
	}
	if preload {
		v += "; preload"
	}
	return v
}

// ValidateHSTS reports settings that browsers or preload lists would reject.
func ValidateHSTS(maxAge time.Duration, includeSubdomains, preload bool) error {
	if maxAge < 0 {
		return fmt.Errorf("hsts max_age %v: must not be negative", maxAge)
	}
	if preload && (!includeSubdomains || maxAge < 365*24*time.Hour) {
		return errors.New("hsts preload: requires include_subdomains and a max_age of at least one year (8760h)")
	}
	return nil
}
