package e2e

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsWrite writes one final frame (payload < 126 bytes), masked when mask is set.
func wsWrite(w io.Writer, opcode byte, payload []byte, mask bool) error {
	if len(payload) >= 126 {
		return errors.New("test frames are short")
	}
	b := []byte{0x80 | opcode, byte(len(payload))}
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		b[1] |= 0x80
		b = append(b, key[:]...)
		for i, c := range payload {
			b = append(b, c^key[i%4])
		}
	} else {
		b = append(b, payload...)
	}
	_, err := w.Write(b)
	return err
}

// wsRead reads one short frame, unmasking if needed.
func wsRead(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	if n >= 126 {
		return 0, nil, errors.New("long frame")
	}
	var key [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return h[0] & 0x0f, p, nil
}

// wsEcho is a minimal WebSocket upstream: it answers every text frame with
// "echo: " + payload and a close frame with a close frame.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "expected a websocket upgrade", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	if brw.Flush() != nil {
		return
	}
	for {
		op, p, err := wsRead(brw.Reader)
		if err != nil {
			return
		}
		if op == 0x8 {
			_ = wsWrite(conn, 0x8, p, false)
			return
		}
		if wsWrite(conn, 0x1, append([]byte("echo: "), p...), false) != nil {
			return
		}
	}
}

// TestWebSocketAndSSE: a WebSocket upgrade and a server-sent event stream
// pass through the real binary, and neither is cut by read_timeout or the
// upstream's overall timeout once established.
func TestWebSocketAndSSE(t *testing.T) {
	t.Parallel()
	ws := newUpstream(t, "ws", wsEcho)
	next := make(chan struct{})
	sse := newUpstream(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		fmt.Fprint(w, "id: 1\ndata: one\n\n")
		_ = rc.Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		case <-time.After(ioTimeout):
			return
		}
		fmt.Fprint(w, "id: 2\ndata: two\n\n")
		_ = rc.Flush()
	})
	g := startGateway(t, `
version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: "127.0.0.1:0"}]
  read_timeout: 1s
admin: {address: "127.0.0.1:0"}
upstreams:
  ws: {targets: [{url: "@WS@"}], timeout: 1s}
  sse: {targets: [{url: "@SSE@"}]}
routes:
  - {name: ws, match: {path: /ws}, upstream: ws, auth: public}
  - {name: sse, match: {path: /events}, upstream: sse, auth: public}
`, "WS", ws.URL, "SSE", sse.URL)

	t.Run("websocket", func(t *testing.T) {
		key := base64.StdEncoding.EncodeToString(randBytes(t, 16))
		resp, _, conn, br := rawExchange(t, g.Addr(), "GET /ws/chat HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\n\r\n")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: status %d, want 101", resp.StatusCode)
		}
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(key) {
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, wsAccept(key))
		}
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		for i, msg := range []string{"hello", "world", "after a pause"} {
			if i == 2 {
				// Longer than read_timeout and the upstream timeout (1s each).
				time.Sleep(1500 * time.Millisecond)
			}
			if err := wsWrite(conn, 0x1, []byte(msg), true); err != nil {
				t.Fatalf("message %d: write: %v", i+1, err)
			}
			op, p, err := wsRead(br)
			if err != nil {
				t.Fatalf("message %d (%q): read: %v", i+1, msg, err)
			}
			if op != 0x1 || string(p) != "echo: "+msg {
				t.Fatalf("message %d: got opcode %d %q, want text %q", i+1, op, p, "echo: "+msg)
			}
		}
		if err := wsWrite(conn, 0x8, []byte{0x03, 0xe8}, true); err != nil {
			t.Fatal(err)
		}
		if op, _, err := wsRead(br); err != nil || op != 0x8 {
			t.Errorf("close handshake: opcode %d err %v", op, err)
		}
		if got := ws.Last(t); got.RequestURI != "/ws/chat" || !strings.EqualFold(got.Header.Get("Upgrade"), "websocket") {
			t.Errorf("upstream saw %s with Upgrade %q", got.RequestURI, got.Header.Get("Upgrade"))
		}
	})

	t.Run("server-sent events", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, _ := newReq(ctx, "GET", g.URL("http")+"/events", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := newClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}()
		waitFor := func(want string, within time.Duration) {
			t.Helper()
			timer := time.NewTimer(within)
			defer timer.Stop()
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("stream ended before %q", want)
					}
					if l == want {
						return
					}
				case <-timer.C:
					t.Fatalf("%q not received within %s: the gateway buffers the stream", want, within)
				}
			}
		}
		// The first event arrives while the upstream is still holding the
		// response open: it was streamed, not buffered.
		waitFor("data: one", 5*time.Second)
		close(next)
		waitFor("data: two", 5*time.Second)
	})
}
