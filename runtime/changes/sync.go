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
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
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
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return st, fmt.Errorf("changes: %w", err)
	}
	s := &syncer{st: &st}
	s.dir(src, dst)
	if fd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		if err := unix.Syncfs(fd); err != nil {
			s.fail(fmt.Errorf("syncing %s: %w", dst, err))
		}
		unix.Close(fd)
	}
	return st, errors.Join(s.errs...)
}

type syncer struct {
	st   *Stats
	errs []error
}

func (s *syncer) fail(err error) {
	s.errs = append(s.errs, fmt.Errorf("changes: %w", err))
}

// dir syncs the contents of the folder src into the existing folder dst,
// then dst's own metadata.
func (s *syncer) dir(src, dst string) {
	names, err := readNames(src)
	if err != nil {
		s.fail(err)
		return
	}
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
	for _, n := range names {
		s.st.Entries++
		s.entry(filepath.Join(src, n), filepath.Join(dst, n), dst)
	}
	if err := s.meta(src, dst); err != nil {
		s.fail(err)
	}
	fsyncDir(dst)
}

// entry syncs one entry.
func (s *syncer) entry(src, dst, parent string) {
	var a unix.Stat_t
	if err := unix.Lstat(src, &a); err != nil {
		if !errors.Is(err, unix.ENOENT) { // deleted while we walk: not an error
			s.fail(fmt.Errorf("%s: %w", src, err))
		}
		return
	}
	var b unix.Stat_t
	exists := unix.Lstat(dst, &b) == nil
	if a.Mode&unix.S_IFMT == unix.S_IFDIR {
		if exists && b.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := os.RemoveAll(dst); err != nil {
				s.fail(err)
				return
			}
			exists = false
		}
		if !exists {
			if err := os.Mkdir(dst, 0o700); err != nil {
				s.fail(err)
				return
			}
			s.st.Copied++
		}
		s.dir(src, dst)
		return
	}
	if exists && same(&a, &b) && sameXattrs(src, dst) {
		return
	}
	tmp := filepath.Join(parent, tmpPrefix+filepath.Base(dst))
	os.RemoveAll(tmp)
	n, err := s.make(src, tmp, &a)
	if err == nil {
		err = s.meta(src, tmp)
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
		s.fail(err)
		return
	}
	s.st.Copied++
	s.st.Bytes += n
}

// make creates dst as a copy of src (not its metadata): a regular file's
// data synced to disk, a symlink, a device (whiteouts included), a fifo
// or a socket.
func (s *syncer) make(src, dst string, a *unix.Stat_t) (int64, error) {
	switch a.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return copyFile(src, dst)
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return 0, err
		}
		return 0, os.Symlink(target, dst)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, a.Mode, int(a.Rdev)); err != nil {
			return 0, fmt.Errorf("mknod %s: %w", dst, err)
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%s: unknown file type %#o", src, a.Mode&unix.S_IFMT)
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
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

// meta gives dst src's xattrs, owner, mode and times. The mode is set
// after the owner, since chown clears setuid bits.
func (s *syncer) meta(src, dst string) error {
	var a unix.Stat_t
	if err := unix.Lstat(src, &a); err != nil {
		return err
	}
	if err := copyXattrs(src, dst); err != nil {
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

// xattrs lists path's extended attributes with their values. The system.
// namespace (ACLs, which overlayfs maps itself) is left out.
func xattrs(path string) (map[string][]byte, error) {
	sz, err := unix.Llistxattr(path, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(path, buf); err != nil {
		return nil, fmt.Errorf("listing the xattrs of %s: %w", path, err)
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "system.") {
			continue
		}
		vsz, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, path, err)
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(path, name, v); err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, path, err)
		}
		out[name] = v[:vsz]
	}
	return out, nil
}

func sameXattrs(a, b string) bool {
	xa, err := xattrs(a)
	if err != nil {
		return false
	}
	xb, err := xattrs(b)
	if err != nil || len(xa) != len(xb) {
		return false
	}
	for k, v := range xa {
		if w, ok := xb[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// copyXattrs makes dst's xattrs those of src.
func copyXattrs(src, dst string) error {
	want, err := xattrs(src)
	if err != nil {
		return err
	}
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
