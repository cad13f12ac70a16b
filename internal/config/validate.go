package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

type validator struct{ errs Errors }

func (v *validator) errf(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	nameRE       = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	methodRE     = regexp.MustCompile(`^[A-Z]{1,20}$`)
	hostRE       = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	scopeRE      = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
)

func validate(c *Config) Errors {
	v := &validator{}
	if c.Version != 1 {
		v.errf("version", "must be 1 (got %d)", c.Version)
	}
	v.server(c)
	v.admin(c)
	v.accessLog(c)
	for i, p := range c.Identity.Strip {
		if !headerNameRE.MatchString(strings.TrimSuffix(p, "*")) {
			v.errf(fmt.Sprintf("identity_headers.strip[%d]", i), "%q is not a header name or prefix pattern like X-User-*", p)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Issuers)) {
		v.issuer(c, name, c.Issuers[name])
	}
	for _, name := range slices.Sorted(maps.Keys(c.Intro)) {
		v.introspection(name, c.Intro[name])
	}
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		v.upstream(name, c.Upstreams[name])
	}
	v.routes(c)
	v.authServer(c)
	v.store(c)
	v.revocation(c)
	return v.errs
}

// revocationKeyRE bounds the Redis key: printable, no spaces, so it reads
// the same in redis-cli and in logs.
var revocationKeyRE = regexp.MustCompile(`^[A-Za-z0-9:_.{}-]{1,128}$`)

func (v *validator) revocation(c *Config) {
	r := c.Revocation
	if r == nil {
		return
	}
	if r.Issuer != "" {
		if u := v.url("revocation.issuer", r.Issuer, false); u != nil && c.AuthServer != nil && c.AuthServer.Enabled && r.Issuer != c.AuthServer.Issuer {
			v.errf("revocation.issuer", "%q differs from authorization_server.issuer %q: this node's own revocations would not apply to its own tokens", r.Issuer, c.AuthServer.Issuer)
		}
	}
	rd := r.Redis
	if rd == nil {
		return
	}
	p := "revocation.redis"
	if rd.Address == "" {
		v.errf(p+".address", "required (host:port, example: 127.0.0.1:6379)")
	} else {
		v.hostPort(p+".address", rd.Address)
	}
	if rd.DB < 0 || rd.DB > 15 {
		v.errf(p+".db", "%d is out of range (allowed: 0 to 15)", rd.DB)
	}
	if !revocationKeyRE.MatchString(rd.Key) {
		v.errf(p+".key", "%q is not allowed (1–128 of A-Z a-z 0-9 : _ . - { })", rd.Key)
	}
	v.duration(p+".poll_interval", rd.PollInterval, time.Second, time.Hour)
}

func (v *validator) duration(path string, d Duration, lo, hi time.Duration) {
	if d.D() < lo || d.D() > hi {
		v.errf(path, "%s is out of range (allowed: %s to %s)", d, lo, hi)
	}
}

func (v *validator) size(path string, b ByteSize, lo, hi int64) {
	if int64(b) < lo || int64(b) > hi {
		v.errf(path, "%d bytes is out of range (allowed: %d to %d bytes)", b, lo, hi)
	}
}

func (v *validator) hostPort(path, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		v.errf(path, "%q is not host:port (example: 127.0.0.1:8080 or :8443)", addr)
	}
}

