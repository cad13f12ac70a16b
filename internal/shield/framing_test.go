package shield

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/problem"
)

// testMaxHead is the MaxHeaderBytes of the guarded test servers.
const testMaxHead = 4096

// seen is one request as the handler saw it.
type seen struct {
	method, path, body string
	proto              int
	trailer            http.Header
	bodyErr            error
}

// guardServer is an http.Server behind GuardListener whose handler records
// every request and echoes "method path body".
type guardServer struct {
	addr string

	started atomic.Int32 // handler calls begun

	mu      sync.Mutex
	reqs    []seen
	rejects []string
}

type serverOpt func(*http.Server)

func newGuardServer(t *testing.T, opts ...serverOpt) *guardServer {
	t.Helper()
	gs := &guardServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		gs.started.Add(1)
		b, err := io.ReadAll(r.Body)
		gs.mu.Lock()
		gs.reqs = append(gs.reqs, seen{method: r.Method, path: r.URL.Path, body: string(b), proto: r.ProtoMajor, trailer: r.Trailer.Clone(), bodyErr: err})
		gs.mu.Unlock()
		if err != nil {
			http.Error(w, "body", http.StatusTeapot)
			return
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    testMaxHead,
		ConnState:         ObserveConnState,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	for _, o := range opts {
		o(srv)
	}
	ln := GuardListener(listenLoopback(t), FramingOptions{
		MaxHeaderBytes: testMaxHead,
		ErrorWriter:    problem.Raw,
		OnReject: func(r, _ string, _ net.Addr) {
			gs.mu.Lock()
			gs.rejects = append(gs.rejects, r)
			gs.mu.Unlock()
		},
	})
	gs.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return gs
}

func (gs *guardServer) requests() []seen {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return append([]seen(nil), gs.reqs...)
}

func (gs *guardServer) rejections() []string {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return append([]string(nil), gs.rejects...)
}

func (gs *guardServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", gs.addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	return c
}

// readResp reads one response and its body.
func readResp(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return resp, string(b)
}

// expectProblem asserts that resp is a problem+json refusal with status and
// that the server then closed the connection.
func expectProblem(t *testing.T, resp *http.Response, body string, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json (body %q)", ct, body)
	}
	if !resp.Close {
		t.Fatalf("refusal without Connection: close")
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.Status != status || p.Detail == "" {
		t.Fatalf("problem body %q: %v", body, err)
	}
}

func expectEOF(t *testing.T, br *bufio.Reader) {
	t.Helper()
	b, err := io.ReadAll(br)
	if err != nil && !isReset(err) {
		t.Fatalf("connection not closed after refusal: %v", err)
	}
	if len(b) != 0 {
		t.Fatalf("unexpected bytes after refusal: %q", b)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// TestFramingRefusals sends one malformed request per case on a fresh
// connection and expects the guard's problem response, the reason reported
// to OnReject, a closed connection and a handler that was never called.
func TestFramingRefusals(t *testing.T) {
	const host = "Host: x\r\n"
	big := strings.Repeat("a", 17)
	cases := []struct {
		name, req string
		status    int
		reason    string
	}{
		{"cl_te", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "cl_te"},
		{"te_cl", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "cl_te"},
		{"te_cl_lowercase_names", "POST / HTTP/1.1\r\n" + host + "transfer-encoding: chunked\r\ncontent-LENGTH: 5\r\n\r\n0\r\n\r\n", 400, "cl_te"},
		{"two_different_cl", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "duplicate_cl"},
		{"two_identical_cl", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, "duplicate_cl"},
		{"cl_list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\nhello", 400, "bad_cl"},
		{"cl_plus", "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello", 400, "bad_cl"},
		{"cl_minus", "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400, "bad_cl"},
		{"cl_hex", "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x5\r\n\r\nhello", 400, "bad_cl"},
		{"cl_empty", "POST / HTTP/1.1\r\n" + host + "Content-Length: \r\n\r\n", 400, "bad_cl"},
		{"cl_overflow", "POST / HTTP/1.1\r\n" + host + "Content-Length: 9223372036854775808\r\n\r\n", 400, "bad_cl"},
		{"cl_space_before_colon", "POST / HTTP/1.1\r\n" + host + "Content-Length : 5\r\n\r\nhello", 400, "header_space"},
		{"te_space_before_colon", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, "header_space"},
		{"te_xchunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_list", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_chunked_twice_listed", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_tab", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_trailing_space", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked \r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_trailing_tab", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_upper", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_two_lines", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"te_identity", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\n", 400, "bad_te"},
		{"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_te"},
		{"obs_fold_space", "POST / HTTP/1.1\r\n" + host + "X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "obs_fold"},
		{"obs_fold_tab", "GET / HTTP/1.1\r\n" + host + "X-A: a\r\n\tb\r\n\r\n", 400, "obs_fold"},
		{"leading_space_header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, "obs_fold"},
		{"bare_lf_everywhere", "GET / HTTP/1.1\nHost: x\n\n", 400, "bare_lf"},
		{"bare_lf_one_line", "GET / HTTP/1.1\r\nHost: x\nTransfer-Encoding: chunked\r\n\r\n", 400, "bare_lf"},
		{"bare_lf_end", "GET / HTTP/1.1\r\nHost: x\r\n\n", 400, "bare_lf"},
		{"bare_cr", "GET / HTTP/1.1\r\nHost: x\rTransfer-Encoding: chunked\r\n\r\n", 400, "bare_cr"},
		{"bare_cr_request_line", "GET / HTTP/1.1\r\r\nHost: x\r\n\r\n", 400, "bare_cr"},
		{"double_space", "GET  / HTTP/1.1\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"http12", "GET / HTTP/1.2\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"http2_line", "GET / HTTP/2.0\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"lowercase_version", "GET / http/1.1\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"bad_method", "G(T / HTTP/1.1\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"bad_escape", "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"raw_utf8_target", "GET /\xc3\xbc HTTP/1.1\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"empty_line_first", "\r\nGET / HTTP/1.1\r\n" + host + "\r\n", 400, "bad_request_line"},
		{"h2_preface_late", "GET / HTTP/1.1\r\n" + host + "\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request_line"},
		{"no_colon", "GET / HTTP/1.1\r\n" + host + "NoColon\r\n\r\n", 400, "bad_header"},
		{"empty_name", "GET / HTTP/1.1\r\n" + host + ": x\r\n\r\n", 400, "bad_header"},
		{"nul_in_value", "GET / HTTP/1.1\r\n" + host + "X: a\x00b\r\n\r\n", 400, "bad_header"},
		{"bad_name_char", "GET / HTTP/1.1\r\n" + host + "X(y): 1\r\n\r\n", 400, "bad_header"},
		{"missing_host", "GET / HTTP/1.1\r\n\r\n", 400, "bad_host"},
		{"two_hosts", "GET / HTTP/1.1\r\n" + host + host + "\r\n", 400, "bad_host"},
		{"bad_host_char", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad_host"},
		{"expect_other", "GET / HTTP/1.1\r\n" + host + "Expect: something\r\n\r\n", 417, "bad_expect"},
		{"head_too_large", "GET / HTTP/1.1\r\n" + host + "X: " + strings.Repeat("a", testMaxHead) + "\r\n\r\n", 431, "head_too_large"},
		{"head_too_large_no_lf", "GET /" + strings.Repeat("a", testMaxHead+10), 431, "head_too_large"},
		{"chunk_size_17_digits", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" + big + "\r\n", 400, "bad_chunk"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gs := newGuardServer(t)
			c := gs.dial(t)
			if _, err := io.WriteString(c, tc.req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, body := readResp(t, br)
			expectProblem(t, resp, body, tc.status)
			expectEOF(t, br)
			if got := gs.requests(); len(got) != 0 {
				t.Fatalf("handler called: %+v", got)
			}
			if got := gs.rejections(); len(got) != 1 || got[0] != tc.reason {
				t.Fatalf("OnReject got %q, want [%s]", got, tc.reason)
			}
		})
	}
}

// TestChunkedBodyRefusals: the head is fine, the body is not. The handler
// runs (it is reading the body) but must see an error, never a body, and the
// client gets the guard's 400 before anything else.
func TestChunkedBodyRefusals(t *testing.T) {
	const h = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	cases := []struct{ name, body, reason string }{
		{"space_after_size", "5 \r\nhello\r\n0\r\n\r\n", "bad_chunk"},
		{"not_hex", "zz\r\nhello\r\n0\r\n\r\n", "bad_chunk"},
		{"empty_size", "\r\nhello\r\n0\r\n\r\n", "bad_chunk"},
		{"bare_lf_size", "5\nhello\r\n0\r\n\r\n", "bad_chunk"},
		{"missing_data_crlf", "5\r\nhelloX\r\n0\r\n\r\n", "bad_chunk"},
		{"bare_lf_after_data", "5\r\nhello\n0\r\n\r\n", "bad_chunk"},
		{"ctl_in_extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", "bad_chunk"},
		{"extension_too_long", "5;" + strings.Repeat("x", maxChunkLine) + "\r\nhello\r\n0\r\n\r\n", "bad_chunk"},
		{"trailer_space_before_colon", "0\r\nX-T : 1\r\n\r\n", "header_space"},
		{"trailer_obs_fold", "0\r\nX-T: 1\r\n 2\r\n\r\n", "obs_fold"},
		{"trailer_bare_lf", "0\r\nX-T: 1\n\r\n", "bare_lf"},
		{"trailer_bare_lf_end", "0\r\n\n", "bare_lf"},
		{"trailer_bare_cr", "0\r\nX-T: 1\rX\r\n\r\n", "bare_cr"},
		{"trailer_too_large", "0\r\nX-T: " + strings.Repeat("a", maxTrailerBytes) + "\r\n\r\n", "bad_chunk"},
	}
	for _, tc := range cases {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/split=%v", tc.name, split), func(t *testing.T) {
				gs := newGuardServer(t)
				c := gs.dial(t)
				if _, err := io.WriteString(c, h); err != nil {
					t.Fatal(err)
				}
				if split {
					// The handler runs and is reading the body when the
					// violation arrives.
					waitFor(t, "handler to start", func() bool { return gs.started.Load() == 1 })
					time.Sleep(20 * time.Millisecond)
				}
				if _, err := io.WriteString(c, tc.body); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				resp, body := readResp(t, br)
				expectProblem(t, resp, body, 400)
				expectEOF(t, br)
				if got := gs.rejections(); len(got) != 1 || got[0] != tc.reason {
					t.Fatalf("OnReject got %q, want [%s]", got, tc.reason)
				}
				if split {
					waitFor(t, "handler to finish", func() bool { return len(gs.requests()) == 1 })
				}
				for _, r := range gs.requests() {
					if r.bodyErr == nil {
						t.Fatalf("handler read a whole body despite the refusal: %q", r.body)
					}
				}
			})
		}
	}
}

// TestHeadSizeBoundary: a head of exactly MaxHeaderBytes is served, one byte
// more is refused with 431.
func TestHeadSizeBoundary(t *testing.T) {
	mk := func(size int) string {
		const pre, post = "GET /s HTTP/1.1\r\nHost: x\r\nX-Pad: ", "\r\n\r\n"
		return pre + strings.Repeat("p", size-len(pre)-len(post)) + post
	}
	gs := newGuardServer(t)
	for _, tc := range []struct {
		size, status int
	}{{testMaxHead, 200}, {testMaxHead + 1, 431}} {
		c := gs.dial(t)
		req := mk(tc.size)
		if len(req) != tc.size {
			t.Fatalf("built %d bytes, want %d", len(req), tc.size)
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, body := readResp(t, bufio.NewReader(c))
		if tc.status == 200 {
			if resp.StatusCode != 200 || body != "GET /s " {
				t.Fatalf("head of %d bytes: %d %q", tc.size, resp.StatusCode, body)
			}
			continue
		}
		expectProblem(t, resp, body, tc.status)
	}
	if n := len(gs.requests()); n != 1 {
		t.Fatalf("handler saw %d requests, want 1", n)
	}
}

// TestPipelinedRequests: three requests (no body, Content-Length body,
// chunked body) in one write are all served, in order.
func TestPipelinedRequests(t *testing.T) {
	gs := newGuardServer(t)
	c := gs.dial(t)
	stream := "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nwor\r\n2\r\nld\r\n0\r\n\r\n"
	if _, err := io.WriteString(c, stream); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"GET /1 ", "POST /2 hello", "POST /3 world"} {
		resp, body := readResp(t, br)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	got := gs.requests()
	if len(got) != 3 || got[0].path != "/1" || got[1].path != "/2" || got[2].path != "/3" {
		t.Fatalf("handler saw %+v", got)
	}
	if len(gs.rejections()) != 0 {
		t.Fatalf("refused: %v", gs.rejections())
	}
}

// TestPipelinedByteByByte sends the same pipeline one byte per write, so every
// head and chunk line straddles reads.
func TestPipelinedByteByByte(t *testing.T) {
	gs := newGuardServer(t)
	c := gs.dial(t)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	stream := "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;e=v\r\nd\r\n0\r\nX-T: 1\r\n\r\n" +
		"\r\n" + // tolerated after a POST, as net/http does
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
	go func() {
		for i := 0; i < len(stream); i++ {
			if _, err := c.Write([]byte{stream[i]}); err != nil {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	br := bufio.NewReader(c)
	for _, want := range []string{"POST /a abc", "POST /b d", "GET /c "} {
		resp, body := readResp(t, br)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
}

// TestChunkedExtensionsAndTrailers: extensions are skipped, trailers reach
// the handler.
func TestChunkedExtensionsAndTrailers(t *testing.T) {
	gs := newGuardServer(t)
	c := gs.dial(t)
	req := "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5;name=val\r\nhello\r\n" +
		"6;a;b=\"q s\"\r\n world\r\n" +
		"0;last\r\nX-Sum: 42\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, body := readResp(t, bufio.NewReader(c))
	if resp.StatusCode != 200 || body != "POST /t hello world" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := gs.requests(); len(got) != 1 || got[0].trailer.Get("X-Sum") != "42" {
		t.Fatalf("handler saw %+v", got)
	}
}

// TestSmuggledRequestInChunkedBody (TE.CL shape): a request inside chunk data
// is body, never a request of its own.
func TestSmuggledRequestInChunkedBody(t *testing.T) {
	gs := newGuardServer(t)
	c := gs.dial(t)
	inner := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	req := "POST /outer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(inner), inner) +
		"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"POST /outer " + inner, "GET /next "} {
		resp, body := readResp(t, br)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	for _, r := range gs.requests() {
		if r.path == "/smuggled" {
			t.Fatal("smuggled request reached the handler")
		}
	}
	if n := len(gs.requests()); n != 2 {
		t.Fatalf("handler saw %d requests, want 2", n)
	}
}

// TestSmuggledRequestInLengthBody (CL.TE shape without the TE): bytes counted
// by Content-Length are body even when they look like a request.
func TestSmuggledRequestInLengthBody(t *testing.T) {
	gs := newGuardServer(t)
	c := gs.dial(t)
	inner := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	req := fmt.Sprintf("POST /outer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(inner), inner)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, body := readResp(t, bufio.NewReader(c))
	if resp.StatusCode != 200 || body != "POST /outer "+inner {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := c.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a second response: the body was parsed as a request")
	}
	if n := len(gs.requests()); n != 1 {
		t.Fatalf("handler saw %d requests, want 1", n)
	}
}

// TestExpectContinue: the body is only sent after the server's 100.
func TestExpectContinue(t *testing.T) {
	gs := newGuardServer(t)
	c := gs.dial(t)
	if _, err := io.WriteString(c, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("interim response %q: %v", line, err)
	}
	if rest, _ := br.ReadString('\n'); rest != "\r\n" {
		t.Fatalf("interim response continues with %q", rest)
	}
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	resp, body := readResp(t, br)
	if resp.StatusCode != 200 || body != "POST /e hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

// TestHTTP10: HTTP/1.0 requests with and without a body, keep-alive and not.
func TestHTTP10(t *testing.T) {
	gs := newGuardServer(t)
	c := gs.dial(t)
	if _, err := io.WriteString(c, "POST /k HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"+"GET /ten HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"POST /k hi", "GET /ten "} {
		resp, body := readResp(t, br)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	expectEOF(t, br) // HTTP/1.0 without keep-alive closes
}

// TestH2CPriorKnowledge: the HTTP/2 preface switches the guard to passthrough.
func TestH2CPriorKnowledge(t *testing.T) {
	gs := newGuardServer(t, func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		s.Protocols.SetUnencryptedHTTP2(true)
	})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitLimit}
	for i := range 3 {
		resp, err := client.Post("http://"+gs.addr+"/h2", "text/plain", strings.NewReader(fmt.Sprint("body", i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != fmt.Sprint("POST /h2 body", i) {
			t.Fatalf("got HTTP/%d %q", resp.ProtoMajor, b)
		}
	}
	for _, r := range gs.requests() {
		if r.proto != 2 {
			t.Fatalf("handler saw HTTP/%d", r.proto)
		}
	}
	if len(gs.rejections()) != 0 {
		t.Fatalf("refused: %v", gs.rejections())
	}
}

// upgradeServer answers /ws with 101 and then speaks a raw protocol: it
// sends "hello\x00\n" and echoes every byte back; /no refuses the upgrade
// with 200.
func upgradeServer(t *testing.T, hook bool) *guardServer {
	return newGuardServer(t, func(s *http.Server) {
		next := s.Handler
		if !hook {
			s.ConnState = nil
		}
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/ws" {
				next.ServeHTTP(w, r)
				return
			}
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\nhello\x00\n")
			_ = brw.Flush()
			_, _ = io.Copy(c, brw)
		})
	})
}

// TestUpgradePassthrough: after a 101 (and the hijack behind it) bytes that
// are not HTTP flow both ways.
func TestUpgradePassthrough(t *testing.T) {
	gs := upgradeServer(t, true)
	c := gs.dial(t)
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade response %v: %v", resp, err)
	}
	hello := make([]byte, 7)
	if _, err := io.ReadFull(br, hello); err != nil || string(hello) != "hello\x00\n" {
		t.Fatalf("server bytes %q: %v", hello, err)
	}
	// Not HTTP at all: bare LF, bare CR, NUL, what looks like CL+TE.
	raw := "\x81\x05\n\r\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\x00\xff"
	for range 3 {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(raw))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != raw {
			t.Fatalf("echo %q: %v", got, err)
		}
	}
	if len(gs.rejections()) != 0 {
		t.Fatalf("refused: %v", gs.rejections())
	}
}

// TestUpgradeWithoutHookFailsClosed documents the fail-closed behaviour when
// the server does not report hijacks: bytes after a 101 are judged as HTTP.
func TestUpgradeWithoutHookFailsClosed(t *testing.T) {
	gs := upgradeServer(t, false)
	c := gs.dial(t)
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade response %v: %v", resp, err)
	}
	_, _ = io.WriteString(c, "\x81\x05\nnot http\n")
	waitFor(t, "refusal", func() bool { return len(gs.rejections()) == 1 })
	if got := gs.rejections()[0]; got != "bare_lf" {
		t.Fatalf("reason %q", got)
	}
}

// TestUpgradeDeclinedKeepsGuarding: an Upgrade request answered 200 leaves
// the connection HTTP/1, and the guard still judges the next request.
func TestUpgradeDeclinedKeepsGuarding(t *testing.T) {
	gs := upgradeServer(t, true)
	c := gs.dial(t)
	if _, err := io.WriteString(c, "GET /no HTTP/1.1\r\nHost: x\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if resp, body := readResp(t, br); resp.StatusCode != 200 || body != "GET /no " {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if _, err := io.WriteString(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, body := readResp(t, br)
	expectProblem(t, resp, body, 400)
	if n := len(gs.requests()); n != 1 {
		t.Fatalf("handler saw %d requests, want 1", n)
	}
}

// TestSlowlorisCutByHeaderTimeout: a head trickled byte by byte is cut by
// http.Server.ReadHeaderTimeout, on the first request of a connection and on
// a later keep-alive request (where net/http only starts that timer once the
// first bytes arrive, so the guard must not hold them all back), and the
// client gets no text/plain answer from net/http.
func TestSlowlorisCutByHeaderTimeout(t *testing.T) {
	const rht = 300 * time.Millisecond
	gs := newGuardServer(t, func(s *http.Server) {
		s.ReadHeaderTimeout = rht
		s.IdleTimeout = 20 * time.Second
	})
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprint("keepalive=", keepAlive), func(t *testing.T) {
			c := gs.dial(t)
			br := bufio.NewReader(c)
			if keepAlive {
				if _, err := io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				if resp, _ := readResp(t, br); resp.StatusCode != 200 {
					t.Fatalf("first request: %d", resp.StatusCode)
				}
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				head := "GET /slow HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: 1\r\n", 1000)
				for i := 0; i < len(head); i++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					if _, err := c.Write([]byte{head[i]}); err != nil {
						return
					}
				}
			}()
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(waitLimit))
			data, err := io.ReadAll(br)
			elapsed := time.Since(start)
			if err != nil && !isReset(err) {
				t.Fatalf("slow client not cut: %v after %v", err, elapsed)
			}
			if elapsed > rht+2*time.Second {
				t.Fatalf("cut after %v, header timeout is %v", elapsed, rht)
			}
			if len(data) != 0 {
				t.Fatalf("slow client got %q", data)
			}
		})
	}
	if n := len(gs.requests()); n != 1 {
		t.Fatalf("handler saw %d requests, want 1", n)
	}
}

// TestPOSTTrailingCRLF: net/http discards up to four CR/LF bytes after a
// POST; the guard lets exactly that through and nothing more.
func TestPOSTTrailingCRLF(t *testing.T) {
	gs := newGuardServer(t)
	post := "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz"
	get := "GET /g HTTP/1.1\r\nHost: x\r\n\r\n"

	c := gs.dial(t)
	if _, err := io.WriteString(c, post+"\r\n\r\n"+get); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"POST /p z", "GET /g "} {
		if resp, body := readResp(t, br); resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want)
		}
	}

	c = gs.dial(t)
	if _, err := io.WriteString(c, post+"\r\n\r\n\r\n"+get); err != nil {
		t.Fatal(err)
	}
	br = bufio.NewReader(c)
	// The refusal drops the read it was found in, so the POST sent in the
	// same write may or may not be served first; the GET never is.
	resp, body := readResp(t, br)
	if resp.StatusCode == 200 && body == "POST /p z" {
		resp, body = readResp(t, br)
	}
	expectProblem(t, resp, body, 400)
	for _, r := range gs.requests() {
		if r.path == "/g" && len(gs.requests()) > 2 {
			t.Fatal("request after three CRLFs was served")
		}
	}
	if got := gs.rejections(); len(got) != 1 || got[0] != "bad_request_line" {
		t.Fatalf("refusals %v", got)
	}
}

// TestLimiterFindsGuardedConn: Limiter.ConnState must find its connection
// through the guard (plain and TLS) to reclaim idle connections.
func TestLimiterFindsGuardedConn(t *testing.T) {
	l, _ := newTestLimiter(t, ConnLimits{MaxConns: 2})
	cfg := newGuardConfig(FramingOptions{}, true)
	raw := l.admit(&fakeConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	plain := newGuardConn(raw, cfg, true)
	if l.find(plain) != raw {
		t.Fatal("limiter connection not found through the plain guard")
	}
	tlsWrapped := &tlsGuardConn{guardConn: guardConn{Conn: tlsServerConn(raw), cfg: cfg}}
	if l.find(tlsWrapped) != raw {
		t.Fatal("limiter connection not found through the TLS guard")
	}
	l.ConnState(tlsWrapped, http.StateHijacked)
	if !tlsWrapped.hijacked.Load() {
		t.Fatal("Limiter.ConnState did not forward the hijack to the guard")
	}
}

// TestGuardDeadlinesAndCloseWrite: deadlines and CloseWrite reach the inner
// connection.
func TestGuardDeadlinesAndCloseWrite(t *testing.T) {
	ln := GuardListener(listenLoopback(t), FramingOptions{})
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv := <-accepted
	defer srv.Close()
	_ = srv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := srv.Read(make([]byte, 4096)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read deadline not applied: %v", err)
	}
	if err := srv.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = cli.SetReadDeadline(time.Now().Add(waitLimit))
	if n, err := cli.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("CloseWrite not forwarded: %d %v", n, err)
	}
	if srv.(interface{ NetConn() net.Conn }).NetConn() == nil {
		t.Fatal("NetConn")
	}
}

// TestFramingDefaults: without ErrorWriter the refusal is a bodiless response
// with the right status; MaxHeaderBytes <= 0 means net/http's default; every
// reason has a distinct label, a status and a detail.
func TestFramingDefaults(t *testing.T) {
	cfg := newGuardConfig(FramingOptions{MaxHeaderBytes: -1}, true)
	if cfg.maxHead != http.DefaultMaxHeaderBytes {
		t.Fatalf("maxHead %d", cfg.maxHead)
	}
	raw := renderError(cfg.render, reasonInfo[rHeadTooLarge].status, reasonInfo[rHeadTooLarge].detail, "id-1")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil || resp.StatusCode != 431 || !resp.Close || resp.ContentLength != 0 || resp.Header.Get("X-Request-Id") != "id-1" {
		t.Fatalf("default refusal %q: %v", raw, err)
	}
	labels := FramingRejectReasons()
	if len(labels) != int(numReasons)-1 {
		t.Fatalf("%d labels", len(labels))
	}
	uniq := map[string]bool{}
	for r := rNone + 1; r < numReasons; r++ {
		in := reasonInfo[r]
		if in.label == "" || uniq[in.label] || in.status < 400 || in.detail == "" {
			t.Fatalf("reason %d: %+v", r, in)
		}
		uniq[in.label] = true
	}
}
