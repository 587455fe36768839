package webfront

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// wsBackend accepts WebSocket upgrades (RFC 6455's handshake) and then
// echoes every byte upper-cased, without framing: the front copies
// bytes and never reads frames, so the test needs none. closed counts
// the connections that ended.
func wsBackend(t *testing.T, closed *atomic.Int32, sawHeaders *atomic.Pointer[http.Header]) string {
	return unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "websocket only", http.StatusBadRequest)
			return
		}
		h := r.Header.Clone()
		sawHeaders.Store(&h)
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer func() {
			c.Close()
			closed.Add(1)
		}()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n")
		buf := make([]byte, 4096)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				if _, err := c.Write(bytes.ToUpper(buf[:n])); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}))
}

func wsDial(t *testing.T, addr, path string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: node1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp.Status + " accept=" + resp.Header.Get("Sec-WebSocket-Accept")
}

// TestWebSocket: an upgrade goes through with its handshake headers;
// the connection outlives the server's read and write timeouts (a
// request's deadlines must not cut a chat) as long as bytes flow; it
// gives its turn back once upgraded, so that open chats (two here, on
// an app of one turn) never keep plain requests waiting; once nothing
// flows for the idle timeout, the front closes both sides.
func TestWebSocket(t *testing.T) {
	var closed atomic.Int32
	var saw atomic.Pointer[http.Header]
	sock := wsBackend(t, &closed, &saw)
	f := &Front{}
	idle := time.Second
	if err := f.Update([]Route{{Name: "chat", Prefix: "/chat/", HTTP: &HTTPBackend{Socket: sock},
		Limits: Limits{IdleTimeout: idle, Concurrent: 1, PerClient: 1, BackendTimeout: time.Second}}}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()

	c, br, status := wsDial(t, ln.Addr().String(), "/chat/socket.io/?EIO=4&transport=websocket")
	defer c.Close()
	if status != "101 Switching Protocols accept=s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %s", status)
	}
	h := *saw.Load()
	if h.Get("Sec-WebSocket-Key") != "dGhlIHNhbXBsZSBub25jZQ==" || h.Get("Sec-WebSocket-Version") != "13" ||
		h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Prefix") != "/chat" {
		t.Errorf("the app saw %v", h)
	}
	// 1.5 s of traffic, well past the server's 200 ms timeouts.
	buf := make([]byte, 64)
	var last time.Time
	for i := 0; i < 15; i++ {
		msg := []byte("hello " + strings.Repeat("x", i))
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := io.ReadFull(br, buf[:len(msg)]); err != nil || string(buf[:len(msg)]) != strings.ToUpper(string(msg)) {
			t.Fatalf("echo %d: %q %v", i, buf[:len(msg)], err)
		}
		last = time.Now()
		time.Sleep(100 * time.Millisecond)
	}
	a := f.table.Load().get("chat")
	if a.gate.inUse() != 0 {
		t.Errorf("%d turns in use during the chat", a.gate.inUse())
	}
	c2, br2, status := wsDial(t, ln.Addr().String(), "/chat/socket.io/?EIO=4&transport=websocket")
	defer c2.Close()
	if !strings.HasPrefix(status, "101") {
		t.Fatalf("a second WebSocket: %s", status)
	}
	io.WriteString(c2, "two")
	if _, err := io.ReadFull(br2, buf[:3]); err != nil || string(buf[:3]) != "TWO" {
		t.Errorf("second echo: %q %v", buf[:3], err)
	}
	// The app answers plain requests with 400 "websocket only": it was
	// reached, not kept waiting by the open chats.
	resp, err := http.Get("http://" + ln.Addr().String() + "/chat/plain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a plain request while two chats are open: %d", resp.StatusCode)
	}
	// Silence: the front hangs up on both sides.
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("read a byte from a silent connection")
	}
	if waited := time.Since(last); waited < idle {
		t.Errorf("closed after %v, before the idle timeout", waited)
	}
	if _, err := br2.ReadByte(); err == nil {
		t.Fatal("read a byte from the second silent connection")
	}
	waitFor(t, "the app's sides to close", func() bool { return closed.Load() == 2 })
	waitFor(t, "the turn to be given back", func() bool { return a.gate.inUse() == 0 })
}

// TestWebSocketRefused: a plain answer to an upgrade passes through as
// it is.
func TestWebSocketRefused(t *testing.T) {
	sock := unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no websockets here", http.StatusBadRequest)
	}))
	f := &Front{}
	f.Update([]Route{{Name: "chat", Prefix: "/chat/", HTTP: &HTTPBackend{Socket: sock}}})
	addr := frontServer(t, f, 0)
	c, _, status := wsDial(t, addr, "/chat/ws")
	defer c.Close()
	if !strings.HasPrefix(status, "400") {
		t.Errorf("status %s", status)
	}
}
