package config

import (
	"path/filepath"
	"time"
)

// Default values, documented in docs/configuration.md.
const (
	DefaultDataDir             = "./sekisho-data"
	DefaultReadHeaderTimeout   = 5 * time.Second
	DefaultReadTimeout         = 60 * time.Second
	DefaultIdleTimeout         = 60 * time.Second
	DefaultMaxHeaderBytes      = 32 << 10
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 256
	DefaultMaxBodyBytes        = 10 << 20
	DefaultShutdownTimeout     = 30 * time.Second
	DefaultMaxStreams          = 250
	DefaultAdminAddress        = "127.0.0.1:9090"
	DefaultTLSReload           = 10 * time.Second
	DefaultHSTSMaxAge          = 365 * 24 * time.Hour
)

// DefaultStripHeaders are identity headers no client may send upstream.
var DefaultStripHeaders = []string{"X-Sekisho-*", "X-User-*", "X-Forwarded-User", "X-Auth-*"}

// DefaultSensitiveQueryParams are always redacted from logged queries.
var DefaultSensitiveQueryParams = []string{"access_token", "id_token", "refresh_token", "token", "code", "client_secret", "api_key", "apikey", "key", "password", "secret", "signature", "sig"}

func applyDefaults(c *Config) {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	s := &c.Server
	setDur(&s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&s.ReadTimeout, DefaultReadTimeout)
	setDur(&s.IdleTimeout, DefaultIdleTimeout)
	setDur(&s.ShutdownTimeout, DefaultShutdownTimeout)
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if s.MaxConnections == 0 {
		s.MaxConnections = DefaultMaxConnections
	}
	if s.MaxConnectionsPerIP == 0 {
		s.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.HTTP2.MaxConcurrentStreams == 0 {
		s.HTTP2.MaxConcurrentStreams = DefaultMaxStreams
	}
	for i, l := range s.Listeners {
		if l == nil {
			continue
		}
		if l.Name == "" {
			l.Name = "listener" + itoa(i)
		}
		if l.TLS != nil {
			if l.TLS.ClientAuth == "" {
				l.TLS.ClientAuth = "none"
			}
			if l.TLS.MinVersion == "" {
				l.TLS.MinVersion = "1.2"
			}
			setDur(&l.TLS.ReloadInterval, DefaultTLSReload)
		}
		if l.HSTS != nil {
			setDur(&l.HSTS.MaxAge, DefaultHSTSMaxAge)
		}
	}
	if c.Admin.Address == "" {
		c.Admin.Address = DefaultAdminAddress
	}
	if c.AccessLog.Enabled == nil {
		t := true
		c.AccessLog.Enabled = &t
	}
	if c.AccessLog.Output == "" {
		c.AccessLog.Output = "stdout"
	}
	if len(c.Identity.Strip) == 0 {
		c.Identity.Strip = append([]string(nil), DefaultStripHeaders...)
	}
	for _, is := range c.Issuers {
		if is == nil {
			continue
		}
		if len(is.Algorithms) == 0 && is.HMACSecret == "" {
			is.Algorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}
		}
		setDur(&is.Leeway, 30*time.Second)
		if is.MaxTokenBytes == 0 {
			is.MaxTokenBytes = 8 << 10
		}
		setDur(&is.JWKS.RefreshMin, time.Minute)
		setDur(&is.JWKS.RefreshMax, 24*time.Hour)
		setDur(&is.JWKS.StaleGrace, 24*time.Hour)
		setDur(&is.JWKS.FetchTimeout, 5*time.Second)
		if is.JWKS.MaxBytes == 0 {
			is.JWKS.MaxBytes = 256 << 10
		}
	}
	for _, in := range c.Intro {
		if in == nil {
			continue
		}
		setDur(&in.Timeout, 3*time.Second)
		setDur(&in.PositiveTTL, 60*time.Second)
		setDur(&in.NegativeTTL, 10*time.Second)
	}
	for _, u := range c.Upstreams {
		if u == nil {
			continue
		}
		if u.Balancing == "" {
			u.Balancing = "round_robin"
		}
		setDur(&u.ConnectTimeout, 5*time.Second)
		setDur(&u.ResponseHeaderTimeout, 30*time.Second)
		setDur(&u.Timeout, 60*time.Second)
		if u.Retries == nil {
			one := 1
			u.Retries = &one
		}
		if u.PassiveHealth == nil {
			u.PassiveHealth = &PassiveHealth{MaxFailures: 3}
		}
		setDur(&u.PassiveHealth.EjectFor, 30*time.Second)
		if a := u.ActiveHealth; a != nil {
			setDur(&a.Interval, 10*time.Second)
			setDur(&a.Timeout, 2*time.Second)
			if a.HealthyThreshold == 0 {
				a.HealthyThreshold = 2
			}
			if a.UnhealthyThreshold == 0 {
				a.UnhealthyThreshold = 3
			}
		}
		if u.MaxIdleConnsPerHost == 0 {
			u.MaxIdleConnsPerHost = 256
		}
		for i := range u.Targets {
			if u.Targets[i].Weight == 0 {
				u.Targets[i].Weight = 1
			}
		}
	}
	for _, r := range c.Routes {
		if r == nil {
			continue
		}
		if r.Match.PathType == "" {
			r.Match.PathType = "prefix"
		}
		if r.Match.Path == "" {
			r.Match.Path = "/"
		}
		if r.HostHeader == "" {
			r.HostHeader = "upstream"
		}
		if r.MaxBodyBytes == 0 {
			r.MaxBodyBytes = s.MaxBodyBytes
		}
	}
	if as := c.AuthServer; as != nil {
		setDur(&as.AccessTokenTTL, 10*time.Minute)
		setDur(&as.RefreshTokenTTL, 30*24*time.Hour)
		setDur(&as.CodeTTL, 60*time.Second)
		setDur(&as.RotateEvery, 30*24*time.Hour)
		if as.SigningAlg == "" {
			as.SigningAlg = "ES256"
		}
	}
	if r := c.Revocation; r != nil && r.Redis != nil {
		setDur(&r.Redis.PollInterval, 30*time.Second)
		if r.Redis.Key == "" {
			r.Redis.Key = "sekisho:revocations"
		}
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Store.Driver == "sqlite" && c.Store.Path == "" {
		c.Store.Path = filepath.Join(c.DataDir, "sekisho.db")
	}
}

func setDur(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
