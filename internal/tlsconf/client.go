package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
)

// ClientOptions configures TLS towards an upstream.
type ClientOptions struct {
	// CAFile, when set, is a PEM bundle that replaces the system roots for
	// verifying the upstream's certificate.
	CAFile string
	// ServerName overrides the name sent in SNI and verified against the
	// upstream's certificate (default: the host of the upstream URL).
	ServerName string
	// CertFile and KeyFile, both or neither, are a client certificate for mTLS.
	CertFile, KeyFile string
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string
}

// Validate checks the options without reading any file.
func (o ClientOptions) Validate() error {
	var errs []error
	if _, err := parseMinVersion(o.MinVersion); err != nil {
		errs = append(errs, err)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file: set both for a client certificate, or neither"))
	}
	if o.ServerName != "" {
		if _, ok := parseHostname(o.ServerName); !ok {
			errs = append(errs, fmt.Errorf("server_name %q: not a valid DNS name or IP address", o.ServerName))
		}
	}
	return errors.Join(errs...)
}

// NewClientConfig returns a configuration for an upstream http.Transport. The
// files are read once; rebuild the config (configuration reload) to pick up
// new files. Certificate verification cannot be disabled.
func NewClientConfig(o ClientOptions) (*tls.Config, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	minV, _ := parseMinVersion(o.MinVersion)
	cfg := &tls.Config{
		MinVersion:   minV,
		CipherSuites: slices.Clone(tls12CipherSuites),
		ServerName:   o.ServerName,
	}
	if o.CAFile != "" {
		pool, err := loadCertPool("ca_file", o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := loadKeyPairFiles(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}
