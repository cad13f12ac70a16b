package shield

import (
	"bytes"
	"net/url"
)

// reason is why the framing guard refused a connection. Each has a fixed
// metric label, HTTP status and client-facing detail (nothing the client sent
// is ever echoed).
type reason uint8

const (
	rNone reason = iota
	rCLTE
	rDupCL
	rBadCL
	rBadTE
	rObsFold
	rBareLF
	rBareCR
	rHeaderSpace
	rBadRequestLine
	rHeadTooLarge
	rBadChunk
	rBadHeader
	rBadHost
	rBadExpect
	numReasons
)

// reasonInfo is read-only after package initialisation.
var reasonInfo = [numReasons]struct {
	label  string
	status int
	detail string
}{
	rNone:           {"", 0, ""},
	rCLTE:           {"cl_te", 400, "The request has both Content-Length and Transfer-Encoding, so its length is ambiguous."},
	rDupCL:          {"duplicate_cl", 400, "The request has more than one Content-Length header field."},
	rBadCL:          {"bad_cl", 400, "The Content-Length header field is not a single non-negative decimal integer."},
	rBadTE:          {"bad_te", 400, "Transfer-Encoding must be exactly \"chunked\", sent once, and only with HTTP/1.1."},
	rObsFold:        {"obs_fold", 400, "Header field line folding (obs-fold) is not accepted."},
	rBareLF:         {"bare_lf", 400, "Every line of the request head and of a chunked body must end with CRLF."},
	rBareCR:         {"bare_cr", 400, "The request contains a CR that does not start a CRLF line ending."},
	rHeaderSpace:    {"header_space", 400, "Whitespace in a header field name or before its colon is not accepted."},
	rBadRequestLine: {"bad_request_line", 400, "The request line is malformed or uses an unsupported HTTP version."},
	rHeadTooLarge:   {"head_too_large", 431, "The request line and header fields exceed the size limit."},
	rBadChunk:       {"bad_chunk", 400, "The chunked request body is malformed."},
	rBadHeader:      {"bad_header", 400, "A header field line is malformed."},
	rBadHost:        {"bad_host", 400, "The request must carry exactly one valid Host header field."},
	rBadExpect:      {"bad_expect", 417, "Only the expectation \"100-continue\" is supported."},
}

func (r reason) String() string { return reasonInfo[r].label }

// FramingRejectReasons lists every reason label FramingOptions.OnReject can
// receive, for example to create metric series at zero.
func FramingRejectReasons() []string {
	out := make([]string, 0, numReasons-1)
	for r := rNone + 1; r < numReasons; r++ {
		out = append(out, reasonInfo[r].label)
	}
	return out
}

// Limits of the chunked body syntax. Go's chunked reader refuses chunk lines
// of 4096 bytes or more and trailers that do not fit its 4 KiB buffer, so
// these bounds accept nothing Go would refuse for length.
const (
	maxChunkLine    = 4095 // chunk-size line without CRLF, extensions included
	maxChunkDigits  = 16   // hex digits of a chunk size (fits uint64, as Go)
	maxTrailerBytes = 4096 // whole trailer section including the final CRLF
	maxContentLen   = 1<<63 - 1
	earlyRelease    = 4 // bytes of an incomplete head handed over early; see framer.scan
)

// h2Preface is the HTTP/2 connection preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Framer states.
const (
	stHead         uint8 = iota // inside (or at the start of) a request head
	stBody                      // Content-Length body: remain bytes left
	stChunkSize                 // at the start of a chunk-size line
	stChunkDigits               // inside the hex digits
	stChunkExt                  // inside chunk extensions
	stChunkLF                   // after the CR ending a chunk-size line
	stChunkData                 // chunk data: remain bytes left
	stDataCR                    // expecting the CR after chunk data
	stDataLF                    // expecting the LF after chunk data
	stTrailerLine               // at the start of a trailer line (or of the final CRLF)
	stTrailerName               // inside a trailer field name
	stTrailerValue              // inside a trailer field value
	stTrailerLF                 // after the CR ending a trailer line
	stEndLF                     // after the CR of the final empty line
	stPass                      // passthrough: no longer HTTP/1 (h2 preface)
)

