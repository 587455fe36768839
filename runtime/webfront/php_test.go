package webfront

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"byzantium/runtime/webfront/fcgi/fcgitest"
)

// TestPHPParams: the CGI variables a PHP app reads, for the paths a
// wiki uses; SCRIPT_FILENAME stays in the root; headers that would
// mislead the app (a client's X-Forwarded-For, Proxy, a name with "_",
// byzd's cookie) do not reach it; denied and hidden paths never reach
// it at all.
func TestPHPParams(t *testing.T) {
	var last atomic.Pointer[map[string]string]
	var calls atomic.Int32
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
		calls.Add(1)
		last.Store(&r.Params)
		io.Copy(io.Discard, r.Stdin)
		w.Stdout("Content-Type: text/plain\r\n\r\nok")
		w.End(0)
	})
	f := &Front{ReservedCookies: []string{"__Host-byz_session"}}
	err := f.Update([]Route{{Name: "wiki", Prefix: "/wiki/", Host: "wiki.node1.byzantium.mesh", FastCGI: &FastCGIBackend{
		Socket: s.Path, Root: "/usr/share/dokuwiki", Index: "doku.php", Deny: []string{"conf/", "data/", "inc/", "install.php"}}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	c := clientFrom("127.0.0.1")
	for _, tc := range []struct {
		uri, host string
		want      map[string]string
	}{
		{"/wiki/", "", map[string]string{"SCRIPT_FILENAME": "/usr/share/dokuwiki/doku.php", "SCRIPT_NAME": "/wiki/doku.php",
			"PATH_INFO": "", "REQUEST_URI": "/wiki/", "DOCUMENT_ROOT": "/usr/share/dokuwiki", "QUERY_STRING": ""}},
		{"/wiki/doku.php?id=start&do=edit", "", map[string]string{"SCRIPT_FILENAME": "/usr/share/dokuwiki/doku.php",
			"SCRIPT_NAME": "/wiki/doku.php", "QUERY_STRING": "id=start&do=edit", "REQUEST_URI": "/wiki/doku.php?id=start&do=edit"}},
		{"/wiki/doku.php/wiki:syntax", "", map[string]string{"SCRIPT_FILENAME": "/usr/share/dokuwiki/doku.php",
			"PATH_INFO": "/wiki:syntax", "DOCUMENT_URI": "/wiki/doku.php/wiki:syntax"}},
		{"/wiki/lib/exe/css.php?t=dokuwiki", "", map[string]string{"SCRIPT_FILENAME": "/usr/share/dokuwiki/lib/exe/css.php",
			"SCRIPT_NAME": "/wiki/lib/exe/css.php"}},
		{"/wiki/lib/", "", map[string]string{"SCRIPT_FILENAME": "/usr/share/dokuwiki/lib/doku.php"}},
		{"/wiki/media/evil.png/x.php", "", map[string]string{"SCRIPT_FILENAME": "/usr/share/dokuwiki/media/evil.png/x.php"}},
		{"/lib/exe/js.php", "wiki.node1.byzantium.mesh", map[string]string{"SCRIPT_FILENAME": "/usr/share/dokuwiki/lib/exe/js.php",
			"SCRIPT_NAME": "/lib/exe/js.php", "SERVER_NAME": "wiki.node1.byzantium.mesh"}},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+tc.uri, nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("Proxy", "http://evil:3128")
		req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
		req.Header.Set("Cookie", "__Host-byz_session=secret; DokuWiki=abc")
		req.Header.Set("User-Agent", "phone")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", tc.uri, resp.StatusCode)
			continue
		}
		p := *last.Load()
		for k, v := range tc.want {
			if p[k] != v {
				t.Errorf("%s: %s = %q, want %q", tc.uri, k, p[k], v)
			}
		}
		for k, v := range map[string]string{"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "GET", "GATEWAY_INTERFACE": "CGI/1.1",
			"HTTP_COOKIE": "DokuWiki=abc", "HTTP_USER_AGENT": "phone", "HTTP_X_FORWARDED_FOR": "", "HTTP_PROXY": "",
			"HTTPS": "", "REQUEST_SCHEME": "http", "SERVER_ADDR": "127.0.0.1", "HTTP_HOST": req.Host} {
			if p[k] != v {
				t.Errorf("%s: %s = %q, want %q", tc.uri, k, p[k], v)
			}
		}
	}
	before := calls.Load()
	for _, uri := range []string{"/wiki/conf/local.php", "/wiki/conf", "/wiki/data/pages/start.txt", "/wiki/inc/init.php",
		"/wiki/install.php", "/wiki/.htaccess", "/wiki/lib/.git/config", "/wiki/doku.php.bak", "/wiki/x.txt"} {
		resp, _ := get(t, c, "http://"+addr+uri)
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", uri, resp.StatusCode)
		}
	}
	if calls.Load() != before {
		t.Errorf("denied paths reached the app %d times", calls.Load()-before)
	}
}

