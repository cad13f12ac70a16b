// Package tlsconf builds TLS configurations for Sekisho's HTTPS listeners and
// for upstream (client) connections, plus the HTTP→HTTPS redirect handler and
// the HSTS header value.
//
// Server side: certificates are chosen by SNI from each certificate's DNS
// subject alternative names (exact match first, then a single-label wildcard),
// the first certificate is the default for clients that send no SNI or an
// unknown name, TLS 1.2 is the minimum (1.2 only with ECDHE key exchange and
// AEAD ciphers), ALPN offers h2 and http/1.1, and optional client-certificate
// verification (mTLS) uses a CA bundle. Certificate, key and CA files are
// polled and swapped atomically when their content changes; a new file that
// does not load is logged and the previous one stays in service.
//
// Client side: a custom CA bundle replaces the system roots, the SNI name can
// be overridden and a client certificate presented. There is deliberately no
// way to skip certificate verification.
package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CertPair names a PEM certificate chain file (leaf first) and its private key file.
type CertPair struct{ CertFile, KeyFile string }

// ServerOptions configures a TLS listener.
type ServerOptions struct {
	// Certificates served by SNI; at least one. The first is the default for
	// clients without SNI or with an unknown name.
	Certificates []CertPair
	// ClientAuth is "none" (default), "request" (ask for a client certificate
	// and verify it against ClientCAFile if one is sent) or "require" (a
	// certificate signed by a CA in ClientCAFile is mandatory).
	ClientAuth string
	// ClientCAFile is a PEM bundle of CAs trusted for client certificates.
	// Required for "request" and "require", rejected for "none".
	ClientCAFile string
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string
	// ReloadInterval is how often Run checks the files for changes (default 10s).
	ReloadInterval time.Duration
}

// DefaultReloadInterval is used when ServerOptions.ReloadInterval is zero.
const DefaultReloadInterval = 10 * time.Second

// expiryWarning is how far ahead of NotAfter a loaded certificate triggers a warning.
const expiryWarning = 30 * 24 * time.Hour

// tls12CipherSuites are the TLS 1.2 suites we accept: ECDHE (forward secrecy)
// with AEAD ciphers only. TLS 1.3 suites are not configurable and all fine.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// alpnProtocols is what the listener offers. http.Server serves h2 on a TLS
// listener by default; if h2 is disabled there, clients may still negotiate it,
// so keep HTTP/2 enabled on servers using this configuration.
var alpnProtocols = []string{"h2", "http/1.1"}

// Validate checks the options without reading any file.
func (o ServerOptions) Validate() error {
	var errs []error
	if len(o.Certificates) == 0 {
		errs = append(errs, errors.New("certificates: at least one certificate is required"))
	}
	for i, p := range o.Certificates {
		if p.CertFile == "" {
			errs = append(errs, fmt.Errorf("certificates[%d].cert_file: required", i))
		}
		if p.KeyFile == "" {
			errs = append(errs, fmt.Errorf("certificates[%d].key_file: required", i))
		}
	}
	auth, err := parseClientAuth(o.ClientAuth)
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil {
		switch {
		case auth != tls.NoClientCert && o.ClientCAFile == "":
			errs = append(errs, fmt.Errorf("client_ca_file: required when client_auth is %q", o.ClientAuth))
		case auth == tls.NoClientCert && o.ClientCAFile != "":
			errs = append(errs, errors.New(`client_ca_file: set but client_auth is "none"; set client_auth to "request" or "require", or remove client_ca_file`))
		}
	}
	if _, err := parseMinVersion(o.MinVersion); err != nil {
		errs = append(errs, err)
	}
	if o.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("reload_interval %v: must not be negative", o.ReloadInterval))
	}
	return errors.Join(errs...)
}

func parseClientAuth(v string) (tls.ClientAuthType, error) {
	switch v {
	case "", "none":
		return tls.NoClientCert, nil
	case "request":
		return tls.VerifyClientCertIfGiven, nil
	case "require":
		return tls.RequireAndVerifyClientCert, nil
	default:
		return 0, fmt.Errorf("client_auth %q: must be \"none\", \"request\" or \"require\"", v)
	}
}