// framer is the HTTP/1.1 request framing state machine (RFC 9112 §2–§7) of
// one connection. It sees the client's byte stream exactly once, in order,
// across arbitrary read boundaries, and decides how much of it may be handed
// to net/http.
//
// Request heads are judged whole: a head is only released once its final
// empty line has arrived and parseHead accepted it. Bodies are followed
// byte-accurately (Content-Length or chunked) so that the next head is found
// where net/http will look for it; body bytes are released as they arrive.
//
// Indexes (headStart, lineStart, search) refer to the buffer passed to scan;
// the owner calls rebase when it moves an incomplete head to another buffer.
type framer struct {
	maxHead int
	h2c     bool // at connection start and HTTP/2 prior knowledge is allowed

	st uint8

	headStart int   // first byte of the head in progress
	lineStart int   // first byte of the current line of that head
	search    int   // where the search for the next LF resumes
	lead      uint8 // empty lines skipped before the request line (after a POST)
	lastPOST  bool  // the previous request was a POST (see stHead)

	remain  uint64 // body or chunk-data bytes left
	lineLen int    // bytes of the current chunk-size line, or of the trailer section
	digits  int    // hex digits of the current chunk size
}

func newFramer(maxHead int, h2c bool) framer {
	return framer{maxHead: maxHead, h2c: h2c, st: stHead}
}

// startHead begins a new request head at buffer index i.
func (f *framer) startHead(i int) {
	f.st = stHead
	f.headStart, f.lineStart, f.search = i, i, i
	f.lead = 0
}

// rebase shifts buffer indexes after the owner dropped the first d bytes of
// the buffer (or moved the head in progress from index d to index 0).
func (f *framer) rebase(d int) {
	f.headStart -= d
	f.lineStart -= d
	f.search -= d
}

// pendingHead reports whether buf[headStart:] is an incomplete head that must
// be kept.
func (f *framer) pendingHead(bufLen int) bool {
	return f.st == stHead && f.headStart < bufLen
}

// scan advances the state machine over buf[i:] (bytes before i were scanned
// by earlier calls, and buf still holds any incomplete head from
// f.headStart on). It returns the length of the prefix of buf that may be
// handed to net/http, or the reason to refuse the connection.
//
// The prefix ends at the start of an incomplete head, except that up to
// earlyRelease leading bytes of that head that are neither CR nor LF are
// released early: after a keep-alive response net/http waits for 4 bytes
// (bufio Peek) before it arms ReadHeaderTimeout, and a request line without
// its LF cannot be acted on, so releasing them keeps the header timeout
// working for every request on the connection without letting any
// unvalidated line through.
func (f *framer) scan(buf []byte, i int) (int, reason) {
	for {
		if f.st != stHead && i >= len(buf) {
			return len(buf), rNone
		}
		switch f.st {
		case stPass:
			return len(buf), rNone

		case stHead:
			if f.h2c {
				hs := f.headStart
				n := min(len(buf)-hs, len(h2Preface))
				if string(buf[hs:hs+n]) == h2Preface[:n] {
					if n < len(h2Preface) {
						return hs, rNone // could still be the preface
					}
					f.st = stPass
					return len(buf), rNone
				}
				f.h2c = false
			}
			j := bytes.IndexByte(buf[f.search:], '\n')
			if j < 0 {
				if len(buf)-f.headStart > f.maxHead {
					return 0, rHeadTooLarge
				}
				f.search = len(buf)
				return f.headStart + safePrefix(buf[f.headStart:]), rNone
			}
			j += f.search
			if j+1-f.headStart > f.maxHead {
				return 0, rHeadTooLarge
			}
			if j == f.lineStart || buf[j-1] != '\r' {
				return 0, rBareLF
			}
			ls := f.lineStart
			f.lineStart, f.search = j+1, j+1
			if j-1 > ls {
				continue // a non-empty line; the head goes on
			}
			if ls > f.headStart {
				// An empty line after the request line: end of head.
				h, r := parseHead(buf[f.headStart : j+1])
				if r != rNone {
					return 0, r
				}
				i = j + 1
				f.lastPOST = h.post
				f.h2c = false
				switch h.body {
				case bodyNone:
					f.startHead(i)
				case bodyLength:
					f.remain = h.length
					f.st = stBody
					if f.remain == 0 {
						f.startHead(i)
					}
				case bodyChunked:
					f.st = stChunkSize
					f.lineLen, f.digits, f.remain = 0, 0, 0
				}
				continue
			}
			// An empty line before the request line. After a POST, net/http
			// discards up to four leading CR/LF bytes (RFC 9112 §2.2
			// robustness for old clients), so up to two CRLFs are released
			// there as they are; anywhere else, or more of them, is refused.
			if !f.lastPOST || f.lead >= 2 {
				return 0, rBadRequestLine
			}
			f.lead++
			f.headStart = j + 1

		case stBody, stChunkData:
			avail := uint64(len(buf) - i)
			if f.remain > avail {
				f.remain -= avail
				return len(buf), rNone
			}
			i += int(f.remain)
			f.remain = 0
			if f.st == stBody {
				f.startHead(i)
			} else {
				f.st = stDataCR
			}

		default:
			var r reason
			i, r = f.scanChunkBytes(buf, i)
			if r != rNone {
				return 0, r
			}
		}
	}
}

