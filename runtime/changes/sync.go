// Package changes copies an overlayfs upper layer from one folder to
// another so that the destination ends up the same tree: what changes=EXIT:
// does at boot (the saved changes into RAM) and at shutdown or on demand
// (RAM back to the store).
//
// An upper layer is more than files: a character device 0:0 is a
// whiteout (a deleted lower file), the xattr trusted.overlay.opaque=y
// hides a lower directory's contents, and owners, modes, times and other
// xattrs all matter. Sync carries all of them; hard links become separate
// copies.
package changes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"byzantium/modules/hostfs"
)

// Stats says what a Sync did.
type Stats struct {
	Entries int   // entries in the source
	Copied  int   // entries (re)written in the destination
	Removed int   // entries removed from the destination
	Bytes   int64 // file bytes written
}

// tmpPrefix names the temporary entries Sync makes before renaming them
// into place; a crash can leave some, and the next Sync removes them.
const tmpPrefix = ".byz-sync-"

// Sync makes dst hold the same tree as src: new and changed entries are
// written under a temporary name, synced and renamed into place (so each
// entry is either the old or the new one after a crash), entries src no
// longer has are removed, and the file system holding dst is synced at
// the end. Files are compared by type, size, mode, owner, mtime and
// xattrs; when those agree the file is taken to be unchanged.
//
// src may be written while Sync reads it, by programs that want to steal
// from it: a service's data folder is in the upper layer. So src is
// walked by descriptors (openat, fstatat, readlinkat from a folder held
// open), nothing in it is followed, a file is read only when the opened
// inode is the one the walk saw (hostfs.OpenAt), and metadata comes from
// that open file. An entry that keeps changing under it is skipped with
// ErrChanged, its saved copy kept.
//
// It goes on past an entry that fails and returns every failure: one
// unreadable file must not stop the rest from being saved.
func Sync(src, dst string) (Stats, error) {
	var st Stats
	fi, err := os.Lstat(src)
	if err != nil {
		return st, fmt.Errorf("changes: %w", err)
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("changes: %s is not a folder", src)
	}
	root, err := os.Open(src)
	if err != nil {
		return st, fmt.Errorf("changes: %w", err)
	}
	defer root.Close()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return st, fmt.Errorf("changes: %w", err)
	}
	s := &syncer{st: &st}
	s.dir(root, src, dst)
	if fd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		if err := unix.Syncfs(fd); err != nil {
			s.fail(fmt.Errorf("syncing %s: %w", dst, err))
		}
		unix.Close(fd)
	}
	return st, errors.Join(s.errs...)
}

// ErrChanged reports a source entry that was replaced each time Sync
// looked at it (maxAttempts times); it is left as last saved.
var ErrChanged = errors.New("changed while being saved: skipped, the saved copy is kept")

// maxAttempts bounds how often Sync starts over on an entry replaced
// between its stat and its open: once is an ordinary rename over it (how
// byzd writes its own files); every time is someone racing the save.
const maxAttempts = 3

// testHookSwap, when set by a test, runs between the stat of a source
// entry and the calls that read it: where a racing writer strikes.
var testHookSwap func(src string)

type syncer struct {
	st   *Stats
	errs []error
}

func (s *syncer) fail(err error) {
	s.errs = append(s.errs, fmt.Errorf("changes: %w", err))
}

// dir syncs the contents of the folder d (named src in messages) into the
// existing folder dst, then dst's own metadata.
func (s *syncer) dir(d *os.File, src, dst string) {
	names, err := d.Readdirnames(-1)
	if err != nil {
		s.fail(fmt.Errorf("%s: %w", src, err))
		return
	}
	sort.Strings(names)
	have, err := readNames(dst)
	if err != nil {
		s.fail(err)
		return
	}
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	// Removals first: they free space for what follows.
	for _, n := range have {
		if !keep[n] || strings.HasPrefix(n, tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(dst, n)); err != nil {
				s.fail(err)
				continue
			}
			s.st.Removed++
		}
	}
	dfd := int(d.Fd())
	for _, n := range names {
		s.st.Entries++
		s.entry(dfd, n, filepath.Join(src, n), filepath.Join(dst, n), dst)
	}
	var a unix.Stat_t
	err = unix.Fstat(dfd, &a)
	var x map[string][]byte
	if err == nil {
		x, err = xattrsOf(fdXattrs{dfd}, src)
	}
	if err == nil {
		err = s.meta(&a, x, dst)
	}
	if err != nil {
		s.fail(err)
	}
	fsyncDir(dst)
}

