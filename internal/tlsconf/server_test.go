package tlsconf

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSNISelection(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "test CA")
	a := ca.issue(t, leafOpts{cn: "a", dns: []string{"a.example.test"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}})
	b := ca.issue(t, leafOpts{cn: "b", dns: []string{"b.example.test", "*.wild.example.test"}})
	srv, err := NewServer(ServerOptions{Certificates: []CertPair{
		writePair(t, dir, "a", a),
		writePair(t, dir, "b", b),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startTLSServer(t, srv.TLSConfig())
	roots := ca.pool()

	cases := []struct {
		sni  string
		want leaf
	}{
		{"a.example.test", a},
		{"b.example.test", b},
		{"B.Example.Test", b},          // SNI is case-insensitive
		{"x.wild.example.test", b},     // wildcard
		{"wild.example.test", a},       // wildcard does not cover the parent → default
		{"y.x.wild.example.test", a},   // nor two labels → default
		{"unknown.example.test", a},    // unknown → default
		{"127.0.0.1", a},               // IP: client sends no SNI → default
		{"b.example.test.", b},         // trailing dot
		{"a.example.test.evil.com", a}, // no suffix confusion
	}
	for _, c := range cases {
		if got := ts.servedSerial(t, roots, c.sni); got.Cmp(c.want.serial) != 0 {
			t.Errorf("SNI %q: served serial %v, want %v", c.sni, got, c.want.serial)
		}
	}

	// A verifying client for a covered name completes the handshake.
	if _, err := ts.dial(&tls.Config{RootCAs: roots, ServerName: "x.wild.example.test"}); err != nil {
		t.Fatalf("verified handshake: %v", err)
	}

	infos := srv.Certificates()
	if len(infos) != 2 || infos[0].Serial != a.serial.Text(16) || infos[1].DNSNames[1] != "*.wild.example.test" {
		t.Fatalf("Certificates() = %+v", infos)
	}
}

func TestALPNAndCipherSuites(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "CA")
	l := ca.issue(t, leafOpts{dns: []string{"h.test"}})
	srv, err := NewServer(ServerOptions{Certificates: []CertPair{writePair(t, dir, "h", l)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startTLSServer(t, srv.TLSConfig())

	st, err := ts.dial(&tls.Config{RootCAs: ca.pool(), ServerName: "h.test", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN = %q, want h2", st.NegotiatedProtocol)
	}
	if st.Version != tls.VersionTLS13 {
		t.Fatalf("version %x, want TLS 1.3 by default", st.Version)
	}

	// TLS 1.2 with a CBC suite is refused; with an AEAD suite it works.
	_, err = ts.dial(&tls.Config{RootCAs: ca.pool(), ServerName: "h.test", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		t.Fatal("TLS 1.2 CBC suite accepted")
	}
	st, err = ts.dial(&tls.Config{RootCAs: ca.pool(), ServerName: "h.test", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 && st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 &&
		st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Fatalf("TLS 1.2 suite %s", tls.CipherSuiteName(st.CipherSuite))
	}
}

func TestMinVersion(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "CA")
	pair := writePair(t, dir, "v", ca.issue(t, leafOpts{dns: []string{"v.test"}}))

	srv, err := NewServer(ServerOptions{Certificates: []CertPair{pair}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startTLSServer(t, srv.TLSConfig())
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := ts.dial(&tls.Config{RootCAs: ca.pool(), ServerName: "v.test", MinVersion: tls.VersionTLS10, MaxVersion: v})
		if err == nil {
			t.Fatalf("client limited to %s was accepted", tls.VersionName(v))
		}
	}
	if _, err := ts.dial(&tls.Config{RootCAs: ca.pool(), ServerName: "v.test", MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2 refused with min 1.2: %v", err)
	}

	srv13, err := NewServer(ServerOptions{Certificates: []CertPair{pair}, MinVersion: "1.3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts13 := startTLSServer(t, srv13.TLSConfig())
	if _, err := ts13.dial(&tls.Config{RootCAs: ca.pool(), ServerName: "v.test", MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("TLS 1.2 client accepted with min 1.3")
	}
	if _, err := ts13.dial(&tls.Config{RootCAs: ca.pool(), ServerName: "v.test"}); err != nil {
		t.Fatal(err)
	}
}

func TestClientAuth(t *testing.T) {
	dir := t.TempDir()
	serverCA := newCA(t, "server CA")
	clientCA := newCA(t, "client CA")
	otherCA := newCA(t, "other CA")
	pair := writePair(t, dir, "s", serverCA.issue(t, leafOpts{dns: []string{"m.test"}}))
	caFile := filepath.Join(dir, "clients.pem")
	writeFile(t, caFile, clientCA.pem)

	good := clientCA.issue(t, leafOpts{cn: "alice", client: true}).tlsCert(t)
	foreign := otherCA.issue(t, leafOpts{cn: "mallory", client: true}).tlsCert(t)

	for _, mode := range []string{"require", "request"} {
		t.Run(mode, func(t *testing.T) {
			srv, err := NewServer(ServerOptions{Certificates: []CertPair{pair}, ClientAuth: mode, ClientCAFile: caFile}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ts := startTLSServer(t, srv.TLSConfig())
			base := func() *tls.Config { return &tls.Config{RootCAs: serverCA.pool(), ServerName: "m.test"} }

			// No client certificate.
			_, err = ts.dial(base())
			if mode == "require" && err == nil {
				t.Fatal("client without certificate accepted")
			}
			if mode == "request" && err != nil {
				t.Fatalf("client without certificate refused in request mode: %v", err)
			}

			// Certificate from an untrusted CA: always refused. (A plain
			// Certificates list would not even be sent, since Go clients only
			// offer certificates matching the server's CA list.)
			cfg := base()
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }
			if _, err := ts.dial(cfg); err == nil {
				t.Fatal("client certificate from an untrusted CA accepted")
			}

			// Certificate signed by the client CA.
			cfg = base()
			cfg.Certificates = []tls.Certificate{good}
			if _, err := ts.dial(cfg); err != nil {
				t.Fatalf("valid client certificate refused: %v", err)
			}
			var st tls.ConnectionState
			for len(st.PeerCertificates) == 0 {
				select {
				case st = <-ts.states:
				case <-time.After(waitLimit):
					t.Fatal("no server state with a client certificate")
				}
			}
			if cn := st.PeerCertificates[0].Subject.CommonName; cn != "alice" || len(st.VerifiedChains) == 0 {
				t.Fatalf("server saw client %q, verified chains %d", cn, len(st.VerifiedChains))
			}
		})
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "CA")
	first := ca.issue(t, leafOpts{dns: []string{"r.test"}})
	pair := writePair(t, dir, "r", first)
	log, logs := testLogger()
	srv, err := NewServer(ServerOptions{Certificates: []CertPair{pair}, ReloadInterval: 20 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ts := startTLSServer(t, srv.TLSConfig())
	roots := ca.pool()

	waitServed := func(want leaf) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			got := ts.servedSerial(t, roots, "r.test")
			if got.Cmp(want.serial) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("serial %v still served, want %v", got, want.serial)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitServed(first)

	// Rotation: the new certificate is served within a few intervals.
	second := ca.issue(t, leafOpts{dns: []string{"r.test"}})
	writePair(t, dir, "r", second)
	waitServed(second)
	if !strings.Contains(logs.String(), "certificate reloaded") {
		t.Fatalf("no reload log: %s", logs)
	}

	// A certificate written without its key (mismatch) keeps the old pair...
	third := ca.issue(t, leafOpts{dns: []string{"r.test"}})
	writeFile(t, pair.CertFile, third.certPEM)
	waitLog(t, logs, "key does not match certificate")
	waitServed(second)
	// ...until the key arrives.
	writeFile(t, pair.KeyFile, third.keyPEM)
	waitServed(third)

	// Broken files keep the old certificate and are logged without secrets.
	writeFile(t, pair.CertFile, []byte("not a certificate"))
	waitLog(t, logs, "no PEM certificate found")
	time.Sleep(100 * time.Millisecond) // several polls
	waitServed(third)
	if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), pair.CertFile) {
		t.Fatalf("Reload() with a broken file = %v, want an error naming %s", err, pair.CertFile)
	}
	if n := strings.Count(logs.String(), "no PEM certificate found"); n != 1 {
		t.Fatalf("broken file logged %d times, want once", n)
	}
	if err := os.Remove(pair.CertFile); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "no such file or directory")
	waitServed(third)

	keyBlock, _ := pem.Decode(third.keyPEM)
	out := logs.String()
	for _, secret := range []string{"PRIVATE KEY", string(third.keyPEM[30:60]), string(keyBlock.Bytes[:8])} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains key material %q", secret)
		}
	}

	// Fixing the files is picked up again.
	fourth := ca.issue(t, leafOpts{dns: []string{"r.test"}})
	writePair(t, dir, "r", fourth)
	waitServed(fourth)
}

func TestReloadClientCA(t *testing.T) {
	dir := t.TempDir()
	serverCA := newCA(t, "server CA")
	oldCA, newCAx := newCA(t, "old client CA"), newCA(t, "new client CA")
	pair := writePair(t, dir, "s", serverCA.issue(t, leafOpts{dns: []string{"m.test"}}))
	caFile := filepath.Join(dir, "clients.pem")
	writeFile(t, caFile, oldCA.pem)
	srv, err := NewServer(ServerOptions{Certificates: []CertPair{pair}, ClientAuth: "require", ClientCAFile: caFile, ReloadInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startTLSServer(t, srv.TLSConfig())
	withCert := func(ca *testCA) *tls.Config {
		return &tls.Config{RootCAs: serverCA.pool(), ServerName: "m.test",
			Certificates: []tls.Certificate{ca.issue(t, leafOpts{cn: "c", client: true}).tlsCert(t)}}
	}
	if _, err := ts.dial(withCert(oldCA)); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.dial(withCert(newCAx)); err == nil {
		t.Fatal("certificate from the new CA accepted before reload")
	}

	// Reload() picks up the change without waiting for the interval.
	writeFile(t, caFile, newCAx.pem)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.dial(withCert(newCAx)); err != nil {
		t.Fatalf("new CA refused after reload: %v", err)
	}
	if _, err := ts.dial(withCert(oldCA)); err == nil {
		t.Fatal("old CA still accepted after reload")
	}

	// Session resumption must not bypass the new CA set: a session established
	// with the new CA is resumed fine; swapping back invalidates it.
	cfg := withCert(newCAx)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	if _, err := ts.dial(cfg); err != nil {
		t.Fatal(err)
	}
	st, err := ts.dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !st.DidResume {
		t.Fatal("session not resumed; the resumption check below would prove nothing")
	}
	writeFile(t, caFile, oldCA.pem)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	st, err = ts.dial(cfg)
	if err == nil && st.DidResume {
		t.Fatal("session resumed with a client certificate the current CA set does not trust")
	}
}

func TestExpiredCertificateWarns(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "CA")
	expired := ca.issue(t, leafOpts{dns: []string{"old.test"}, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	soon := ca.issue(t, leafOpts{dns: []string{"soon.test"}, notAfter: time.Now().Add(24 * time.Hour)})
	log, logs := testLogger()
	_, err := NewServer(ServerOptions{Certificates: []CertPair{writePair(t, dir, "old", expired), writePair(t, dir, "soon", soon)}}, log)
	if err != nil {
		t.Fatalf("expired certificate must warn, not fail: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "certificate has expired") || !strings.Contains(out, `"level":"WARN"`) {
		t.Fatalf("no expiry warning: %s", out)
	}
	if !strings.Contains(out, "expires within 30 days") {
		t.Fatalf("no expires-soon warning: %s", out)
	}
}

func TestNewServerErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "CA")
	good := writePair(t, dir, "good", ca.issue(t, leafOpts{dns: []string{"g.test"}}))
	other := ca.issue(t, leafOpts{dns: []string{"o.test"}})
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, data)
		return p
	}
	empty := file("empty.pem", nil)
	garbage := file("garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	otherKey := file("other.key", other.keyPEM)
	encKey := file("enc.key", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	caFile := file("ca.pem", ca.pem)
	missing := filepath.Join(dir, "missing.pem")

	cases := []struct {
		name string
		o    ServerOptions
		want []string
	}{
		{"no certificates", ServerOptions{}, []string{"at least one certificate"}},
		{"missing key path", ServerOptions{Certificates: []CertPair{{CertFile: good.CertFile}}}, []string{"certificates[0].key_file: required"}},
		{"missing file", ServerOptions{Certificates: []CertPair{{CertFile: missing, KeyFile: good.KeyFile}}}, []string{"cert_file " + missing, "no such file"}},
		{"empty cert", ServerOptions{Certificates: []CertPair{{CertFile: empty, KeyFile: good.KeyFile}}}, []string{"cert_file " + empty + ": no PEM certificate found"}},
		{"garbage cert", ServerOptions{Certificates: []CertPair{{CertFile: garbage, KeyFile: good.KeyFile}}}, []string{"cert_file " + garbage + ": certificate 1"}},
		{"no key", ServerOptions{Certificates: []CertPair{{CertFile: good.CertFile, KeyFile: good.CertFile}}}, []string{"key_file " + good.CertFile + ": no PEM private key found"}},
		{"encrypted key", ServerOptions{Certificates: []CertPair{{CertFile: good.CertFile, KeyFile: encKey}}}, []string{"encrypted private keys are not supported"}},
		{"mismatch", ServerOptions{Certificates: []CertPair{good, {CertFile: good.CertFile, KeyFile: otherKey}}}, []string{"certificates[1]", "key does not match certificate", otherKey}},
		{"bad client auth", ServerOptions{Certificates: []CertPair{good}, ClientAuth: "optional"}, []string{`client_auth "optional"`}},
		{"require without CA", ServerOptions{Certificates: []CertPair{good}, ClientAuth: "require"}, []string{"client_ca_file: required"}},
		{"CA without client auth", ServerOptions{Certificates: []CertPair{good}, ClientCAFile: caFile}, []string{`client_auth is "none"`}},
		{"CA file without certs", ServerOptions{Certificates: []CertPair{good}, ClientAuth: "require", ClientCAFile: empty}, []string{"client_ca_file " + empty + ": no PEM certificate found"}},
		{"TLS 1.1", ServerOptions{Certificates: []CertPair{good}, MinVersion: "1.1"}, []string{"below 1.2"}},
		{"TLS 1.0", ServerOptions{Certificates: []CertPair{good}, MinVersion: "1.0"}, []string{"below 1.2"}},
		{"bad version", ServerOptions{Certificates: []CertPair{good}, MinVersion: "tls13"}, []string{`must be "1.2" or "1.3"`}},
		{"negative interval", ServerOptions{Certificates: []CertPair{good}, ReloadInterval: -time.Second}, []string{"reload_interval"}},
		{"directory", ServerOptions{Certificates: []CertPair{{CertFile: dir, KeyFile: good.KeyFile}}}, []string{"not a regular file"}},
	}
	for _, c := range cases {
		_, err := NewServer(c.o, nil)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
	}
}

func TestKeyFormats(t *testing.T) {
	// PKCS#1 RSA, SEC1 EC and combined cert+key files all load.
	dir := t.TempDir()
	ca := newCA(t, "CA")
	l := ca.issue(t, leafOpts{dns: []string{"k.test"}})
	c := l.tlsCert(t)
	ecKey, err := x509MarshalEC(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	combined := filepath.Join(dir, "combined.pem")
	writeFile(t, combined, append(append([]byte{}, l.certPEM...), ecKey...))
	srv, err := NewServer(ServerOptions{Certificates: []CertPair{{CertFile: combined, KeyFile: combined}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Certificates()[0].Serial; got != l.serial.Text(16) {
		t.Fatalf("serial %s", got)
	}
}

func waitLog(t *testing.T, logs *syncBuffer, substr string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(logs.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("log never contained %q:\n%s", substr, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkGetCertificate(b *testing.B) {
	dir := b.TempDir()
	ca := newCA(b, "CA")
	var pairs []CertPair
	for i := range 50 {
		name := string(rune('a'+i%26)) + string(rune('a'+i/26))
		pairs = append(pairs, writePair(b, dir, name, ca.issue(b, leafOpts{dns: []string{name + ".example.test", "*." + name + ".example.test"}})))
	}
	srv, err := NewServer(ServerOptions{Certificates: pairs}, nil)
	if err != nil {
		b.Fatal(err)
	}
	snap := srv.cur.Load()
	hello := &tls.ClientHelloInfo{ServerName: "x.zb.example.test"}
	b.ReportAllocs()
	for b.Loop() {
		if c, _ := snap.getCertificate(hello); c == nil {
			b.Fatal("nil")
		}
	}
}
