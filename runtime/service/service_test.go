package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"byzantium/ci/servicetest"
	"byzantium/modules/manifest"
	"byzantium/overlays"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/sandbox"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.Arg {
		sandbox.Main()
	}
	os.Exit(m.Run())
}

// node is a fake running node (servicetest.Node).
type node struct{ *servicetest.Node }

func newNode(t *testing.T) node { return node{servicetest.NewNode(t)} }

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (n node) manager(t *testing.T, ctx context.Context, log io.Writer) *Manager {
	t.Helper()
	self, _ := os.Executable()
	m := &Manager{Root: n.Root, StateDir: n.State, Self: self, Node: func() string { return "testnode" }, Lang: func() string { return "fr" },
		Log: slog.New(slog.NewTextHandler(log, nil))}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestModulesAndServices runs the manager on a fake node with busybox
// as the base and optional modules: one service that needs a library
// module, one that crashes at start, a dependency cycle, and a module
// without services.
func TestModulesAndServices(t *testing.T) {
	n := newNode(t)
	port := freePort(t)
	web := manifest.Service{Name: "web", Command: []string{"/bin/busybox", "sh", "-c",
		"cd /var/lib/web/site; id > id; cat /proc/self/status > status; cat /usr/share/lib/marker > lib; ls /var/lib > varlib 2>&1; " +
			"grep ' /var/lib/web/site ' /proc/self/mountinfo > mountinfo; " +
			"cat /etc/web/motd; exec /bin/busybox httpd -f -p 127.0.0.1:" + fmt.Sprint(port) + " -h /var/lib/web/site"},
		Ports: []string{fmt.Sprint(port) + "/tcp"}, Data: "/var/lib/web/site", Limits: manifest.Limits{Processes: 4},
		Config: []manifest.ConfigFile{{Path: "/etc/web/motd", Template: "welcome to {{.Node}} ({{.User}}, data in {{.Data}}, in {{.Lang}})\n"}}}
	n.Module(t, "optional", "010-lib.xzm", manifest.Manifest{Name: "lib"}, map[string]string{"usr/share/lib/marker": "from lib\n"})
	n.Module(t, "optional", "020-web.xzm", manifest.Manifest{Name: "web", Depends: []string{"lib"}, Services: []manifest.Service{web}}, map[string]string{})
	n.Module(t, "optional", "030-crash.xzm", manifest.Manifest{Name: "crash", Services: []manifest.Service{
		{Name: "crash", Command: []string{"/bin/busybox", "sh", "-c", "echo boom; exit 3"}}}}, map[string]string{})
	n.Module(t, "optional", "040-cyc-a.xzm", manifest.Manifest{Name: "cyc-a", Depends: []string{"cyc-b"}, Services: []manifest.Service{{Name: "a", Command: []string{"/bin/true"}}}}, map[string]string{})
	n.Module(t, "optional", "041-cyc-b.xzm", manifest.Manifest{Name: "cyc-b", Depends: []string{"cyc-a"}}, map[string]string{})
	n.Module(t, "optional", "050-docs.xzm", manifest.Manifest{Name: "docs"}, map[string]string{"usr/share/doc/x": "x"})

	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	m := n.manager(t, ctx, &log)
	defer func() {
		cancel()
		m.Wait()
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	}()

	mods := map[string]nodeapi.ModuleInfo{}
	for _, mi := range m.Modules() {
		mods[mi.Name] = mi
	}
	if len(mods) != 7 || !mods["busybox"].Loaded || mods["web"].Active || mods["web"].Services[0] != "web" || mods["web"].Depends[0] != "lib" {
		t.Fatalf("modules: %+v", mods)
	}
	if _, err := m.Enable("web"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "activate it first") {
		t.Errorf("enable before activation: %v", err)
	}
	for _, tc := range []struct{ name, want string }{
		{"nope", "unknown module"},
		{"docs", "no services"},
		{"cyc-a", "a dependency cycle: cyc-a → cyc-b → cyc-a"},
	} {
		if _, err := m.Activate(tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("activate %s: %v, want %q", tc.name, err, tc.want)
		}
	}
	ch, err := m.Activate("web")
	if err != nil || strings.Join(ch.Activated, ",") != "lib,web" {
		t.Fatalf("activate web: %+v %v", ch, err)
	}
	si, err := m.Enable("web")
	if err != nil || !si.Enabled {
		t.Fatalf("enable web: %+v %v", si, err)
	}
	var id string
	waitFor(t, "the web service to answer", func() bool { id, err = httpGet(fmt.Sprintf("http://127.0.0.1:%d/id", port)); return err == nil })
	if !strings.Contains(id, "uid=61000(web) gid=61000(web)") {
		t.Errorf("the service runs as %q", id)
	}
	status, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	for _, want := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(status, want) {
			t.Errorf("the service's status lacks %q:\n%s", want, status)
		}
	}
	if lib, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/lib", port)); lib != "from lib\n" {
		t.Errorf("the dependency's file inside the service root: %q", lib)
	}
	// No other service's data, no byzantium state: /var/lib is the base's
	// and the folder its data folder is in.
	if varlib, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/varlib", port)); strings.TrimSpace(varlib) != "web" {
		t.Errorf("the service sees /var/lib entries: %q", varlib)
	}
	// Its data folder, which it writes and which persists, takes no
	// devices and no set-user-ID programs.
	if mi, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/mountinfo", port)); !mountHas(mi, "nosuid", "nodev") {
		t.Errorf("the data folder's mount: %q", mi)
	}
	waitFor(t, "the motd in its log", func() bool {
		lines, _ := m.Logs("web")
		return len(lines) > 0 && lines[0].Message == "welcome to testnode (web, data in /var/lib/web/site, in fr)"
	})
	waitFor(t, "its health check", func() bool { return m.info(m.services["web"]).Health == "ok" })
	if fi, err := os.Stat(filepath.Join(n.State, "services/web")); err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != 61000 {
		t.Errorf("the data folder on the node: %v %v", fi, err)
	}

	// A service that crashes at start: reported, retried, and the other
	// service keeps running.
	if _, err := m.Activate("crash"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Enable("crash"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash to be reported", func() bool {
		si := m.info(m.services["crash"])
		return si.Restarts >= 1 && strings.Contains(si.LastError, "exited with status 3; its last line: boom")
	})
	if _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/id", port)); err != nil {
		t.Errorf("the web service was disturbed: %v", err)
	}
	if _, err := m.Disable("crash"); err != nil {
		t.Fatal(err)
	}

	// Deactivating what web needs is refused, then cascades.
	var conflict *ConflictError
	if _, err := m.Deactivate("lib", false); !errors.As(err, &conflict) || strings.Join(conflict.RequiredBy, ",") != "web" {
		t.Errorf("deactivate lib: %v", err)
	}
	if _, err := m.Deactivate("busybox", false); !errors.Is(err, ErrRefused) {
		t.Errorf("deactivate a module stacked at boot: %v", err)
	}

	// The enabled set and active modules survive a restart of byzd.
	cancel()
	m.Wait()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	m = n.manager(t, ctx2, &log)
	waitFor(t, "web to be back after a restart", func() bool { _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/id", port)); return err == nil })

	ch, err = m.Deactivate("lib", true)
	if err != nil || strings.Join(ch.Deactivated, ",") != "web,lib" || strings.Join(ch.Stopped, ",") != "web" {
		t.Fatalf("cascade: %+v %v", ch, err)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("the port is still open after deactivation")
	}
	if isMountPoint(filepath.Join(n.Root, "run/byz/layers/opt-020-web")) {
		t.Error("the module is still mounted")
	}

	// A module without services is marked for the next boot instead.
	if err := m.SetNextBoot("docs", true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.Root, "run/byz/media/byzantium/load")); !strings.Contains(string(b), "\ndocs\n") {
		t.Errorf("byzantium/load: %q", b)
	}
	for _, mi := range m.Modules() {
		if (mi.Name == "docs") != mi.NextBoot && mi.Folder == "optional" {
			t.Errorf("%s: next boot %v", mi.Name, mi.NextBoot)
		}
	}
	if err := m.SetNextBoot("busybox", true); !errors.Is(err, ErrRefused) {
		t.Errorf("marking a base module: %v", err)
	}
	if err := m.SetNextBoot("docs", false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.Root, "run/byz/media/byzantium/load")); strings.Contains(string(b), "docs") {
		t.Errorf("byzantium/load after unmarking: %q", b)
	}
}

