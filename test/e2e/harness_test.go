package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sekishoBin is the binary under test, built once by TestMain.
var sekishoBin string

const (
	startTimeout = 30 * time.Second // the binary may be a -race build on a busy 2-core box
	stopTimeout  = 10 * time.Second // SIGTERM, then SIGKILL
	ioTimeout    = 10 * time.Second // any single client exchange
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (the tests build and run the real binary)")
		return 0
	}
	dir, err := os.MkdirTemp("", "sekisho-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bin := filepath.Join(dir, "sekisho")
	args := []string{"build", "-o", bin}
	if os.Getenv("SEKISHO_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/sekisho")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the sekisho binary failed (%v):\n%s", err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	sekishoBin = bin
	return m.Run()
}

// moduleRoot is the directory of the go.mod the tests belong to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// ---------------------------------------------------------------------------
// Output capture

// lineLog collects the lines a process writes to one stream and lets tests
// wait, with a deadline, for a line they expect.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line and at EOF
	eof     bool
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
	l.mu.Lock()
	l.eof = true
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Lines returns a copy of every line so far.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Len is the number of lines so far.
func (l *lineLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// String is everything written so far.
func (l *lineLog) String() string { return strings.Join(l.Lines(), "\n") }

// Wait returns the first line at index >= from that satisfies ok, waiting up
// to timeout for it.
func (l *lineLog) Wait(from int, timeout time.Duration, ok func(string) bool) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			if ok(l.lines[i]) {
				s := l.lines[i]
				l.mu.Unlock()
				return s, i, nil
			}
		}
		from = max(from, len(l.lines))
		eof, ch := l.eof, l.changed
		l.mu.Unlock()
		if eof {
			return "", -1, errors.New("stream closed before the expected line")
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "", -1, fmt.Errorf("expected line not seen within %s", timeout)
		}
	}
}

// JSON parses every line that is a JSON object.
func (l *lineLog) JSON() []map[string]any {
	var out []map[string]any
	for _, s := range l.Lines() {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// The sekisho process

// gateway is one running `sekisho serve`.
type gateway struct {
	t         *testing.T
	dir       string // working directory and config location
	cfgPath   string
	cmd       *exec.Cmd
	stdout    *lineLog // access log
	stderr    *lineLog // operational log
	listeners []string // bound listener URLs, in the order the binary reports them
	admin     string   // admin host:port ("" when disabled)

	done     chan struct{} // closed when the process has exited
	exitCode int
	stopping atomic.Bool // set when the test itself stops the process
}

// configText expands @NAME@ placeholders (config files use ${ENV} themselves,
// so the test placeholders must not look like that). @DATA@ is always the
// test's data directory.
func configText(yaml string, dataDir string, kv ...string) string {
	pairs := append([]string{"@DATA@", dataDir}, kv...)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.HasPrefix(pairs[i], "@") {
			pairs[i] = "@" + pairs[i] + "@"
		}
	}
	s := strings.NewReplacer(pairs...).Replace(yaml)
	if m := regexp.MustCompile(`@[A-Z0-9_]+@`).FindString(s); m != "" {
		panic("e2e: unexpanded placeholder " + m + " in config:\n" + s)
	}
	return s
}

// writeFileAtomic replaces path in one rename so a concurrent reader never
// sees a partial file.
func writeFileAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startGateway writes the config (placeholders expanded) into a fresh
// directory and starts `sekisho serve` on it.
func startGateway(t *testing.T, yaml string, kv ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "sekisho.yaml")
	writeFileAtomic(t, path, []byte(configText(yaml, dir, kv...)))
	return startGatewayFile(t, dir, path)
}

// startGatewayFile starts `sekisho serve --config path --log-level debug`,
// waits for the "sekisho started" line and learns the bound addresses from
// it. The process is stopped in t.Cleanup; if it exits on its own before
// that, the test fails.
func startGatewayFile(t *testing.T, dir, path string) *gateway {
	t.Helper()
	g := spawn(t, dir, "serve", "--config", path, "--log-level", "debug")
	g.cfgPath = path
	line, _, err := g.stderr.Wait(0, startTimeout, func(s string) bool { return strings.Contains(s, `"msg":"sekisho started"`) })
	if err != nil {
		g.stop()
		t.Fatalf("sekisho did not start: %v\nstderr:\n%s\nstdout:\n%s", err, tail(g.stderr.Lines(), 30), tail(g.stdout.Lines(), 10))
	}
	var started struct {
		Listeners string `json:"listeners"`
		Admin     string `json:"admin"`
	}
	if err := json.Unmarshal([]byte(line), &started); err != nil {
		t.Fatalf("parse start line %q: %v", line, err)
	}
	g.listeners = strings.Fields(started.Listeners)
	g.admin = started.Admin
	if len(g.listeners) == 0 {
		t.Fatalf("start line has no listeners: %s", line)
	}
	return g
}

