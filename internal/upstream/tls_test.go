package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// newCert issues a certificate signed by parent (self-signed when nil).
func newCert(t *testing.T, cn string, parent *testCert, isCA bool, dns []string, usage x509.ExtKeyUsage) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		DNSNames:              dns,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key, der: der}
}

func (c *testCert) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})
}

func (c *testCert) keyPEM(t *testing.T) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
}

func (c *testCert) tlsCert(t *testing.T) tls.Certificate {
	pair, err := tls.X509KeyPair(c.certPEM(), c.keyPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func writeFile(t *testing.T, path string, data []byte, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

type tlsSeen struct {
	sni, clientCN string
	proto         int
}

func TestTLSUpstream(t *testing.T) {
	dir := t.TempDir()
	serverCA := newCert(t, "server CA", nil, true, nil, 0)
	serverCert := newCert(t, "backend", serverCA, false, []string{"backend.test"}, x509.ExtKeyUsageServerAuth)
	clientCA := newCert(t, "client CA", nil, true, nil, 0)
	clientA := newCert(t, "gateway-A", clientCA, false, nil, x509.ExtKeyUsageClientAuth)
	clientB := newCert(t, "gateway-B", clientCA, false, nil, x509.ExtKeyUsageClientAuth)

	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	t0 := time.Now().Add(-time.Minute)
	writeFile(t, caFile, serverCA.certPEM(), t0)
	writeFile(t, certFile, clientA.certPEM(), t0)
	writeFile(t, keyFile, clientA.keyPEM(t), t0)

	var seen atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := tlsSeen{sni: r.TLS.ServerName, proto: r.ProtoMajor}
		if len(r.TLS.PeerCertificates) > 0 {
			s.clientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		seen.Store(s)
	}))
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.cert)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert.tlsCert(t)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
		MinVersion:   tls.VersionTLS12,
	}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes below are expected
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	url := srv.URL // https://127.0.0.1:port

	p := newPool(t, Options{Targets: []Target{{URL: url}},
		TLS: &TLSOptions{CAFile: caFile, ServerName: "backend.test", CertFile: certFile, KeyFile: keyFile}})
	p.certs.interval = 0 // check the files on every handshake (set before any traffic)
	if _, _, err := get(t, p, "/"); err != nil {
		t.Fatal(err)
	}
	if s := seen.Load().(tlsSeen); s.sni != "backend.test" || s.clientCN != "gateway-A" || s.proto != 2 {
		t.Fatalf("upstream saw %+v, want SNI backend.test, client gateway-A, HTTP/2 via ALPN", s)
	}

	// Client certificate rotation: new files are used on the next connection.
	t1 := time.Now()
	writeFile(t, certFile, clientB.certPEM(), t1)
	writeFile(t, keyFile, clientB.keyPEM(t), t1)
	newConn(t, p, &conns)
	if s := seen.Load().(tlsSeen); s.clientCN != "gateway-B" {
		t.Fatalf("after rotation the upstream saw client %q", s.clientCN)
	}
	// A broken rotation (key does not match) keeps the working pair.
	t2 := t1.Add(time.Second)
	writeFile(t, certFile, clientA.certPEM(), t2)
	newConn(t, p, &conns)
	if s := seen.Load().(tlsSeen); s.clientCN != "gateway-B" {
		t.Fatalf("after a mismatched rotation the upstream saw client %q", s.clientCN)
	}

	writeFile(t, keyFile, clientA.keyPEM(t), t2) // a consistent pair again for the pools below

	noRetry := PassiveHealth{MaxFailures: -1}
	// Without the SNI override the certificate does not match 127.0.0.1.
	p = newPool(t, Options{Targets: []Target{{URL: url}}, PassiveHealth: noRetry,
		TLS: &TLSOptions{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}})
	_, _, err := get(t, p, "/")
	mustKind(t, err, KindTLS)

	// With the system roots the private CA is not trusted.
	p = newPool(t, Options{Targets: []Target{{URL: url}}, PassiveHealth: noRetry,
		TLS: &TLSOptions{ServerName: "backend.test", CertFile: certFile, KeyFile: keyFile}})
	_, _, err = get(t, p, "/")
	mustKind(t, err, KindTLS)

	// Without a client certificate the upstream refuses the connection. With
	// TLS 1.3 the refusal arrives after the client finished its handshake, so
	// depending on timing net/http reports an alert, a connection that could
	// not be established, or a broken pipe: all 502-class, none reaches the
	// handler.
	seen.Store(tlsSeen{})
	p = newPool(t, Options{Targets: []Target{{URL: url}}, PassiveHealth: noRetry,
		TLS: &TLSOptions{CAFile: caFile, ServerName: "backend.test"}})
	_, _, err = get(t, p, "/")
	if k := KindOf(err); k != KindTLS && k != KindConnect && k != KindProtocol {
		t.Fatalf("without a client certificate: %v", err)
	}
	if s := seen.Load().(tlsSeen); s != (tlsSeen{}) {
		t.Fatalf("request without client certificate reached the handler: %+v", s)
	}
	// With TLS 1.2 the refusal is part of the handshake: always KindTLS.
	srvM12 := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srvM12.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert.tlsCert(t)}, MaxVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	srvM12.Config.ErrorLog = log.New(io.Discard, "", 0)
	srvM12.StartTLS()
	defer srvM12.Close()
	p = newPool(t, Options{Targets: []Target{{URL: srvM12.URL}}, PassiveHealth: noRetry,
		TLS: &TLSOptions{CAFile: caFile, ServerName: "backend.test"}})
	_, _, err = get(t, p, "/")
	mustKind(t, err, KindTLS)
	p = newPool(t, Options{Targets: []Target{{URL: srvM12.URL}},
		TLS: &TLSOptions{CAFile: caFile, ServerName: "backend.test", CertFile: certFile, KeyFile: keyFile}})
	if _, _, err := get(t, p, "/"); err != nil {
		t.Fatalf("TLS 1.2 with client certificate: %v", err)
	}

	// TLS 1.3 minimum is honoured (server capped at 1.2 fails).
	srv12 := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv12.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert.tlsCert(t)}, MaxVersion: tls.VersionTLS12}
	srv12.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv12.StartTLS()
	defer srv12.Close()
	p = newPool(t, Options{Targets: []Target{{URL: srv12.URL}}, PassiveHealth: noRetry,
		TLS: &TLSOptions{CAFile: caFile, ServerName: "backend.test", MinVersion: tls.VersionTLS13}})
	_, _, err = get(t, p, "/")
	mustKind(t, err, KindTLS)
	p = newPool(t, Options{Targets: []Target{{URL: srv12.URL}},
		TLS: &TLSOptions{CAFile: caFile, ServerName: "backend.test"}})
	if _, _, err := get(t, p, "/"); err != nil {
		t.Fatalf("TLS 1.2 upstream with default minimum: %v", err)
	}
}

// newConn sends requests until one travels on a new connection (an idle
// HTTP/2 connection may only become closable shortly after its stream ends).
func newConn(t *testing.T, p *Pool, conns *atomic.Int64) {
	t.Helper()
	before := conns.Load()
	waitFor(t, "a request on a new connection", func() bool {
		p.h1.CloseIdleConnections()
		if _, _, err := get(t, p, "/"); err != nil {
			t.Fatal(err)
		}
		return conns.Load() > before
	})
}