func (v *validator) server(c *Config) {
	s := &c.Server
	if len(s.Listeners) == 0 {
		v.errf("server.listeners", "at least one listener is required (example: - address: 127.0.0.1:8080)")
	}
	names := map[string]bool{}
	addrs := map[string]string{}
	for i, l := range s.Listeners {
		p := fmt.Sprintf("server.listeners[%d]", i)
		if l == nil {
			v.errf(p, "empty listener")
			continue
		}
		if names[l.Name] {
			v.errf(p+".name", "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		if l.Address == "" {
			v.errf(p+".address", "required (example: 127.0.0.1:8080)")
		} else {
			v.hostPort(p+".address", l.Address)
			if prev, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
				v.errf(p+".address", "%q is already used by listener %q", l.Address, prev)
			}
			addrs[l.Address] = l.Name
		}
		if t := l.TLS; t != nil {
			if len(t.Certificates) == 0 {
				v.errf(p+".tls.certificates", "at least one certificate is required")
			}
			for j, cp := range t.Certificates {
				cpp := fmt.Sprintf("%s.tls.certificates[%d]", p, j)
				if cp.CertFile == "" {
					v.errf(cpp+".cert_file", "required")
				}
				if cp.KeyFile == "" {
					v.errf(cpp+".key_file", "required")
				}
			}
			if !slices.Contains([]string{"none", "request", "require"}, t.ClientAuth) {
				v.errf(p+".tls.client_auth", "%q is not allowed (allowed: none, request, require)", t.ClientAuth)
			} else if t.ClientAuth != "none" && t.ClientCAFile == "" {
				v.errf(p+".tls.client_ca_file", "required when client_auth is %s", t.ClientAuth)
			}
			if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
				v.errf(p+".tls.min_version", "%q is not allowed (allowed: \"1.2\", \"1.3\")", t.MinVersion)
			}
			v.duration(p+".tls.reload_interval", t.ReloadInterval, time.Second, 24*time.Hour)
		}
		if l.RedirectFrom != "" {
			if l.TLS == nil {
				v.errf(p+".redirect_http_from", "only allowed on a listener with tls")
			} else {
				v.hostPort(p+".redirect_http_from", l.RedirectFrom)
			}
		}
		if l.HSTS != nil {
			if l.TLS == nil {
				v.errf(p+".hsts", "only allowed on a listener with tls (browsers ignore HSTS over plain HTTP)")
			}
			v.duration(p+".hsts.max_age", l.HSTS.MaxAge, time.Second, 2*365*24*time.Hour)
		}
	}
	v.duration("server.read_header_timeout", s.ReadHeaderTimeout, 100*time.Millisecond, 5*time.Minute)
	v.duration("server.read_timeout", s.ReadTimeout, 100*time.Millisecond, 24*time.Hour)
	v.duration("server.idle_timeout", s.IdleTimeout, time.Second, 24*time.Hour)
	v.duration("server.shutdown_timeout", s.ShutdownTimeout, 0, 10*time.Minute)
	v.size("server.max_header_bytes", s.MaxHeaderBytes, 1<<10, 1<<20)
	v.size("server.max_body_bytes", s.MaxBodyBytes, 0, 1<<40)
	if s.MaxConnections < 1 || s.MaxConnections > 1_000_000 {
		v.errf("server.max_connections", "%d is out of range (allowed: 1 to 1000000)", s.MaxConnections)
	}
	if s.MaxConnectionsPerIP < 1 || s.MaxConnectionsPerIP > s.MaxConnections {
		v.errf("server.max_connections_per_ip", "%d is out of range (allowed: 1 to max_connections)", s.MaxConnectionsPerIP)
	}
	if n := s.HTTP2.MaxConcurrentStreams; n < 1 || n > 10000 {
		v.errf("server.http2.max_concurrent_streams", "%d is out of range (allowed: 1 to 10000)", n)
	}
	for i, cidr := range s.TrustedProxies {
		if _, err := ParsePrefix(cidr); err != nil {
			v.errf(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is not an IP address or CIDR (example: 10.0.0.0/8)", cidr)
		}
	}
}

// ParsePrefix parses a CIDR or a single address (as a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func (v *validator) admin(c *Config) {
	if c.Admin.Address == "off" {
		return
	}
	v.hostPort("admin.address", c.Admin.Address)
	host, _, err := net.SplitHostPort(c.Admin.Address)
	if err == nil && !isLoopbackHost(host) && c.Admin.Token == "" {
		v.errf("admin.address", "%q is not a loopback address; a non-loopback admin listener requires admin.token", c.Admin.Address)
	}
	if c.Admin.Token != "" && len(c.Admin.Token) < 32 {
		v.errf("admin.token", "too short (at least 32 characters; generate one with: openssl rand -hex 32)")
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

func (v *validator) accessLog(c *Config) {
	for i, p := range c.AccessLog.SensitiveQueryParams {
		if p == "" {
			v.errf(fmt.Sprintf("access_log.sensitive_query_params[%d]", i), "empty name")
		}
	}
}

var allowedAlgs = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "HS256", "HS384", "HS512"}

