package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTLS covers HTTPS listeners end to end with certificates generated
// here: HTTP/2 and HTTP/1.1, SNI, mTLS, the TLS 1.2 floor, the HTTP→HTTPS
// redirect, HSTS, certificate reload from disk, and an https upstream with
// a custom CA and server name.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := t.TempDir()
	leafA := ca.issue(t, "a.e2e.test", []string{"a.e2e.test"}, false)
	leafB := ca.issue(t, "b.e2e.test", []string{"b.e2e.test"}, false)
	aCert, aKey := leafA.write(t, dir, "a")
	bCert, bKey := leafB.write(t, dir, "b")
	caFile := dir + "/ca.pem"
	writeFileAtomic(t, caFile, ca.pem)
	clientLeaf := ca.issue(t, "client", nil, true)
	otherCA := newCA(t)
	strangerLeaf := otherCA.issue(t, "stranger", nil, true)

	app := newUpstream(t, "app", nil)
	upLeaf := ca.issue(t, "up.e2e.test", []string{"up.e2e.test"}, false)
	secure := newTLSUpstream(t, "secure", nil, upLeaf.tlsCert(t))

	// The two TLS listeners are on different loopback addresses: config
	// validation treats two "127.0.0.1:0" as the same address.
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners:
    - name: tls
      address: "127.0.0.1:0"
      tls:
        certificates:
          - {cert_file: "@ACERT@", key_file: "@AKEY@"}
          - {cert_file: "@BCERT@", key_file: "@BKEY@"}
        reload_interval: 1s
      redirect_http_from: "127.0.0.1:0"
      hsts: {max_age: 1h}
    - name: mtls
      address: "127.0.0.2:0"
      tls:
        certificates: [{cert_file: "@BCERT@", key_file: "@BKEY@"}]
        client_auth: require
        client_ca_file: "@CA@"
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "@APP@"}]}
  secure:
    targets: [{url: "@SECURE@"}]
    tls: {ca_file: "@CA@", server_name: up.e2e.test}
routes:
  - {name: app, match: {path: /}, upstream: app, auth: public}
  - {name: secure, match: {path: /secure}, upstream: secure, auth: public}