func parseMinVersion(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.0", "1.1", "1":
		return 0, fmt.Errorf("min_version %q: TLS versions below 1.2 are not allowed", v)
	default:
		return 0, fmt.Errorf("min_version %q: must be \"1.2\" or \"1.3\"", v)
	}
}

// Server owns the certificates of one listener (or several listeners with the
// same certificates) and keeps them current.
type Server struct {
	minVersion uint16
	clientAuth tls.ClientAuthType
	interval   time.Duration
	log        *slog.Logger

	mu    sync.Mutex // serializes reloads; guards pairs and ca
	pairs []*pairState
	ca    *caState // nil without client authentication

	cur atomic.Pointer[snapshot]
}

type pairState struct {
	pair    CertPair
	cert    *tls.Certificate // last certificate that loaded; served
	seen    [32]byte         // hash of the file contents last parsed
	lastErr string           // last logged error, to log each failure once
	badErr  error            // parse error of the content with hash seen, if it failed
}

type caState struct {
	file    string
	pool    *x509.CertPool
	seen    [32]byte
	lastErr string
	badErr  error
}

// snapshot is an immutable view of the loaded files, swapped atomically.
type snapshot struct {
	certs    []*tls.Certificate
	files    []string
	exact    map[string][]int // DNS SAN → certificate indexes
	wildcard map[string][]int // parent of a "*." SAN ("example.com" for "*.example.com") → indexes
	cfg      *tls.Config      // returned by GetConfigForClient
}

// NewServer validates o and loads every file now. Errors name the option and
// file and say what is wrong. An expired or not-yet-valid certificate is
// logged as a warning, not an error, so that an operator can still start the
// gateway while replacing it.
func NewServer(o ServerOptions, log *slog.Logger) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	minV, _ := parseMinVersion(o.MinVersion)
	auth, _ := parseClientAuth(o.ClientAuth)
	s := &Server{minVersion: minV, clientAuth: auth, interval: o.ReloadInterval, log: log}
	if s.interval == 0 {
		s.interval = DefaultReloadInterval
	}
	for _, p := range o.Certificates {
		s.pairs = append(s.pairs, &pairState{pair: p})
	}
	if o.ClientCAFile != "" {
		s.ca = &caState{file: o.ClientCAFile}
	}
	if err := s.reload(true); err != nil {
		return nil, err
	}
	return s, nil
}

// TLSConfig returns a configuration for tls.NewListener or http.Server.TLSConfig.
// Each call returns a new Config; every one of them follows reloads, because
// certificates and client CAs are looked up per handshake. Session tickets are
// enabled with keys that rotate automatically; a resumed session is checked
// against the current client CAs.
func (s *Server) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:   s.minVersion,
		CipherSuites: slices.Clone(tls12CipherSuites),
		NextProtos:   slices.Clone(alpnProtocols),
		ClientAuth:   s.clientAuth,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().getCertificate(hello)
		},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().cfg, nil
		},
	}
	if s.clientAuth != tls.NoClientCert {
		// Never used for a handshake (GetConfigForClient supplies the current
		// pool), but if that hook were removed, an empty pool fails closed
		// where nil would mean the system roots.
		cfg.ClientCAs = x509.NewCertPool()
	}
	return cfg
}

// Run checks the files every ReloadInterval until ctx is done. Each check
// reads the files (a few KiB each) and compares a SHA-256 of their contents
// with the last one parsed, so a replacement is noticed even when size and
// modification time are unchanged, and symlink swaps (Kubernetes secrets)
// work. Only changed files are parsed; a failing file is logged once per
// distinct error and its previous version stays in service.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.reload(false)
		}
	}
}

// Reload checks the files now (for example on SIGHUP). It returns the errors of
// files that failed to load; their previous versions stay in service.
func (s *Server) Reload() error { return s.reload(false) }

