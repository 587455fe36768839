package service

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"byzantium/ci/testenv"

	"golang.org/x/sys/unix"
)

// TestWriteInRoot plants what a module or a service could leave in a
// service's root on the way to a file byzd writes: a symlink at the file,
// at a parent folder (absolute, relative, dangling), and another mount.
// byzd's write must never land on the node's files outside the root.
func TestWriteInRoot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, root, node string)
		path  string
		// unsafe: the write is refused with ErrUnsafePath; otherwise it
		// lands in the root as a regular file.
		unsafe bool
	}{
		{"plain", func(t *testing.T, root, node string) {}, "/etc/svc/svc.conf", false},
		{"existing file", func(t *testing.T, root, node string) {
			must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755), os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("old"), 0o644))
		}, "/etc/passwd", false},
		{"absolute symlink at the file", func(t *testing.T, root, node string) {
			must(t, os.MkdirAll(filepath.Join(root, "etc/svc"), 0o755), os.Symlink(filepath.Join(node, "shadow"), filepath.Join(root, "etc/svc/svc.conf")))
		}, "/etc/svc/svc.conf", false},
		{"dangling symlink at the file", func(t *testing.T, root, node string) {
			must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755), os.Symlink(filepath.Join(node, "created-by-byzd"), filepath.Join(root, "etc/passwd")))
		}, "/etc/passwd", false},
		{"absolute symlink at a parent", func(t *testing.T, root, node string) {
			must(t, os.Symlink(node, filepath.Join(root, "etc")))
		}, "/etc/shadow", true},
		{"relative symlink climbing out", func(t *testing.T, root, node string) {
			rel, err := filepath.Rel(filepath.Join(root, "etc"), node)
			must(t, err, os.MkdirAll(filepath.Join(root, "etc"), 0o755), os.Symlink(rel, filepath.Join(root, "etc/svc")))
		}, "/etc/svc/shadow", true},
		{"symlink inside the root at a parent", func(t *testing.T, root, node string) {
			must(t, os.MkdirAll(filepath.Join(root, "real"), 0o755), os.Symlink("/real", filepath.Join(root, "etc")))
		}, "/etc/x.conf", true},
		{"file where a folder is wanted", func(t *testing.T, root, node string) {
			must(t, os.WriteFile(filepath.Join(root, "etc"), nil, 0o644))
		}, "/etc/x.conf", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, node := t.TempDir(), t.TempDir()
			secret := filepath.Join(node, "shadow")
			must(t, os.WriteFile(secret, []byte("root:secret\n"), 0o600))
			tc.plant(t, root, node)
			err := writeIn(root, tc.path, []byte("written by byzd\n"), 0o640)
			if tc.unsafe {
				if !errors.Is(err, ErrUnsafePath) {
					t.Errorf("writeIn = %v, want ErrUnsafePath", err)
				}
			} else if err != nil {
				t.Fatalf("writeIn: %v", err)
			} else {
				var st unix.Stat_t
				must(t, unix.Lstat(filepath.Join(root, tc.path), &st))
				b, _ := os.ReadFile(filepath.Join(root, tc.path))
				if st.Mode != unix.S_IFREG|0o640 || string(b) != "written by byzd\n" {
					t.Errorf("%s: mode %o, %q", tc.path, st.Mode, b)
				}
			}
			entries, _ := os.ReadDir(node)
			if b, _ := os.ReadFile(secret); string(b) != "root:secret\n" || len(entries) != 1 {
				t.Errorf("the node's folder changed: shadow %q, %d entries", b, len(entries))
			}
		})
	}
}

// TestWriteInRootMount: a mount on the way (such as the service's data
// folder, bound in) is not crossed.
func TestWriteInRootMount(t *testing.T) {
	testenv.RequireRoot(t)
	root, other := t.TempDir(), t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "var/lib/svc"), 0o755))
	must(t, unix.Mount(other, filepath.Join(root, "var/lib/svc"), "", unix.MS_BIND, ""))
	defer unix.Unmount(filepath.Join(root, "var/lib/svc"), unix.MNT_DETACH)
	if err := writeIn(root, "/var/lib/svc/x.conf", []byte("x"), 0o644); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("writing across a mount: %v", err)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("written into the other mount: %v", entries)
	}
}

func must(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
