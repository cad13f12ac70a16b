package shield

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/problem"
)

// testCert returns a self-signed certificate for 127.0.0.1 and a pool
// trusting it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sekisho test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func tlsServerConn(c net.Conn) *tls.Conn { return tls.Server(c, &tls.Config{}) }

type tlsSeen struct {
	proto        int
	rTLS, ctxTLS *tls.ConnectionState
}

type tlsServer struct {
	addr    string
	ln      net.Listener
	pool    *x509.CertPool
	mu      sync.Mutex
	seen    []tlsSeen
	rejects []string
}

func newTLSServer(t *testing.T, handshakeTimeout time.Duration) *tlsServer {
	t.Helper()
	cert, pool := testCert(t)
	ts := &tlsServer{pool: pool}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	ts.ln = TLSListener(listenLoopback(t), cfg, FramingOptions{
		MaxHeaderBytes: testMaxHead,
		ErrorWriter:    problem.Raw,
		OnReject: func(r, _ string, _ net.Addr) {
			ts.mu.Lock()
			ts.rejects = append(ts.rejects, r)
			ts.mu.Unlock()
		},
	}, handshakeTimeout)
	ts.addr = ts.ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			ts.mu.Lock()
			ts.seen = append(ts.seen, tlsSeen{proto: r.ProtoMajor, rTLS: r.TLS, ctxTLS: TLSStateFromContext(r.Context())})
			ts.mu.Unlock()
			fmt.Fprintf(w, "HTTP/%d", r.ProtoMajor)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    testMaxHead,
		ConnContext:       ConnContext,
		ConnState:         ObserveConnState,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(ts.ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

func (ts *tlsServer) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

func (ts *tlsServer) last() tlsSeen {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.seen[len(ts.seen)-1]
}

func TestTLSListenerH2AndHTTP1(t *testing.T) {
	ts := newTLSServer(t, time.Second)
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprint("h2=", h2), func(t *testing.T) {
			c := ts.client(h2)
			defer c.CloseIdleConnections()
			for range 2 {
				resp, err := c.Post("https://"+ts.addr+"/", "text/plain", strings.NewReader("abc"))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := map[bool]string{true: "HTTP/2", false: "HTTP/1"}[h2]
				if string(b) != want {
					t.Fatalf("got %q, want %q", b, want)
				}
			}
			s := ts.last()
			if s.rTLS == nil || !s.rTLS.HandshakeComplete {
				t.Fatal("handler saw no r.TLS")
			}
			if s.ctxTLS == nil || !s.ctxTLS.HandshakeComplete {
				t.Fatal("TLSStateFromContext returned no state")
			}
			wantALPN := map[bool]string{true: "h2", false: "http/1.1"}[h2]
			if s.ctxTLS.NegotiatedProtocol != wantALPN || s.rTLS.NegotiatedProtocol != wantALPN {
				t.Fatalf("ALPN %q / %q, want %q", s.ctxTLS.NegotiatedProtocol, s.rTLS.NegotiatedProtocol, wantALPN)
			}
		})
	}
}

func (ts *tlsServer) dialTLS(t *testing.T, alpn string) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", ts.addr, &tls.Config{RootCAs: ts.pool, NextProtos: []string{alpn}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	return c
}

// TestTLSHTTP1IsGuarded: HTTP/1.1 over TLS goes through the framing guard.
func TestTLSHTTP1IsGuarded(t *testing.T) {
	ts := newTLSServer(t, time.Second)
	c := ts.dialTLS(t, "http/1.1")
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, body := readResp(t, br)
	expectProblem(t, resp, body, 400)
	expectEOF(t, br)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.seen) != 0 || len(ts.rejects) != 1 || ts.rejects[0] != "cl_te" {
		t.Fatalf("handler saw %d requests, refusals %v", len(ts.seen), ts.rejects)
	}
}

// TestTLSPriorKnowledgeNotPassedThrough: the h2 preface on an http/1.1 TLS
// connection is not a reason to stop judging.
func TestTLSPriorKnowledgeNotPassedThrough(t *testing.T) {
	ts := newTLSServer(t, time.Second)
	c := ts.dialTLS(t, "http/1.1")
	if _, err := io.WriteString(c, h2Preface); err != nil {
		t.Fatal(err)
	}
	resp, body := readResp(t, bufio.NewReader(c))
	expectProblem(t, resp, body, 400)
}

// TestTLSHandshakeTimeout: a client that never completes the handshake is
// cut after the handshake timeout and does not hold up other clients.
func TestTLSHandshakeTimeout(t *testing.T) {
	const hto = time.Second
	ts := newTLSServer(t, hto)
	stalled := make([]net.Conn, 3)
	for i := range stalled {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stalled[i] = c
	}
	start := time.Now()
	c := ts.client(false)
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + ts.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d >= hto {
		t.Fatalf("a normal client waited %v behind stalled handshakes", d)
	}
	for _, s := range stalled {
		_ = s.SetReadDeadline(time.Now().Add(waitLimit))
		if _, err := io.ReadAll(s); err != nil && !isReset(err) {
			t.Fatalf("stalled handshake not cut: %v", err)
		}
	}
	if d := time.Since(start); d < hto/2 || d > hto+2*time.Second {
		t.Fatalf("stalled handshakes cut after %v, timeout %v", d, hto)
	}
	if n := ts.ln.(interface{ HandshakeFailures() uint64 }).HandshakeFailures(); n != 3 {
		t.Fatalf("HandshakeFailures = %d, want 3", n)
	}
}

// TestTLSPlainHTTPGetsProblem: plain HTTP on the TLS port gets a problem 400.
func TestTLSPlainHTTPGetsProblem(t *testing.T) {
	ts := newTLSServer(t, time.Second)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, body := readResp(t, bufio.NewReader(c))
	expectProblem(t, resp, body, 400)
}

// TestTLSListenerClose: Close unblocks Accept and aborts pending handshakes
// even with a long handshake timeout.
func TestTLSListenerClose(t *testing.T) {
	cert, _ := testCert(t)
	ln := TLSListener(listenLoopback(t), &tls.Config{Certificates: []tls.Certificate{cert}}, FramingOptions{}, time.Hour)
	stalled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the handshake start
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Accept returned a connection after Close")
		}
	case <-time.After(waitLimit):
		t.Fatal("Accept not unblocked by Close")
	}
	_ = stalled.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadAll(stalled); err != nil && !isReset(err) {
		t.Fatalf("pending handshake not aborted by Close: %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}