func (v *validator) issuer(c *Config, name string, is *Issuer) {
	p := "issuers." + name
	if !nameRE.MatchString(name) {
		v.errf(p, "issuer name %q: use letters, digits, _ . - (up to 63)", name)
	}
	if is == nil {
		v.errf(p, "empty issuer")
		return
	}
	sources := 0
	for _, s := range []bool{is.Builtin, is.JWKSURL != "", is.JWKSFile != "", is.HMACSecret != ""} {
		if s {
			sources++
		}
	}
	if sources != 1 {
		v.errf(p, "exactly one key source is required (allowed: builtin, jwks_url, jwks_file, hmac_secret)")
	}
	if is.Builtin {
		if c.AuthServer == nil || !c.AuthServer.Enabled {
			v.errf(p+".builtin", "requires authorization_server.enabled: true")
		}
		if is.Issuer != "" {
			v.errf(p+".issuer", "must be empty for the builtin issuer (it is authorization_server.issuer)")
		}
	} else if is.Issuer == "" {
		v.errf(p+".issuer", "required: the exact iss value tokens carry")
	}
	if is.JWKSURL != "" {
		v.url(p+".jwks_url", is.JWKSURL, true)
	}
	hs := false
	for i, a := range is.Algorithms {
		ap := fmt.Sprintf("%s.algorithms[%d]", p, i)
		switch {
		case strings.EqualFold(a, "none"):
			v.errf(ap, "\"none\" is never allowed")
		case !slices.Contains(allowedAlgs, a):
			v.errf(ap, "%q is not supported (allowed: %s)", a, strings.Join(allowedAlgs, ", "))
		case strings.HasPrefix(a, "HS"):
			hs = true
		}
	}
	if is.HMACSecret != "" {
		if len(is.HMACSecret) < 32 {
			v.errf(p+".hmac_secret", "too short (at least 32 bytes)")
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = []string{"HS256"}
		}
		for i, a := range is.Algorithms {
			if !strings.HasPrefix(a, "HS") {
				v.errf(fmt.Sprintf("%s.algorithms[%d]", p, i), "%q cannot be used with hmac_secret (allowed: HS256, HS384, HS512)", a)
			}
		}
	} else if hs {
		v.errf(p+".algorithms", "HS256/HS384/HS512 require hmac_secret and are never used with public keys")
	}
	if len(is.Audiences) == 0 {
		v.errf(p+".audiences", "at least one audience is required (RFC 8725 §3.9: a token must be checked against its intended audience)")
	}
	v.duration(p+".leeway", is.Leeway, 0, 5*time.Minute)
	v.size(p+".max_token_bytes", is.MaxTokenBytes, 512, 64<<10)
	v.duration(p+".jwks.refresh_min", is.JWKS.RefreshMin, 10*time.Second, 24*time.Hour)
	v.duration(p+".jwks.refresh_max", is.JWKS.RefreshMax, is.JWKS.RefreshMin.D(), 7*24*time.Hour)
	v.duration(p+".jwks.stale_grace", is.JWKS.StaleGrace, 0, 30*24*time.Hour)
	v.duration(p+".jwks.fetch_timeout", is.JWKS.FetchTimeout, 100*time.Millisecond, time.Minute)
	v.size(p+".jwks.max_bytes", is.JWKS.MaxBytes, 1<<10, 16<<20)
}

// url checks an http(s) URL; plain http only for loopback hosts.
func (v *validator) url(path, raw string, requireTLS bool) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		v.errf(path, "%q is not an absolute http(s) URL", raw)
		return nil
	}
	if u.User != nil {
		v.errf(path, "credentials in the URL are not allowed; use the dedicated secret fields")
		return nil
	}
	if u.Fragment != "" {
		v.errf(path, "a fragment is not allowed")
	}
	if requireTLS && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		v.errf(path, "plain http is only allowed to loopback hosts; use https")
	}
	return u
}

func (v *validator) introspection(name string, in *Introspection) {
	p := "introspection." + name
	if in == nil {
		v.errf(p, "empty")
		return
	}
	if !nameRE.MatchString(name) {
		v.errf(p, "name %q: use letters, digits, _ . - (up to 63)", name)
	}
	if in.Endpoint == "" {
		v.errf(p+".endpoint", "required")
	} else {
		v.url(p+".endpoint", in.Endpoint, true)
	}
	if in.ClientID == "" {
		v.errf(p+".client_id", "required: the endpoint must authenticate Sekisho (RFC 7662 §2.1)")
	}
	v.duration(p+".timeout", in.Timeout, 100*time.Millisecond, time.Minute)
	v.duration(p+".positive_ttl", in.PositiveTTL, 0, time.Hour)
	v.duration(p+".negative_ttl", in.NegativeTTL, 0, time.Hour)
}

