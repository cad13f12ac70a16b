package upstream

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits and defaults. Zero values in Options select the default; negative
// values select "off" where the field documents it.
const (
	MaxTargets = 256     // targets per upstream
	MaxWeight  = 10000   // per target
	MaxRetries = 5       // extra attempts
	maxNameLen = 128     // upstream name
	maxURLLen  = 2048    // target URL, health path
	maxPEMSize = 1 << 20 // CA, certificate and key files

	DefaultConnectTimeout        = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultOverallTimeout        = 60 * time.Second
	DefaultRetries               = 1
	DefaultMaxFailures           = 3
	DefaultEjectFor              = 30 * time.Second
	DefaultMaxIdleConnsPerHost   = 256
	DefaultHealthInterval        = 10 * time.Second
	DefaultHealthTimeout         = 2 * time.Second
	DefaultHealthyThreshold      = 2
	DefaultUnhealthyThreshold    = 3

	minHealthInterval = 100 * time.Millisecond
)

// Balancing algorithms.
const (
	RoundRobin       = "round_robin"       // smooth weighted round robin (nginx algorithm)
	LeastOutstanding = "least_outstanding" // fewest in-flight requests relative to weight, ties by rotation
)

// Options configure a Pool. The lead maps YAML config onto it; every field is
// validated by Validate (and New) with errors naming the field.
type Options struct {
	// Name identifies the upstream in errors, logs and the "upstream" metric
	// label: 1–128 characters of [A-Za-z0-9_.-].
	Name string

	// Targets: 1–256 entries.
	Targets []Target

	// Balancing: RoundRobin (default) or LeastOutstanding.
	Balancing string

	// ConnectTimeout bounds the TCP connect and, for https targets, the TLS
	// handshake (each). Default 5s. Must not be negative.
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response header after the
	// request was written. Default 30s. Must not be negative.
	ResponseHeaderTimeout time.Duration
	// OverallTimeout caps the whole exchange including retries and reading the
	// response body. For a protocol upgrade (101) it applies only until the
	// response header arrives; the upgraded connection then lives until either
	// side closes it. Default 60s; negative disables the cap (long-lived
	// streams such as server-sent events).
	OverallTimeout time.Duration

	// Retries is the number of extra attempts after a failed one. Default 1,
	// maximum 5, negative disables retries. A request is retried only when its
	// method is idempotent (GET HEAD OPTIONS TRACE PUT DELETE), its body is
	// empty or replayable (Request.GetBody), and the failure happened before
	// the target could have sent a response byte: connect errors (including
	// connect timeouts), TLS handshake failures, and connections reset or
	// closed before the response header. A response-header timeout is never
	// retried (it would multiply load on a slow target). Retries prefer a
	// target not tried yet.
	Retries int

	PassiveHealth PassiveHealth

	// ActiveHealth enables periodic probes when non-nil.
	ActiveHealth *ActiveHealth

	// TLS configures connections to https targets. Nil means: system roots,
	// TLS 1.2 minimum, SNI from the target host. Setting it when no target is
	// https is an error (it would silently do nothing).
	TLS *TLSOptions

	// H2C talks HTTP/2 with prior knowledge (cleartext) to http:// targets,
	// using net/http's own support (Transport.Protocols with only
	// UnencryptedHTTP2). Upgrade requests (WebSocket) still use HTTP/1.1,
	// since HTTP/2 has no Upgrade mechanism. https targets negotiate HTTP/2
	// with ALPN regardless of this flag.
	H2C bool

	// MaxIdleConnsPerHost: idle keep-alive connections kept per target.
	// Default 256, maximum 65536.
	MaxIdleConnsPerHost int

	// Logger receives ejection, recovery and health-check transitions. Never
	// per request. Nil discards.
	Logger *slog.Logger

	// Registerer receives the metrics (see metrics.go). Several pools, and
	// pools rebuilt on reload, may share one Registerer: collectors are
	// registered once and reused. Nil disables metrics.
	Registerer prometheus.Registerer
}

// Target is one backend instance of an upstream.
type Target struct {
	// URL is http:// or https://, host[:port] (default port by scheme) and an
	// optional base path that is prefixed to every request path
	// ("http://h:1/base" + "/x" → "/base/x"). No credentials, query or
	// fragment.
	URL string
	// Weight: relative share of traffic, 1–10000; 0 means 1.
	Weight int
}