// entry syncs the entry name of the folder dfd, starting over when it is
// replaced under it.
func (s *syncer) entry(dfd int, name, src, dst, parent string) {
	for range maxAttempts {
		err := s.try(dfd, name, src, dst, parent)
		if !errors.Is(err, hostfs.ErrReplaced) {
			if err != nil {
				s.fail(err)
			}
			return
		}
	}
	s.fail(fmt.Errorf("%s: %w", src, ErrChanged))
}

// try syncs one entry once; hostfs.ErrReplaced means it changed between
// the stat and the read, and nothing was written.
func (s *syncer) try(dfd int, name, src, dst, parent string) error {
	var a unix.Stat_t
	if err := unix.Fstatat(dfd, name, &a, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) { // deleted while we walk: not an error
			return nil
		}
		return fmt.Errorf("%s: %w", src, err)
	}
	var b unix.Stat_t
	exists := unix.Lstat(dst, &b) == nil
	if testHookSwap != nil {
		testHookSwap(src)
	}
	if a.Mode&unix.S_IFMT == unix.S_IFDIR {
		d, err := hostfs.OpenAt(dfd, name, &a)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer d.Close()
		if exists && b.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			exists = false
		}
		if !exists {
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
			s.st.Copied++
		}
		s.dir(d, src, dst)
		return nil
	}
	// What the entry is now, by its name in the folder held open: never
	// through a symlink, never into another folder.
	pinned := fmt.Sprintf("/proc/self/fd/%d/%s", dfd, name)
	x, err := xattrsOf(pathXattrs{pinned}, src)
	if err != nil {
		return err
	}
	if exists && same(&a, &b) && sameXattrs(x, dst) {
		return nil
	}
	tmp := filepath.Join(parent, tmpPrefix+filepath.Base(dst))
	os.RemoveAll(tmp)
	n, err := s.make(dfd, name, src, tmp, &a, &x)
	if err == nil {
		err = s.meta(&a, x, tmp)
	}
	if err == nil && exists && b.Mode&unix.S_IFMT == unix.S_IFDIR {
		// A file replaced a folder: rename cannot replace a folder
		// with a file.
		err = os.RemoveAll(dst)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	s.st.Copied++
	s.st.Bytes += n
	return nil
}

// make creates dst as a copy of the entry name of the folder dfd (not its
// metadata): a regular file's data synced to disk, a symlink, a device
// (whiteouts included), a fifo or a socket. A regular file's stat and
// xattrs (a, x) are replaced by those of the file opened; the other kinds
// are checked to be still what a says once read.
func (s *syncer) make(dfd int, name, src, dst string, a *unix.Stat_t, x *map[string][]byte) (int64, error) {
	var err error
	switch a.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return copyFile(dfd, name, src, dst, a, x)
	case unix.S_IFLNK:
		var target string
		if target, err = readlinkat(dfd, name); err == nil {
			err = os.Symlink(target, dst)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err = unix.Mknod(dst, a.Mode, int(a.Rdev)); err != nil {
			err = fmt.Errorf("mknod %s: %w", dst, err)
		}
	default:
		return 0, fmt.Errorf("%s: unknown file type %#o", src, a.Mode&unix.S_IFMT)
	}
	if err == nil {
		err = still(dfd, name, src, a)
	}
	if err != nil {
		os.Remove(dst)
	}
	return 0, err
}

// still checks that the entry name of the folder dfd is the inode a
// describes, after reading it by name.
func still(dfd int, name, src string, a *unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Fstatat(dfd, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: %w (%v)", src, hostfs.ErrReplaced, err)
	}
	if now.Dev != a.Dev || now.Ino != a.Ino || now.Mode&unix.S_IFMT != a.Mode&unix.S_IFMT {
		return fmt.Errorf("%s: %w", src, hostfs.ErrReplaced)
	}
	return nil
}

