package daemon

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowClientsClosed: a client that trickles its headers or its body
// (one byte every 20 ms, a slowloris) is cut off by the deadlines, long
// before it has sent what it announced, on the HTTPS and the HTTP port.
// The test counts the bytes sent before the close; the deadlines are
// 0.5 s and 1 s, and a client that is never cut off would trickle for
// 10 s.
func TestSlowClientsClosed(t *testing.T) {
	d := startDaemon(t, t.TempDir(), t.TempDir(), func(c *Config) {
		c.Limits = Limits{HeaderTimeout: 500 * time.Millisecond, RequestTimeout: time.Second}
	})
	const total = 500
	for _, tc := range []struct {
		name, head string
		tls        bool
		trickle    byte
		answer     string // the start of what the server answers, if it does
	}{
		{"headers over HTTPS", "POST /login HTTP/1.1\r\nHost: node1\r\nX-Slow: ", true, 'a', ""},
		{"body over HTTPS", fmt.Sprintf("POST /login HTTP/1.1\r\nHost: node1\r\nOrigin: https://node1\r\n"+
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\npassword=", total+100), true, 'a', "HTTP/1.1 408"},
		{"body over HTTPS, the JSON API", fmt.Sprintf("POST /api/v1/login HTTP/1.1\r\nHost: node1\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"password\":\"", total+100), true, 'a', "HTTP/1.1 408"},
		{"headers over HTTP", "GET / HTTP/1.1\r\nHost: node1\r\nX-Slow: ", false, 'a', ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := d.http
			if tc.tls {
				addr = d.https
			}
			var conn net.Conn
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tls {
				conn = tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(time.Minute)) // a backstop only
			if _, err := io.WriteString(conn, tc.head); err != nil {
				t.Fatal(err)
			}
			answered := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(conn)
				answered <- string(b)
			}()
			sent := 0
			var answer string
			closed := false
			for ; sent < total && !closed; sent++ {
				select {
				case answer = <-answered:
					closed = true
					continue
				default:
				}
				if _, err := conn.Write([]byte{tc.trickle}); err != nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !closed {
				select {
				case answer = <-answered:
					closed = true
				case <-time.After(5 * time.Second):
				}
			}
			if !closed || sent >= total {
				t.Fatalf("the connection was still open after %d trickled bytes", sent)
			}
			t.Logf("closed after %d trickled bytes; answer %q", sent, firstLine(answer))
			if !strings.HasPrefix(answer, tc.answer) {
				t.Errorf("answer %q, want %q", firstLine(answer), tc.answer)
			}
		})
	}
}

// TestConnectionCaps: with room for 3 connections, 2 from one source
// network, a third connection from 127.0.0.1 is closed before the TLS
// handshake, one from 127.0.0.2 is served, and then a fourth source is
// refused on either port: the caps hold for both listeners together.
// Once a connection closes, its place is free again. The refusals are
// logged once, not per connection. HTTP/2 is not offered.
func TestConnectionCaps(t *testing.T) {
	d := startDaemon(t, t.TempDir(), t.TempDir(), func(c *Config) {
		c.Limits = Limits{Conns: 3, ConnsPerNetwork: 2}
	})
	served := func(src, addr string, useTLS bool) (net.Conn, bool) {
		t.Helper()
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
		c, err := dl.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if useTLS {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
			if err := tc.Handshake(); err != nil {
				c.Close()
				return nil, false
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p == "h2" {
				t.Errorf("HTTP/2 was negotiated")
			}
			c = tc
		}
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: node1\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			return nil, false
		}
		resp.Body.Close()
		c.SetDeadline(time.Time{})
		return c, true
	}
	// Every connection served is held until the test ends: one dropped
	// on the floor is closed by its finalizer at the next garbage
	// collection, which gives its place back in the middle of the test.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	hold := func(c net.Conn, ok bool) bool {
		if ok {
			held = append(held, c)
		}
		return ok
	}
	a1, ok1 := served("127.0.0.1", d.https, true)
	ok2 := hold(served("127.0.0.1", d.https, true))
	if !ok1 || !ok2 {
		t.Fatalf("the first two connections from 127.0.0.1: %v %v", ok1, ok2)
	}
	if hold(served("127.0.0.1", d.https, true)) {
		t.Error("a third connection from 127.0.0.1 was served (per-network cap 2)")
	}
	if !hold(served("127.0.0.2", d.https, true)) {
		t.Fatal("127.0.0.2 was refused with room left")
	}
	if hold(served("127.0.0.3", d.https, true)) {
		t.Error("a fourth connection was served (cap 3)")
	}
	if hold(served("127.0.0.3", d.http, false)) {
		t.Error("a fourth connection was served on the HTTP port (cap 3 for both)")
	}
	a1.Close()
	freed := false
	for i := 0; i < 100 && !freed; i++ {
		if freed = hold(served("127.0.0.3", d.https, true)); !freed {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !freed {
		t.Error("a closed connection's place was not given back")
	}
	if n := strings.Count(d.log.String(), "connections refused: over the cap"); n != 1 {
		t.Errorf("%d log lines for the refusals, want 1:\n%s", n, d.log)
	}
}

// TestSourceNet: connections are counted by IPv4 address and by IPv6 /64.
func TestSourceNet(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:443", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7/32"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
		{"[fe80::ffff:1%eth1]:443", "fe80::/64"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sourceNet(a).String(); got != tc.want {
			t.Errorf("sourceNet(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}
