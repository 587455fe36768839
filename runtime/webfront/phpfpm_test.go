package webfront

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"byzantium/ci/testenv"
)

// phpScripts are the test app's scripts.
var phpScripts = map[string]string{
	"env.php": `<?php
header('Content-Type: application/json');
preg_match('/^Uid:\s+(\d+)/m', file_get_contents('/proc/self/status'), $m);
echo json_encode(['script_name' => $_SERVER['SCRIPT_NAME'], 'script_filename' => $_SERVER['SCRIPT_FILENAME'],
  'path_info' => $_SERVER['PATH_INFO'] ?? '', 'https' => $_SERVER['HTTPS'] ?? '', 'remote_addr' => $_SERVER['REMOTE_ADDR'],
  'get' => $_GET, 'cookie' => $_COOKIE, 'uid' => (int)$m[1], 'xff' => $_SERVER['HTTP_X_FORWARDED_FOR'] ?? '',
  'host' => $_SERVER['HTTP_HOST'] ?? '']);
`,
	"post.php": `<?php
$in = file_get_contents('php://input');
echo strlen($in), ' ', md5($in), ' ', strlen($_POST['a'] ?? '');
`,
	"status.php": `<?php
http_response_code(418);
setcookie('DokuWiki', 'abc');
header('X-App: yes');
echo 'teapot';
`,
	"warn.php": `<?php
error_log('wf-test: something odd');
echo 'ok';
`,
	"big.php": `<?php
for ($i = 0; $i < 1024; $i++) { echo str_repeat('x', 1023), "\n"; }
`,
	"redirect.php": `<?php
header('Location: /wiki/doku.php?id=start');
`,
	"fatal.php": `<?php
undefined_function();
`,
}

// fpmPool says how startPHPFPM's pool differs from the default: workers
// as nobody (when the test runs as root), no php.ini, serving
// phpScripts from a new folder.
type fpmPool struct {
	user     string // the workers' user and group, as root; "" is nobody
	withINI  bool   // Debian's php.ini and extensions (conf.d)
	extra    string // more pool lines; "{dir}" is the pool's folder
	noScript bool   // no docroot of phpScripts
}

// startPHPFPM runs Debian's php-fpm in the foreground with a pool of its
// own on a unix socket in a new folder (no TCP). It returns the socket
// and the folder (its www/ holds phpScripts).
func startPHPFPM(t testing.TB) (sock, dir string) {
	sock, dir = startPool(t, fpmPool{})
	return sock, filepath.Join(dir, "www")
}

