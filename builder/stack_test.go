package builder

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"byzantium/ci/testenv"
	"byzantium/modules/manifest"

	"golang.org/x/sys/unix"
)

// stackModules mounts the module files (top first) read-only and stacks
// them with overlayfs over a tmpfs in dir, as byzd's sandbox does for a
// service, and returns the root and its upper folder (what the service
// wrote outside its data folder). Everything is unmounted when the test
// ends.
func stackModules(t *testing.T, dir string, layers []string) (root, upper string) {
	t.Helper()
	testenv.RequireRoot(t)
	mount := testenv.RequireTool(t, "mount")
	var lowers []string
	for i, file := range layers {
		mnt := filepath.Join(dir, "layer"+strconv.Itoa(i))
		os.Mkdir(mnt, 0o755)
		if out, err := exec.Command(mount, "-t", "squashfs", "-o", "loop,ro", file, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v\n%s", file, err, out)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		lowers = append(lowers, mnt)
	}
	rw := filepath.Join(dir, "rw")
	os.Mkdir(rw, 0o755)
	if err := unix.Mount("tmpfs", rw, "tmpfs", 0, "size=64m,mode=0755"); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(rw, unix.MNT_DETACH) })
	upper = filepath.Join(rw, "upper")
	os.Mkdir(upper, 0o755)
	os.Mkdir(filepath.Join(rw, "work"), 0o755)
	root = filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s/work", strings.Join(lowers, ":"), upper, rw)
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		t.Fatalf("overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	return root, upper
}

// serviceAccounts and serviceData do what byzd does in a service's root
// before a start: the account files naming its user as uid, and a fresh
// data folder of the node's (dir/data, the user's) bound on the
// service's data folder. It returns that host folder.
func serviceAccounts(t *testing.T, root string, user string, uid int) {
	t.Helper()
	in := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	os.WriteFile(in("etc/passwd"), []byte(fmt.Sprintf("root:x:0:0::/root:/bin/sh\n%s:x:%d:%d::/nonexistent:/bin/false\n", user, uid, uid)), 0o644)
	os.WriteFile(in("etc/group"), []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\n", user, uid)), 0o644)
}

func serviceData(t *testing.T, root, dir string, svc manifest.Service, uid int) string {
	t.Helper()
	data := filepath.Join(root, filepath.FromSlash(svc.DataDir()))
	host := filepath.Join(dir, "data")
	os.Mkdir(host, 0o700)
	os.Chown(host, uid, uid)
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, data, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", svc.DataDir(), err)
	}
	t.Cleanup(func() { unix.Unmount(data, unix.MNT_DETACH) })
	return host
}

// renderConfigs writes the service's config files into root as byzd does
// before a start (text/template with td, the file's mode), each through
// edit first when it is given (a test's own port, say), and returns the
// texts written by path.
func renderConfigs(t *testing.T, root string, svc manifest.Service, td manifest.TemplateData, edit func(path, text string) string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range svc.Config {
		tmpl, err := template.New(c.Path).Option("missingkey=error").Parse(c.Template)
		if err != nil {
			t.Fatalf("%s: %v", c.Path, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, td); err != nil {
			t.Fatalf("%s: %v", c.Path, err)
		}
		text := buf.String()
		if edit != nil {
			text = edit(c.Path, text)
		}
		mode := uint64(0o644)
		if c.Mode != "" {
			mode, _ = strconv.ParseUint(c.Mode, 8, 32)
		}
		p := filepath.Join(root, filepath.FromSlash(c.Path))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), os.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, os.FileMode(mode))
		out[c.Path] = text
	}
	return out
}