func (v *validator) upstream(name string, u *Upstream) {
	p := "upstreams." + name
	if !nameRE.MatchString(name) {
		v.errf(p, "upstream name %q: use letters, digits, _ . - (up to 63)", name)
	}
	if u == nil {
		v.errf(p, "empty upstream")
		return
	}
	if len(u.Targets) == 0 {
		v.errf(p+".targets", "at least one target is required (example: - url: http://127.0.0.1:9000)")
	}
	hasHTTPS := false
	for i, t := range u.Targets {
		tp := fmt.Sprintf("%s.targets[%d]", p, i)
		uu, err := url.Parse(t.URL)
		switch {
		case t.URL == "":
			v.errf(tp+".url", "required")
		case err != nil || uu.Host == "":
			v.errf(tp+".url", "%q is not an absolute URL (example: http://10.0.0.5:8080)", t.URL)
		case uu.Scheme != "http" && uu.Scheme != "https":
			v.errf(tp+".url", "scheme %q not allowed (allowed: http, https)", uu.Scheme)
		case uu.User != nil:
			v.errf(tp+".url", "credentials in the URL are not allowed")
		case uu.RawQuery != "" || uu.Fragment != "":
			v.errf(tp+".url", "query and fragment are not allowed in a target URL")
		default:
			if uu.Scheme == "https" {
				hasHTTPS = true
			}
			if uu.Scheme == "https" && u.H2C {
				v.errf(p+".h2c", "h2c is cleartext HTTP/2 and cannot be used with https target %q", t.URL)
			}
		}
		if t.Weight < 1 || t.Weight > 1000 {
			v.errf(tp+".weight", "%d is out of range (allowed: 1 to 1000)", t.Weight)
		}
	}
	if u.Balancing != "round_robin" && u.Balancing != "least_outstanding" {
		v.errf(p+".balancing", "%q is not allowed (allowed: round_robin, least_outstanding)", u.Balancing)
	}
	v.duration(p+".connect_timeout", u.ConnectTimeout, 10*time.Millisecond, 5*time.Minute)
	v.duration(p+".response_header_timeout", u.ResponseHeaderTimeout, 10*time.Millisecond, time.Hour)
	v.duration(p+".timeout", u.Timeout, 10*time.Millisecond, 24*time.Hour)
	if *u.Retries < 0 || *u.Retries > 5 {
		v.errf(p+".retries", "%d is out of range (allowed: 0 to 5)", *u.Retries)
	}
	if ph := u.PassiveHealth; ph.MaxFailures < 0 || ph.MaxFailures > 1000 {
		v.errf(p+".passive_health.max_failures", "%d is out of range (allowed: 0 to 1000; 0 disables)", ph.MaxFailures)
	} else {
		v.duration(p+".passive_health.eject_for", ph.EjectFor, time.Second, time.Hour)
	}
	if a := u.ActiveHealth; a != nil {
		if !strings.HasPrefix(a.Path, "/") {
			v.errf(p+".active_health.path", "must start with / (example: /healthz)")
		}
		v.duration(p+".active_health.interval", a.Interval, 100*time.Millisecond, time.Hour)
		v.duration(p+".active_health.timeout", a.Timeout, 10*time.Millisecond, a.Interval.D())
		for i, st := range a.HealthyStatuses {
			if st < 100 || st > 599 {
				v.errf(fmt.Sprintf("%s.active_health.healthy_statuses[%d]", p, i), "%d is not an HTTP status", st)
			}
		}
		if a.HealthyThreshold < 1 || a.HealthyThreshold > 100 {
			v.errf(p+".active_health.healthy_threshold", "%d is out of range (allowed: 1 to 100)", a.HealthyThreshold)
		}
		if a.UnhealthyThreshold < 1 || a.UnhealthyThreshold > 100 {
			v.errf(p+".active_health.unhealthy_threshold", "%d is out of range (allowed: 1 to 100)", a.UnhealthyThreshold)
		}
	}
	if u.TLS != nil {
		if !hasHTTPS {
			v.errf(p+".tls", "set but no target uses https")
		}
		if (u.TLS.CertFile == "") != (u.TLS.KeyFile == "") {
			v.errf(p+".tls", "cert_file and key_file go together")
		}
		if m := u.TLS.MinVersion; m != "" && m != "1.2" && m != "1.3" {
			v.errf(p+".tls.min_version", "%q is not allowed (allowed: \"1.2\", \"1.3\")", m)
		}
	}
	if u.MaxIdleConnsPerHost < 1 || u.MaxIdleConnsPerHost > 100000 {
		v.errf(p+".max_idle_conns_per_host", "%d is out of range (allowed: 1 to 100000)", u.MaxIdleConnsPerHost)
	}
}