func startPool(t testing.TB, pool fpmPool) (sock, dir string) {
	t.Helper()
	bin := testenv.RequireTool(t, "php-fpm8.2")
	dir, err := os.MkdirTemp("", "wf-php-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The workers read the scripts.
	os.Chmod(dir, 0o755)
	if !pool.noScript {
		docroot := filepath.Join(dir, "www")
		os.Mkdir(docroot, 0o755)
		for name, src := range phpScripts {
			if err := os.WriteFile(filepath.Join(docroot, name), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	sock = filepath.Join(dir, "fpm.sock")
	user := ""
	if os.Geteuid() == 0 {
		u := pool.user
		if u == "" {
			u = "nobody"
		}
		g := u
		if u == "nobody" {
			g = "nogroup"
		}
		user = "user = " + u + "\ngroup = " + g + "\n"
	}
	conf := fmt.Sprintf(`[global]
pid = %[1]s/fpm.pid
error_log = %[1]s/fpm.log
daemonize = no

[app]
%[2]slisten = %[3]s
listen.mode = 0600
pm = static
pm.max_children = 2
clear_env = yes
security.limit_extensions = .php
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_value[memory_limit] = 32M
php_admin_value[post_max_size] = 8M
%[4]s
`, dir, user, sock, strings.ReplaceAll(pool.extra, "{dir}", dir))
	confPath := filepath.Join(dir, "fpm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--nodaemonize", "--fpm-config", confPath}
	if !pool.withINI {
		args = append(args, "-n")
	}
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The socket's file appears when php-fpm binds it, a moment
		// before it listens: wait for a connection.
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock, dir
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "fpm.log"))
			t.Fatalf("php-fpm exited: %s\n%s", out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm made no socket in 20 s: %s", out.String())
		}
	}
}

// TestPHPFPM: a round trip with Debian's php-fpm over its unix socket,
// through the front over HTTPS: the script sees its name, path info,
// query, cookies and HTTPS as a web server would pass them, and a
// client's X-Forwarded-For not at all; a 1 MiB form body arrives whole;
// PHP's own status, cookies and redirects come back; error_log lines
// reach byzd's log; a missing script is a 404, a fatal error a 500; a
// 1 MiB answer streams back; the health probe answers.
func TestPHPFPM(t *testing.T) {
	sock, docroot := startPHPFPM(t)
	log := &testLog{}
	f := &Front{Logf: log.logf, ReservedCookies: []string{"__Host-byz_session"}}
	err := f.Update([]Route{{Name: "wiki", Title: "Wiki", Prefix: "/wiki/", Health: "/env.php",
		FastCGI: &FastCGIBackend{Socket: sock, Root: docroot, Index: "env.php"},
		Limits:  Limits{MaxBody: 2 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	resp, body := get(t, c, srv.URL+"/wiki/env.php/some/page?x=1&y=%C3%A9", "Cookie", "__Host-byz_session=secret; DokuWiki=abc",
		"X-Forwarded-For", "6.6.6.6")
	var env struct {
		ScriptName     string            `json:"script_name"`
		ScriptFilename string            `json:"script_filename"`
		PathInfo       string            `json:"path_info"`
		HTTPS          string            `json:"https"`
		RemoteAddr     string            `json:"remote_addr"`
		Get            map[string]string `json:"get"`
		Cookie         map[string]string `json:"cookie"`
		UID            int               `json:"uid"`
		XFF            string            `json:"xff"`
		Host           string            `json:"host"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || resp.StatusCode != 200 {
		t.Fatalf("env.php: %d %s (%v)", resp.StatusCode, body, err)
	}
	if env.ScriptName != "/wiki/env.php" || env.ScriptFilename != docroot+"/env.php" || env.PathInfo != "/some/page" ||
		env.HTTPS != "on" || env.RemoteAddr != "127.0.0.1" || env.Get["x"] != "1" || env.Get["y"] != "é" ||
		env.Cookie["DokuWiki"] != "abc" || len(env.Cookie) != 1 || env.XFF != "" || env.Host != strings.TrimPrefix(srv.URL, "https://") {
		t.Errorf("env.php saw %+v", env)
	}
	if os.Geteuid() == 0 && env.UID != 65534 {
		t.Errorf("the worker runs as uid %d, not nobody", env.UID)
	}
	// The index of the app's root.
	if resp, body := get(t, c, srv.URL+"/wiki/"); resp.StatusCode != 200 || !strings.Contains(body, `"script_name":"\/wiki\/env.php"`) {
		t.Errorf("/wiki/: %d %s", resp.StatusCode, body)
	}

	form := "a=" + strings.Repeat("b", 1<<20)
	presp, err := c.Post(srv.URL+"/wiki/post.php", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if want := fmt.Sprintf("%d %x %d", len(form), md5.Sum([]byte(form)), 1<<20); string(pb) != want {
		t.Errorf("post.php: %q, want %q", pb, want)
	}

	resp, body = get(t, c, srv.URL+"/wiki/status.php")
	if resp.StatusCode != 418 || body != "teapot" || resp.Header.Get("X-App") != "yes" || !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "DokuWiki=abc") {
		t.Errorf("status.php: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _ := get(t, c, srv.URL+"/wiki/redirect.php"); resp.StatusCode != 302 || resp.Header.Get("Location") != "/wiki/doku.php?id=start" {
		t.Errorf("redirect.php: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get(t, c, srv.URL+"/wiki/warn.php"); resp.StatusCode != 200 || body != "ok" || !log.has("wf-test: something odd") {
		t.Errorf("warn.php: %d %q; log:\n%s", resp.StatusCode, body, log)
	}
	if resp, _ := get(t, c, srv.URL+"/wiki/missing.php"); resp.StatusCode != 404 || !log.has("Primary script unknown") {
		t.Errorf("missing.php: %d; log:\n%s", resp.StatusCode, log)
	}
	if resp, _ := get(t, c, srv.URL+"/wiki/fatal.php"); resp.StatusCode != 500 || !log.has("Call to undefined function") {
		t.Errorf("fatal.php: %d; log:\n%s", resp.StatusCode, log)
	}
	if resp, body := get(t, c, srv.URL+"/wiki/big.php"); resp.StatusCode != 200 || len(body) != 1<<20 {
		t.Errorf("big.php: %d, %d bytes", resp.StatusCode, len(body))
	}
	big := url.Values{"a": {strings.Repeat("c", 3<<20)}}.Encode()
	presp, err = c.Post(srv.URL+"/wiki/post.php", "application/x-www-form-urlencoded", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != 413 {
		t.Errorf("3 MiB to a 2 MiB app: %d", presp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Probe(ctx, "wiki"); err != nil {
		t.Error(err)
	}
}
