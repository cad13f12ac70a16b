package shield

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// scriptConn is an in-memory connection whose reads return the given chunks
// one by one (then io.EOF) and whose writes are recorded.
type scriptConn struct {
	chunks [][]byte
	wrote  bytes.Buffer
}

func (c *scriptConn) Read(b []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}
func (c *scriptConn) Write(b []byte) (int, error)      { return c.wrote.Write(b) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

const fuzzMaxHead = 256

var fuzzReadSizes = []int{1, 2, 3, 5, 17, 64, 512, 4096}

// FuzzGuard feeds a byte stream, cut into reads by cuts, through a guarded
// connection read with varying buffer sizes, and checks that:
//   - nothing panics and Read terminates;
//   - the released bytes are an unchanged prefix of the stream (never more
//     bytes than were read);
//   - the result does not depend on how the stream was cut: the same
//     refusal reason, or exactly the same released prefix, as one scan of
//     the whole stream;
//   - net/http's own parser (http.ReadRequest), walking the released
//     messages, accepts each of them and ends exactly where the guard says
//     the next head starts, and no released head has both Content-Length and
//     Transfer-Encoding.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), []byte{0, 1, 7, 200})
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		var rejected []string
		cfg := newGuardConfig(FramingOptions{MaxHeaderBytes: fuzzMaxHead, OnReject: func(r, _ string, _ net.Addr) { rejected = append(rejected, r) }}, true)
		sc := &scriptConn{chunks: cutStream(stream, cuts)}
		g := newGuardConn(sc, cfg, true)

		var out []byte
		var err error
		for i := 0; ; i++ {
			if i > 4*len(stream)+16 {
				t.Fatalf("Read does not terminate")
			}
			size := 4096
			if len(cuts) > 0 {
				size = fuzzReadSizes[int(cuts[i%len(cuts)])%len(fuzzReadSizes)]
			}
			buf := make([]byte, size)
			var n int
			n, err = g.Read(buf)
			if n < 0 || n > size {
				t.Fatalf("Read returned %d for a %d-byte buffer", n, size)
			}
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		if len(out) > len(stream) || !bytes.Equal(out, stream[:len(out)]) {
			t.Fatalf("released bytes are not a prefix of the stream:\nout    %q\nstream %q", out, stream)
		}

		ref := newFramer(fuzzMaxHead, true)
		valid, r := ref.scan(stream, 0)
		if r != rNone {
			if !errors.Is(err, ErrFramingRejected) || len(rejected) != 1 || rejected[0] != r.String() {
				t.Fatalf("one scan refuses with %s; streamed: err %v, reasons %v", r, err, rejected)
			}
			if !bytes.HasPrefix(sc.wrote.Bytes(), []byte("HTTP/1.1 "+itoa3(reasonInfo[r].status)+" ")) {
				t.Fatalf("refusal response not written: %q", sc.wrote.Bytes())
			}
			return
		}
		if err != io.EOF || len(rejected) != 0 {
			t.Fatalf("one scan accepts; streamed: err %v, reasons %v", err, rejected)
		}
		if !bytes.Equal(out, stream[:valid]) {
			t.Fatalf("streamed release %d bytes, one scan %d", len(out), valid)
		}
		if ref.st == stPass {
			return
		}
		walkWithNetHTTP(t, out, ref)
	})
}

// cutStream splits s at lengths taken from cuts (1..256 each).
func cutStream(s, cuts []byte) [][]byte {
	if len(cuts) == 0 {
		return [][]byte{bytes.Clone(s)}
	}
	var out [][]byte
	for i := 0; len(s) > 0; i++ {
		n := min(int(cuts[i%len(cuts)])+1, len(s))
		out = append(out, bytes.Clone(s[:n]))
		s = s[n:]
	}
	return out
}