var forwardSources = regexp.MustCompile(`^(sub|client_id|scope|iss|claims\.[A-Za-z0-9_:-]{1,64})$`)

func (v *validator) routes(c *Config) {
	if len(c.Routes) == 0 {
		v.errf("routes", "at least one route is required")
	}
	names := map[string]int{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r == nil {
			v.errf(p, "empty route")
			continue
		}
		if r.Name == "" {
			v.errf(p+".name", "required (a short name used in logs and metrics)")
		} else if !nameRE.MatchString(r.Name) {
			v.errf(p+".name", "%q: use letters, digits, _ . - (up to 63)", r.Name)
		} else if j, dup := names[r.Name]; dup {
			v.errf(p+".name", "duplicate route name %q (also routes[%d])", r.Name, j)
		} else {
			names[r.Name] = i
		}
		m := r.Match
		if !strings.HasPrefix(m.Path, "/") {
			v.errf(p+".match.path", "%q must start with /", m.Path)
		} else if strings.Contains(m.Path, "//") || strings.Contains(m.Path, "/./") || strings.Contains(m.Path, "/../") || strings.HasSuffix(m.Path, "/..") || strings.ContainsAny(m.Path, "?#%\\") {
			v.errf(p+".match.path", "%q is not a normalized path (no //, dot segments, %%, ?, #, \\)", m.Path)
		}
		if m.PathType != "prefix" && m.PathType != "exact" {
			v.errf(p+".match.path_type", "%q is not allowed (allowed: prefix, exact)", m.PathType)
		}
		for j, meth := range m.Methods {
			if !methodRE.MatchString(meth) {
				v.errf(fmt.Sprintf("%s.match.methods[%d]", p, j), "%q is not an HTTP method in upper case (example: GET)", meth)
			}
		}
		for j, h := range m.Hosts {
			if !hostRE.MatchString(h) {
				v.errf(fmt.Sprintf("%s.match.hosts[%d]", p, j), "%q is not a lower-case host name or *.wildcard (no port)", h)
			}
		}
		if r.Upstream == "" {
			v.errf(p+".upstream", "required (one of: %s)", strings.Join(slices.Sorted(maps.Keys(c.Upstreams)), ", "))
		} else if _, ok := c.Upstreams[r.Upstream]; !ok {
			v.errf(p+".upstream", "unknown upstream %q (defined: %s)", r.Upstream, strings.Join(slices.Sorted(maps.Keys(c.Upstreams)), ", "))
		}
		if r.StripPrefix && r.RewritePrefix != "" {
			v.errf(p+".rewrite_prefix", "cannot be combined with strip_prefix (rewrite_prefix already replaces the matched prefix)")
		}
		if (r.StripPrefix || r.RewritePrefix != "") && m.PathType != "prefix" {
			v.errf(p+".strip_prefix", "only for path_type prefix")
		}
		if r.RewritePrefix != "" && (!strings.HasPrefix(r.RewritePrefix, "/") || strings.ContainsAny(r.RewritePrefix, "?#%\\") || strings.Contains(r.RewritePrefix, "..")) {
			v.errf(p+".rewrite_prefix", "%q must be a clean path starting with /", r.RewritePrefix)
		}
		if r.HostHeader != "upstream" && r.HostHeader != "preserve" && !hostRE.MatchString(strings.Split(r.HostHeader, ":")[0]) {
			v.errf(p+".host_header", "%q is not allowed (allowed: upstream, preserve, or a host name)", r.HostHeader)
		}
		v.size(p+".max_body_bytes", r.MaxBodyBytes, 0, 1<<40)
		v.auth(c, p+".auth", r.Auth, 0)
		if r.Authorize != nil {
			if r.Auth != nil && r.Auth.Public {
				v.errf(p+".authorize", "a public route has no identity to authorize; declare a token auth kind")
			}
			v.scopes(p+".authorize.scopes", r.Authorize.Scopes)
			for meth, rule := range r.Authorize.Methods {
				if !methodRE.MatchString(meth) {
					v.errf(p+".authorize.methods."+meth, "%q is not an HTTP method in upper case", meth)
				}
				v.scopes(p+".authorize.methods."+meth, rule)
			}
		}
		if f := r.Forward; f != nil {
			if r.Auth != nil && r.Auth.Public && (len(f.Headers) > 0 || f.SignedIdentity) {
				v.errf(p+".forward", "a public route has no identity to forward")
			}
			for h, src := range f.Headers {
				if !headerNameRE.MatchString(h) {
					v.errf(p+".forward.headers."+h, "%q is not a header name", h)
				}
				if !forwardSources.MatchString(src) {
					v.errf(p+".forward.headers."+h, "%q is not allowed (allowed: sub, client_id, scope, iss, claims.NAME)", src)
				}
			}
		}
		if h := r.Headers; h != nil {
			for _, ops := range []struct {
				name string
				o    HeaderOps
			}{{"request", h.Request}, {"response", h.Response}} {
				for k := range ops.o.Set {
					if !headerNameRE.MatchString(k) || hopByHop(k) {
						v.errf(p+".headers."+ops.name+".set."+k, "%q cannot be set (not a header name, or hop-by-hop)", k)
					}
				}
				for j, k := range ops.o.Remove {
					if !headerNameRE.MatchString(k) {
						v.errf(fmt.Sprintf("%s.headers.%s.remove[%d]", p, ops.name, j), "%q is not a header name", k)
					}
				}
			}
		}
	}
}

