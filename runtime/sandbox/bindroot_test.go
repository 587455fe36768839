package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBindRoot runs a shell in a root made of binds: the read-only one
// refuses writes, the writable one takes them and the node sees them,
// nothing else of the node is there, and cleanup leaves no mount.
func TestBindRoot(t *testing.T) {
	node := busyboxRoot(t)
	rw := t.TempDir()
	os.Chmod(rw, 0o777)
	dir := filepath.Join(t.TempDir(), "root")
	cleanup, err := BindRoot(dir, []Bind{{Src: filepath.Join(node, "bin"), Dst: "/bin"}, {Src: rw, Dst: "/mesh", Writable: true}})
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"echo hi > /mesh/out && echo mesh=writable",
		"echo x > /bin/new 2>/dev/null || echo bin=readonly",
		"mkdir /newdir 2>/dev/null || echo root=readonly",
		"ls /etc >/dev/null 2>&1 || echo etc=absent",
		"grep -E ' /(bin|mesh) ' /proc/self/mountinfo | sed 's/^/mount: /'",
	}, "; ")
	out, code := run(t, Spec{Root: dir, Argv: []string{"/bin/busybox", "sh", "-c", script}, Env: []string{"PATH=/bin"}, UID: 61002, GID: 61002})
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"mesh=writable", "bin=readonly", "root=readonly", "etc=absent"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "mount: ")); strings.HasPrefix(l, "mount: ") && len(f) > 5 {
			if opts := "," + f[5] + ","; !strings.Contains(opts, ",nosuid,") || !strings.Contains(opts, ",nodev,") {
				t.Errorf("%s is mounted %s: want nosuid and nodev", f[4], f[5])
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(b) != "hi\n" {
		t.Errorf("the writable bind's file on the node: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(node, "bin/new")); err == nil {
		t.Errorf("the read-only bind was written through")
	}
	cleanup()
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts left under %s after cleanup", dir)
	}
}

func TestBindRootRefused(t *testing.T) {
	for _, b := range [][]Bind{
		{{Src: "bin"}},
		{{Src: "/bin", Dst: "/"}},
		{{Src: "/bin", Dst: "/a/../etc"}},
	} {
		if _, err := BindRoot("/nonexistent-byz-root", b); err == nil {
			t.Errorf("BindRoot(%v) accepted", b)
		}
	}
	if _, err := BindRoot("relative", nil); err == nil {
		t.Errorf("a relative root was accepted")
	}
}