// PassiveHealth ejects a target after consecutive failures seen on real
// traffic. A failure is a transport error (connect, TLS, timeout, broken
// connection) and, with Count5xx, a 502/503/504 response. A client going away
// is not a failure. An ejected target receives no traffic until EjectFor has
// passed; then it is on probation: one success clears its record, one more
// failure ejects it again immediately.
//
// When every target is ejected (or down) the pool fails closed with
// ErrNoHealthyTarget rather than sending traffic to a target known to fail.
type PassiveHealth struct {
	// MaxFailures consecutive failures eject a target. Default 3; negative
	// disables passive health.
	MaxFailures int
	// EjectFor is how long an ejected target is skipped. Default 30s.
	EjectFor time.Duration
	// Count5xx also counts 502, 503 and 504 responses (the statuses that mean
	// "this instance cannot serve") as failures. Other 5xx statuses are
	// application errors and do not eject.
	Count5xx bool
}

// ActiveHealth probes every target with GET Path at Interval.
//
// Path is sent as-is to the target host (the target's base path is NOT
// prefixed). A target starts in an "unknown" state that receives traffic; the
// first probe result decides up or down, after that HealthyThreshold
// consecutive successes mark it up and UnhealthyThreshold consecutive failures
// mark it down. A target marked down receives no traffic, independent of
// passive health.
type ActiveHealth struct {
	Path               string        // absolute path, e.g. "/healthz" (required)
	Interval           time.Duration // default 10s, minimum 100ms
	Timeout            time.Duration // per probe, default 2s, at most Interval
	HealthyStatuses    []int         // default 200–399
	HealthyThreshold   int           // default 2
	UnhealthyThreshold int           // default 3
}

// TLSOptions configure TLS to https targets. There is deliberately no way to
// skip certificate verification.
type TLSOptions struct {
	// CAFile is a PEM bundle of trusted roots. When set it REPLACES the system
	// roots (pinning to a private CA should not also trust every public CA).
	CAFile string
	// ServerName overrides the name sent in SNI and verified against the
	// certificate (useful when targets are addressed by IP). Applies to every
	// https target of the upstream.
	ServerName string
	// CertFile and KeyFile (PEM, both or neither) hold the client certificate
	// for mutual TLS. The files are re-read when they change (checked at most
	// every 10 seconds, on new connections), so rotation needs no restart.
	CertFile, KeyFile string
	// MinVersion is tls.VersionTLS12 (default) or tls.VersionTLS13.
	MinVersion uint16
}

// Validate checks o without building a pool (it does read the TLS files).
func (o Options) Validate() error {
	_, err := compile(&o)
	return err
}

// compiled is the validated, defaulted form of Options.
type compiled struct {
	name                  string
	targets               []*target
	leastOutstanding      bool
	connectTimeout        time.Duration
	responseHeaderTimeout time.Duration
	overallTimeout        time.Duration // <0: none
	retries               int
	maxFailures           int // <=0: passive health off
	ejectFor              time.Duration
	count5xx              bool
	active                *activeConfig
	tls                   *tls.Config
	certs                 *certReloader
	h2c                   bool
	maxIdle               int
	anyHTTPS, anyHTTP     bool
}

type activeConfig struct {
	path               string
	interval, timeout  time.Duration
	statuses           [10]uint64 // bitset over 0..639
	healthyThreshold   int
	unhealthyThreshold int
}

func (a *activeConfig) healthyStatus(code int) bool {
	if code < 0 || code >= 640 {
		return false
	}
	return a.statuses[code/64]&(1<<(uint(code)%64)) != 0
}

// fieldErrs collects validation errors with field paths.
type fieldErrs []error

