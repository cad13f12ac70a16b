// Package config is Sekisho's declarative configuration: the YAML schema,
// strict loading, ${ENV} substitution, defaults and validation. It is data
// only; the faces compile it into runtime objects once per load.
package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Config is the whole file. Field comments state the defaults that Defaults
// applies; docs/configuration.md documents the same.
type Config struct {
	Version    int                       `yaml:"version"`  // must be 1
	DataDir    string                    `yaml:"data_dir"` // default ./sekisho-data
	Server     Server                    `yaml:"server"`
	Admin      Admin                     `yaml:"admin"`
	AccessLog  AccessLog                 `yaml:"access_log"`
	Identity   IdentityHeaders           `yaml:"identity_headers"`
	Issuers    map[string]*Issuer        `yaml:"issuers"`
	Intro      map[string]*Introspection `yaml:"introspection"`
	Upstreams  map[string]*Upstream      `yaml:"upstreams"`
	Routes     []*Route                  `yaml:"routes"`
	AuthServer *AuthServer               `yaml:"authorization_server"`
	Store      Store                     `yaml:"store"`
	Revocation *Revocation               `yaml:"revocation"`

	// File is the path the config was loaded from (not part of the YAML).
	File string `yaml:"-"`
	root *yaml.Node
}

// ErrorAt builds an Error for a field path of this config, located in its
// file, for problems found when the config is compiled (route conflicts,
// policy expressions) rather than validated.
func (c *Config) ErrorAt(path, format string, args ...any) *Error {
	e := &Error{File: c.File, Path: path, Msg: fmt.Sprintf(format, args...)}
	if c.root != nil {
		e.Line = locate(c.root, path)
	}
	return e
}

// Server configures the public listeners and connection-level protections.
type Server struct {
	Listeners           []*Listener `yaml:"listeners"`
	ReadHeaderTimeout   Duration    `yaml:"read_header_timeout"`    // default 5s
	ReadTimeout         Duration    `yaml:"read_timeout"`           // whole request incl. body; default 60s
	IdleTimeout         Duration    `yaml:"idle_timeout"`           // default 60s
	MaxHeaderBytes      ByteSize    `yaml:"max_header_bytes"`       // default 32KiB
	MaxConnections      int         `yaml:"max_connections"`        // default 10000, 0 not allowed
	MaxConnectionsPerIP int         `yaml:"max_connections_per_ip"` // default 256
	MaxBodyBytes        ByteSize    `yaml:"max_body_bytes"`         // route default; default 10MiB
	ShutdownTimeout     Duration    `yaml:"shutdown_timeout"`       // default 30s
	TrustedProxies      []string    `yaml:"trusted_proxies"`        // CIDRs whose X-Forwarded-*/Forwarded are believed
	HTTP2               HTTP2       `yaml:"http2"`
}

// HTTP2 bounds per-connection HTTP/2 resources (Rapid Reset, CVE-2023-44487).
type HTTP2 struct {
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"` // default 250
}

// Listener is one public address.
type Listener struct {
	Name    string       `yaml:"name"`
	Address string       `yaml:"address"`
	TLS     *ListenerTLS `yaml:"tls"`
	// RedirectFrom is a plain-HTTP address that redirects to this TLS listener.
	RedirectFrom string `yaml:"redirect_http_from"`
	HSTS         *HSTS  `yaml:"hsts"`
}

// ListenerTLS enables HTTPS on a listener.
type ListenerTLS struct {
	Certificates   []CertPair `yaml:"certificates"`
	ClientAuth     string     `yaml:"client_auth"`     // none (default) | request | require
	ClientCAFile   string     `yaml:"client_ca_file"`  // required with request/require
	MinVersion     string     `yaml:"min_version"`     // "1.2" (default) | "1.3"
	ReloadInterval Duration   `yaml:"reload_interval"` // default 10s
}

// CertPair is a PEM certificate chain and its key.
type CertPair struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HSTS adds Strict-Transport-Security to responses on a TLS listener.
type HSTS struct {
	MaxAge            Duration `yaml:"max_age"` // default 365 days
	IncludeSubdomains bool     `yaml:"include_subdomains"`
	Preload           bool     `yaml:"preload"`
}

// Admin is the operator listener: metrics, health, reload, admin API.
type Admin struct {
	Address string `yaml:"address"` // default 127.0.0.1:9090; "off" disables
	// Token authenticates the admin API (Authorization: Bearer). Metrics and
	// health need none. Without a token the admin API is disabled.
	Token string `yaml:"token"`
}

