package testtree

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
)

// Node is what Scan records about one entry: everything a module must keep.
type Node struct {
	Type     entry.Type
	Mode     uint32 // permissions, setuid, setgid, sticky
	UID, GID uint32
	ModTime  time.Time
	Size     int64  // regular files only
	SHA256   string // regular files only
	Link     string // symlink target
	Major    uint32 // devices
	Minor    uint32
	Xattrs   map[string]string // system.* (ACLs) left out
	// Names lists, sorted, every path of the tree sharing this non-directory
	// inode when it has more than one; nil otherwise.
	Names []string
	// Blocks is st_blocks (512-byte units), for sparseness checks; Compare
	// ignores it.
	Blocks int64
}

// Scan walks dir without following symlinks and returns a Node for every
// entry, keyed by slash-separated path relative to dir ("." for dir).
func Scan(t testing.TB, dir string) map[string]*Node {
	t.Helper()
	out := map[string]*Node{}
	type ino struct{ dev, ino uint64 }
	groups := map[ino][]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		n, err := scanNode(p, &st)
		if err != nil {
			return err
		}
		out[rel] = n
		if n.Type != entry.TypeDir && st.Nlink > 1 {
			k := ino{st.Dev, st.Ino}
			groups[k] = append(groups[k], rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testtree.Scan %s: %v", dir, err)
	}
	for _, names := range groups {
		if len(names) < 2 {
			continue // other names live outside dir
		}
		slices.Sort(names)
		for _, name := range names {
			out[name].Names = names
		}
	}
	return out
}

func scanNode(p string, st *unix.Stat_t) (*Node, error) {
	n := &Node{
		Mode:    st.Mode & entry.ModePerm,
		UID:     st.Uid,
		GID:     st.Gid,
		ModTime: time.Unix(st.Mtim.Unix()),
		Blocks:  st.Blocks,
	}
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type, n.Size = entry.TypeRegular, st.Size
		n.SHA256, err = hashFile(p)
	case unix.S_IFDIR:
		n.Type = entry.TypeDir
	case unix.S_IFLNK:
		n.Type = entry.TypeSymlink
		n.Mode = 0 // always 0777 on Linux; not worth comparing
		n.Link, err = os.Readlink(p)
	case unix.S_IFCHR, unix.S_IFBLK:
		n.Type = entry.TypeCharDev
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			n.Type = entry.TypeBlockDev
		}
		n.Major, n.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFIFO:
		n.Type = entry.TypeFIFO
	case unix.S_IFSOCK:
		n.Type = entry.TypeSocket
	}
	if err != nil {
		return nil, err
	}
	n.Xattrs, err = readXattrs(p)
	return n, err
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func readXattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("llistxattr %s: %w", p, err)
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("llistxattr %s: %w", p, err)
	}
	var m map[string]string
	for _, name := range strings.Split(string(bytes.TrimRight(buf[:n], "\x00")), "\x00") {
		if name == "" || strings.HasPrefix(name, "system.") {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, fmt.Errorf("lgetxattr %s %s: %w", p, name, err)
		}
		if m == nil {
			m = map[string]string{}
		}
		m[name] = string(v[:vn])
	}
	return m, nil
}

// CompareOptions relaxes Compare for formats that keep less.
type CompareOptions struct {
	// MtimeResolution truncates both sides' mtimes before comparing, e.g.
	// time.Second for squashfs. Zero compares nanoseconds.
	MtimeResolution time.Duration
	// Skip leaves out paths the format cannot carry (tar drops sockets).
	Skip func(path string, n *Node) bool
}

// Compare scans the trees want and got and reports every entry missing,
// extra or different in type, mode, owner, mtime, size, content, link
// target, device number, xattrs or hardlink group. Directory sizes and
// st_blocks are not compared.
func Compare(t testing.TB, want, got string, opts CompareOptions) {
	t.Helper()
	for _, d := range Diff(Scan(t, want), Scan(t, got), opts) {
		t.Error(d)
	}
}

// Diff lists the differences between two scans, at most 50, in path order.
func Diff(want, got map[string]*Node, opts CompareOptions) []string {
	var diffs []string
	skip := func(p string, n *Node) bool { return opts.Skip != nil && opts.Skip(p, n) }
	for _, p := range slices.Sorted(maps.Keys(want)) {
		w, g := want[p], got[p]
		if skip(p, w) {
			continue
		}
		if g == nil {
			diffs = append(diffs, fmt.Sprintf("%s: missing (want a %s)", p, w.Type))
			continue
		}
		diffs = append(diffs, diffNode(p, w, g, opts)...)
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if want[p] == nil && !skip(p, got[p]) {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %s", p, got[p].Type))
		}
	}
	if len(diffs) > 50 {
		diffs = append(diffs[:50], fmt.Sprintf("... and %d more differences", len(diffs)-50))
	}
	return diffs
}

func diffNode(p string, w, g *Node, opts CompareOptions) []string {
	var d []string
	check := func(what string, want, got any) {
		if fmt.Sprint(want) != fmt.Sprint(got) {
			d = append(d, fmt.Sprintf("%s: %s = %v, want %v", p, what, got, want))
		}
	}
	check("type", w.Type, g.Type)
	check("mode", fmt.Sprintf("%04o", w.Mode), fmt.Sprintf("%04o", g.Mode))
	check("uid:gid", fmt.Sprint(w.UID, ":", w.GID), fmt.Sprint(g.UID, ":", g.GID))
	wt, gt := w.ModTime, g.ModTime
	if r := opts.MtimeResolution; r > 0 {
		wt, gt = wt.Truncate(r), gt.Truncate(r)
	}
	if !wt.Equal(gt) {
		d = append(d, fmt.Sprintf("%s: mtime = %v, want %v", p, gt.UTC(), wt.UTC()))
	}
	if w.Type == entry.TypeRegular {
		check("size", w.Size, g.Size)
		check("content sha256", w.SHA256, g.SHA256)
	}
	check("link target", w.Link, g.Link)
	check("device", fmt.Sprint(w.Major, ",", w.Minor), fmt.Sprint(g.Major, ",", g.Minor))
	for _, k := range slices.Sorted(maps.Keys(w.Xattrs)) {
		if gv, ok := g.Xattrs[k]; !ok || gv != w.Xattrs[k] {
			d = append(d, fmt.Sprintf("%s: xattr %s = %q (present %v), want %q", p, k, gv, ok, w.Xattrs[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g.Xattrs)) {
		if _, ok := w.Xattrs[k]; !ok {
			d = append(d, fmt.Sprintf("%s: unexpected xattr %s = %q", p, k, g.Xattrs[k]))
		}
	}
	check("hardlink group", w.Names, g.Names)
	return d
}