// countReader counts bytes read through it.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// walkWithNetHTTP parses the released bytes with net/http's request parser,
// as http.Server would (including its tolerance of CR/LF after a POST), and
// checks that it agrees with the guard on every message boundary.
func walkWithNetHTTP(t *testing.T, out []byte, f framer) {
	t.Helper()
	end := len(out) // final state in a body: the last body is cut short
	if f.st == stHead {
		end = f.headStart // complete messages only; early bytes excluded
	}
	cr := &countReader{r: bytes.NewReader(out[:end])}
	br := bufio.NewReaderSize(cr, 64<<10)
	consumed := func() int { return cr.n - br.Buffered() }
	lastPOST := false
	for {
		if lastPOST {
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		if consumed() >= end {
			break
		}
		rest, _ := br.Peek(br.Buffered())
		if he := bytes.Index(rest, []byte("\r\n\r\n")); he >= 0 {
			var cl, te bool
			for _, line := range strings.Split(string(rest[:he]), "\r\n") {
				name, _, _ := strings.Cut(line, ":")
				cl = cl || strings.EqualFold(name, "Content-Length")
				te = te || strings.EqualFold(name, "Transfer-Encoding")
			}
			if cl && te {
				t.Fatalf("released a head with Content-Length and Transfer-Encoding: %q", rest[:he])
			}
		}
		at := consumed()
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("guard released a head net/http refuses at %d: %v\n%q", at, err, out[at:end])
		}
		_, err = io.Copy(io.Discard, req.Body)
		if err != nil {
			if strings.Contains(err.Error(), "too much non-data") {
				return // net/http's own overhead limit; it closes the connection
			}
			if f.st != stHead && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) && consumed() == end {
				return // the last body, cut short by the end of the stream
			}
			t.Fatalf("net/http failed reading a body the guard passed at %d: %v\n%q", at, err, out[at:end])
		}
		lastPOST = req.Method == "POST"
	}
	if got := consumed(); got != end {
		t.Fatalf("net/http consumed %d bytes, guard's next head starts at %d", got, end)
	}
}

// FuzzParseHead checks that every head parseHead accepts is parsed by
// net/http without error, passes the header checks http.Server applies, and
// gets the same body framing.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a?b=%zz HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  chunked\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: y\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		end := bytes.Index(in, []byte("\r\n\r\n"))
		if end < 0 {
			if _, r := parseHead(in); r == rNone {
				t.Fatalf("accepted a head without its empty line: %q", in)
			}
			return
		}
		h := in[:end+4]
		hd, r := parseHead(h)
		if r != rNone {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(h)))
		if err != nil {
			t.Fatalf("accepted, net/http refuses: %v\n%q", err, h)
		}
		if req.ProtoMajor != 1 || req.ProtoMinor > 1 {
			t.Fatalf("accepted HTTP/%d.%d", req.ProtoMajor, req.ProtoMinor)
		}
		// http.ReadRequest moves Host out of the header map (and refuses
		// duplicates); for origin-form targets req.Host is the header value.
		if req.URL.Host == "" && !httpguts.ValidHostHeader(req.Host) {
			t.Fatalf("accepted Host %q", req.Host)
		}
		for k, vv := range req.Header {
			if !httpguts.ValidHeaderFieldName(k) {
				t.Fatalf("accepted header name %q", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("accepted header value %q", v)
				}
			}
		}
		if e := req.Header.Get("Expect"); e != "" && !strings.EqualFold(e, "100-continue") {
			t.Fatalf("accepted Expect %q", e)
		}
		switch hd.body {
		case bodyChunked:
			if len(req.TransferEncoding) != 1 || req.TransferEncoding[0] != "chunked" || req.ContentLength != -1 {
				t.Fatalf("chunked for the guard, TE %q CL %d for net/http", req.TransferEncoding, req.ContentLength)
			}
		case bodyLength:
			if req.ContentLength != int64(hd.length) || len(req.TransferEncoding) != 0 {
				t.Fatalf("length %d for the guard, %d (TE %q) for net/http", hd.length, req.ContentLength, req.TransferEncoding)
			}
		default:
			if req.ContentLength != 0 || len(req.TransferEncoding) != 0 {
				t.Fatalf("no body for the guard, CL %d TE %q for net/http", req.ContentLength, req.TransferEncoding)
			}
		}
	})
}