func (f *fieldErrs) add(field, format string, args ...any) {
	*f = append(*f, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func compile(o *Options) (*compiled, error) {
	var errs fieldErrs
	c := &compiled{name: o.Name}

	if err := validName(o.Name); err != nil {
		errs.add("name", "%v", err)
	}

	switch {
	case len(o.Targets) == 0:
		errs.add("targets", "at least one target is required")
	case len(o.Targets) > MaxTargets:
		errs.add("targets", "%d targets, at most %d allowed", len(o.Targets), MaxTargets)
	default:
		seen := make(map[string]int, len(o.Targets))
		for i, tg := range o.Targets {
			field := "targets[" + strconv.Itoa(i) + "]"
			t, err := parseTarget(tg.URL)
			if err != nil {
				errs.add(field+".url", "%v", err)
				continue
			}
			if j, dup := seen[t.label]; dup {
				errs.add(field+".url", "duplicates targets[%d] (%s)", j, t.label)
				continue
			}
			seen[t.label] = i
			switch {
			case tg.Weight == 0:
				t.weight = 1
			case tg.Weight < 0 || tg.Weight > MaxWeight:
				errs.add(field+".weight", "%d out of range (1..%d)", tg.Weight, MaxWeight)
				continue
			default:
				t.weight = int64(tg.Weight)
			}
			t.index = len(c.targets)
			if t.https {
				c.anyHTTPS = true
			} else {
				c.anyHTTP = true
			}
			c.targets = append(c.targets, t)
		}
	}

	switch o.Balancing {
	case "", RoundRobin:
	case LeastOutstanding:
		c.leastOutstanding = true
	default:
		errs.add("balancing", "%q not allowed (%s, %s)", o.Balancing, RoundRobin, LeastOutstanding)
	}

	c.connectTimeout = durationOr(&errs, "connect_timeout", o.ConnectTimeout, DefaultConnectTimeout, false)
	c.responseHeaderTimeout = durationOr(&errs, "response_header_timeout", o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout, false)
	c.overallTimeout = durationOr(&errs, "overall_timeout", o.OverallTimeout, DefaultOverallTimeout, true)

	switch {
	case o.Retries < 0:
		c.retries = 0
	case o.Retries == 0:
		c.retries = DefaultRetries
	case o.Retries > MaxRetries:
		errs.add("retries", "%d exceeds the maximum of %d", o.Retries, MaxRetries)
	default:
		c.retries = o.Retries
	}

	ph := o.PassiveHealth
	switch {
	case ph.MaxFailures < 0:
		c.maxFailures = 0
	case ph.MaxFailures == 0:
		c.maxFailures = DefaultMaxFailures
	case ph.MaxFailures > 1000:
		errs.add("passive_health.max_failures", "%d exceeds the maximum of 1000", ph.MaxFailures)
	default:
		c.maxFailures = ph.MaxFailures
	}
	c.ejectFor = durationOr(&errs, "passive_health.eject_for", ph.EjectFor, DefaultEjectFor, false)
	c.count5xx = ph.Count5xx

	if o.ActiveHealth != nil {
		c.active = compileActive(&errs, o.ActiveHealth)
	}

	switch {
	case o.MaxIdleConnsPerHost == 0:
		c.maxIdle = DefaultMaxIdleConnsPerHost
	case o.MaxIdleConnsPerHost < 0 || o.MaxIdleConnsPerHost > 65536:
		errs.add("max_idle_conns_per_host", "%d out of range (1..65536)", o.MaxIdleConnsPerHost)
	default:
		c.maxIdle = o.MaxIdleConnsPerHost
	}

	c.h2c = o.H2C
	if o.H2C && !c.anyHTTP && len(c.targets) > 0 {
		errs.add("h2c", "set but no target is http:// (h2c applies to cleartext targets only)")
	}

	if o.TLS != nil && !c.anyHTTPS && len(c.targets) > 0 {
		errs.add("tls", "set but no target is https://")
	}
	if c.anyHTTPS || o.TLS != nil {
		c.tls, c.certs = buildTLS(o.TLS, &errs)
	}

	if len(errs) > 0 {
		name := o.Name
		if name == "" {
			name = "(unnamed)"
		}
		return nil, fmt.Errorf("upstream %q: %w", name, errors.Join(errs...))
	}
	return c, nil
}

func durationOr(errs *fieldErrs, field string, d, def time.Duration, negativeDisables bool) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0 && negativeDisables:
		return -1
	case d < 0:
		errs.add(field, "must not be negative (%s)", d)
		return def
	case d > 24*time.Hour:
		errs.add(field, "%s exceeds the maximum of 24h", d)
		return def
	}
	return d
}