// TestPHPBrokenAnswers: each way a broken PHP app (or a dying php-fpm
// worker) can answer gets a clear status, an answer cut short within its
// first 4 KiB included; one cut short later (or an event stream, sent as
// it comes) reaches the client as cut short, not as whole; the next
// request is served and nothing is left running.
func TestPHPBrokenAnswers(t *testing.T) {
	var mode atomic.Value
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
		io.Copy(io.Discard, r.Stdin)
		switch mode.Load().(string) {
		case "good":
			w.Stdout("Content-Type: text/plain\r\n\r\nfine")
			w.End(0)
		case "crash":
		case "half headers":
			w.Stdout("Content-Type: text/ht")
		case "bad version":
			w.W.Write([]byte{9, 6, 0, 1, 0, 0, 0, 0})
		case "bad status":
			w.Stdout("Status: two hundred\r\n\r\n")
			w.End(0)
		case "overloaded":
			w.End(2)
		case "headers too large":
			for i := 0; i < 3000 && w.Stdout("X-A: "+strings.Repeat("a", 40)+"\r\n") == nil; i++ {
			}
		case "cut body":
			w.Stdout("Content-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly part")
		case "cut stream":
			w.Stdout("Content-Type: text/plain\r\n\r\nonly part")
		case "cut late":
			w.Stdout("Content-Type: text/plain\r\n\r\n" + strings.Repeat("p", 20000))
		case "cut event stream":
			w.Stdout("Content-Type: text/event-stream\r\n\r\ndata: 1\n\n")
		case "hang":
			time.Sleep(2 * time.Second)
		}
	})
	log := &testLog{}
	f := &Front{Logf: log.logf}
	err := f.Update([]Route{{Name: "wiki", Title: "Wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: s.Path, Root: "/srv"},
		Limits: Limits{BackendTimeout: 300 * time.Millisecond, BodyTimeout: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	c := clientFrom("127.0.0.1")
	base := runtime.NumGoroutine()
	for _, tc := range []struct {
		mode   string
		status int
		text   string
	}{
		{"crash", 502, "Wiki sent a broken answer"},
		{"half headers", 502, "Wiki sent a broken answer"},
		{"bad version", 502, "Wiki sent a broken answer"},
		{"bad status", 502, "Wiki sent a broken answer"},
		{"headers too large", 502, "Wiki sent a broken answer"},
		{"overloaded", 503, "Wiki is busy"},
		{"cut body", 502, "Wiki sent a broken answer"},   // within its first 4 KiB: still
		{"cut stream", 502, "Wiki sent a broken answer"}, // time for a page
		{"hang", 504, "Wiki took too long"},
	} {
		mode.Store(tc.mode)
		resp, body := get(t, c, "http://"+addr+"/wiki/index.php", "Accept", "text/html")
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.text) {
			t.Errorf("%s: %d %s", tc.mode, resp.StatusCode, body)
		}
		mode.Store("good")
		if resp, body := get(t, c, "http://"+addr+"/wiki/index.php"); resp.StatusCode != 200 || body != "fine" {
			t.Errorf("after %s: %d %q", tc.mode, resp.StatusCode, body)
		}
	}
	for m, want := range map[string]string{"cut late": strings.Repeat("p", 20000), "cut event stream": "data: 1\n\n"} {
		mode.Store(m)
		resp, err := c.Get("http://" + addr + "/wiki/index.php")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %d %d bytes %v: the client must see the answer cut short", m, resp.StatusCode, len(b), err)
		}
	}
	if !log.has("wiki: GET /wiki/index.php (index.php): fcgi: malformed") || !log.has("the answer broke off") {
		t.Errorf("log:\n%s", log)
	}
	c.CloseIdleConnections()
	noLeaks(t, base)
}

// TestPHPStderr: what PHP writes to stderr reaches the log, bounded.
func TestPHPStderr(t *testing.T) {
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
		w.Stderr("PHP Warning:  Undefined variable $x in /srv/index.php on line 3\n")
		w.Stderr(strings.Repeat("z", 10000))
		w.Stdout("Content-Type: text/plain\r\n\r\nok")
		w.End(0)
	})
	log := &testLog{}
	f := &Front{Logf: log.logf}
	f.Update([]Route{{Name: "wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: s.Path, Root: "/srv"}}})
	addr := frontServer(t, f, 0)
	if resp, _ := get(t, clientFrom("127.0.0.1"), "http://"+addr+"/wiki/"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if !log.has(`wiki: index.php: stderr: "PHP Warning:  Undefined variable $x`) || !log.has("bytes more not logged") {
		t.Errorf("log:\n%s", log)
	}
	for _, l := range log.lines {
		if len(l) > 5<<10 {
			t.Errorf("a log line of %d bytes", len(l))
		}
	}
}

// TestStatic: a FastCGI app's static files are served from its own
// filesystem; a link out of it resolves inside it (absolute or
// relative, however many ".."); files the app keeps to itself, FIFOs,
// folders and extensions that are not static stay unserved.
func TestStatic(t *testing.T) {
	root := t.TempDir() // the app's filesystem root
	doc := filepath.Join(root, "usr/share/wiki")
	data := filepath.Join(root, "var/lib/wiki")
	for _, d := range []string{doc + "/lib/images", data + "/tpl", root + "/etc"} {
		os.MkdirAll(d, 0o755)
	}
	write := func(p, s string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(doc+"/lib/images/logo.png", "PNG!", 0o644)
	write(data+"/tpl/style.css", "body{}", 0o644)
	write(doc+"/lib/images/private.png", "secret", 0o600)
	write(doc+"/lib/notes.txt", "text", 0o644)
	write(root+"/etc/inside.png", "inside", 0o644)
	os.Symlink("/var/lib/wiki/tpl", doc+"/lib/tpl") // as Debian's dokuwiki does
	os.Symlink("/etc/hostname", doc+"/lib/images/abs.png")
	os.Symlink("../../../../../../../../etc/hostname", doc+"/lib/images/rel.png")
	os.Symlink("/etc/inside.png", doc+"/lib/images/in.png")
	os.Mkdir(doc+"/lib/dir.png", 0o755)
	if err := syscall.Mkfifo(doc+"/lib/images/fifo.png", 0o644); err != nil {
		t.Fatal(err)
	}
	f := &Front{}
	err := f.Update([]Route{{Name: "wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: "/nonexistent.sock",
		Root: "/usr/share/wiki", FSRoot: root}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	c := clientFrom("127.0.0.1")
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/wiki/lib/images/logo.png", 200, "PNG!"},
		{"/wiki/lib/tpl/style.css", 200, "body{}"}, // through Debian's absolute link, inside the root
		{"/wiki/lib/images/in.png", 200, "inside"}, // an absolute link resolves in the app's root
		{"/wiki/lib/images/abs.png", 404, ""},      // /etc/hostname of the app's root: absent
		{"/wiki/lib/images/rel.png", 404, ""},      // ".." stops at the app's root
		{"/wiki/lib/images/private.png", 404, ""},  // mode 0600: the app's own
		{"/wiki/lib/images/fifo.png", 404, ""},     // not a file (and must not block)
		{"/wiki/lib/dir.png", 404, ""},             // a folder
		{"/wiki/lib/notes.txt", 404, ""},           // not a static extension
		{"/wiki/lib/images/missing.png", 404, ""},  // absent
		{"/wiki/lib/images/LOGO.PNG", 404, ""},     // absent (case matters)
		{"/wiki/lib/images/logo.png/x", 404, ""},   // a file is no folder
	} {
		resp, body := get(t, c, "http://"+addr+tc.path)
		if resp.StatusCode != tc.status || (tc.status == 200 && body != tc.body) {
			t.Errorf("%s: %d %q", tc.path, resp.StatusCode, body)
		}
		if tc.status == 200 && resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tc.path)
		}
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/wiki/lib/images/logo.png", strings.NewReader("x"))
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST to a static file: %v %v", resp.Status, err)
	}
	// Without FSRoot nothing static is served.
	f.Update([]Route{{Name: "wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: "/nonexistent.sock", Root: "/usr/share/wiki"}}})
	if resp, _ := get(t, c, "http://"+addr+"/wiki/lib/images/logo.png"); resp.StatusCode != 404 {
		t.Errorf("without FSRoot: %d", resp.StatusCode)
	}
}
