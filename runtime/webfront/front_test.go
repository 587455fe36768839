package webfront

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAppPath: paths that stay inside the app pass with their prefix
// taken off; every spelling of a way out is refused.
func TestAppPath(t *testing.T) {
	for _, tc := range []struct {
		uri, prefix, rel, relRaw string
	}{
		{"/wiki/", "/wiki/", "/", "/"},
		{"/wiki/doku.php?id=start", "/wiki/", "/doku.php", "/doku.php"},
		{"/pad/p/50%25", "/pad/", "/p/50%", "/p/50%25"},
		{"/pad/p/a%20b", "/pad/", "/p/a b", "/p/a%20b"},
		{"/chat/..foo/x..", "/chat/", "/..foo/x..", "/..foo/x.."},
		{"/", "/", "/", "/"},
		{"/a/b/c/", "/", "/a/b/c/", "/a/b/c/"},
	} {
		u, err := url.ParseRequestURI(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		rel, relRaw, err := appPath(u, tc.prefix)
		if err != nil || rel != tc.rel || relRaw != tc.relRaw {
			t.Errorf("appPath(%q, %q) = %q, %q, %v; want %q, %q", tc.uri, tc.prefix, rel, relRaw, err, tc.rel, tc.relRaw)
		}
	}
	for _, uri := range []string{
		"/wiki/../api/v1/status",
		"/wiki/..",
		"/wiki/./doku.php",
		"/wiki/%2e%2e/api",
		"/wiki/%2E%2e/api",
		"/wiki/.%2e/api",
		"/wiki/%252e%252e/api", // decoded twice by a careless app
		"/wiki/%252E./api",
		"/wiki//etc/passwd",
		"/wiki/a//b",
		"/wiki/a%2fb",
		"/wiki/a%2F..%2Fb",
		"/wiki/a%5cb",
		"/wiki/a%255c..",
		"/wiki/a%00b",
		"/wiki/a%0ab",
		"/wiki/a%7fb",
		"/wiki/a%252fb",
	} {
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		if rel, _, err := appPath(u, "/wiki/"); !errors.Is(err, errEscape) {
			t.Errorf("appPath(%q) = %q, %v: not refused", uri, rel, err)
		}
	}
}

func echoBackend(t testing.TB) string {
	return unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "rawpath": r.URL.RawPath, "query": r.URL.RawQuery,
			"host": r.Host, "header": r.Header})
	}))
}

type echoed struct {
	Path, RawPath, Query, Host string
	Header                     http.Header
}

func decodeEcho(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return e
}