// AccessLog configures the JSON access log.
type AccessLog struct {
	Enabled              *bool    `yaml:"enabled"`                // default true
	Output               string   `yaml:"output"`                 // stdout (default) | stderr | file path
	SensitiveQueryParams []string `yaml:"sensitive_query_params"` // values redacted; defaults added always
	IncludeQuery         bool     `yaml:"include_query"`          // log the (redacted) query; default false
}

// IdentityHeaders lists client-supplied headers that are always stripped.
type IdentityHeaders struct {
	Strip []string `yaml:"strip"` // default X-Sekisho-*, X-User-*, X-Forwarded-User, X-Auth-*
}

// Issuer is a trusted token issuer for jwt routes.
type Issuer struct {
	Issuer        string    `yaml:"issuer"`
	Builtin       bool      `yaml:"builtin"` // the in-process authorization server
	JWKSURL       string    `yaml:"jwks_url"`
	JWKSFile      string    `yaml:"jwks_file"`
	Algorithms    []string  `yaml:"algorithms"` // default ES256, EdDSA, RS256, PS256
	HMACSecret    string    `yaml:"hmac_secret"`
	Audiences     []string  `yaml:"audiences"`
	RequiredType  string    `yaml:"required_type"`   // e.g. at+jwt
	Leeway        Duration  `yaml:"leeway"`          // default 30s, max 5m
	MaxTokenBytes ByteSize  `yaml:"max_token_bytes"` // default 8KiB
	JWKS          JWKSCache `yaml:"jwks"`
}

// JWKSCache tunes key-set fetching.
type JWKSCache struct {
	RefreshMin   Duration `yaml:"refresh_min"`   // default 1m
	RefreshMax   Duration `yaml:"refresh_max"`   // default 24h
	StaleGrace   Duration `yaml:"stale_grace"`   // default 24h
	MaxBytes     ByteSize `yaml:"max_bytes"`     // default 256KiB
	FetchTimeout Duration `yaml:"fetch_timeout"` // default 5s
}

