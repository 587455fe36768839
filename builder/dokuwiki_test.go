package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
	"byzantium/modules/entry"
	"byzantium/modules/manifest"
	"byzantium/runtime/webfront"
)

// wikiDeny is what runtime/webfront's DokuWiki test denies: the paths
// DokuWiki's own .htaccess files keep from the web.
var wikiDeny = []string{"bin/", "inc/", "vendor/", "conf/", "data/", "install.php"}

// TestDokuWikiModule builds the optional php and dokuwiki modules of the
// default spec from the locked Debian packages, with the builder's module
// stage, and checks that the wiki works on a node whose base is
// busybox-static alone: the dokuwiki module's manifest declares the wiki
// service and its web app; every ELF file in the php module (php-fpm and
// its extensions) finds each library it needs inside that module; every
// symlink of both modules resolves inside them and the base; and php-fpm
// run from the three modules stacked with overlayfs, chrooted, as an
// unprivileged user, with its configuration rendered from the manifest's
// templates and an empty data folder, serves DokuWiki through byzd's web
// front: the start page, a page edited with DokuWiki's own form and read
// back (after a restart too), and 404 for what the wiki keeps private.
func TestDokuWikiModule(t *testing.T) {
	root := repoRoot(t)
	sp, err := spec.Load(filepath.Join(root, "examples", "byzantium.yaml"), spec.Options{SkipInputChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	var php, wiki []spec.Module
	for _, m := range sp.Optional {
		switch m.Name {
		case "php":
			php = append(php, m)
		case "dokuwiki":
			wiki = append(wiki, m)
		}
	}
	if len(php) != 1 || len(wiki) != 1 || len(sp.Base) != 1 || sp.Base[0].Name != "busybox" {
		t.Fatalf("want one optional php module, one optional dokuwiki module and a busybox base")
	}
	if !reflect.DeepEqual(php[0].Depends, []string{"busybox"}) || !reflect.DeepEqual(wiki[0].Depends, []string{"php"}) {
		t.Errorf("depends: php %v, dokuwiki %v; want [busybox] and [php]", php[0].Depends, wiki[0].Depends)
	}
	for _, m := range []spec.Module{sp.Base[0], php[0], wiki[0]} {
		for _, src := range m.Sources {
			testenv.RequireFile(t, src, "run make fetch")
		}
	}

	s := &spec.Spec{File: sp.File, Dir: sp.Dir, Name: sp.Name, Base: sp.Base, Optional: []spec.Module{php[0], wiki[0]}}
	b := &builder{spec: s, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: &cache.Cache{Dir: t.TempDir()}, tool: "test"}
	start := time.Now()
	built, err := b.moduleStage()
	if err != nil {
		t.Fatalf("moduleStage: %v", err)
	}
	t.Logf("module stage: %v", time.Since(start).Round(time.Millisecond))
	files := map[string]string{}
	trees := map[string]*modTree{}
	for i, m := range []spec.Module{sp.Base[0], php[0], wiki[0]} {
		files[m.Name] = built[i].path
		trees[m.Name] = readTree(t, built[i].path)
		fi, _ := os.Stat(built[i].path)
		var debBytes int64
		for _, src := range m.Sources {
			if fi, err := os.Stat(src); err == nil {
				debBytes += fi.Size()
			}
		}
		t.Logf("%s/%s: %d bytes (%s), %d bytes unpacked, from %d .debs of %d bytes", built[i].layer, built[i].file,
			fi.Size(), m.Comp, trees[m.Name].size, len(m.Sources), debBytes)
	}

	if mf := moduleManifest(t, files["php"]); len(mf.Services) != 0 {
		t.Errorf("php module services %+v: want none (each app runs its own pool)", mf.Services)
	}
	mf := moduleManifest(t, files["dokuwiki"])
	if !reflect.DeepEqual(mf.Services, wiki[0].Services) || len(mf.Services) != 1 || mf.Services[0].Name != "wiki" {
		t.Fatalf("manifest services = %+v, want the spec's one wiki service", mf.Services)
	}
	svc := mf.Services[0]
	checkWikiService(t, svc)

	t.Run("libraries", func(t *testing.T) {
		checkLibraries(t, trees["php"], "usr/sbin/php-fpm8.2", 20, 10)
		checkExtensions(t, trees["php"], svc)
	})
	t.Run("symlinks", func(t *testing.T) {
		stack := stackTrees(trees["dokuwiki"], trees["php"], trees["busybox"])
		for _, name := range []string{"php", "dokuwiki"} {
			n := 0
			for p, h := range trees[name].entries {
				if h.Type != entry.TypeSymlink {
					continue
				}
				n++
				if _, ok := stack.resolve(p); !ok {
					t.Errorf("%s: /%s -> %s resolves to nothing in the dokuwiki, php and busybox modules", name, p, h.Linkname)
				}
			}
			t.Logf("%s: %d symlinks, each resolving", name, n)
		}
		// DokuWiki's libraries, by the paths it loads them from.
		for _, p := range []string{"usr/share/php/phpseclib/bootstrap.php", "usr/share/php/simplepie/simplepie.inc",
			"usr/share/php-geshi/geshi.php", "usr/share/javascript/jquery/jquery.min.js",
			"usr/share/javascript/jquery-ui/jquery-ui.min.js", "usr/share/javascript/jquery-cookie/jquery.cookie.js",
			"usr/share/dokuwiki/lib/tpl/dokuwiki/main.php"} {
			if got, ok := stack.resolve(p); !ok || stack.entries[got].Type != entry.TypeRegular {
				t.Errorf("/%s is not a file in the modules", p)
			}
		}
	})
	t.Run("serves the wiki", func(t *testing.T) {
		serveWiki(t, []string{files["dokuwiki"], files["php"], files["busybox"]}, svc)
	})
}

// checkWikiService: the service runs php-fpm as its own user with no
// capabilities, renders its configuration outside its data folder, and
// declares the web app byzd fronts.
func checkWikiService(t *testing.T, svc manifest.Service) {
	t.Helper()
	if svc.User == "" || svc.User == "root" || len(svc.Capabilities) != 0 || svc.Privileged || len(svc.Ports) != 0 {
		t.Errorf("service %+v: want an unprivileged user, no capabilities, no ports", svc)
	}
	if len(svc.Command) == 0 || svc.Command[0] != "/usr/sbin/php-fpm8.2" || !slices.Contains(svc.Command, "--nodaemonize") {
		t.Errorf("command %v: want php-fpm8.2 in the foreground", svc.Command)
	}
	data := svc.DataDir()
	for _, c := range svc.Config {
		if c.Path == data || strings.HasPrefix(c.Path, data+"/") || !strings.HasPrefix(c.Path, "/etc/") {
			t.Errorf("config %s: want it under /etc, outside the data folder %s", c.Path, data)
		}
	}
	w := svc.Web
	if w == nil {
		t.Fatal("no web block")
	}
	want := manifest.Web{Name: "wiki", Title: "Wiki", Socket: data + "/php-fpm.sock", Health: "/doku.php", Publish: true,
		FastCGI: &manifest.FastCGI{Root: "/usr/share/dokuwiki", Index: "doku.php", Deny: wikiDeny}}
	if !reflect.DeepEqual(*w, want) {
		t.Errorf("web %+v (fastcgi %+v), want %+v (fastcgi %+v)", *w, w.FastCGI, want, want.FastCGI)
	}
	if svc.Limits.MemoryMB == 0 || svc.Limits.Processes < 5 {
		t.Errorf("limits %+v: want a memory limit, and processes for the master and 4 workers", svc.Limits)
	}
}

// extensionLine is an extension php.ini loads.
var extensionLine = regexp.MustCompile(`(?m)^\s*(?:zend_)?extension\s*=\s*(\S+)\s*$`)

// checkExtensions: every extension the service's php.ini loads is a file
// in PHP's extension folder (checkLibraries has checked what it needs).
func checkExtensions(t *testing.T, tr *modTree, svc manifest.Service) {
	var ini string
	for _, c := range svc.Config {
		if strings.HasSuffix(c.Path, "/php.ini") {
			ini = c.Template
		}
	}
	exts := extensionLine.FindAllStringSubmatch(ini, -1)
	if len(exts) < 3 {
		t.Fatalf("php.ini loads %d extensions:\n%s", len(exts), ini)
	}
	var dir string
	for p, h := range tr.entries {
		if h.Type == entry.TypeRegular && path.Base(p) == "opcache.so" && strings.HasPrefix(p, "usr/lib/php/") {
			dir = path.Dir(p)
		}
	}
	if dir == "" {
		t.Fatal("no opcache.so under usr/lib/php/")
	}
	for _, m := range exts {
		p := dir + "/" + m[1] + ".so"
		if _, ok := tr.elfs[p]; !ok {
			t.Errorf("php.ini loads %s: no ELF file /%s", m[1], p)
		}
	}
}

// stackTrees is what the modules look like stacked with overlayfs, the
// first on top (a directory's contents merge; anything else hides what
// is below it).
func stackTrees(top ...*modTree) *modTree {
	out := &modTree{entries: map[string]entry.Header{}, elfs: map[string][]byte{}}
	for i := len(top) - 1; i >= 0; i-- {
		for p, h := range top[i].entries {
			out.entries[p] = h
		}
	}
	return out
}

// wikiUID is the unprivileged account the wiki runs as here, standing
// for the one byzd gives the service's user.
const wikiUID = 64322

// wikiRoot stacks the modules (top first) with overlayfs over a tmpfs, as
// byzd's sandbox does, with a /tmp, the service's account files, its data
// folder bound from data, and its config files rendered from their
// templates as runtime/service does (manifest.TemplateData). It returns the
// root.
func wikiRoot(t *testing.T, mods []string, svc manifest.Service, data string) string {
	root, _ := stackModules(t, t.TempDir(), mods)

	in := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	// The sandbox's private /tmp and its few devices (php-fpm opens
	// /dev/null for its workers' standard input).
	os.MkdirAll(in("tmp"), 0o755)
	os.Chmod(in("tmp"), 0o1777)
	os.MkdirAll(in("dev"), 0o755)
	for _, d := range []string{"null", "zero", "random", "urandom"} {
		if f, err := os.Create(in("dev/" + d)); err == nil {
			f.Close()
		}
		if err := unix.Mount("/dev/"+d, in("dev/"+d), "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("/dev/%s: %v", d, err)
		}
		t.Cleanup(func() { unix.Unmount(in("dev/"+d), unix.MNT_DETACH) })
	}
	user := svc.User
	home := svc.DataDir()
	os.MkdirAll(in("etc"), 0o755)
	os.WriteFile(in("etc/passwd"), []byte(fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d:%s:%s:/bin/false\n", user, wikiUID, wikiUID, user, home)), 0o644)
	os.WriteFile(in("etc/group"), []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\n", user, wikiUID)), 0o644)
	if err := os.MkdirAll(in(home), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(data, in(home), "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("binding the data folder: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(in(home), unix.MNT_DETACH) })
	renderConfigs(t, root, svc, manifest.TemplateData{Node: "testnode", Data: home, User: user, Lang: "es"}, nil)
	return root
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runInRoot starts argv chrooted in root as wikiUID, in its own process
// group, with the environment byzd gives a service.
func runInRoot(t *testing.T, root string, svc manifest.Service, argv []string, out io.Writer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + svc.DataDir()}
	for k, v := range svc.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: wikiUID, Gid: wikiUID, Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v in the root: %v", argv, err)
	}
	return cmd
}

// wikiRun is php-fpm running the wiki.
type wikiRun struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan error
	done   bool
}

// startWiki runs the service's command in root and waits for its socket
// (sock, as the host sees it) to accept connections.
func startWiki(t *testing.T, root string, svc manifest.Service, sock string) *wikiRun {
	t.Helper()
	r := &wikiRun{log: &syncBuffer{}, exited: make(chan error, 1)}
	r.cmd = runInRoot(t, root, svc, svc.Command, r.log)
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() { r.kill() })
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			c.Close()
			return r
		}
		select {
		case err := <-r.exited:
			r.done = true
			t.Fatalf("php-fpm exited before it listened: %v\n%s", err, r.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm does not listen on %s: %v\n%s", sock, err, r.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *wikiRun) kill() {
	if !r.done {
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
		r.done = true
	}
}

// stop sends SIGTERM, as byzd stops a service, and wants a clean exit.
func (r *wikiRun) stop(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		r.done = true
		if err != nil {
			t.Errorf("php-fpm on SIGTERM: %v\n%s", err, r.log)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("php-fpm still runs 15 s after SIGTERM\n%s", r.log)
	}
}

// masterRSS is the php-fpm master's own VmRSS (kB): all an idle wiki
// costs once its workers have left.
func (r *wikiRun) masterRSS() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// rss sums VmRSS and Pss (kB) of the php-fpm master and its workers.
func (r *wikiRun) rss(t *testing.T) (procs int, rssKB, pssKB int64) {
	master := r.cmd.Process.Pid
	pids := []int{master}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command's closing parenthesis: state, ppid.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(master) {
			pids = append(pids, pid)
		}
	}
	field := func(file, name string) int64 {
		b, _ := os.ReadFile(file)
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+) kB`).FindSubmatch(b)
		if m == nil {
			return 0
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n
	}
	for _, pid := range pids {
		rssKB += field(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
		pssKB += field(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
	}
	return len(pids), rssKB, pssKB
}

var (
	wikiHidden = regexp.MustCompile(`name="(sectok|changecheck|date)" value="([^"]*)"`)
	wikiTitle  = regexp.MustCompile(`<title>([^<]*)</title>`)
	wikiCSS    = regexp.MustCompile(`href="(/lib/exe/css\.php[^"]*)"`)
	wikiJS     = regexp.MustCompile(`src="(/lib/exe/jquery\.php[^"]*)"`)
)