// TestRouting: path routes, host routes (before paths, whatever the
// case, port or trailing dot of the name), the longest prefix first, a
// redirect for a prefix without its slash, the fallback for the rest,
// and a live escape attempt refused with 400 before any app sees it.
func TestRouting(t *testing.T) {
	chat, wiki, wikiadmin := echoBackend(t), echoBackend(t), echoBackend(t)
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "panel "+r.URL.Path) })
	f := &Front{Fallback: fallback}
	err := f.Update([]Route{
		{Name: "chat", Prefix: "/chat/", Host: "chat.node1.byzantium.mesh", HTTP: &HTTPBackend{Socket: chat}},
		{Name: "wiki", Prefix: "/wiki/", HTTP: &HTTPBackend{Socket: wiki, KeepPrefix: true}},
		{Name: "wikiadmin", Prefix: "/wiki/admin/", HTTP: &HTTPBackend{Socket: wikiadmin}},
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	c := clientFrom("127.0.0.1")
	base := "http://" + addr

	for _, tc := range []struct {
		path, host   string
		wantPath     string
		wantPrefixHd string
	}{
		{"/chat/", "", "/", "/chat"},
		{"/chat/socket.io/?EIO=4", "", "/socket.io/", "/chat"},
		{"/wiki/doku.php", "", "/wiki/doku.php", ""},
		{"/wiki/admin/x", "", "/x", "/wiki/admin"},
		{"/anything", "chat.node1.byzantium.mesh", "/anything", ""},
		{"/wiki/doku.php", "CHAT.Node1.byzantium.mesh.:8443", "/wiki/doku.php", ""},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e := decodeEcho(t, string(b))
		if resp.StatusCode != 200 || e.Path != tc.wantPath || e.Header.Get("X-Forwarded-Prefix") != tc.wantPrefixHd {
			t.Errorf("%s (host %q): %d, app saw %q with prefix %q; want %q, %q", tc.path, tc.host, resp.StatusCode,
				e.Path, e.Header.Get("X-Forwarded-Prefix"), tc.wantPath, tc.wantPrefixHd)
		}
	}

	resp, _ := get(t, c, base+"/chat?x=1")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/chat/?x=1" {
		t.Errorf("/chat: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/", "/api/v1/status", "/chatroom", "/wik/"} {
		if _, body := get(t, c, base+p); body != "panel "+p {
			t.Errorf("%s: %q, want the fallback", p, body)
		}
	}
	for _, p := range []string{"/chat/../api/v1/status", "/chat/%2e%2e/api/v1/status", "/wiki//etc/passwd", "/chat/%252e%252e/x"} {
		status, rest := rawRequest(t, addr, "GET "+p+" HTTP/1.1\r\nHost: node1\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
		if !strings.Contains(status, " 400 ") || !strings.Contains(rest, "This address is not valid") {
			t.Errorf("GET %s: %s", p, status)
		}
	}
}

// TestUpdate: routes change at runtime; a bad set is refused whole and
// the routes in use stay.
func TestUpdate(t *testing.T) {
	a, b := echoBackend(t), echoBackend(t)
	f := &Front{}
	if err := f.Update([]Route{{Name: "a", Prefix: "/a/", HTTP: &HTTPBackend{Socket: a}}}); err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	c := clientFrom("127.0.0.1")
	if resp, _ := get(t, c, "http://"+addr+"/a/"); resp.StatusCode != 200 {
		t.Fatalf("a: %d", resp.StatusCode)
	}
	err := f.Update([]Route{
		{Name: "b", Prefix: "/b/", HTTP: &HTTPBackend{Socket: b}},
		{Name: "b", Prefix: "/c/", HTTP: &HTTPBackend{Socket: b}},
	})
	if !errors.Is(err, ErrRoute) {
		t.Fatalf("two routes named b: %v", err)
	}
	if resp, _ := get(t, c, "http://"+addr+"/a/"); resp.StatusCode != 200 {
		t.Errorf("a after a refused update: %d", resp.StatusCode)
	}
	if err := f.Update([]Route{{Name: "b", Prefix: "/b/", HTTP: &HTTPBackend{Socket: b}}}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, c, "http://"+addr+"/a/"); resp.StatusCode != 404 {
		t.Errorf("a after it was removed: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, "http://"+addr+"/b/"); resp.StatusCode != 200 {
		t.Errorf("b: %d", resp.StatusCode)
	}
	if rs := f.Routes(); len(rs) != 1 || rs[0].Name != "b" {
		t.Errorf("Routes: %+v", rs)
	}
}

// TestRouteCheck: every malformed route is refused with what to fix.
func TestRouteCheck(t *testing.T) {
	h := &HTTPBackend{Socket: "/run/app.sock"}
	fc := &FastCGIBackend{Socket: "/run/php.sock", Root: "/usr/share/dokuwiki"}
	for name, r := range map[string]Route{
		"bad name":          {Name: "Wiki!", Prefix: "/w/", HTTP: h},
		"no prefix or host": {Name: "w", HTTP: h},
		"prefix no slash":   {Name: "w", Prefix: "/w", HTTP: h},
		"prefix dotdot":     {Name: "w", Prefix: "/w/../", HTTP: h},
		"prefix dot":        {Name: "w", Prefix: "/./", HTTP: h},
		"prefix escaped":    {Name: "w", Prefix: "/w%20/", HTTP: h},
		"prefix double":     {Name: "w", Prefix: "//w/", HTTP: h},
		"host upper":        {Name: "w", Host: "Wiki.node", HTTP: h},
		"host port":         {Name: "w", Host: "wiki.node:443", HTTP: h},
		"two backends":      {Name: "w", Prefix: "/w/", HTTP: h, FastCGI: fc},
		"no backend":        {Name: "w", Prefix: "/w/"},
		"socket relative":   {Name: "w", Prefix: "/w/", HTTP: &HTTPBackend{Socket: "app.sock"}},
		"socket and addr":   {Name: "w", Prefix: "/w/", HTTP: &HTTPBackend{Socket: "/a", Addr: "127.0.0.1:80"}},
		"addr not loopback": {Name: "w", Prefix: "/w/", HTTP: &HTTPBackend{Addr: "10.0.0.1:80"}},
		"addr a name":       {Name: "w", Prefix: "/w/", HTTP: &HTTPBackend{Addr: "localhost:80"}},
		"addr no port":      {Name: "w", Prefix: "/w/", HTTP: &HTTPBackend{Addr: "127.0.0.1:0"}},
		"fcgi root":         {Name: "w", Prefix: "/w/", FastCGI: &FastCGIBackend{Socket: "/s", Root: "/a/../b"}},
		"fcgi index":        {Name: "w", Prefix: "/w/", FastCGI: &FastCGIBackend{Socket: "/s", Root: "/a", Index: "../x.php"}},
		"fcgi static php":   {Name: "w", Prefix: "/w/", FastCGI: &FastCGIBackend{Socket: "/s", Root: "/a", Static: []string{".php"}}},
		"fcgi deny abs":     {Name: "w", Prefix: "/w/", FastCGI: &FastCGIBackend{Socket: "/s", Root: "/a", Deny: []string{"/conf/"}}},
		"health relative":   {Name: "w", Prefix: "/w/", HTTP: h, Health: "healthz"},
	} {
		if err := (&Front{}).Update([]Route{r}); !errors.Is(err, ErrRoute) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, rs := range map[string][]Route{
		"same prefix": {{Name: "a", Prefix: "/w/", HTTP: h}, {Name: "b", Prefix: "/w/", HTTP: h}},
		"same host":   {{Name: "a", Host: "w.n", HTTP: h}, {Name: "b", Host: "w.n", HTTP: h}},
	} {
		if err := (&Front{}).Update(rs); !errors.Is(err, ErrRoute) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ok := []Route{{Name: "wiki", Prefix: "/wiki/", Host: "wiki.node1.byzantium.mesh", FastCGI: fc},
		{Name: "pad", Prefix: "/pad/", HTTP: &HTTPBackend{Addr: "[::1]:9001"}},
		{Name: "chat", Prefix: "/chat/", HTTP: &HTTPBackend{Addr: "127.0.0.5:9000"}}}
	if err := (&Front{}).Update(ok); err != nil {
		t.Errorf("good routes: %v", err)
	}
}