// Introspection is an RFC 7662 endpoint for opaque tokens.
type Introspection struct {
	Endpoint     string   `yaml:"endpoint"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Timeout      Duration `yaml:"timeout"`      // default 3s
	PositiveTTL  Duration `yaml:"positive_ttl"` // default 60s
	NegativeTTL  Duration `yaml:"negative_ttl"` // default 10s
}

// Upstream is a named pool of targets.
type Upstream struct {
	Targets               []Target       `yaml:"targets"`
	Balancing             string         `yaml:"balancing"`               // round_robin (default) | least_outstanding
	ConnectTimeout        Duration       `yaml:"connect_timeout"`         // default 5s
	ResponseHeaderTimeout Duration       `yaml:"response_header_timeout"` // default 30s
	Timeout               Duration       `yaml:"timeout"`                 // overall, default 60s
	Retries               *int           `yaml:"retries"`                 // default 1, max 5
	PassiveHealth         *PassiveHealth `yaml:"passive_health"`
	ActiveHealth          *ActiveHealth  `yaml:"active_health"`
	TLS                   *UpstreamTLS   `yaml:"tls"`
	H2C                   bool           `yaml:"h2c"`
	MaxIdleConnsPerHost   int            `yaml:"max_idle_conns_per_host"` // default 256
}

// Target is one upstream server.
type Target struct {
	URL    string `yaml:"url"`
	Weight int    `yaml:"weight"` // default 1
}

// PassiveHealth ejects a target after consecutive failures.
type PassiveHealth struct {
	MaxFailures int      `yaml:"max_failures"` // default 3; 0 disables
	EjectFor    Duration `yaml:"eject_for"`    // default 30s
}

// ActiveHealth probes targets periodically.
type ActiveHealth struct {
	Path               string   `yaml:"path"`
	Interval           Duration `yaml:"interval"`            // default 10s
	Timeout            Duration `yaml:"timeout"`             // default 2s
	HealthyStatuses    []int    `yaml:"healthy_statuses"`    // default 200-399
	HealthyThreshold   int      `yaml:"healthy_threshold"`   // default 2
	UnhealthyThreshold int      `yaml:"unhealthy_threshold"` // default 3
}

// UpstreamTLS configures TLS to https targets.
type UpstreamTLS struct {
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	MinVersion string `yaml:"min_version"`
}

// Route sends matching requests to an upstream after its checks pass.
type Route struct {
	Name          string            `yaml:"name"`
	Match         Match             `yaml:"match"`
	Upstream      string            `yaml:"upstream"`
	StripPrefix   bool              `yaml:"strip_prefix"`
	RewritePrefix string            `yaml:"rewrite_prefix"`
	HostHeader    string            `yaml:"host_header"` // upstream (default) | preserve | any literal host
	MaxBodyBytes  ByteSize          `yaml:"max_body_bytes"`
	Auth          *Auth             `yaml:"auth"`
	Authorize     *Authorize        `yaml:"authorize"`
	Forward       *Forward          `yaml:"forward"`
	Headers       *HeaderTransforms `yaml:"headers"`
}

// Match selects requests.
type Match struct {
	Hosts    []string `yaml:"hosts"`
	Path     string   `yaml:"path"`
	PathType string   `yaml:"path_type"` // prefix (default) | exact
	Methods  []string `yaml:"methods"`
}

// Authorize is the route's authorization rules, checked after authn.
type Authorize struct {
	Scopes  ScopeRule            `yaml:"scopes"`
	Methods map[string]ScopeRule `yaml:"methods"`
	Policy  string               `yaml:"policy"` // CEL
}

// ScopeRule requires scopes.
type ScopeRule struct {
	AllOf []string `yaml:"all_of"`
	AnyOf []string `yaml:"any_of"`
}

// Forward controls what identity the upstream receives.
type Forward struct {
	Headers        map[string]string `yaml:"headers"`       // header → sub | client_id | scope | iss | claims.NAME
	Authorization  bool              `yaml:"authorization"` // forward the caller's Authorization (default false)
	SignedIdentity bool              `yaml:"signed_identity"`
}

// HeaderTransforms edit request and response headers.
type HeaderTransforms struct {
	Request  HeaderOps `yaml:"request"`
	Response HeaderOps `yaml:"response"`
}

// HeaderOps sets and removes headers.
type HeaderOps struct {
	Set    map[string]string `yaml:"set"`
	Remove []string          `yaml:"remove"`
}

// Revocation tunes how revocations (revoked tokens, users, clients) reach
// this node's deny-list. Without it they are applied locally at once and
// reach other nodes sharing the store within 5 seconds.
type Revocation struct {
	// Issuer scopes the deny-list to tokens of this issuer (default: the
	// authorization server's issuer when it is enabled; otherwise entries
	// apply to every issuer). Set it on gateway-only nodes of a cluster.
	Issuer string `yaml:"issuer"`
	// Redis shares revocations between nodes at once through pub/sub.
	Redis *RevocationRedis `yaml:"redis"`
}

// RevocationRedis is the Redis connection of the revocation sync.
type RevocationRedis struct {
	Address      string   `yaml:"address"`  // host:port
	Username     string   `yaml:"username"` // Redis 6 ACL user; optional
	Password     string   `yaml:"password"` // from ${ENV}; optional
	DB           int      `yaml:"db"`       // 0–15
	Key          string   `yaml:"key"`      // sorted set; Key+":events" is the channel
	TLS          bool     `yaml:"tls"`      // TLS with the system roots
	PollInterval Duration `yaml:"poll_interval"`
}

// AuthServer enables the built-in OAuth 2.0 / OIDC authorization server.
type AuthServer struct {
	Enabled         bool     `yaml:"enabled"`
	Issuer          string   `yaml:"issuer"`
	MasterKey       string   `yaml:"master_key"`        // 32+ bytes, base64 or hex; from ${ENV}
	AccessTokenTTL  Duration `yaml:"access_token_ttl"`  // default 10m
	RefreshTokenTTL Duration `yaml:"refresh_token_ttl"` // default 720h
	CodeTTL         Duration `yaml:"code_ttl"`          // default 60s (5s–60s)
	SigningAlg      string   `yaml:"signing_algorithm"` // ES256 (default) | EdDSA | RS256
	RotateEvery     Duration `yaml:"key_rotation"`      // default 720h
}

// Store selects the durable state backend.
type Store struct {
	Driver string `yaml:"driver"` // sqlite (default) | postgres
	Path   string `yaml:"path"`   // sqlite file; default <data_dir>/sekisho.db
	DSN    string `yaml:"dsn"`    // postgres
}
