package builder

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
	"byzantium/modules"
	"byzantium/modules/entry"
	"byzantium/modules/manifest"
)

// TestNgircdModule builds the optional ngircd module of the example specs
// from the locked Debian packages, with the builder's own module stage, and
// checks that it is a service that works on a node whose base is
// busybox-static alone: its manifest declares the service, every ELF file
// in it finds each library it needs inside the module, and ngircd run from
// the base and the module stacked with overlayfs, chrooted, as an
// unprivileged user, with the config rendered from the manifest's template,
// welcomes an IRC client.
func TestNgircdModule(t *testing.T) {
	root := repoRoot(t)
	var specs [2]*spec.Spec
	var irc, base [2]spec.Module
	for i, name := range []string{"byzantium.yaml", "test.yaml"} {
		s, err := spec.Load(filepath.Join(root, "examples", name), spec.Options{SkipInputChecks: true})
		if err != nil {
			t.Fatal(err)
		}
		specs[i] = s
		found := 0
		for _, m := range s.Optional {
			if m.Name == "ngircd" {
				irc[i] = m
				found++
			}
		}
		if found != 1 || len(s.Base) != 1 || s.Base[0].Name != "busybox" {
			t.Fatalf("%s: want one optional module ngircd and a busybox base", name)
		}
		base[i] = s.Base[0]
	}
	// The node the end-to-end tests boot carries the same module.
	if !reflect.DeepEqual(irc[0].Sources, irc[1].Sources) || !reflect.DeepEqual(irc[0].Services, irc[1].Services) ||
		!reflect.DeepEqual(irc[0].Depends, irc[1].Depends) {
		t.Errorf("examples/byzantium.yaml and examples/test.yaml declare different ngircd modules")
	}
	for _, src := range append(append([]string{}, irc[0].Sources...), base[0].Sources...) {
		testenv.RequireFile(t, src, "run make fetch")
	}

	// The builder's module stage, on the default spec's modules alone.
	s := &spec.Spec{File: specs[0].File, Dir: specs[0].Dir, Name: specs[0].Name,
		Base: []spec.Module{base[0]}, Optional: []spec.Module{irc[0]}}
	b := &builder{spec: s, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: &cache.Cache{Dir: t.TempDir()}, tool: "test"}
	start := time.Now()
	built, err := b.moduleStage()
	if err != nil {
		t.Fatalf("moduleStage: %v", err)
	}
	busyboxXZM, ircXZM := built[0].path, built[1].path
	var debBytes int64
	for _, src := range irc[0].Sources {
		if fi, err := os.Stat(src); err == nil {
			debBytes += fi.Size()
		}
	}
	fi, _ := os.Stat(ircXZM)
	t.Logf("built optional/%s in %v: %d bytes (%s), from %d .debs of %d bytes", built[1].file,
		time.Since(start).Round(time.Millisecond), fi.Size(), irc[0].Comp, len(irc[0].Sources), debBytes)

	mf := moduleManifest(t, ircXZM)
	if !reflect.DeepEqual(mf.Services, irc[0].Services) || len(mf.Services) != 1 || mf.Services[0].Name != "ngircd" {
		t.Fatalf("manifest services = %+v, want the spec's one ngircd service", mf.Services)
	}
	svc := mf.Services[0]
	if svc.User == "" || svc.User == "root" || len(svc.Capabilities) != 0 || !reflect.DeepEqual(svc.Ports, []string{"6667/tcp"}) {
		t.Errorf("service %+v: want an unprivileged user with no capabilities on 6667/tcp", svc)
	}

	tree := readTree(t, ircXZM)
	t.Run("libraries", func(t *testing.T) { checkLibraries(t, tree, "usr/sbin/ngircd", 10, 5) })
	t.Run("serves IRC", func(t *testing.T) { serveIRC(t, busyboxXZM, ircXZM, svc) })
}

// modTree is a module's entries by path, with the ELF files' contents.
type modTree struct {
	entries map[string]entry.Header
	elfs    map[string][]byte
	size    int64
}

func readTree(t *testing.T, file string) *modTree {
	t.Helper()
	m, err := modules.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tr := &modTree{entries: map[string]entry.Header{}, elfs: map[string][]byte{}}
	r := m.Entries()
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tr.entries[h.Path] = *h
		tr.size += h.Size
		if h.Type != entry.TypeRegular || h.Size < 4 {
			continue
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", h.Path, err)
		}
		if bytes.HasPrefix(body, []byte(elf.ELFMAG)) {
			tr.elfs[h.Path] = body
		}
	}
	return tr
}

