package daemon

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
)

// patternReader yields n bytes of a repeating pattern without holding
// them: a large body that costs the sender no memory.
type patternReader struct {
	pattern string
	n, off  int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(b) && p.off < p.n {
		b[k] = p.pattern[p.off%int64(len(p.pattern))]
		k++
		p.off++
	}
	return k, nil
}

// hostileBody is a body of n bytes of the given kind: an url-encoded
// form with one huge field, or a multipart form with one huge file part.
func hostileBody(kind string, n int64) (ctype string, body io.Reader) {
	switch kind {
	case "urlencoded":
		return "application/x-www-form-urlencoded", io.MultiReader(strings.NewReader("password="), &patternReader{pattern: "a", n: n})
	case "multipart":
		head := "--XB\r\nContent-Disposition: form-data; name=\"password\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
		return "multipart/form-data; boundary=XB", io.MultiReader(strings.NewReader(head), &patternReader{pattern: "b", n: n}, strings.NewReader("\r\n--XB--\r\n"))
	}
	panic(kind)
}

// TestBodyLimits: 2 MiB url-encoded and multipart bodies sent to the
// login, setup and settings forms (and to the JSON login), with and
// without a Content-Length, are refused with 413 (too large), 415
// (multipart) or 400 (not JSON), each costing the daemon well under 1 MiB of allocations
// and leaving nothing in $TMPDIR. A 40 MiB multipart body without a
// length, which Go's multipart reader would spill to $TMPDIR, is refused
// the same way.
func TestBodyLimits(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	tw := newTestWeb(t)
	c, csrf := tw.claim(t, "long enough pass")
	var cookie string
	for _, ck := range c.Jar.Cookies(mustURL(t, tw.srv.URL)) {
		cookie = ck.Name + "=" + ck.Value
	}
	for _, path := range []string{"/login", "/setup", "/settings?csrf=" + csrf, "/api/v1/login"} {
		for _, kind := range []string{"urlencoded", "multipart"} {
			for _, size := range []int64{2 << 20, 40 << 20} {
				for _, known := range []bool{true, false} {
					if size > 2<<20 && (known || kind != "multipart") {
						continue
					}
					name := fmt.Sprintf("%s %s %dMiB length=%v", path, kind, size>>20, known)
					ctype, body := hostileBody(kind, size)
					req := httptest.NewRequest("POST", "https://node1"+path, body)
					req.Header.Set("Content-Type", ctype)
					req.Header.Set("Origin", "https://node1")
					req.Header.Set("Cookie", cookie)
					req.ContentLength = -1
					if known {
						req.ContentLength = size
					}
					rec := httptest.NewRecorder()
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					tw.h.ServeHTTP(rec, req)
					runtime.ReadMemStats(&after)
					// A known length is refused before anything else;
					// the JSON login reads its body as JSON, which a
					// form is not.
					want := http.StatusRequestEntityTooLarge
					switch {
					case known:
					case kind == "multipart":
						want = http.StatusUnsupportedMediaType
					case path == "/api/v1/login":
						want = http.StatusBadRequest
					}
					if rec.Code != want {
						t.Errorf("%s: %d %s, want %d", name, rec.Code, firstLine(rec.Body.String()), want)
					}
					if alloc := after.TotalAlloc - before.TotalAlloc; alloc >= 1<<20 {
						t.Errorf("%s: the daemon allocated %d KiB answering it", name, alloc>>10)
					} else {
						t.Logf("%s: %d, %d KiB allocated", name, rec.Code, alloc>>10)
					}
				}
			}
		}
	}
	// The unix socket's API has the same bound.
	local, err := tw.LocalHandler()
	if err != nil {
		t.Fatal(err)
	}
	for _, known := range []bool{true, false} {
		req := httptest.NewRequest("POST", "http://byzd/api/v1/persistence/savedat", io.MultiReader(strings.NewReader(`{"passphrase":"`), &patternReader{pattern: "p", n: 2 << 20}))
		req.ContentLength = -1
		if known {
			req.ContentLength = 2<<20 + 15
		}
		rec := httptest.NewRecorder()
		local.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MiB to the socket's savedat (length %v): %d %s", known, rec.Code, rec.Body)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("$TMPDIR holds %d files after the requests: %v", len(left), left)
	}
	if tw.Settings.Get().NodeName != "node1" {
		t.Errorf("a refused body changed the settings")
	}

	// Over the wire: a 2 MiB chunked form to /login is answered 413 and
	// the connection closed, without the client sending it all.
	conn, err := tls.Dial("tcp", tw.srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: node1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
		w := httputil.NewChunkedWriter(conn)
		_, body := hostileBody("urlencoded", 2<<20)
		io.Copy(w, body)
		w.Close()
		fmt.Fprint(conn, "\r\n")
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to a 2 MiB body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("a 2 MiB chunked login over TLS: %s, close %v", resp.Status, resp.Close)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
