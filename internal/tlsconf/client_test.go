package tlsconf

import (
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	upstreamCA := newCA(t, "upstream CA")
	clientCA := newCA(t, "client CA")
	pair := writePair(t, dir, "up", upstreamCA.issue(t, leafOpts{dns: []string{"internal.svc"}}))
	clientCAFile := filepath.Join(dir, "client-ca.pem")
	writeFile(t, clientCAFile, clientCA.pem)
	upstreamCAFile := filepath.Join(dir, "upstream-ca.pem")
	writeFile(t, upstreamCAFile, upstreamCA.pem)
	clientPair := writePair(t, dir, "gw", clientCA.issue(t, leafOpts{cn: "sekisho-gateway", client: true}))

	srv, err := NewServer(ServerOptions{Certificates: []CertPair{pair}, ClientAuth: "require", ClientCAFile: clientCAFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startTLSServer(t, srv.TLSConfig())

	// Custom CA + SNI override + client certificate: the upstream is dialled by
	// IP but verified (and addressed via SNI) as internal.svc.
	cfg, err := NewClientConfig(ClientOptions{CAFile: upstreamCAFile, ServerName: "internal.svc", CertFile: clientPair.CertFile, KeyFile: clientPair.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InsecureSkipVerify {
		t.Fatal("InsecureSkipVerify set")
	}
	if _, err := ts.dial(cfg); err != nil {
		t.Fatalf("handshake with custom CA, SNI override and client cert: %v", err)
	}
	select {
	case st := <-ts.states:
		if st.ServerName != "internal.svc" {
			t.Fatalf("server saw SNI %q, want internal.svc", st.ServerName)
		}
		if cn := st.PeerCertificates[0].Subject.CommonName; cn != "sekisho-gateway" {
			t.Fatalf("server saw client certificate %q", cn)
		}
	case <-time.After(waitLimit):
		t.Fatal("no server state")
	}

	// Without the client certificate the mTLS upstream refuses.
	noCert, err := NewClientConfig(ClientOptions{CAFile: upstreamCAFile, ServerName: "internal.svc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.dial(noCert); err == nil {
		t.Fatal("mTLS upstream accepted a client without certificate")
	}

	// Without the custom CA the system roots do not trust the upstream.
	sysRoots, err := NewClientConfig(ClientOptions{ServerName: "internal.svc", CertFile: clientPair.CertFile, KeyFile: clientPair.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.dial(sysRoots)
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("system roots: err = %v, want unknown authority", err)
	}

	// A wrong SNI override fails verification.
	wrong, err := NewClientConfig(ClientOptions{CAFile: upstreamCAFile, ServerName: "other.svc", CertFile: clientPair.CertFile, KeyFile: clientPair.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	var he x509.HostnameError
	if _, err := ts.dial(wrong); !errors.As(err, &he) {
		t.Fatalf("wrong server name: err = %v, want hostname error", err)
	}
}

func TestClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "CA")
	pair := writePair(t, dir, "c", ca.issue(t, leafOpts{cn: "c", client: true}))
	empty := filepath.Join(dir, "empty.pem")
	writeFile(t, empty, []byte("nothing here"))
	cases := []struct {
		o    ClientOptions
		want string
	}{
		{ClientOptions{CertFile: pair.CertFile}, "set both"},
		{ClientOptions{KeyFile: pair.KeyFile}, "set both"},
		{ClientOptions{CAFile: empty}, "ca_file " + empty + ": no PEM certificate found"},
		{ClientOptions{CAFile: filepath.Join(dir, "nope.pem")}, "no such file"},
		{ClientOptions{MinVersion: "1.1"}, "below 1.2"},
		{ClientOptions{ServerName: "evil.com@x"}, "server_name"},
		{ClientOptions{ServerName: "a b"}, "server_name"},
		{ClientOptions{CertFile: pair.CertFile, KeyFile: pair.CertFile}, "no PEM private key found"},
	}
	for _, c := range cases {
		_, err := NewClientConfig(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewClientConfig(%+v) = %v, want error containing %q", c.o, err, c.want)
		}
	}
	cfg, err := NewClientConfig(ClientOptions{MinVersion: "1.3", ServerName: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != 0x0304 || cfg.RootCAs != nil || cfg.ServerName != "10.0.0.1" {
		t.Fatalf("cfg = min %x roots %v name %q", cfg.MinVersion, cfg.RootCAs, cfg.ServerName)
	}
}