// mountHas reports whether the mountinfo line has every one of the
// per-mount options.
func mountHas(line string, opts ...string) bool {
	f := strings.Fields(line)
	if len(f) < 6 {
		return false
	}
	have := map[string]bool{}
	for _, o := range strings.Split(f[5], ",") {
		have[o] = true
	}
	for _, o := range opts {
		if !have[o] {
			return false
		}
	}
	return true
}

// TestRootRefusesSymlinks: what a module could leave on the way to the
// files byzd writes into a service's root, and the manifests the review
// found (data over /etc, config files inside the data folder, where the
// service plants symlinks), never make byzd write to the node's files.
func TestRootRefusesSymlinks(t *testing.T) {
	n := newNode(t)
	node := t.TempDir() // stands for the node's /etc
	secret := filepath.Join(node, "shadow")
	must(t, os.WriteFile(secret, []byte("root:secret\n"), 0o600))
	sh := func(name string) manifest.Service {
		return manifest.Service{Name: name, Command: []string{"/bin/busybox", "sh", "-c", "echo started; exec sleep 600"},
			Config: []manifest.ConfigFile{{Path: "/etc/" + name + "/" + name + ".conf", Template: "written by byzd\n"}}}
	}
	// A symlink at the config file itself: replaced, not followed.
	b, _ := (&manifest.Manifest{Name: "atfile", Services: []manifest.Service{sh("atfile")}}).Marshal()
	n.ModuleFiles(t, "optional", "010-atfile.xzm", map[string]string{manifest.Path("atfile"): string(b)},
		map[string]string{"etc/atfile/atfile.conf": secret})
	// A symlink at its folder: refused.
	b, _ = (&manifest.Manifest{Name: "atdir", Services: []manifest.Service{sh("atdir")}}).Marshal()
	n.ModuleFiles(t, "optional", "020-atdir.xzm", map[string]string{manifest.Path("atdir"): string(b)},
		map[string]string{"etc/atdir": node})
	// The manifests of the review, written by hand (Marshal refuses them).
	n.ModuleFiles(t, "optional", "030-overetc.xzm", map[string]string{manifest.Path("overetc"): `{"name":"overetc","services":[{"name":"overetc","command":["/bin/true"],"data":"/etc"}]}`}, nil)
	n.ModuleFiles(t, "optional", "040-indata.xzm", map[string]string{manifest.Path("indata"): `{"name":"indata","services":[{"name":"indata","command":["/bin/true"],"data":"/var/lib/x","config":[{"path":"/var/lib/x/passwd","template":""}]}]}`}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	m := n.manager(t, ctx, &log)
	defer func() {
		cancel()
		m.Wait()
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	}()
	names := map[string]bool{}
	for _, mi := range m.Modules() {
		names[mi.Name] = true
	}
	if names["overetc"] || names["indata"] || !names["atfile"] || !names["atdir"] {
		t.Errorf("modules: %v", names)
	}
	for _, want := range []string{
		`file=byzantium/optional/030-overetc.xzm err="byzantium/optional/030-overetc.xzm: manifest: invalid: overetc: service overetc: data \"/etc\": want a folder under /var/lib/`,
		`file=byzantium/optional/040-indata.xzm err="byzantium/optional/040-indata.xzm: manifest: invalid: indata: service indata: config path \"/var/lib/x/passwd\" is in the data folder /var/lib/x`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	for _, name := range []string{"atfile", "atdir"} {
		if _, err := m.Activate(name); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Enable(name); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "atfile to run", func() bool { return m.info(m.services["atfile"]).State == "running" })
	waitFor(t, "atdir to fail", func() bool {
		return strings.Contains(m.info(m.services["atdir"]).LastError, "preparing its root: config /etc/atdir/atdir.conf: service: a symlink or another mount on the way: /etc/atdir in the service's root is a symlink")
	})
	root := filepath.Join(n.Root, overlays.ServicesDir, "atfile/root")
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "etc/atfile/atfile.conf"), &st))
	if b, _ := os.ReadFile(filepath.Join(root, "etc/atfile/atfile.conf")); st.Mode&unix.S_IFMT != unix.S_IFREG || string(b) != "written by byzd\n" {
		t.Errorf("atfile's config: mode %o, %q", st.Mode, b)
	}
	entries, _ := os.ReadDir(node)
	if b, _ := os.ReadFile(secret); string(b) != "root:secret\n" || len(entries) != 1 {
		t.Errorf("the node's folder changed: shadow %q, %d entries", b, len(entries))
	}
}
