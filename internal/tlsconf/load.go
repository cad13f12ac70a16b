package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxPEMFileSize bounds every certificate, key and CA file we read. Real files
// are a few KiB; a CA bundle with a few hundred roots stays well under this.
const maxPEMFileSize = 4 << 20

// readPEMFile reads a regular file of at most maxPEMFileSize bytes. field names
// the option ("cert_file", "key_file", ...) for error messages.
func readPEMFile(field, path string) ([]byte, error) {
	// Stat before opening: opening a FIFO would block until a writer appears.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", field, path)
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in our message
		}
		return nil, fmt.Errorf("%s %s: %w", field, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", field, path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", field, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read: %w", field, path, err)
	}
	if len(b) > maxPEMFileSize {
		return nil, fmt.Errorf("%s %s: larger than %d bytes", field, path, maxPEMFileSize)
	}
	return b, nil
}

// parseCertificates returns every CERTIFICATE block of a PEM file, in order.
// Other block types are ignored, so a combined cert+key file works as a cert file.
func parseCertificates(field, path string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %s: certificate %d: %w", field, path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s %s: no PEM certificate found", field, path)
	}
	return certs, nil
}

// parsePrivateKey returns the first private key of a PEM file. Error messages
// never include key material.
func parsePrivateKey(path string, data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("key_file %s: no PEM private key found", path)
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return nil, fmt.Errorf("key_file %s: encrypted private keys are not supported", path)
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key_file %s: %s block: %w", path, block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		default:
			return nil, fmt.Errorf("key_file %s: unsupported private key type %T", path, key)
		}
	}
}

// loadKeyPair parses a certificate chain and its private key and checks that
// they belong together.
func loadKeyPair(certPath string, certPEM []byte, keyPath string, keyPEM []byte) (*tls.Certificate, error) {
	chain, err := parseCertificates("cert_file", certPath, certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKey(keyPath, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("key_file %s: key does not match certificate in cert_file %s", keyPath, certPath)
	}
	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// loadCertPool reads a PEM bundle of CA certificates into a new pool.
func loadCertPool(field, path string) (*x509.CertPool, error) {
	data, err := readPEMFile(field, path)
	if err != nil {
		return nil, err
	}
	return parseCertPool(field, path, data)
}

func parseCertPool(field, path string, data []byte) (*x509.CertPool, error) {
	certs, err := parseCertificates(field, path, data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// loadKeyPairFiles reads and parses a certificate/key file pair.
func loadKeyPairFiles(certPath, keyPath string) (*tls.Certificate, error) {
	certPEM, err := readPEMFile("cert_file", certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEMFile("key_file", keyPath)
	if err != nil {
		return nil, err
	}
	return loadKeyPair(certPath, certPEM, keyPath, keyPEM)
}

// normalizeName lowercases an ASCII DNS name and drops one trailing dot.
func normalizeName(s string) string {
	s = strings.TrimSuffix(s, ".")
	return strings.ToLower(s)
}
