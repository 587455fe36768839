package webfront

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byzantium/runtime/webfront/fcgi/fcgitest"
)

// countingBackend answers after reading the whole body, counting the
// requests and the body bytes it read.
func countingBackend(t *testing.T, requests, bytes *atomic.Int64) string {
	return unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		n, _ := io.Copy(io.Discard, r.Body)
		bytes.Add(n)
		fmt.Fprintf(w, "read %d", n)
	}))
}

// countingFCGI answers after reading the whole body.
func countingFCGI(t *testing.T, requests *atomic.Int64) *fcgitest.Server {
	return fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
		requests.Add(1)
		n, _ := io.Copy(io.Discard, r.Stdin)
		w.Stdout(fmt.Sprintf("Content-Type: text/plain\r\n\r\nread %d", n))
		w.End(0)
	})
}

// TestBodyLimits: a body over the app's limit gets 413, before the app
// is reached when its length says so, and after at most the limit was
// passed on when it does not; PHP gets no body of unknown length (411).
func TestBodyLimits(t *testing.T) {
	var hReq, hBytes, fReq atomic.Int64
	f := &Front{}
	lim := Limits{MaxBody: 1 << 10}
	err := f.Update([]Route{
		{Name: "pad", Prefix: "/pad/", HTTP: &HTTPBackend{Socket: countingBackend(t, &hReq, &hBytes)}, Limits: lim},
		{Name: "wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: countingFCGI(t, &fReq).Path, Root: "/srv/wiki"}, Limits: lim},
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	post := func(path string, n int, chunked bool) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(strings.Repeat("a", n)))
		req.Header.Set("Accept", "text/html")
		if chunked {
			req.Body = io.NopCloser(req.Body) // hides the length
			req.ContentLength = -1
		}
		resp, err := clientFrom("127.0.0.1").Do(req)
		if err != nil {
			t.Fatalf("POST %s %d: %v", path, n, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/pad/x", "/wiki/doku.php"} {
		if st, body := post(path, 2<<10, false); st != 413 || !strings.Contains(body, "at most 1 KiB") {
			t.Errorf("%s 2 KiB with length: %d %s", path, st, body)
		}
		if st, body := post(path, 1<<10, false); st != 200 || body != "read 1024" {
			t.Errorf("%s 1 KiB: %d %s", path, st, body)
		}
	}
	if hReq.Load() != 1 || fReq.Load() != 1 {
		t.Errorf("apps reached %d and %d times; the oversized bodies with a length must not reach them", hReq.Load(), fReq.Load())
	}
	if st, _ := post("/pad/x", 64<<10, true); st != 413 {
		t.Errorf("64 KiB chunked: %d", st)
	}
	if n := hBytes.Load(); n > 2<<10+1<<10 {
		t.Errorf("the app read %d bytes of bodies over the limit", n)
	}
	if st, body := post("/wiki/doku.php", 10, true); st != 411 || !strings.Contains(body, "needs to know the size") {
		t.Errorf("chunked to PHP: %d %s", st, body)
	}
}

// slowPost starts a POST announcing size bytes, sends the first few and
// then nothing: a client on a bad link, or one holding turns on purpose.
// It returns the connection (the status line arrives on it later).
func slowPost(t *testing.T, addr, source, path string, size int) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: node1\r\nAccept: text/html\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\nwikitext=", path, size)
	return c
}

func statusLine(c net.Conn) string {
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, b, 12)
	line, _, _ := strings.Cut(string(b[:n]), "\r\n")
	return line
}

// TestSlowClient: a body that stalls gets 408 after the app's body
// timeout, for both kinds of app, and its turn comes back.
func TestSlowClient(t *testing.T) {
	var hReq, hBytes, fReq atomic.Int64
	f := &Front{}
	lim := Limits{BodyTimeout: 400 * time.Millisecond}
	err := f.Update([]Route{
		{Name: "pad", Prefix: "/pad/", HTTP: &HTTPBackend{Socket: countingBackend(t, &hReq, &hBytes)}, Limits: lim},
		{Name: "wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: countingFCGI(t, &fReq).Path, Root: "/srv/wiki"}, Limits: lim},
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	for _, path := range []string{"/pad/x", "/wiki/doku.php"} {
		start := time.Now()
		c := slowPost(t, addr, "127.0.0.2", path, 1000)
		st := statusLine(c)
		c.Close()
		if st != "HTTP/1.1 408 Request Timeout" {
			t.Errorf("%s: %q", path, st)
		}
		if waited := time.Since(start); waited < 400*time.Millisecond {
			t.Errorf("%s: answered after %v, before the body timeout", path, waited)
		}
		a := f.table.Load().get(strings.Split(path, "/")[1])
		waitFor(t, path+"'s turn to come back", func() bool { return a.gate.inUse() == 0 })
	}
}

// TestFairness: one client (127.0.0.2) opens many requests whose
// bodies stall, to a PHP app and to an HTTP app, more than each app has
// turns for; another client (127.0.0.3) is
// still served, because one client holds at most PerClient turns. The
// control case gives one client all the turns and shows that the other
// is then turned away: the cap is what keeps it served. Past its queue,
// the first client gets 429 at once.
func TestFairness(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perClient int
		wait      time.Duration // for a turn
		want      int           // the second client's status
	}{
		{"per-client cap", 2, 20 * time.Second, 200},
		{"control: no cap", 4, time.Second, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var slowIn atomic.Int64
			http1 := unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					slowIn.Add(1)
				}
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok")
			}))
			var fReq atomic.Int64
			php := countingFCGI(t, &fReq)
			lim := Limits{Concurrent: 4, PerClient: tc.perClient, BackendTimeout: tc.wait, BodyTimeout: 30 * time.Second}
			f := &Front{}
			err := f.Update([]Route{
				{Name: "pad", Prefix: "/pad/", HTTP: &HTTPBackend{Socket: http1}, Limits: lim},
				{Name: "wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: php.Path, Root: "/srv/wiki"}, Limits: lim},
			})
			if err != nil {
				t.Fatal(err)
			}
			addr := frontServer(t, f, 0)
			pad, wiki := f.table.Load().get("pad"), f.table.Load().get("wiki")

			// The first client: 6 slow requests to each app.
			var conns []net.Conn
			for i := 0; i < 6; i++ {
				conns = append(conns, slowPost(t, addr, "127.0.0.2", "/wiki/doku.php", 1000),
					slowPost(t, addr, "127.0.0.2", "/pad/slow", 1000))
			}
			holds := min(tc.perClient, 4)
			waitFor(t, "the first client to hold its turns", func() bool {
				return pad.gate.inUse() == holds && wiki.gate.inUse() == holds && slowIn.Load() == int64(holds)
			})

			// The second client, while the first holds its turns.
			c := clientFrom("127.0.0.3")
			for _, path := range []string{"/pad/fast", "/wiki/doku.php"} {
				resp, _ := get(t, c, "http://"+addr+path, "Accept", "text/html")
				if resp.StatusCode != tc.want {
					t.Errorf("the second client, %s: %d, want %d", path, resp.StatusCode, tc.want)
				}
			}
			if tc.perClient == 2 {
				// 2 holding and 6 waiting fill the first client's queue
				// (4 × 2): its next request is refused at once.
				for i := 0; i < 4; i++ {
					conns = append(conns, slowPost(t, addr, "127.0.0.2", "/wiki/doku.php", 1000))
				}
				time.Sleep(100 * time.Millisecond)
				resp, body := get(t, clientFrom("127.0.0.2"), "http://"+addr+"/wiki/doku.php", "Accept", "text/html")
				if resp.StatusCode != 429 || !strings.Contains(body, "many requests open") {
					t.Errorf("past the queue: %d %s", resp.StatusCode, body)
				}
			}
			for _, c := range conns {
				c.Close()
			}
			waitFor(t, "every turn to come back", func() bool { return pad.gate.inUse() == 0 && wiki.gate.inUse() == 0 })
		})
	}
}