func readlinkat(dfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", fmt.Errorf("readlink %s: %w", name, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// copyFile copies the regular file name of the folder dfd, if it is still
// the inode a describes, into the new file dst, and gives back the open
// file's own stat and xattrs for its metadata.
func copyFile(dfd int, name, src, dst string, a *unix.Stat_t, x *map[string][]byte) (int64, error) {
	in, err := hostfs.OpenAt(dfd, name, a)
	if errors.Is(err, hostfs.ErrReplaced) {
		return 0, fmt.Errorf("%s: %w", src, err)
	}
	if err != nil {
		return 0, fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	if err := unix.Fstat(int(in.Fd()), a); err != nil {
		return 0, fmt.Errorf("copying %s: %w", src, err)
	}
	if *x, err = xattrsOf(fdXattrs{int(in.Fd())}, src); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	// Only the bytes the stat promised: a file growing while it is read
	// is saved as it was, its size and its data agreeing.
	n, err := io.Copy(out, io.LimitReader(in, a.Size))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copying %s: %w", src, err)
	}
	return n, nil
}

// meta gives dst the stat a's owner, mode and times and the xattrs x. The
// mode is set after the owner, since chown clears setuid bits.
func (s *syncer) meta(a *unix.Stat_t, x map[string][]byte, dst string) error {
	if err := setXattrs(x, dst); err != nil {
		return err
	}
	if err := os.Lchown(dst, int(a.Uid), int(a.Gid)); err != nil {
		return err
	}
	if a.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, a.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
	}
	ts := []unix.Timespec{a.Atim, a.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting the times of %s: %w", dst, err)
	}
	return nil
}

// same compares what Sync keeps, except xattrs.
func same(a, b *unix.Stat_t) bool {
	return a.Mode == b.Mode && a.Uid == b.Uid && a.Gid == b.Gid && a.Size == b.Size &&
		a.Rdev == b.Rdev && a.Mtim == b.Mtim
}

// xattrSource reads extended attributes: of an open descriptor, or of a
// path without following its last component.
type xattrSource interface {
	list(buf []byte) (int, error)
	get(name string, buf []byte) (int, error)
}

type fdXattrs struct{ fd int }

func (f fdXattrs) list(buf []byte) (int, error)             { return unix.Flistxattr(f.fd, buf) }
func (f fdXattrs) get(name string, buf []byte) (int, error) { return unix.Fgetxattr(f.fd, name, buf) }

type pathXattrs struct{ path string }

func (p pathXattrs) list(buf []byte) (int, error) { return unix.Llistxattr(p.path, buf) }
func (p pathXattrs) get(name string, buf []byte) (int, error) {
	return unix.Lgetxattr(p.path, name, buf)
}

// xattrs lists path's extended attributes with their values.
func xattrs(path string) (map[string][]byte, error) { return xattrsOf(pathXattrs{path}, path) }

// xattrsOf lists the extended attributes of src with their values (what
// names it in messages). The system. namespace (ACLs, which overlayfs
// maps itself) is left out.
func xattrsOf(src xattrSource, what string) (map[string][]byte, error) {
	sz, err := src.list(nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		if err != nil {
			err = fmt.Errorf("listing the xattrs of %s: %w", what, err)
		}
		return nil, err
	}
	buf := make([]byte, sz)
	if sz, err = src.list(buf); err != nil {
		return nil, fmt.Errorf("listing the xattrs of %s: %w", what, err)
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "system.") {
			continue
		}
		vsz, err := src.get(name, nil)
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, what, err)
		}
		v := make([]byte, vsz)
		if vsz, err = src.get(name, v); err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, what, err)
		}
		out[name] = v[:vsz]
	}
	return out, nil
}

// sameXattrs reports whether dst has exactly the xattrs want.
func sameXattrs(want map[string][]byte, dst string) bool {
	have, err := xattrs(dst)
	if err != nil || len(want) != len(have) {
		return false
	}
	for k, v := range want {
		if w, ok := have[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// setXattrs makes dst's xattrs want.
func setXattrs(want map[string][]byte, dst string) error {
	have, err := xattrs(dst)
	if err != nil {
		return err
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			if err := unix.Lremovexattr(dst, k); err != nil {
				return fmt.Errorf("removing xattr %s of %s: %w", k, dst, err)
			}
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := unix.Lsetxattr(dst, k, want[k], 0); err != nil {
			return fmt.Errorf("setting xattr %s on %s: %w", k, dst, err)
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func fsyncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}