func hopByHop(h string) bool {
	switch strings.ToLower(h) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization", "content-length", "host":
		return true
	}
	return false
}

func (v *validator) scopes(path string, r ScopeRule) {
	// An empty list written out requires nothing, which is rarely what was
	// meant (e.g. a template that rendered no scopes): refuse it.
	for _, l := range []struct {
		name string
		list []string
	}{{"all_of", r.AllOf}, {"any_of", r.AnyOf}} {
		if l.list != nil && len(l.list) == 0 {
			v.errf(path+"."+l.name, "empty list: it would require nothing (list at least one scope, or leave %s out)", l.name)
		}
	}
	for i, s := range append(append([]string{}, r.AllOf...), r.AnyOf...) {
		if !scopeRE.MatchString(s) {
			v.errf(path, "scope %d %q is not a valid scope token (RFC 6749 §3.3)", i, s)
		}
	}
}

func (v *validator) auth(c *Config, p string, a *Auth, depth int) {
	if a == nil {
		if depth == 0 {
			v.errf(p, "missing: every route must declare auth explicitly (allowed: public, jwt, apikey, introspection, any_of)")
		} else {
			v.errf(p, "empty entry")
		}
		return
	}
	if a.Invalid != "" {
		v.errf(p, "%q is not an auth kind (allowed: public, or a mapping with jwt, apikey, introspection or any_of)", a.Invalid)
		return
	}
	kinds := a.Kinds()
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			v.errf(p, "no auth kind given (allowed: public, jwt, apikey, introspection, any_of)")
		} else {
			v.errf(p, "set exactly one of %s; to accept several, list them under any_of", strings.Join(kinds, ", "))
		}
		return
	}
	if a.JWT != nil {
		if len(a.JWT.Issuers) == 0 {
			v.errf(p+".jwt.issuers", "at least one issuer name is required (defined: %s)", strings.Join(slices.Sorted(maps.Keys(c.Issuers)), ", "))
		}
		for i, n := range a.JWT.Issuers {
			if _, ok := c.Issuers[n]; !ok {
				v.errf(fmt.Sprintf("%s.jwt.issuers[%d]", p, i), "unknown issuer %q (defined: %s)", n, strings.Join(slices.Sorted(maps.Keys(c.Issuers)), ", "))
			}
		}
	}
	if a.APIKey != nil && a.APIKey.Header != "" && !headerNameRE.MatchString(a.APIKey.Header) {
		v.errf(p+".apikey.header", "%q is not a header name", a.APIKey.Header)
	}
	if a.Introspection != nil {
		if _, ok := c.Intro[a.Introspection.Endpoint]; !ok {
			v.errf(p+".introspection.endpoint", "unknown introspection endpoint %q (defined: %s)", a.Introspection.Endpoint, strings.Join(slices.Sorted(maps.Keys(c.Intro)), ", "))
		}
	}
	if a.AnyOf != nil {
		if depth > 0 {
			v.errf(p, "any_of cannot be nested")
			return
		}
		if len(a.AnyOf) < 2 {
			v.errf(p+".any_of", "list at least two kinds (a single kind needs no any_of)")
		}
		for i, sub := range a.AnyOf {
			sp := fmt.Sprintf("%s.any_of[%d]", p, i)
			if sub != nil && sub.Public {
				v.errf(sp, "public inside any_of would make the route public; declare auth: public instead")
				continue
			}
			v.auth(c, sp, sub, depth+1)
		}
	}
}

