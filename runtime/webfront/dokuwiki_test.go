package webfront

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// dokuwikiRoute serves Debian's DokuWiki under /wiki/ and by name, with
// the paths its own .htaccess denies denied.
func dokuwikiRoute(sock string) Route {
	return Route{Name: "wiki", Title: "Wiki", Prefix: "/wiki/", Host: "wiki.node1.byzantium.mesh",
		FastCGI: &FastCGIBackend{Socket: sock, Root: "/usr/share/dokuwiki", Index: "doku.php", FSRoot: "/",
			Deny: []string{"bin/", "inc/", "vendor/", "conf/", "data/", "install.php"}}}
}

// startDokuWiki runs Debian's DokuWiki (the dokuwiki package) in a
// php-fpm pool of its own, with Debian's php.ini, its workers as
// www-data, and a configuration and data folder of its own: an
// auto_prepend_file defines DOKU_CONF, whose local.php moves savedir
// to a copy of the package's data. Nothing under /etc/dokuwiki or
// /var/lib/dokuwiki is written. It returns the socket and the data
// folder.
func startDokuWiki(t testing.TB) (sock, data string) {
	t.Helper()
	testenv.RequireRoot(t) // workers as www-data; the package's data is root-only
	testenv.RequireFile(t, "/usr/share/dokuwiki/doku.php", "install Debian's dokuwiki (ci/packages.txt)")
	www, err := user.Lookup("www-data")
	if err != nil {
		testenv.Unavailable(t, "no www-data user: "+err.Error())
	}
	uid, _ := strconv.Atoi(www.Uid)
	gid, _ := strconv.Atoi(www.Gid)
	sock, dir := startPool(t, fpmPool{user: "www-data", withINI: true, noScript: true, extra: `
php_admin_value[auto_prepend_file] = {dir}/prepend.php
php_admin_value[session.save_path] = {dir}/sessions
php_admin_value[error_log] =
`})
	data = filepath.Join(dir, "data")
	if err := os.CopyFS(data, os.DirFS("/var/lib/dokuwiki/data")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "sessions"), 0o700)
	os.Mkdir(filepath.Join(dir, "conf"), 0o755)
	for p, src := range map[string]string{
		"prepend.php":    "<?php define('DOKU_CONF', '" + dir + "/conf/');\n",
		"conf/local.php": "<?php\n$conf['savedir'] = '" + data + "';\n$conf['useacl'] = 0;\n$conf['title'] = 'Mesh notes';\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{data, filepath.Join(dir, "sessions")} {
		filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = os.Lchown(p, uid, gid)
			}
			return err
		})
	}
	return sock, data
}

var (
	hiddenField = regexp.MustCompile(`name="(sectok|changecheck|date)" value="([^"]*)"`)
	cssLink     = regexp.MustCompile(`href="([^"]*lib/exe/css\.php[^"]*)"`)
)

// TestDokuWiki: Debian's DokuWiki through the front, under /wiki/ and by
// name, as the routing research says it works: it finds its base in
// SCRIPT_NAME, so its links carry the prefix under a path and none by
// name; its styles come from a script, its images as static files
// through Debian's link of lib/tpl to /var/lib/dokuwiki; what its
// .htaccess denies is denied; a page edited with its own form is read
// back.
func TestDokuWiki(t *testing.T) {
	sock, data := startDokuWiki(t)
	log := &testLog{}
	f := &Front{Logf: log.logf}
	if err := f.Update([]Route{dokuwikiRoute(sock)}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	c := srv.Client()
	c.Jar, _ = cookiejar.New(nil)
	base := srv.URL + "/wiki/"

	resp, body := get(t, c, base+"doku.php?id=wiki:dokuwiki")
	m := cssLink.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil || !strings.HasPrefix(m[1], "/wiki/lib/exe/css.php") {
		t.Fatalf("the page: %d, css link %q; log:\n%s\n%.2000s", resp.StatusCode, m, log, body)
	}
	css := strings.ReplaceAll(m[1], "&amp;", "&")
	if resp, body := get(t, c, srv.URL+css); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || len(body) < 1000 {
		t.Errorf("%s: %d %s, %d bytes", css, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if resp, body := get(t, c, base+"lib/tpl/dokuwiki/images/logo.png"); resp.StatusCode != 200 ||
		resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(body, "\x89PNG") {
		t.Errorf("logo: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, p := range []string{"inc/init.php", "vendor/autoload.php", "bin/indexer.php", "install.php", "conf/local.php", ".htaccess"} {
		if resp, _ := get(t, c, base+p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}

	// Edit a page with DokuWiki's own form, then read it back.
	resp, body = get(t, c, base+"doku.php?id=notes&do=edit")
	form := url.Values{"id": {"notes"}, "do[save]": {"1"}, "prefix": {""}, "suffix": {""},
		"wikitext": {"Water at the school at 3 pm."}, "summary": {"first note"}}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], m[2])
	}
	// The security token is empty for an anonymous editor (DokuWiki
	// checks it for logged-in users only); the change check is not.
	if resp.StatusCode != 200 || form.Get("changecheck") == "" || !strings.Contains(body, `name="sectok"`) {
		t.Fatalf("the edit form: %d, fields %v\n%.2000s", resp.StatusCode, form, body)
	}
	presp, err := c.PostForm(base+"doku.php", form)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, presp.Body)
	presp.Body.Close()
	if resp, body := get(t, c, base+"doku.php?id=notes"); resp.StatusCode != 200 || !strings.Contains(body, "Water at the school at 3 pm.") {
		t.Errorf("the page read back: %d\n%.2000s", resp.StatusCode, body)
	}
	if b, err := os.ReadFile(filepath.Join(data, "pages/notes.txt")); err != nil || string(b) != "Water at the school at 3 pm." {
		t.Errorf("the page on disk: %q %v", b, err)
	}

	// By name, the same wiki is at the site's root.
	req, _ := http.NewRequest("GET", srv.URL+"/doku.php?id=wiki:dokuwiki", nil)
	req.Host = "wiki.node1.byzantium.mesh"
	hresp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if m := cssLink.FindStringSubmatch(string(hb)); hresp.StatusCode != 200 || m == nil || !strings.HasPrefix(m[1], "/lib/exe/css.php") {
		t.Errorf("by name: %d, css link %q", hresp.StatusCode, m)
	}
}