// resolve follows p through the tree's symlinks (absolute ones from the
// tree's root) as the kernel would inside a chroot, and returns the path
// of what it names, if that exists.
func (tr *modTree) resolve(p string) (string, bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	cur := ""
	for hops := 0; len(parts) > 0; {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if cur = path.Dir(cur); cur == "." {
				cur = ""
			}
			continue
		}
		next := path.Join(cur, name)
		h, ok := tr.entries[next]
		if !ok {
			return "", false
		}
		if h.Type == entry.TypeSymlink {
			if hops++; hops > 40 {
				return "", false
			}
			if strings.HasPrefix(h.Linkname, "/") {
				cur = ""
			}
			parts = append(strings.Split(h.Linkname, "/"), parts...)
			continue
		}
		cur = next
	}
	return cur, true
}

// libDirs are where the dynamic linker looks for a library without an
// ld.so.cache (the module has none): Debian's glibc has its multiarch
// folders built in.
var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"}

// checkLibraries: every ELF file's interpreter and every library it names
// (DT_NEEDED) is a file inside the module, as readelf -l and -d list them
// and where the dynamic linker would find them (RUNPATH, RPATH, then the
// built-in folders). server is the module's program, which must be
// there and need at least minNeeded libraries (the dynamic binary, not a
// static one); minELF is how many ELF files the module has at least.
func checkLibraries(t *testing.T, tr *modTree, server string, minELF, minNeeded int) {
	if len(tr.elfs) < minELF {
		t.Fatalf("only %d ELF files in the module", len(tr.elfs))
	}
	sawServer := false
	for p, body := range tr.elfs {
		f, err := elf.NewFile(bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			interp, _ := io.ReadAll(prog.Open())
			ip := string(bytes.TrimRight(interp, "\x00"))
			if got, ok := tr.resolve(ip); !ok || tr.entries[got].Type != entry.TypeRegular {
				t.Errorf("%s: interpreter %s is not in the module", p, ip)
			}
		}
		if p == server {
			sawServer = true
			if len(needed) < minNeeded {
				t.Errorf("%s needs only %v: is it the dynamic binary?", p, needed)
			}
		}
		// RUNPATH and RPATH come first ($ORIGIN: the file's own folder,
		// which glibc's gconv modules use for their helper libraries).
		dirs := []string{}
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			paths, _ := f.DynString(tag)
			for _, rp := range paths {
				for _, d := range strings.Split(rp, ":") {
					d = strings.NewReplacer("${ORIGIN}", "/"+path.Dir(p), "$ORIGIN", "/"+path.Dir(p)).Replace(d)
					dirs = append(dirs, strings.TrimPrefix(path.Clean(d), "/"))
				}
			}
		}
		for _, lib := range needed {
			found := false
			for _, dir := range append(dirs, libDirs...) {
				if got, ok := tr.resolve(dir + "/" + lib); ok && tr.entries[got].Type == entry.TypeRegular {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s needs %s, which is not in the module", p, lib)
			}
		}
		f.Close()
	}
	if !sawServer {
		t.Errorf("no %s in the module", server)
	}
	t.Logf("%d ELF files, every library they need inside the module (%d bytes unpacked)", len(tr.elfs), tr.size)
}

// serviceUID is the unprivileged account ngircd runs as here, standing for
// the one byzd gives the service's user.
const serviceUID = 64321