// scanChunkBytes runs the byte-wise part of the chunked body grammar
// (RFC 9112 §7.1) from buf[i] until the state needs a bulk skip (chunk data)
// or the buffer ends. Being stricter than Go's chunked reader here is safe
// (the connection is refused); being looser is not, so every rule below is
// one net/http also enforces or a tighter one.
//
//	chunked-body = *chunk last-chunk trailer-section CRLF
//	chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//	last-chunk   = 1*("0") [ chunk-ext ] CRLF
func (f *framer) scanChunkBytes(buf []byte, i int) (int, reason) {
	for i < len(buf) {
		c := buf[i]
		i++
		switch f.st {
		case stChunkSize, stChunkDigits:
			f.lineLen++
			if v, ok := unhex(c); ok {
				f.digits++
				if f.digits > maxChunkDigits {
					return i, rBadChunk
				}
				f.remain = f.remain<<4 | uint64(v)
				f.st = stChunkDigits
				continue
			}
			if f.st == stChunkSize { // no digit yet
				return i, rBadChunk
			}
			switch c {
			case ';':
				f.st = stChunkExt
			case '\r':
				f.st = stChunkLF
			default: // whitespace before CRLF or ';', a bare LF, junk
				return i, rBadChunk
			}
		case stChunkExt:
			f.lineLen++
			if f.lineLen > maxChunkLine {
				return i, rBadChunk
			}
			switch {
			case c == '\r':
				f.st = stChunkLF
			case c == '\t' || c >= 0x20 && c != 0x7f:
			default: // bare LF or another control character
				return i, rBadChunk
			}
		case stChunkLF:
			if c != '\n' {
				return i, rBadChunk
			}
			f.lineLen, f.digits = 0, 0
			if f.remain == 0 {
				f.st = stTrailerLine
				continue
			}
			f.st = stChunkData
			return i, rNone // bulk skip in scan
		case stDataCR:
			if c != '\r' {
				return i, rBadChunk
			}
			f.st = stDataLF
		case stDataLF:
			if c != '\n' {
				return i, rBadChunk
			}
			f.st = stChunkSize
		default: // trailer section: field lines and the final CRLF
			f.lineLen++
			if f.lineLen > maxTrailerBytes {
				return i, rBadChunk
			}
			if r := f.trailerByte(c); r != rNone {
				return i, r
			}
			if f.st == stHead { // trailer section complete
				f.startHead(i)
				return i, rNone
			}
		}
	}
	return i, rNone
}