func compileActive(errs *fieldErrs, a *ActiveHealth) *activeConfig {
	ac := &activeConfig{path: a.Path}
	switch {
	case a.Path == "":
		errs.add("active_health.path", "required (e.g. /healthz)")
	case a.Path[0] != '/':
		errs.add("active_health.path", "%q must start with /", a.Path)
	case len(a.Path) > maxURLLen:
		errs.add("active_health.path", "longer than %d bytes", maxURLLen)
	default:
		if u, err := url.ParseRequestURI(a.Path); err != nil || u.Host != "" || u.Fragment != "" || strings.ContainsAny(a.Path, " \t\r\n\x00#") {
			errs.add("active_health.path", "%q is not a valid absolute path", a.Path)
		}
	}
	ac.interval = a.Interval
	if ac.interval == 0 {
		ac.interval = DefaultHealthInterval
	}
	if ac.interval < minHealthInterval || ac.interval > 24*time.Hour {
		errs.add("active_health.interval", "%s out of range (%s..24h)", a.Interval, minHealthInterval)
	}
	ac.timeout = a.Timeout
	if ac.timeout == 0 {
		ac.timeout = min(DefaultHealthTimeout, ac.interval)
	}
	if ac.timeout < 0 || ac.timeout > ac.interval {
		errs.add("active_health.timeout", "%s out of range (0..interval %s]", a.Timeout, ac.interval)
	}
	if len(a.HealthyStatuses) == 0 {
		for code := 200; code < 400; code++ {
			ac.statuses[code/64] |= 1 << (uint(code) % 64)
		}
	}
	for i, code := range a.HealthyStatuses {
		if code < 100 || code > 599 {
			errs.add("active_health.healthy_statuses["+strconv.Itoa(i)+"]", "%d is not an HTTP status (100..599)", code)
			continue
		}
		ac.statuses[code/64] |= 1 << (uint(code) % 64)
	}
	ac.healthyThreshold = threshold(errs, "active_health.healthy_threshold", a.HealthyThreshold, DefaultHealthyThreshold)
	ac.unhealthyThreshold = threshold(errs, "active_health.unhealthy_threshold", a.UnhealthyThreshold, DefaultUnhealthyThreshold)
	return ac
}

func threshold(errs *fieldErrs, field string, v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0 || v > 100:
		errs.add(field, "%d out of range (1..100)", v)
		return def
	}
	return v
}

func validName(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%q: only letters, digits, '_', '-' and '.' are allowed", s)
		}
	}
	return nil
}

// urlErrText describes a url.Parse error without quoting the input, which
// may hold credentials.
func urlErrText(err error) string {
	var ee url.EscapeError
	var he url.InvalidHostError
	switch {
	case errors.As(err, &ee):
		return "invalid percent-encoding"
	case errors.As(err, &he):
		return "invalid character in host"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if msg := err.Error(); !strings.ContainsAny(msg, `"'`) {
		return msg
	}
	return "malformed (want scheme://host[:port][/base])"
}

// parseTarget validates a target URL and precomputes everything the hot path
// needs. Errors never echo the raw URL back (it could hold credentials).
func parseTarget(raw string) (*target, error) {
	if raw == "" {
		return nil, errors.New("required (e.g. http://10.0.0.1:8080)")
	}
	if len(raw) > maxURLLen {
		return nil, fmt.Errorf("longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid URL: %s", urlErrText(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return nil, errors.New("missing scheme (http, https)")
		}
		return nil, fmt.Errorf("scheme %q not allowed (http, https)", u.Scheme)
	}
	if u.User != nil {
		return nil, errors.New("credentials in the URL are not allowed (they would leak into logs and metrics; set an Authorization header instead)")
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("missing host (want scheme://host:port[/base])")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, errors.New("query not allowed")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, errors.New("fragment not allowed")
	}
	hostname := strings.ToLower(u.Hostname())
	if hostname == "" {
		return nil, errors.New("missing host name")
	}
	if strings.ContainsAny(hostname, "%") {
		return nil, errors.New("IPv6 zone identifiers are not supported")
	}
	if net.ParseIP(hostname) == nil && validServerName(hostname) != nil {
		return nil, errors.New("host is neither an IP address nor a DNS name")
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return nil, errors.New("empty port")
		}
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("port %q out of range (1..65535)", port)
	}
	t := &target{
		scheme: u.Scheme,
		https:  u.Scheme == "https",
		host:   net.JoinHostPort(hostname, port),
	}
	esc := u.EscapedPath()
	if esc != "" && esc != "/" {
		if esc[0] != '/' {
			return nil, errors.New("base path must start with /")
		}
		esc = strings.TrimSuffix(esc, "/")
		dec := strings.TrimSuffix(u.Path, "/")
		for _, seg := range strings.Split(esc[1:], "/") {
			if seg == "" {
				return nil, errors.New("base path must not contain empty segments (//)")
			}
			if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") {
				return nil, errors.New("base path must not contain dot segments")
			}
		}
		if strings.ContainsAny(dec, "\x00\\") || strings.Contains(strings.ToLower(esc), "%2f") {
			return nil, errors.New("base path must not contain NUL, backslash or encoded slash")
		}
		t.basePath = dec
		t.baseEsc = esc
		// RawPath is needed only when the escaping differs from the default
		// one net/url derives from the decoded path.
		t.baseNeedsRaw = (&url.URL{Path: dec}).EscapedPath() != esc
	}
	t.label = t.scheme + "://" + t.host + esc
	if esc == "/" {
		t.label = t.scheme + "://" + t.host
	}
	return t, nil
}