// CertInfo describes a certificate currently served.
type CertInfo struct {
	CertFile string
	Subject  string
	DNSNames []string
	Serial   string // hexadecimal
	NotAfter time.Time
}

// Certificates describes the certificates currently served, in configuration
// order (for expiry metrics and the admin API).
func (s *Server) Certificates() []CertInfo {
	snap := s.cur.Load()
	out := make([]CertInfo, len(snap.certs))
	for i, c := range snap.certs {
		out[i] = CertInfo{
			CertFile: snap.files[i],
			Subject:  c.Leaf.Subject.String(),
			DNSNames: slices.Clone(c.Leaf.DNSNames),
			Serial:   c.Leaf.SerialNumber.Text(16),
			NotAfter: c.Leaf.NotAfter,
		}
	}
	return out
}

func hashContents(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		l := uint64(len(p))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// reload reads every file, parses those whose content changed and swaps in a
// new snapshot if anything changed. On the initial load any error is fatal; on
// later loads a failing file keeps its previous version and is logged once per
// distinct error.
func (s *Server) reload(initial bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := initial
	var errs []error
	fail := func(lastErr *string, err error) {
		errs = append(errs, err)
		if msg := err.Error(); msg != *lastErr {
			*lastErr = msg
			s.log.Error("tls: reload failed, previous version stays in service", "error", msg)
		}
	}
	for i, p := range s.pairs {
		certPEM, err := readPEMFile("cert_file", p.pair.CertFile)
		var keyPEM []byte
		if err == nil {
			keyPEM, err = readPEMFile("key_file", p.pair.KeyFile)
		}
		if err != nil {
			if initial {
				return fmt.Errorf("certificates[%d]: %w", i, err)
			}
			fail(&p.lastErr, err)
			continue
		}
		// Read errors repeat every poll and are logged once (lastErr); parse
		// errors are logged once because the same content is not parsed twice.
		p.lastErr = ""
		h := hashContents(certPEM, keyPEM)
		if !initial && h == p.seen {
			if p.badErr != nil {
				errs = append(errs, p.badErr) // still broken; already logged
			}
			continue
		}
		p.seen = h
		cert, err := loadKeyPair(p.pair.CertFile, certPEM, p.pair.KeyFile, keyPEM)
		p.badErr = err
		if err != nil {
			if initial {
				return fmt.Errorf("certificates[%d]: %w", i, err)
			}
			fail(&p.lastErr, err)
			continue
		}
		p.cert = cert
		changed = true
		s.checkLeaf(i, p.pair.CertFile, cert.Leaf)
		if !initial {
			s.log.Info("tls: certificate reloaded", "cert_file", p.pair.CertFile,
				"subject", cert.Leaf.Subject.String(), "serial", cert.Leaf.SerialNumber.Text(16),
				"not_after", cert.Leaf.NotAfter)
		}
	}
	if s.ca != nil {
		if err := s.reloadCA(initial, &changed); err != nil {
			var logged errAlreadyLogged
			switch {
			case initial:
				return err
			case errors.As(err, &logged):
				errs = append(errs, logged.error)
			default:
				fail(&s.ca.lastErr, err)
			}
		}
	}
	if changed {
		s.cur.Store(s.buildSnapshot())
	}
	return errors.Join(errs...)
}

// errAlreadyLogged marks a reload error that was logged on an earlier poll.
type errAlreadyLogged struct{ error }

func (s *Server) reloadCA(initial bool, changed *bool) error {
	data, err := readPEMFile("client_ca_file", s.ca.file)
	if err != nil {
		return err
	}
	s.ca.lastErr = ""
	h := hashContents(data)
	if !initial && h == s.ca.seen {
		if s.ca.badErr != nil {
			return errAlreadyLogged{s.ca.badErr}
		}
		return nil
	}
	s.ca.seen = h
	pool, err := parseCertPool("client_ca_file", s.ca.file, data)
	s.ca.badErr = err
	if err != nil {
		return err
	}
	s.ca.pool = pool
	*changed = true
	if !initial {
		s.log.Info("tls: client CA bundle reloaded", "client_ca_file", s.ca.file)
	}
	return nil
}

// checkLeaf logs problems with a loaded certificate that do not stop it from
// being served.
func (s *Server) checkLeaf(i int, file string, leaf *x509.Certificate) {
	now := time.Now()
	attrs := []any{"cert_file", file, "subject", leaf.Subject.String(), "not_before", leaf.NotBefore, "not_after", leaf.NotAfter}
	switch {
	case now.After(leaf.NotAfter):
		s.log.Warn("tls: certificate has expired", attrs...)
	case now.Before(leaf.NotBefore):
		s.log.Warn("tls: certificate is not valid yet", attrs...)
	case leaf.NotAfter.Sub(now) < expiryWarning:
		s.log.Warn("tls: certificate expires within 30 days", attrs...)
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		s.log.Warn("tls: certificate is not valid for server authentication (extended key usage)", attrs...)
	}
	if i > 0 && len(leaf.DNSNames) == 0 {
		s.log.Warn("tls: certificate has no DNS names and is never chosen by SNI (only the first certificate is the default)", attrs...)
	}
}

func (s *Server) buildSnapshot() *snapshot {
	snap := &snapshot{exact: map[string][]int{}, wildcard: map[string][]int{}}
	for i, p := range s.pairs {
		snap.certs = append(snap.certs, p.cert)
		snap.files = append(snap.files, p.pair.CertFile)
		for _, n := range p.cert.Leaf.DNSNames {
			n = normalizeName(n)
			switch {
			case strings.HasPrefix(n, "*.") && len(n) > 2 && !strings.Contains(n[2:], "*"):
				snap.wildcard[n[2:]] = appendOnce(snap.wildcard[n[2:]], i)
			case n != "" && !strings.Contains(n, "*"):
				snap.exact[n] = appendOnce(snap.exact[n], i)
			}
		}
	}
	cfg := &tls.Config{
		MinVersion:     s.minVersion,
		CipherSuites:   tls12CipherSuites,
		NextProtos:     alpnProtocols,
		ClientAuth:     s.clientAuth,
		GetCertificate: snap.getCertificate,
	}
	if s.ca != nil {
		cfg.ClientCAs = s.ca.pool
	}
	snap.cfg = cfg
	return snap
}

func appendOnce(s []int, i int) []int {
	if len(s) > 0 && s[len(s)-1] == i {
		return s
	}
	return append(s, i)
}

func (sn *snapshot) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return sn.certs[sn.match(hello.ServerName, hello)], nil
}

// match returns the index of the certificate for an SNI name: exact DNS SAN,
// then wildcard SAN for the parent domain, else the default (0). When several
// certificates match (for example an RSA and an ECDSA one), the first that the
// client supports wins.
func (sn *snapshot) match(serverName string, hello *tls.ClientHelloInfo) int {
	if serverName == "" || len(serverName) > 253+1 {
		return 0
	}
	name := normalizeName(serverName)
	if idx, ok := sn.exact[name]; ok {
		return pick(sn.certs, idx, hello)
	}
	if i := strings.IndexByte(name, '.'); i > 0 && sniLabel(name[:i]) {
		if idx, ok := sn.wildcard[name[i+1:]]; ok {
			return pick(sn.certs, idx, hello)
		}
	}
	return 0
}

// sniLabel reports whether a (lowercased) label may be matched by a wildcard:
// the characters Go's certificate verification accepts in host names.
func sniLabel(l string) bool {
	if len(l) > 63 {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func pick(certs []*tls.Certificate, idx []int, hello *tls.ClientHelloInfo) int {
	if len(idx) == 1 || hello == nil {
		return idx[0]
	}
	for _, i := range idx {
		if hello.SupportsCertificate(certs[i]) == nil {
			return i
		}
	}
	return idx[0]
}
