package changes

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
)

// describe lists every entry under root with what Sync must carry.
func describe(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		x, err := xattrs(p)
		if err != nil {
			return err
		}
		extra := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			extra = fmt.Sprintf("%x", sha256.Sum256(data))[:16]
		case unix.S_IFLNK:
			extra, _ = os.Readlink(p)
		}
		fmt.Fprintf(&b, "%s %o %d:%d size=%d rdev=%d mtime=%d.%09d xattrs=%q %s\n", rel, st.Mode, st.Uid, st.Gid,
			st.Size, st.Rdev, st.Mtim.Sec, st.Mtim.Nsec, x, extra)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// requireRoot: trusted.* xattrs, whiteout devices, chown and overlay
// mounts need root (a failure under CI=true, a skip elsewhere).
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
}

// tmpfs mounts a tmpfs (which takes trusted.* xattrs and device nodes
// whatever the host's /tmp is) for the test.
func tmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func mustDo(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestSyncTree: every kind of entry an upper layer holds comes across
// with its metadata, and a second Sync after changes makes the trees
// equal again, touching only what changed.
func TestSyncTree(t *testing.T) {
	requireRoot(t)
	base := tmpfs(t)
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	old := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	mustDo(t,
		os.MkdirAll(filepath.Join(src, "etc/opaque"), 0o755),
		os.MkdirAll(filepath.Join(src, "home/user"), 0o700),
		os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("node-1\n"), 0o644),
		os.WriteFile(filepath.Join(src, "home/user/big"), make([]byte, 300<<10), 0o600),
		os.WriteFile(filepath.Join(src, "suid"), []byte("#!/bin/sh\n"), 0o4755),
		os.Symlink("../etc/hostname", filepath.Join(src, "home/link")),
		unix.Mknod(filepath.Join(src, "etc/deleted"), unix.S_IFCHR, 0), // a whiteout
		unix.Mkfifo(filepath.Join(src, "fifo"), 0o640),
		unix.Setxattr(filepath.Join(src, "etc/opaque"), "trusted.overlay.opaque", []byte("y"), 0),
		unix.Setxattr(filepath.Join(src, "etc/hostname"), "user.note", []byte("kept"), 0),
		os.Lchown(filepath.Join(src, "home/user"), 1000, 1000),
		os.Lchown(filepath.Join(src, "suid"), 1000, 0),
		os.Chmod(filepath.Join(src, "suid"), 0o4755), // chown cleared setuid
		os.Chtimes(filepath.Join(src, "etc/hostname"), old, old),
	)
	st, err := Sync(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(t, dst), describe(t, src); got != want {
		t.Fatalf("after the first sync:\n got %s\nwant %s", got, want)
	}
	if st.Entries != 10 || st.Copied != 10 || st.Bytes != 300<<10+7+10 {
		t.Errorf("first sync stats %+v", st)
	}

	// Nothing changed: nothing copied.
	if st, err = Sync(src, dst); err != nil || st.Copied != 0 || st.Removed != 0 {
		t.Errorf("second sync with no change: %+v, %v", st, err)
	}

	// Changes of every kind, and a leftover from a sync cut short.
	mustDo(t,
		os.Remove(filepath.Join(src, "fifo")),
		os.RemoveAll(filepath.Join(src, "home/user")),
		os.WriteFile(filepath.Join(src, "home/user"), []byte("a file where a folder was"), 0o644),
		os.Remove(filepath.Join(src, "etc/deleted")),
		os.Mkdir(filepath.Join(src, "etc/deleted"), 0o755),                                   // a folder where a whiteout was
		os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("node-2\n"), 0o644),          // same size, new time
		unix.Removexattr(filepath.Join(src, "etc/opaque"), "trusted.overlay.opaque"),         // no longer opaque
		os.WriteFile(filepath.Join(dst, "etc", tmpPrefix+"hostname"), []byte("half"), 0o600), // a crash's leftover
	)
	if st, err = Sync(src, dst); err != nil {
		t.Fatal(err)
	}
	if got, want := describe(t, dst), describe(t, src); got != want {
		t.Fatalf("after changes:\n got %s\nwant %s", got, want)
	}
	if st.Copied != 3 || st.Removed != 2 {
		// Copied: home/user (file), etc/deleted (folder), etc/hostname.
		// Removed: fifo and the leftover.
		t.Errorf("stats after changes %+v", st)
	}
}