func (v *validator) authServer(c *Config) {
	as := c.AuthServer
	if as == nil || !as.Enabled {
		return
	}
	p := "authorization_server"
	if as.Issuer == "" {
		v.errf(p+".issuer", "required: the public base URL of this server (example: https://auth.example.com)")
	} else if u := v.url(p+".issuer", as.Issuer, true); u != nil && (u.RawQuery != "" || strings.HasSuffix(u.Path, "/")) {
		v.errf(p+".issuer", "must have no query and no trailing slash (OIDC Discovery §3)")
	}
	if as.MasterKey == "" {
		v.errf(p+".master_key", "required (32 random bytes, base64 or hex; set it from the environment: master_key: ${SEKISHO_MASTER_KEY})")
	} else if _, err := DecodeKey(as.MasterKey); err != nil {
		v.errf(p+".master_key", "%v", err)
	}
	for i, r := range c.Routes {
		if r == nil {
			continue
		}
		for _, reserved := range AuthServerPaths {
			if r.Match.Path == reserved || strings.HasPrefix(r.Match.Path, reserved+"/") || (r.Match.PathType == "prefix" && strings.HasPrefix(reserved, strings.TrimSuffix(r.Match.Path, "/")+"/") && r.Match.Path != "/") {
				v.errf(fmt.Sprintf("routes[%d].match.path", i), "%q overlaps %s, which the authorization server serves (reserved: %s)", r.Match.Path, reserved, strings.Join(AuthServerPaths, ", "))
				break
			}
		}
	}
	v.duration(p+".access_token_ttl", as.AccessTokenTTL, 30*time.Second, 24*time.Hour)
	v.duration(p+".refresh_token_ttl", as.RefreshTokenTTL, time.Minute, 365*24*time.Hour)
	v.duration(p+".code_ttl", as.CodeTTL, 5*time.Second, 60*time.Second)
	v.duration(p+".key_rotation", as.RotateEvery, time.Hour, 365*24*time.Hour)
	if !slices.Contains([]string{"ES256", "EdDSA", "RS256"}, as.SigningAlg) {
		v.errf(p+".signing_algorithm", "%q is not allowed (allowed: ES256, EdDSA, RS256)", as.SigningAlg)
	}
}

// AuthServerPaths are served by the authorization server when it is enabled,
// before any route is considered.
var AuthServerPaths = []string{"/oauth2", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"}

// DecodeKey decodes a master key given as hex or (raw or padded, std or URL)
// base64; it must hold exactly 32 bytes.
func DecodeKey(s string) ([]byte, error) {
	var b []byte
	if h, err := hex.DecodeString(s); err == nil {
		b = h
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if d, err := enc.DecodeString(s); err == nil {
				b = d
				break
			}
		}
	}
	if b == nil {
		return nil, fmt.Errorf("not hex or base64")
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("decodes to %d bytes; exactly 32 are required (generate one with: openssl rand -base64 32)", len(b))
	}
	return b, nil
}

func (v *validator) store(c *Config) {
	switch c.Store.Driver {
	case "sqlite":
		if c.Store.DSN != "" {
			v.errf("store.dsn", "only for driver postgres")
		}
	case "postgres":
		if c.Store.DSN == "" {
			v.errf("store.dsn", "required for driver postgres (example: postgres://sekisho@db:5432/sekisho?sslmode=verify-full)")
		}
	default:
		v.errf("store.driver", "%q is not allowed (allowed: sqlite, postgres)", c.Store.Driver)
	}
}
