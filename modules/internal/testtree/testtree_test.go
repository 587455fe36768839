package testtree

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCompareCatches changes one attribute of a copy of the tree at a time
// and checks that Diff reports it: a comparison that passes everything would
// make every round-trip test worthless.
func TestCompareCatches(t *testing.T) {
	want := t.TempDir()
	Build(t, want, Options{WideEntries: 3})
	base := Scan(t, want)
	if d := Diff(base, Scan(t, want), CompareOptions{}); len(d) != 0 {
		t.Fatalf("a tree differs from itself: %q", d)
	}
	for _, tc := range []struct {
		name   string
		change func(dir string) error
		want   string // in the reported difference
	}{
		{"mode", func(d string) error { return os.Chmod(filepath.Join(d, "files/size-1"), 0o600) }, "files/size-1: mode"},
		{"content", func(d string) error {
			return os.WriteFile(filepath.Join(d, "files/size-1"), []byte{'x'}, 0)
		}, "files/size-1: content"},
		{"mtime ns", func(d string) error {
			p := filepath.Join(d, "files/size-0")
			m := MtimeOf("files/size-0").Add(time.Nanosecond)
			return os.Chtimes(p, m, m)
		}, "files/size-0: mtime"},
		{"xattr", func(d string) error {
			return unix.Lsetxattr(filepath.Join(d, "xattrs/dir"), "user.dir", []byte("e"), 0)
		}, "xattrs/dir: xattr user.dir"},
		{"extra xattr", func(d string) error {
			return unix.Lsetxattr(filepath.Join(d, "names/a"), "user.new", nil, 0)
		}, "names/a: unexpected xattr"},
		{"symlink", func(d string) error {
			p := filepath.Join(d, "links/dangling")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("elsewhere", p)
		}, "links/dangling: link target"},
		{"hardlink broken", func(d string) error {
			p := filepath.Join(d, "hard/b")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.WriteFile(p, Content("hard/a", 5000), 0o644)
		}, "hard/a: hardlink group"},
		{"missing", func(d string) error { return os.Remove(filepath.Join(d, "wide/f00001")) }, "wide/f00001: missing"},
		{"extra", func(d string) error { return os.Mkdir(filepath.Join(d, "new"), 0o755) }, "new: unexpected dir"},
		{"type", func(d string) error {
			p := filepath.Join(d, "special/fifo")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.WriteFile(p, nil, 0o644)
		}, "special/fifo: type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := t.TempDir()
			Build(t, got, Options{WideEntries: 3})
			if err := tc.change(got); err != nil {
				t.Fatal(err)
			}
			diffs := strings.Join(Diff(base, Scan(t, got), CompareOptions{}), "\n")
			if !strings.Contains(diffs, tc.want) {
				t.Errorf("Diff = %q, want a difference %q", diffs, tc.want)
			}
		})
	}
}

// TestMtimeResolution checks the squashfs-style comparison in whole seconds.
func TestMtimeResolution(t *testing.T) {
	a := map[string]*Node{"x": {ModTime: time.Unix(10, 5)}}
	b := map[string]*Node{"x": {ModTime: time.Unix(10, 0)}}
	if d := Diff(a, b, CompareOptions{}); len(d) != 1 {
		t.Errorf("nanosecond Diff = %q, want one difference", d)
	}
	if d := Diff(a, b, CompareOptions{MtimeResolution: time.Second}); len(d) != 0 {
		t.Errorf("whole-second Diff = %q, want none", d)
	}
}