// trailerByte advances the trailer-section grammar by one byte. Trailer
// fields follow the same field-line rules as the head (RFC 9112 §7.1.2).
func (f *framer) trailerByte(c byte) reason {
	switch f.st {
	case stTrailerLine:
		switch {
		case c == '\r':
			f.st = stEndLF
		case c == '\n':
			return rBareLF
		case c == ' ' || c == '\t':
			return rObsFold
		case isTchar(c):
			f.st = stTrailerName
		default:
			return rBadHeader
		}
	case stTrailerName:
		switch {
		case isTchar(c):
		case c == ':':
			f.st = stTrailerValue
		case c == ' ' || c == '\t':
			return rHeaderSpace
		case c == '\n':
			return rBareLF
		default:
			return rBadHeader
		}
	case stTrailerValue:
		switch {
		case c == '\r':
			f.st = stTrailerLF
		case c == '\n':
			return rBareLF
		case c == '\t' || c >= 0x20 && c != 0x7f:
		default:
			return rBadHeader
		}
	case stTrailerLF:
		if c != '\n' {
			return rBareCR
		}
		f.st = stTrailerLine
	case stEndLF:
		if c != '\n' {
			return rBareCR
		}
		f.st = stHead // the caller starts the next head
	}
	return rNone
}

// safePrefix returns how many leading bytes of b (at most earlyRelease) are
// neither CR nor LF.
func safePrefix(b []byte) int {
	n := min(len(b), earlyRelease)
	for i := 0; i < n; i++ {
		if b[i] == '\r' || b[i] == '\n' {
			return i
		}
	}
	return n
}

// Body framing of a request.
const (
	bodyNone uint8 = iota
	bodyLength
	bodyChunked
)

// head is what the framer needs to know about an accepted request head.
type head struct {
	body   uint8
	length uint64 // for bodyLength
	post   bool
}

// parseHead judges one complete request head: the request line, the header
// field lines and the empty line, every line ending in CRLF. It accepts only
// heads net/http parses the same way and would not itself refuse, so that
// every response to a malformed head comes from the guard; where RFC 9112
// leaves a choice it takes the strict one:
//
//   - request line: token method, one SP, a target of visible ASCII, one SP,
//     HTTP/1.1 or HTTP/1.0. An origin-form target must have valid %XX escapes
//     in its path; other forms must parse with url.ParseRequestURI as
//     net/http will parse them.
//   - field lines: a token name immediately followed by ':' (no whitespace
//     before the colon, no obs-fold continuation), a value without control
//     characters other than HTAB, no CR other than the line ending.
//   - Content-Length: at most one field line, value 1*DIGIT (OWS around it
//     allowed) below 2^63. Duplicates are refused even when identical
//     (net/http would merge them; RFC 9112 §6.3 allows either).
//   - Transfer-Encoding: at most one field line whose value is exactly
//     "chunked" (lower case, optionally after spaces; no tab, no trailing
//     whitespace, no list), only in HTTP/1.1 (RFC 9112 §6.1 tells servers to
//     treat TE in HTTP/1.0 as faulty framing), never with Content-Length.
//   - Host: exactly one in HTTP/1.1 (none allowed only for CONNECT), at most
//     one in HTTP/1.0, with the bytes net/http allows.
//   - Expect: empty or 100-continue; net/http answers anything else 417.
func parseHead(h []byte) (head, reason) {
	var hd head
	eol := bytes.IndexByte(h, '\n')
	if eol < 0 {
		return hd, rBadRequestLine
	}
	if eol == 0 || h[eol-1] != '\r' {
		return hd, rBareLF
	}
	line := h[:eol-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return hd, rBareCR
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return hd, rBadRequestLine
	}
	method := line[:sp]
	for _, c := range method {
		if !isTchar(c) {
			return hd, rBadRequestLine
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return hd, rBadRequestLine
	}
	target, version := rest[:sp], rest[sp+1:]
	var http11 bool
	switch string(version) {
	case "HTTP/1.1":
		http11 = true
	case "HTTP/1.0":
	default:
		return hd, rBadRequestLine
	}
	connect := string(method) == "CONNECT"
	if !validTarget(target, connect) {
		return hd, rBadRequestLine
	}
	hd.post = string(method) == "POST"

	var nCL, nTE, nHost int
	p := eol + 1
	for {
		e := bytes.IndexByte(h[p:], '\n')
		if e < 0 {
			return hd, rBadHeader // no empty line: not a complete head
		}
		e += p
		if e == p || h[e-1] != '\r' {
			return hd, rBareLF
		}
		line := h[p : e-1]
		p = e + 1
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return hd, rObsFold
		}
		i := 0
		for i < len(line) && tcharTable[line[i]] {
			i++
		}
		switch {
		case i == len(line):
			return hd, rBadHeader // no colon
		case line[i] == ' ' || line[i] == '\t':
			return hd, rHeaderSpace
		case line[i] == '\r':
			return hd, rBareCR
		case line[i] != ':' || i == 0:
			return hd, rBadHeader
		}
		name, value := line[:i], line[i+1:]
		for _, c := range value {
			if !fieldValueByte[c] {
				if c == '\r' {
					return hd, rBareCR
				}
				return hd, rBadHeader
			}
		}
		switch {
		case len(name) != 4 && len(name) != 6 && len(name) != 14 && len(name) != 17:
			// not a field the guard looks at
		case equalFoldLower(name, "content-length"):
			nCL++
			if nCL > 1 {
				return hd, rDupCL
			}
			n, ok := parseLength(trimOWS(value))
			if !ok {
				return hd, rBadCL
			}
			hd.length = n
		case equalFoldLower(name, "transfer-encoding"):
			nTE++
			if nTE > 1 || !isChunked(value) {
				return hd, rBadTE
			}
		case equalFoldLower(name, "host"):
			nHost++
			if nHost > 1 {
				return hd, rBadHost
			}
			for _, c := range trimOWS(value) {
				if !validHostByte[c] {
					return hd, rBadHost
				}
			}
		case equalFoldLower(name, "expect"):
			if v := trimOWS(value); len(v) != 0 && !equalFoldLower(v, "100-continue") {
				return hd, rBadExpect
			}
		}
	}
	switch {
	case nTE > 0 && nCL > 0:
		return hd, rCLTE
	case nTE > 0 && !http11:
		return hd, rBadTE
	case http11 && nHost == 0 && !connect:
		return hd, rBadHost
	case nTE > 0:
		hd.body = bodyChunked
	case nCL > 0:
		hd.body = bodyLength
	}
	return hd, rNone
}