// TestSyncOverlay is the proof with the kernel: an upper layer made by a
// real overlay mount (copy-ups, whiteouts, an opaque folder), synced to
// another folder and mounted again over the same lower layer, shows the
// same merged tree.
func TestSyncOverlay(t *testing.T) {
	requireRoot(t)
	base := tmpfs(t)
	dir := func(n string) string {
		p := filepath.Join(base, n)
		mustDo(t, os.MkdirAll(p, 0o755))
		return p
	}
	lower, upper, work, merged := dir("lower"), dir("upper"), dir("work"), dir("merged")
	mustDo(t,
		os.MkdirAll(filepath.Join(lower, "etc/conf.d"), 0o755),
		os.WriteFile(filepath.Join(lower, "etc/hostname"), []byte("lower\n"), 0o644),
		os.WriteFile(filepath.Join(lower, "etc/motd"), []byte("welcome\n"), 0o644),
		os.WriteFile(filepath.Join(lower, "etc/conf.d/a"), []byte("a\n"), 0o644),
		os.WriteFile(filepath.Join(lower, "etc/conf.d/b"), []byte("b\n"), 0o644),
	)
	mount := func(upper, work string) {
		t.Helper()
		opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
	}
	mount(upper, work)
	mustDo(t,
		os.WriteFile(filepath.Join(merged, "etc/hostname"), []byte("changed\n"), 0o644), // copy-up
		os.Remove(filepath.Join(merged, "etc/motd")),                                    // whiteout
		os.RemoveAll(filepath.Join(merged, "etc/conf.d")),                               // whiteout of a folder
		os.Mkdir(filepath.Join(merged, "etc/conf.d"), 0o755),                            // now opaque
		os.WriteFile(filepath.Join(merged, "etc/conf.d/c"), []byte("c\n"), 0o644),
		os.MkdirAll(filepath.Join(merged, "root/.ssh"), 0o700),
		os.WriteFile(filepath.Join(merged, "root/.ssh/id"), []byte("secret\n"), 0o600),
	)
	want := describe(t, merged)
	mustDo(t, unix.Unmount(merged, 0))

	saved := dir("saved")
	if _, err := Sync(upper, saved); err != nil {
		t.Fatal(err)
	}
	mount(saved, dir("work2"))
	defer unix.Unmount(merged, 0)
	if got := describe(t, merged); got != want {
		t.Errorf("the overlay over the synced upper layer:\n got %s\nwant %s", got, want)
	}
	for _, gone := range []string{"etc/motd", "etc/conf.d/a"} {
		if _, err := os.Lstat(filepath.Join(merged, gone)); !os.IsNotExist(err) {
			t.Errorf("%s shows through the synced upper layer (%v)", gone, err)
		}
	}
}

// TestSaveLoad: a save leaves no marker; a save cut short (the marker
// left) is reported by the next Load; a store that never saved loads as
// empty.
func TestSaveLoad(t *testing.T) {
	requireRoot(t)
	base := tmpfs(t)
	upper, store, ram := filepath.Join(base, "upper"), filepath.Join(base, "store"), filepath.Join(base, "ram")
	mustDo(t, os.MkdirAll(filepath.Join(upper, "root"), 0o700), os.MkdirAll(store, 0o755),
		os.WriteFile(filepath.Join(upper, "root/note"), []byte("kept across reboots\n"), 0o600))

	st, interrupted, err := Load(store, ram)
	if err != nil || interrupted || st.Entries != 0 {
		t.Fatalf("Load of a new store: %+v %v %v", st, interrupted, err)
	}
	if _, err := Save(upper, store); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store, Marker)); !os.IsNotExist(err) {
		t.Errorf("the marker is left after a save that finished (%v)", err)
	}
	mustDo(t, os.RemoveAll(ram))
	if _, interrupted, err = Load(store, ram); err != nil || interrupted {
		t.Fatalf("Load: %v %v", interrupted, err)
	}
	if got, want := describe(t, ram), describe(t, upper); got != want {
		t.Errorf("loaded:\n got %s\nwant %s", got, want)
	}

	mustDo(t, os.WriteFile(filepath.Join(store, Marker), nil, 0o644), os.RemoveAll(ram))
	if _, interrupted, err = Load(store, ram); err != nil || !interrupted {
		t.Errorf("Load after a save cut short: interrupted %v, %v", interrupted, err)
	}
}

// TestSyncBadSource: a missing source or a file is an error, and the
// destination is not touched.
func TestSyncBadSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	mustDo(t, os.WriteFile(file, []byte("x"), 0o644))
	for _, src := range []string{filepath.Join(dir, "missing"), file} {
		dst := filepath.Join(dir, "dst")
		if _, err := Sync(src, dst); err == nil {
			t.Errorf("Sync(%s) succeeded", src)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("Sync(%s) made the destination", src)
		}
	}
}