// serveIRC stacks the base and the module as byzd's sandbox would, writes
// the service's config from its template, runs its command there and talks
// IRC to it.
func serveIRC(t *testing.T, baseXZM, ircXZM string, svc manifest.Service) {
	testenv.RequireRoot(t)
	mount := testenv.RequireTool(t, "mount")
	dir := t.TempDir()
	var lowers []string
	for _, m := range []struct{ name, file string }{{"ngircd", ircXZM}, {"busybox", baseXZM}} { // top first
		mnt := filepath.Join(dir, m.name)
		os.Mkdir(mnt, 0o755)
		if out, err := exec.Command(mount, "-t", "squashfs", "-o", "loop,ro", m.file, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v\n%s", m.file, err, out)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		lowers = append(lowers, mnt)
	}
	rw := filepath.Join(dir, "rw")
	os.Mkdir(rw, 0o755)
	if err := unix.Mount("tmpfs", rw, "tmpfs", 0, "size=16m,mode=0755"); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(rw, unix.MNT_DETACH) })
	os.Mkdir(filepath.Join(rw, "upper"), 0o755)
	os.Mkdir(filepath.Join(rw, "work"), 0o755)
	sandbox := filepath.Join(dir, "root")
	os.Mkdir(sandbox, 0o755)
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", strings.Join(lowers, ":"), rw, rw)
	if err := unix.Mount("overlay", sandbox, "overlay", 0, opts); err != nil {
		t.Fatalf("overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(sandbox, unix.MNT_DETACH) })

	// What byzd does before a start: the service's user in the sandbox's
	// account files (ngircd looks its ServerUID up by name), its data
	// folder, its config files from their templates.
	port := freePort(t)
	user := svc.User
	inRoot := func(p string) string { return filepath.Join(sandbox, filepath.FromSlash(p)) }
	os.WriteFile(inRoot("etc/passwd"), []byte(fmt.Sprintf("%s:x:%d:%d::/nonexistent:/bin/false\n", user, serviceUID, serviceUID)), 0o644)
	os.WriteFile(inRoot("etc/group"), []byte(fmt.Sprintf("%s:x:%d:\n", user, serviceUID)), 0o644)
	data := svc.Data
	if data == "" {
		data = "/var/lib/" + svc.Name
	}
	if err := os.MkdirAll(inRoot(data), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(inRoot(data), serviceUID, serviceUID)
	ports := regexp.MustCompile(`(?m)^(\s*Ports\s*=\s*)6667\s*$`)
	for _, c := range svc.Config {
		tmpl, err := template.New(c.Path).Option("missingkey=error").Parse(c.Template)
		if err != nil {
			t.Fatalf("%s: %v", c.Path, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, struct{ Node, Data string }{"testnode", data}); err != nil {
			t.Fatalf("%s: %v", c.Path, err)
		}
		text := buf.String()
		if c.Path == "/etc/ngircd/ngircd.conf" {
			// 6667 may be taken on this machine: the test's own port.
			if n := len(ports.FindAllString(text, -1)); n != 1 {
				t.Fatalf("%s: %d lines Ports = 6667, want 1:\n%s", c.Path, n, text)
			}
			text = ports.ReplaceAllString(text, "${1}"+strconv.Itoa(port))
		}
		mode := uint64(0o644)
		if c.Mode != "" {
			mode, _ = strconv.ParseUint(c.Mode, 8, 32)
		}
		os.MkdirAll(filepath.Dir(inRoot(c.Path)), 0o755)
		if err := os.WriteFile(inRoot(c.Path), []byte(text), os.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
		os.Chmod(inRoot(c.Path), os.FileMode(mode))
	}

	cmd := exec.Command(svc.Command[0], svc.Command[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range svc.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     sandbox,
		Credential: &syscall.Credential{Uid: serviceUID, Gid: serviceUID, Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v in the sandbox: %v", svc.Command, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nngircd's output:\n%s", append(args, log.String())...)
	}

	// The health check, on the test's port, then a client registering.
	health := svc.Health
	if health == nil || health.TCP != "127.0.0.1:6667" {
		t.Errorf("health %+v, want a TCP check of 127.0.0.1:6667", health)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if conn, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			break
		}
		select {
		case err := <-exited:
			stopped = true
			fail("ngircd exited before it listened: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			fail("ngircd does not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "NICK tester\r\nUSER tester 0 * :Test\r\n")
	lines := bufio.NewScanner(conn)
	var welcome, motd string
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) < 2 {
			continue
		}
		switch f[1] {
		case "001":
			welcome = lines.Text()
		case "372":
			motd = lines.Text()
		}
		if f[1] == "376" || f[1] == "422" || f[0] == "ERROR" {
			break
		}
	}
	if welcome == "" {
		fail("no 001 welcome from ngircd (%v)", lines.Err())
	}
	if !strings.HasPrefix(welcome, ":testnode.irc.local 001 tester ") {
		t.Errorf("welcome %q: want it from testnode.irc.local, the name the template gives", welcome)
	}
	if !strings.Contains(motd, "Welcome to testnode") {
		t.Errorf("MOTD line %q: want the template's phrase", motd)
	}
	t.Logf("%s", welcome)

	// It runs as the service's user, and stops cleanly on SIGTERM, as byzd
	// will stop it.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s+%d\s+%d\s+%d$`, serviceUID, serviceUID, serviceUID, serviceUID)).Match(status) {
		t.Errorf("ngircd's uids are not all %d:\n%s", serviceUID, status)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("ngircd on SIGTERM: %v\n%s", err, log.String())
		}
	case <-time.After(10 * time.Second):
		fail("ngircd still runs 10 s after SIGTERM")
	}
	for _, bad := range []string{"Fatal", "Can't", "Could not", "No administrative information"} {
		if strings.Contains(log.String(), bad) {
			t.Errorf("ngircd said %q:\n%s", bad, log.String())
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
