package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
)

// TestPersistSnapshot makes an upper layer with a real overlay mount (a
// changed file, deleted files, a folder replaced so it is opaque), writes
// it as a module with byz persist snapshot --from, and stacks that module
// with the kernel's squashfs and overlayfs over the same lower layer: the
// merged tree is the one the first overlay showed.
func TestPersistSnapshot(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
	dir := func(n string) string {
		p := filepath.Join(base, n)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lower, upper, work, merged := dir("lower"), dir("upper"), dir("work"), dir("merged")
	files := map[string]string{"etc/hostname": "lower\n", "etc/motd": "welcome\n", "etc/conf.d/a": "a\n", "etc/conf.d/b": "b\n"}
	for name, data := range files {
		os.MkdirAll(filepath.Join(lower, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(lower, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mount := func(opts string) {
		t.Helper()
		if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay -o %s: %v", opts, err)
		}
	}
	mount("lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work)
	for _, err := range []error{
		os.WriteFile(filepath.Join(merged, "etc/hostname"), []byte("node-7\n"), 0o644),
		os.Remove(filepath.Join(merged, "etc/motd")),
		os.RemoveAll(filepath.Join(merged, "etc/conf.d")),
		os.Mkdir(filepath.Join(merged, "etc/conf.d"), 0o755),
		os.WriteFile(filepath.Join(merged, "etc/conf.d/c"), []byte("c\n"), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := listTree(t, merged)
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}

	mod := filepath.Join(base, "050-changes.xzm")
	if r := byz(t, nil, "persist", "snapshot", "--from", upper, "-o", mod); r.code != 0 || !strings.Contains(r.stdout, "byz: wrote "+mod) {
		t.Fatalf("persist snapshot: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sq := dir("sq")
	if err := mountSquashfs(t, mod, sq); err != nil {
		t.Fatal(err)
	}
	// Read-only overlay of the module over the lower layer, as byz-init
	// stacks modules.
	mount("lowerdir=" + sq + ":" + lower)
	defer unix.Unmount(merged, 0)
	got := listTree(t, merged)
	for k := range got {
		// The module's manifest, and the folders above it.
		if strings.HasPrefix(k, "usr") {
			delete(got, k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the module over the lower layer shows %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q through the module, %q through the first overlay", k, got[k], v)
		}
	}

	if r := byz(t, nil, "persist", "snapshot", "-o", filepath.Join(base, "x.xzm"), "--from", filepath.Join(base, "nope")); r.code != 2 || !strings.Contains(r.stderr, "is not a folder") {
		t.Errorf("snapshot of a missing folder: exit %d, %s", r.code, r.stderr)
	}
}

// listTree maps each path under root to its contents ("dir" for folders).
func listTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if fi.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	return out
}

// mountSquashfs loop-mounts the module read-only at dir.
func mountSquashfs(t *testing.T, file, dir string) error {
	t.Helper()
	losetup := testenv.RequireTool(t, "losetup")
	out, err := exec.Command(losetup, "-f", "--show", "-r", file).Output()
	if err != nil {
		return err
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	if err := unix.Mount(dev, dir, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return err
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return nil
}
