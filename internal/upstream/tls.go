package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// certCheckInterval bounds how often the client certificate files are
// stat'ed for changes (only on new TLS connections).
const certCheckInterval = 10 * time.Second

// buildTLS returns the client TLS configuration for https targets.
func buildTLS(o *TLSOptions, errs *fieldErrs) (*tls.Config, *certReloader) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: newSessionCache(), // resumption makes reconnects cheap
	}
	if o == nil {
		return cfg, nil
	}
	switch o.MinVersion {
	case 0, tls.VersionTLS12:
	case tls.VersionTLS13:
		cfg.MinVersion = tls.VersionTLS13
	default:
		errs.add("tls.min_version", "0x%04x not allowed (TLS 1.2 = 0x0303, TLS 1.3 = 0x0304)", o.MinVersion)
	}
	if o.CAFile != "" {
		pem, err := readBounded(o.CAFile)
		if err != nil {
			errs.add("tls.ca_file", "%v", err)
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs.add("tls.ca_file", "%q contains no PEM certificate", o.CAFile)
			}
			cfg.RootCAs = pool // replaces the system roots
		}
	}
	if o.ServerName != "" {
		if err := validServerName(o.ServerName); err != nil {
			errs.add("tls.server_name", "%v", err)
		}
		cfg.ServerName = o.ServerName
	}
	var certs *certReloader
	switch {
	case (o.CertFile == "") != (o.KeyFile == ""):
		errs.add("tls.cert_file", "cert_file and key_file must be set together")
	case o.CertFile != "":
		certs = &certReloader{certFile: o.CertFile, keyFile: o.KeyFile, interval: certCheckInterval,
			now: time.Now, log: slog.New(slog.DiscardHandler), sessions: cfg.ClientSessionCache.(*sessionCache)}
		if err := certs.load(); err != nil {
			errs.add("tls.cert_file", "%v", err)
		}
		cfg.GetClientCertificate = certs.get
		certs.sessions.before = certs.maybeReload
	}
	return cfg, certs
}

func validServerName(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("longer than 253 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("%q is not a DNS name", s)
		}
	}
	if strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return fmt.Errorf("%q is not a DNS name", s)
	}
	return nil
}

// readBounded reads a PEM file of at most maxPEMSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", path, err)
	}
	if len(b) > maxPEMSize {
		return nil, fmt.Errorf("%q is larger than %d bytes", path, maxPEMSize)
	}
	return b, nil
}

// certReloader serves the client certificate and reloads it when its files
// change. A failed reload (for instance a certificate written before its new
// key) keeps the previous pair and is retried at the next check.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time
	log               *slog.Logger
	sessions          *sessionCache // flushed on reload: a resumed session would keep the old identity

	cert atomic.Pointer[tls.Certificate]

	mu                  sync.Mutex // guards the fields below
	checked             time.Time
	certStamp, keyStamp fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func (a fileStamp) same(b fileStamp) bool { return a.size == b.size && a.mod.Equal(b.mod) }

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// load reads and parses the pair; caller holds mu (or is the constructor).
func (r *certReloader) load() error {
	cs, err := stamp(r.certFile)
	if err != nil {
		return err
	}
	ks, err := stamp(r.keyFile)
	if err != nil {
		return err
	}
	certPEM, err := readBounded(r.certFile)
	if err != nil {
		return err
	}
	keyPEM, err := readBounded(r.keyFile)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The tls error names no key material, only what is wrong.
		return fmt.Errorf("client certificate %q / key %q: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&pair)
	r.certStamp, r.keyStamp = cs, ks
	if r.sessions != nil {
		r.sessions.flush()
	}
	return nil
}

// get is tls.Config.GetClientCertificate.
func (r *certReloader) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.maybeReload()
	return r.cert.Load(), nil
}

// maybeReload reloads the pair if its files changed, at most once per
// interval. It runs at the start of every client handshake (from the session
// cache lookup) so that a rotation also ends session resumption with the old
// certificate: a resumed TLS 1.3 session never asks for a certificate.
func (r *certReloader) maybeReload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < r.interval {
		return
	}
	r.checked = now
	cs, err1 := stamp(r.certFile)
	ks, err2 := stamp(r.keyFile)
	if err1 != nil || err2 != nil || cs.same(r.certStamp) && ks.same(r.keyStamp) {
		return
	}
	if err := r.load(); err != nil {
		r.log.Warn("upstream client certificate reload failed; keeping the previous one", "error", err)
		return
	}
	r.log.Info("upstream client certificate reloaded", "cert_file", r.certFile)
}

// sessionCache is a TLS client session cache that can be flushed, so that
// connections made after a client certificate rotation do not resume
// sessions established with the previous certificate.
type sessionCache struct {
	inner  atomic.Pointer[tls.ClientSessionCache]
	before func() // runs before every lookup, i.e. at the start of each handshake
}

func newSessionCache() *sessionCache {
	c := &sessionCache{}
	c.flush()
	return c
}

func (c *sessionCache) flush() {
	lru := tls.NewLRUClientSessionCache(256)
	c.inner.Store(&lru)
}

// Get implements tls.ClientSessionCache.
func (c *sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	if c.before != nil {
		c.before()
	}
	return (*c.inner.Load()).Get(key)
}

// Put implements tls.ClientSessionCache.
func (c *sessionCache) Put(key string, cs *tls.ClientSessionState) { (*c.inner.Load()).Put(key, cs) }