// serveWiki runs the wiki from the stacked modules and drives it through
// the web front, by name, as byzd serves it.
func serveWiki(t *testing.T, mods []string, svc manifest.Service) {
	data := filepath.Join(t.TempDir(), "wiki")
	os.Mkdir(data, 0o700)
	os.Chown(data, wikiUID, wikiUID)
	root := wikiRoot(t, mods, svc, data)
	rel, err := filepath.Rel(svc.DataDir(), svc.Web.Socket)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("socket %s is not in the data folder %s", svc.Web.Socket, svc.DataDir())
	}
	sock := filepath.Join(data, rel)

	// PHP loads every extension php.ini names, from the module.
	var ini string
	for i, a := range svc.Command {
		if (a == "--php-ini" || a == "-c") && i+1 < len(svc.Command) {
			ini = svc.Command[i+1]
		}
	}
	var mout syncBuffer
	mcmd := runInRoot(t, root, svc, []string{svc.Command[0], "--php-ini", ini, "-m"}, &mout)
	if err := mcmd.Wait(); err != nil {
		t.Fatalf("php-fpm -m: %v\n%s", err, mout.String())
	}
	loaded := strings.ToLower(mout.String())
	for _, m := range extensionLine.FindAllStringSubmatch(configText(svc, ini), -1) {
		name := m[1]
		if name == "opcache" {
			name = "zend opcache"
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `$`).MatchString(loaded) {
			t.Errorf("php-fpm -m does not list %s:\n%s", m[1], mout.String())
		}
	}
	if strings.Contains(loaded, "warning") || strings.Contains(loaded, "unable to load") {
		t.Errorf("php-fpm -m warns:\n%s", mout.String())
	}

	run := startWiki(t, root, svc, sock)
	host := svc.Web.Name + ".testnode.byzantium.mesh"
	log := &syncBuffer{}
	f := &webfront.Front{Logf: func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) }}
	route := webfront.Route{Name: svc.Web.Name, Title: svc.Web.Title, Host: host, Health: svc.Web.Health,
		FastCGI: &webfront.FastCGIBackend{Socket: sock, Root: svc.Web.FastCGI.Root, Index: svc.Web.FastCGI.Index,
			FSRoot: root, Deny: svc.Web.FastCGI.Deny, Static: svc.Web.FastCGI.Static},
		// All the test's requests come from one address: let it fill the
		// pool, as four phones would.
		Limits: webfront.Limits{Concurrent: svc.Web.Concurrent, PerClient: 4}}
	if err := f.Update([]webfront.Route{route}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	// Every connection goes to the test's server, whatever the name in
	// the URL (DokuWiki's redirects name its host): no name is looked
	// up. httptest's certificate names example.com.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
	tr.TLSClientConfig.ServerName = "example.com"
	c := &http.Client{Transport: tr}
	c.Jar, _ = cookiejar.New(nil)
	defer tr.CloseIdleConnections()
	var requests atomic.Int64
	do := func(method, p string, form url.Values) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, "https://"+host+p, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		requests.Add(1)
		resp, err := c.Do(req)
		if err != nil {
			t.Error(err)
			return &http.Response{}, ""
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nfront's log:\n%s\nphp-fpm's output:\n%s", append(args, log, run.log)...)
	}

	// The start page: the health path and the site's root, on an empty
	// data folder (the preload makes DokuWiki's folders and the page).
	resp, body := do("GET", svc.Web.Health, nil)
	if resp.StatusCode != 200 {
		fail("health %s: %d\n%.2000s", svc.Web.Health, resp.StatusCode, body)
	}
	resp, body = do("GET", "/", nil)
	title := wikiTitle.FindStringSubmatch(body)
	if resp.StatusCode != 200 || title == nil || !strings.Contains(title[1], "Wiki on testnode") {
		fail("the start page: %d, title %q\n%.2000s", resp.StatusCode, title, body)
	}
	// In the node's language (the test renders the templates with "es"):
	// DokuWiki's own words in Spanish.
	if !strings.Contains(body, `<html lang="es"`) {
		t.Errorf("the start page is not in the node's language (es):\n%.600s", body)
	}
	if !strings.Contains(body, "Notes and notices for the people around testnode") || !strings.Contains(body, `name="viewport"`) {
		t.Errorf("the start page lacks the seeded text or a viewport for phones:\n%.3000s", body)
	}
	for _, d := range []string{"pages", "attic", "media", "meta", "cache", "index", "locks", "tmp", "sessions"} {
		if fi, err := os.Stat(filepath.Join(data, d)); err != nil || !fi.IsDir() {
			t.Errorf("the data folder has no %s/: %v", d, err)
		} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != wikiUID {
			t.Errorf("%s/ belongs to uid %d, want %d", d, st.Uid, wikiUID)
		}
	}
	// Its styles and scripts (from a script: DokuWiki's LESS compiler and
	// Debian's jQuery), an image as a static file through the package's
	// link to /var/lib/dokuwiki.
	for _, re := range []*regexp.Regexp{wikiCSS, wikiJS} {
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no %s in the start page", re)
			continue
		}
		resp, b := do("GET", strings.ReplaceAll(m[1], "&amp;", "&"), nil)
		if resp.StatusCode != 200 || len(b) < 10000 {
			t.Errorf("%s: %d, %d bytes\n%.500s", m[1], resp.StatusCode, len(b), b)
		}
	}
	if resp, b := do("GET", "/lib/tpl/dokuwiki/images/logo.png", nil); resp.StatusCode != 200 || !strings.HasPrefix(b, "\x89PNG") {
		t.Errorf("logo: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// What the wiki keeps private.
	for _, p := range []string{"/inc/init.php", "/vendor/autoload.php", "/bin/indexer.php", "/install.php", "/conf/local.php",
		"/data/pages/start.txt", "/.htaccess.dist", "/lib/plugins/../../conf/local.php"} {
		if resp, _ := do("GET", p, nil); resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 404 (or 400 for a path that climbs)", p, resp.StatusCode)
		}
	}

	// No accounts, so nobody is an administrator: the settings byzd
	// writes cannot be changed from the web.
	for _, p := range []string{"/doku.php?do=admin&page=config", "/doku.php?do=admin&page=extension", "/doku.php?do=login"} {
		if _, b := do("GET", p, nil); strings.Contains(b, `id="config__manager"`) || strings.Contains(b, `id="extension__manager"`) ||
			strings.Contains(b, `name="p"`) {
			t.Errorf("%s: an admin page or a login form\n%.2000s", p, b)
		}
	}

	// Edit a page with DokuWiki's own form, then read it back.
	const note = "Water at the school at 3 pm."
	resp, body = do("GET", "/doku.php?id=notes&do=edit", nil)
	form := url.Values{"id": {"notes"}, "do[save]": {"1"}, "prefix": {""}, "suffix": {""},
		"wikitext": {note}, "summary": {"first note"}}
	for _, m := range wikiHidden.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], m[2])
	}
	if resp.StatusCode != 200 || form.Get("changecheck") == "" {
		fail("the edit form: %d, fields %v\n%.2000s", resp.StatusCode, form, body)
	}
	if resp, body := do("POST", "/doku.php", form); resp.StatusCode >= 400 {
		fail("saving: %d\n%.2000s", resp.StatusCode, body)
	}
	if resp, body := do("GET", "/doku.php?id=notes", nil); resp.StatusCode != 200 || !strings.Contains(body, note) {
		fail("the page read back: %d\n%.2000s", resp.StatusCode, body)
	}
	if b, err := os.ReadFile(filepath.Join(data, "pages/notes.txt")); err != nil || string(b) != note {
		t.Errorf("the page in the data folder: %q %v", b, err)
	}
	for i := 0; i < 5; i++ {
		do("GET", "/doku.php?id=notes&do=revisions", nil)
		do("GET", "/doku.php?id=start", nil)
	}
	procs, rss, pss := run.rss(t)
	t.Logf("php-fpm after %d requests one at a time: %d processes, RSS %d kB in all (PSS %d kB)", requests.Load(), procs, rss, pss)
	// Then the pool full: requests at once from clients enough to take
	// the four workers (the front lets one client have two).
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do("GET", fmt.Sprintf("/doku.php?id=page%d&do=edit", i%8), nil)
		}()
	}
	wg.Wait()
	procs, rss, pss = run.rss(t)
	t.Logf("php-fpm after %d requests, 16 of them at once: %d processes, RSS %d kB in all (PSS %d kB); the master alone (an idle wiki): RSS %d kB",
		requests.Load(), procs, rss, pss, run.masterRSS())
	if limit := int64(svc.Limits.MemoryMB) << 10; pss > limit || procs > 5 {
		t.Errorf("php-fpm: %d processes, PSS %d kB; want at most the master and 4 workers, within the service's memory limit %d kB",
			procs, pss, limit)
	}
	if status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", run.cmd.Process.Pid)); !regexp.MustCompile(
		fmt.Sprintf(`(?m)^Uid:\s+%d\s+%d\s+%d\s+%d$`, wikiUID, wikiUID, wikiUID, wikiUID)).Match(status) {
		t.Errorf("php-fpm's uids are not all %d:\n%s", wikiUID, status)
	}

	// byzd stops it with SIGTERM; a node that loses power leaves the
	// socket behind. Either way the next start listens, and the page is
	// still there.
	run.stop(t)
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("php-fpm left %s behind after SIGTERM", sock)
	}
	staleSocket(t, sock)
	run = startWiki(t, root, svc, sock)
	if resp, body := do("GET", "/doku.php?id=notes", nil); resp.StatusCode != 200 || !strings.Contains(body, note) {
		fail("the page after a restart: %d\n%.2000s", resp.StatusCode, body)
	}
	run.stop(t)
	for _, l := range []*syncBuffer{log, run.log} {
		for _, bad := range []string{"ERROR", "WARNING", "PHP Warning", "PHP Fatal", "PHP Notice"} {
			if strings.Contains(l.String(), bad) {
				t.Errorf("%q in a log:\n%s", bad, l)
			}
		}
	}
}

// configText is the template of the service's config file at p.
func configText(svc manifest.Service, p string) string {
	for _, c := range svc.Config {
		if c.Path == p {
			return c.Template
		}
	}
	return ""
}

// staleSocket leaves a unix socket file at p with nothing listening, as
// a php-fpm killed with the node leaves it.
func staleSocket(t *testing.T, p string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	os.Chown(p, wikiUID, wikiUID)
}