// TestSyncRace: a service writes its data folder, which is in the upper
// layer, while a save reads it. Between Sync's stat of an entry and its
// read, the hook swaps the entry for a symlink to a root-only file or
// folder, or for a FIFO: the secret must never be copied, the save must
// not hang, and what is saved is what the entry became. An entry swapped
// every time is skipped with ErrChanged, its saved copy kept.
func TestSyncRace(t *testing.T) {
	requireRoot(t)
	const secret = "ROOT-ONLY admin hash\n"
	for _, tc := range []struct {
		name   string
		path   string // under src, the entry swapped
		swap   func(t *testing.T, p, outside string)
		always bool // swap at every attempt, not just the first
		check  func(t *testing.T, dst string, err error)
	}{
		{"symlink for a file", "svc/note", func(t *testing.T, p, outside string) {
			mustDo(t, os.Remove(p), os.Symlink(filepath.Join(outside, "shadow"), p))
		}, false, func(t *testing.T, dst string, err error) {
			if target, lerr := os.Readlink(filepath.Join(dst, "svc/note")); err != nil || lerr != nil || !strings.HasSuffix(target, "/shadow") {
				t.Errorf("saved %q %v, Sync %v; want the symlink itself", target, lerr, err)
			}
		}},
		{"symlink for a folder", "svc/sub", func(t *testing.T, p, outside string) {
			mustDo(t, os.RemoveAll(p), os.Symlink(outside, p))
		}, false, func(t *testing.T, dst string, err error) {
			if target, lerr := os.Readlink(filepath.Join(dst, "svc/sub")); err != nil || lerr != nil || target == "" {
				t.Errorf("saved %q %v, Sync %v; want the symlink itself", target, lerr, err)
			}
		}},
		{"FIFO for a file", "svc/note", func(t *testing.T, p, outside string) {
			mustDo(t, os.Remove(p), unix.Mkfifo(p, 0o600))
		}, false, func(t *testing.T, dst string, err error) {
			var st unix.Stat_t
			if lerr := unix.Lstat(filepath.Join(dst, "svc/note"), &st); err != nil || lerr != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Errorf("saved mode %o %v, Sync %v; want a FIFO", st.Mode, lerr, err)
			}
		}},
		{"a new file every time", "svc/note", func(t *testing.T, p, outside string) {
			mustDo(t, os.WriteFile(p+".new", []byte("racing\n"), 0o600), os.Rename(p+".new", p))
		}, true, func(t *testing.T, dst string, err error) {
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "svc/note: changed while being saved") {
				t.Errorf("Sync: %v, want ErrChanged naming svc/note", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "svc/note")); string(b) != "saved before\n" {
				t.Errorf("the saved copy: %q, want the one saved before", b)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "svc/other")); string(b) != "changed\n" {
				t.Errorf("the rest of the save: %q", b)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tmpfs(t)
			src, dst, outside := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "node")
			mustDo(t,
				os.MkdirAll(filepath.Join(src, "svc/sub"), 0o700),
				os.MkdirAll(outside, 0o700),
				os.WriteFile(filepath.Join(outside, "shadow"), []byte(secret), 0o600),
				os.WriteFile(filepath.Join(src, "svc/note"), []byte("saved before\n"), 0o600),
				os.WriteFile(filepath.Join(src, "svc/sub/x"), []byte("x\n"), 0o600),
				os.WriteFile(filepath.Join(src, "svc/other"), []byte("before\n"), 0o600),
			)
			if _, err := Sync(src, dst); err != nil {
				t.Fatal(err)
			}
			mustDo(t, os.WriteFile(filepath.Join(src, "svc/other"), []byte("changed\n"), 0o600),
				os.Chtimes(filepath.Join(src, "svc/note"), time.Unix(1, 0), time.Unix(1, 0))) // so it is copied again
			target := filepath.Join(src, tc.path)
			swaps := 0
			testHookSwap = func(p string) {
				if p == target && (tc.always || swaps == 0) {
					swaps++
					tc.swap(t, p, outside)
				}
			}
			defer func() { testHookSwap = nil }()
			done := make(chan error, 1)
			go func() { _, err := Sync(src, dst); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Sync hangs")
			}
			if swaps == 0 {
				t.Fatal("the hook never ran")
			}
			tc.check(t, dst, err)
			filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), "ROOT-ONLY") {
						t.Errorf("the secret was copied into %s", p)
					}
				}
				return nil
			})
		})
	}
}