// TestSourceNet: a client is an IPv4 address or an IPv6 /64, as
// byzd's connection caps count them.
func TestSourceNet(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:5":             "192.0.2.1/32",
		"[::ffff:192.0.2.1]:5":    "192.0.2.1/32",
		"[2001:db8:1:2::1]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::9]:80": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":       "fe80::/64",
		"garbage":                 "invalid Prefix",
	} {
		if got := sourceNet(addr).String(); got != want {
			t.Errorf("sourceNet(%s) = %s, want %s", addr, got, want)
		}
	}
}

// TestGate: turns are taken and given back, a client's queue is
// bounded, and a client's entry goes when its last request does.
func TestGate(t *testing.T) {
	g := newGate(3, 2)
	a, b := sourceNet("192.0.2.1:1"), sourceNet("192.0.2.2:1")
	ctx := t.Context()
	r1, err1 := g.enter(ctx, a)
	r2, err2 := g.enter(ctx, a)
	if err1 != nil || err2 != nil || g.inUse() != 2 {
		t.Fatalf("%v %v %d", err1, err2, g.inUse())
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := g.enter(short, a); err != errAppBusy {
		t.Errorf("a third request from a: %v, want it to wait and give up", err)
	}
	r3, err := g.enter(ctx, b)
	if err != nil || g.inUse() != 3 {
		t.Fatalf("b: %v %d", err, g.inUse())
	}
	// a: 2 holding; 6 more may wait (4 × 2 in all); the 9th is refused.
	waiters, stop := context.WithCancel(ctx)
	done := make(chan error, 6)
	for i := 0; i < 6; i++ {
		go func() { _, err := g.enter(waiters, a); done <- err }()
	}
	waitFor(t, "six waiting", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.clients[a].users == 8
	})
	if _, err := g.enter(ctx, a); err != errClientBusy {
		t.Errorf("past the queue: %v", err)
	}
	stop()
	for i := 0; i < 6; i++ {
		<-done
	}
	r1()
	r2()
	r3()
	if g.inUse() != 0 || len(g.clients) != 0 {
		t.Errorf("%d in use, %d clients left", g.inUse(), len(g.clients))
	}
}