// validTarget checks a request-target (RFC 9112 §3.2) so that net/http's
// url.ParseRequestURI accepts it.
func validTarget(t []byte, connect bool) bool {
	if len(t) == 0 {
		return false
	}
	for _, c := range t {
		if c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	if t[0] == '/' {
		// Origin form: net/url only fails on bad %XX escapes in the path.
		for i := 0; i < len(t) && t[i] != '?'; i++ {
			if t[i] == '%' {
				if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
					return false
				}
				i += 2
			}
		}
		return true
	}
	if len(t) == 1 && t[0] == '*' {
		return true
	}
	// Absolute or authority form: rare (proxy-style requests), so let net/url
	// decide exactly as net/http will; the allocation is off the hot path.
	raw := string(t)
	if connect {
		raw = "http://" + raw
	}
	_, err := url.ParseRequestURI(raw)
	return err == nil
}

// isChunked reports whether a Transfer-Encoding value is exactly "chunked",
// optionally preceded by spaces. Tabs, trailing whitespace, other codings,
// lists and other letter cases are refused: each is a known way to make two
// parsers disagree about whether a body is chunked.
func isChunked(v []byte) bool {
	for len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return string(v) == "chunked"
}

// parseLength parses 1*DIGIT below 2^63.
func parseLength(v []byte) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (maxContentLen-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// equalFoldLower compares b with lower (lower-case ASCII letters, digits and
// '-') ignoring ASCII case.
func equalFoldLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { _, ok := unhex(c); return ok }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isTchar reports whether c is a token character (RFC 9110 §5.6.2).
func isTchar(c byte) bool { return tcharTable[c] }

var tcharTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// fieldValueByte allows HTAB, visible ASCII, SP and obs-text (RFC 9110
// §5.5), as httpguts.ValidHeaderFieldValue does.
var fieldValueByte = func() (t [256]bool) {
	t['\t'] = true
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != 0x7f
	}
	return t
}()

// validHostByte mirrors golang.org/x/net/http/httpguts.ValidHostHeader, which
// net/http applies to the Host header.
var validHostByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()