// spawn starts the binary with args in dir, capturing stdout and stderr
// line by line. It is stopped in t.Cleanup (SIGTERM, then SIGKILL).
func spawn(t *testing.T, dir string, args ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, dir: dir, stdout: newLineLog(), stderr: newLineLog(), done: make(chan struct{})}
	g.cmd = exec.Command(sekishoBin, args...)
	g.cmd.Dir = dir
	g.cmd.Env = cleanEnv()
	outPipe, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start sekisho: %v", err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); g.stdout.consume(outPipe) }()
	go func() { defer readers.Done(); g.stderr.consume(errPipe) }()
	go func() {
		readers.Wait()
		err := g.cmd.Wait()
		g.exitCode = exitCodeOf(err)
		close(g.done)
	}()
	t.Cleanup(g.stop)
	return g
}

// cleanEnv is the environment for child processes: no proxy settings, so
// loopback traffic always goes direct.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// stop ends the process (SIGTERM, SIGKILL after stopTimeout). It fails the
// test if the process had exited before the test asked it to.
func (g *gateway) stop() {
	if g.stopping.Swap(true) {
		// The test stopped it itself; make sure it is gone.
		select {
		case <-g.done:
		case <-time.After(stopTimeout):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		g.checkRaces()
		return
	}
	select {
	case <-g.done:
		g.t.Errorf("sekisho exited unexpectedly with code %d\nstderr:\n%s", g.exitCode, tail(g.stderr.Lines(), 30))
		g.checkRaces()
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(stopTimeout):
		_ = g.cmd.Process.Kill()
		<-g.done
		g.t.Errorf("sekisho did not stop within %s of SIGTERM; killed", stopTimeout)
	}
	g.checkRaces()
	if g.t.Failed() {
		g.t.Logf("sekisho stderr (last lines):\n%s", tail(g.stderr.Lines(), 40))
	}
}

// checkRaces fails the test if the binary (built with SEKISHO_E2E_RACE=1)
// reported a data race.
func (g *gateway) checkRaces() {
	lines := g.stderr.Lines()
	for i, l := range lines {
		if strings.Contains(l, "WARNING: DATA RACE") {
			end := min(i+60, len(lines))
			g.t.Errorf("the sekisho binary reported a data race:\n%s", strings.Join(lines[i:end], "\n"))
			return
		}
	}
}

// signal sends sig to the process; with expectExit the test takes
// responsibility for the exit.
func (g *gateway) signal(sig os.Signal, expectExit bool) {
	g.t.Helper()
	if expectExit {
		g.stopping.Store(true)
	}
	if err := g.cmd.Process.Signal(sig); err != nil {
		g.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits up to timeout for the process to exit and returns its code.
func (g *gateway) waitExit(timeout time.Duration) (int, bool) {
	select {
	case <-g.done:
		return g.exitCode, true
	case <-time.After(timeout):
		return 0, false
	}
}

// alive fails the test if the process has exited.
func (g *gateway) alive() {
	g.t.Helper()
	select {
	case <-g.done:
		g.t.Fatalf("sekisho exited with code %d\nstderr:\n%s", g.exitCode, tail(g.stderr.Lines(), 30))
	default:
	}
}

// URL returns the first listener URL with the given scheme.
func (g *gateway) URL(scheme string) string {
	g.t.Helper()
	for _, u := range g.listeners {
		if strings.HasPrefix(u, scheme+"://") {
			return u
		}
	}
	g.t.Fatalf("no %s listener among %v", scheme, g.listeners)
	return ""
}

// Addr is the host:port of the first plain-HTTP listener.
func (g *gateway) Addr() string { return hostPort(g.t, g.URL("http")) }

func hostPort(t testing.TB, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		t.Fatalf("bad listener URL %q", u)
	}
	return pu.Host
}

// accessFor waits for the access-log line of the request with the given ID
// (the line is written after the response, so it may lag behind it).
func (g *gateway) accessFor(id string) map[string]any {
	g.t.Helper()
	line, _, err := g.stdout.Wait(0, 5*time.Second, func(s string) bool {
		return strings.Contains(s, `"request_id":"`+id+`"`)
	})
	if err != nil {
		g.t.Fatalf("no access log line for request %s: %v\nstdout:\n%s", id, err, tail(g.stdout.Lines(), 10))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		g.t.Fatalf("access log line is not JSON: %q: %v", line, err)
	}
	return m
}

// metrics fetches the admin /metrics text.
func (g *gateway) metrics() string {
	g.t.Helper()
	resp, body := do(g.t, newClient(g.t), "GET", "http://"+g.admin+"/metrics", nil, nil)
	if resp.StatusCode != 200 {
		g.t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(body)
}

// metricValue returns the value of the sample whose line starts with series
// (name plus exact label set as Prometheus prints it), or -1.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// ---------------------------------------------------------------------------
// Clients

// newClient returns an HTTP client that never follows redirects, never uses
// a proxy, and bounds every exchange.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		DisableCompression:    true,
		ResponseHeaderTimeout: ioTimeout,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       2 * ioTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do performs one request and reads the whole (bounded) body.
func do(t testing.TB, c *http.Client, method, u string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp, b
}

// rawExchange writes raw bytes on a new TCP connection and reads one
// response. The connection is returned open (with the reader) for callers
// that want to read more or check that it closes.
func rawExchange(t testing.TB, addr, raw string) (*http.Response, []byte, net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write raw request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, body, err := readResponse(br)
	if err != nil {
		t.Fatalf("raw request %q: reading response: %v", abbreviate(raw), err)
	}
	return resp, body, conn, br
}

func readResponse(br *bufio.Reader) (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp, b, err
}

func abbreviate(s string) string {
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// connClosed reports whether the server closes conn (EOF or reset) within
// timeout without sending anything more.
func connClosed(conn net.Conn, br *bufio.Reader, timeout time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	_, err := br.ReadByte()
	if err == nil {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// problemDoc checks an RFC 9457 response: status, content type, JSON body
// whose status matches and which carries no internal detail. With wantID it
// also requires the request ID in the body to equal the X-Request-Id header.
func problemDoc(t testing.TB, resp *http.Response, body []byte, status int, wantID bool) map[string]any {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("status %d: Content-Type %q, want application/problem+json; body: %s", status, ct, body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("status %d: body is not JSON: %q", status, body)
	}
	if got, _ := doc["status"].(float64); int(got) != status {
		t.Errorf("problem status %v, want %d", doc["status"], status)
	}
	if _, ok := doc["title"].(string); !ok {
		t.Errorf("problem has no title: %s", body)
	}
	if wantID {
		hdr := resp.Header.Get("X-Request-Id")
		if id, _ := doc["request_id"].(string); id == "" || id != hdr {
			t.Errorf("problem request_id %q, X-Request-Id header %q: want equal and non-empty", id, hdr)
		}
	}
	for _, leak := range []string{"127.0.0.1", "dial tcp", "connection refused", "upstream \"", "goroutine", ".go:"} {
		if bytes.Contains(body, []byte(leak)) {
			t.Errorf("problem body leaks %q: %s", leak, body)
		}
	}
	return doc
}

// ---------------------------------------------------------------------------
// Upstreams

// seen is what an upstream received.
type seen struct {
	Method     string
	RequestURI string
	Path       string
	Host       string
	Header     http.Header
	Body       []byte
	BodyErr    error
	RemoteAddr string
	Proto      string
	TLSServer  string // SNI the gateway sent, when the upstream is https
}

// upstream is an in-process loopback upstream that records every request.
type upstream struct {
	*httptest.Server
	name string
	mu   sync.Mutex
	reqs []seen
	// reply, when set, answers instead of the default JSON echo (it runs
	// after the request was recorded).
	reply http.HandlerFunc
}

func newUpstream(t *testing.T, name string, reply http.HandlerFunc) *upstream {
	return startUpstream(t, name, reply, nil)
}

// newTLSUpstream is an https upstream serving cert.
func newTLSUpstream(t *testing.T, name string, reply http.HandlerFunc, cert tls.Certificate) *upstream {
	return startUpstream(t, name, reply, &tls.Config{Certificates: []tls.Certificate{cert}})
}

func startUpstream(t *testing.T, name string, reply http.HandlerFunc, tc *tls.Config) *upstream {
	u := &upstream{name: name, reply: reply}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Server.Config.ReadHeaderTimeout = 10 * time.Second
	u.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tc != nil {
		u.Server.TLS = tc
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	s := seen{Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, Host: r.Host,
		Header: r.Header.Clone(), RemoteAddr: r.RemoteAddr, Proto: r.Proto}
	if r.TLS != nil {
		s.TLSServer = r.TLS.ServerName
	}
	if r.Header.Get("Upgrade") == "" {
		s.Body, s.BodyErr = io.ReadAll(io.LimitReader(r.Body, 8<<20))
	}
	u.mu.Lock()
	u.reqs = append(u.reqs, s)
	u.mu.Unlock()
	if u.reply != nil {
		u.reply(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"upstream": u.name, "path": r.URL.Path, "uri": r.RequestURI, "route": r.Header.Get("X-Route")})
}

// Requests returns a copy of what was received so far.
func (u *upstream) Requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// Last is the most recent request; it fails the test if there is none.
func (u *upstream) Last(t testing.TB) seen {
	t.Helper()
	r := u.Requests()
	if len(r) == 0 {
		t.Fatalf("upstream %s received nothing", u.name)
	}
	return r[len(r)-1]
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runCLI runs the binary with args and returns exit code, stdout, stderr.
func runCLI(t testing.TB, dir string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sekishoBin, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sekisho %s: timed out", strings.Join(args, " "))
	}
	return exitCodeOf(err), out.String(), errOut.String()
}

// newReq builds a request bound to ctx.
func newReq(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, method, u, body)
}