`, "ACERT", aCert, "AKEY", aKey, "BCERT", bCert, "BKEY", bKey, "CA", caFile, "APP", app.URL, "SECURE", secure.URL)

	if len(g.listeners) != 3 {
		t.Fatalf("listeners %v, want redirect http, tls https, mtls https", g.listeners)
	}
	redirectAddr := hostPort(t, g.listeners[0])
	tlsAddr := hostPort(t, g.listeners[1])
	mtlsAddr := hostPort(t, g.listeners[2])
	if !strings.HasPrefix(g.listeners[0], "http://") || !strings.HasPrefix(g.listeners[1], "https://") || !strings.HasPrefix(g.listeners[2], "https://127.0.0.2:") {
		t.Fatalf("unexpected listener URLs %v", g.listeners)
	}

	client := func(t *testing.T, serverName string, h2 bool, certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{
			Proxy:                 nil,
			TLSClientConfig:       &tls.Config{RootCAs: ca.pool, ServerName: serverName, Certificates: certs},
			ResponseHeaderTimeout: ioTimeout,
			TLSHandshakeTimeout:   5 * time.Second,
		}
		if h2 {
			tr.ForceAttemptHTTP2 = true
		} else {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 2 * ioTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}

	t.Run("HTTP/2 and HTTP/1.1 with HSTS", func(t *testing.T) {
		for _, h2 := range []bool{true, false} {
			resp, body := do(t, client(t, "a.e2e.test", h2), "GET", "https://"+tlsAddr+"/hello", nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("h2=%v: status %d body %s", h2, resp.StatusCode, body)
			}
			if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want {
				t.Errorf("h2=%v: response protocol %s, want HTTP/%d", h2, resp.Proto, want)
			}
			if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=3600") {
				t.Errorf("h2=%v: Strict-Transport-Security %q, want max-age=3600", h2, hsts)
			}
			if got := app.Last(t); got.Header.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("h2=%v: upstream X-Forwarded-Proto %q, want https", h2, got.Header.Get("X-Forwarded-Proto"))
			}
		}
		// Errors made by the gateway itself over TLS are problem+json too.
		resp, body := do(t, client(t, "a.e2e.test", true), "GET", "https://"+tlsAddr+"/api%2Fx", nil, nil)
		problemDoc(t, resp, body, 400, true)
	})

	t.Run("SNI", func(t *testing.T) {
		for _, tc := range []struct{ sni, want string }{
			{"a.e2e.test", "a.e2e.test"},
			{"b.e2e.test", "b.e2e.test"},
			{"unknown.e2e.test", "a.e2e.test"}, // the first certificate is the default
		} {
			state, err := handshake(tlsAddr, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("SNI %s: %v", tc.sni, err)
			}
			if got := state.PeerCertificates[0].Subject.CommonName; got != tc.want {
				t.Errorf("SNI %s: served certificate %q, want %q", tc.sni, got, tc.want)
			}
		}
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		_, err := handshake(tlsAddr, &tls.Config{ServerName: "a.e2e.test", RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			t.Fatal("a TLS 1.1-max client completed a handshake")
		}
		st, err := handshake(tlsAddr, &tls.Config{ServerName: "a.e2e.test", RootCAs: ca.pool, MaxVersion: tls.VersionTLS12})
		if err != nil || st.Version != tls.VersionTLS12 {
			t.Errorf("TLS 1.2 client: %v", err)
		}
	})

	t.Run("mTLS require", func(t *testing.T) {
		for name, certs := range map[string][]tls.Certificate{
			"no certificate":            nil,
			"certificate of another CA": {strangerLeaf.tlsCert(t)},
		} {
			before := app.Count()
			req, _ := http.NewRequest("GET", "https://"+mtlsAddr+"/m", nil)
			resp, err := client(t, "b.e2e.test", true, certs...).Do(req)
			if err == nil {
				resp.Body.Close()
				t.Errorf("mTLS listener, %s: got status %d, want the handshake refused", name, resp.StatusCode)
			}
			if app.Count() != before {
				t.Errorf("mTLS listener, %s: the request reached the upstream", name)
			}
		}
		for _, h2 := range []bool{true, false} {
			resp, body := do(t, client(t, "b.e2e.test", h2, clientLeaf.tlsCert(t)), "GET", "https://"+mtlsAddr+"/m", nil, nil)
			if resp.StatusCode != 200 {
				t.Errorf("mTLS listener with a CA-signed client certificate (h2=%v): %d %s", h2, resp.StatusCode, body)
			}
		}
	})

	t.Run("redirect to https", func(t *testing.T) {
		_, httpsPort, _ := net.SplitHostPort(tlsAddr)
		c := newClient(t)
		resp, _ := do(t, c, "GET", "http://"+redirectAddr+"/some/path?x=1&y=%2F", nil, nil)
		if resp.StatusCode != 301 {
			t.Fatalf("GET over plain HTTP: %d, want 301", resp.StatusCode)
		}
		if loc, want := resp.Header.Get("Location"), "https://127.0.0.1:"+httpsPort+"/some/path?x=1&y=%2F"; loc != want {
			t.Errorf("Location %q, want %q", loc, want)
		}
		resp, _ = do(t, c, "POST", "http://"+redirectAddr+"/form", nil, strings.NewReader("a=b"))
		if resp.StatusCode != 308 && resp.StatusCode != 301 {
			t.Errorf("POST over plain HTTP: %d, want a redirect", resp.StatusCode)
		}
		// The redirect listener is protected by the same framing guard.
		resp, body, _, _ := rawExchange(t, redirectAddr, "POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		problemDoc(t, resp, body, 400, false)
	})

	t.Run("https upstream with custom CA and server name", func(t *testing.T) {
		resp, body := do(t, client(t, "a.e2e.test", true), "GET", "https://"+tlsAddr+"/secure/x", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
		got := secure.Last(t)
		if got.TLSServer != "up.e2e.test" {
			t.Errorf("upstream TLS SNI %q, want up.e2e.test", got.TLSServer)
		}
		if got.RequestURI != "/secure/x" {
			t.Errorf("upstream path %q", got.RequestURI)
		}
	})

	// Last: it changes what the listener serves.
	t.Run("certificate reload", func(t *testing.T) {
		newA := ca.issue(t, "a.e2e.test", []string{"a.e2e.test"}, false)
		newA.write(t, dir, "a")
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		for {
			st, err := handshake(tlsAddr, &tls.Config{ServerName: "a.e2e.test", RootCAs: ca.pool})
			if err == nil && st.PeerCertificates[0].SerialNumber.Cmp(newA.x509.SerialNumber) == 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the replaced certificate was not served within 8s (reload_interval 1s); last error %v", err)
			case <-time.After(200 * time.Millisecond):
			}
		}
		// The other certificate is unchanged and the server still answers.
		st, err := handshake(tlsAddr, &tls.Config{ServerName: "b.e2e.test", RootCAs: ca.pool})
		if err != nil || st.PeerCertificates[0].SerialNumber.Cmp(leafB.x509.SerialNumber) != 0 {
			t.Errorf("b.e2e.test after reloading a: %v", err)
		}
		// A broken replacement keeps the current certificate.
		writeFileAtomic(t, aCert, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
		time.Sleep(2500 * time.Millisecond)
		st, err = handshake(tlsAddr, &tls.Config{ServerName: "a.e2e.test", RootCAs: ca.pool})
		if err != nil || st.PeerCertificates[0].SerialNumber.Cmp(newA.x509.SerialNumber) != 0 {
			t.Errorf("after a broken certificate file: handshake %v; want the last good certificate still served", err)
		}
		g.alive()
	})
}

// handshake dials addr and completes a TLS handshake.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState(), nil
}
