package hostfs

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
)

// ExtractOptions tunes Extract. The zero value extracts into an empty or
// missing directory and, when running as root, restores ownership.
type ExtractOptions struct {
	// Overwrite allows dest to hold files already; entries of the stream
	// replace what is at their path (a directory over a directory merges).
	Overwrite bool
	// NoChown leaves every entry owned by the extracting user even when it
	// runs as root.
	NoChown bool
}

// Extract writes the entries of r into dest. Later entries with the path of
// an earlier one replace it. Files are written sparse: all-zero 4 KiB blocks
// become holes. A hardlink may come before its target; it is made once the
// target has been written. Directory modes, owners and mtimes are set last,
// deepest first, so writing their contents cannot disturb them and read-only
// directories can still be filled.
//
// An entry whose parent directory is a symlink is refused, whether the
// symlink came from the stream or was already in dest: a stream must not be
// able to write outside dest.
func Extract(r entry.Reader, dest string, opts ExtractOptions) error {
	if err := prepareDest(dest, opts.Overwrite); err != nil {
		return err
	}
	x := &extractor{
		dest:  dest,
		chown: !opts.NoChown && os.Geteuid() == 0,
		safe:  map[string]bool{".": true},
		done:  map[string]bool{},
		dirs:  map[string]*entry.Header{},
		buf:   make([]byte, 128<<10),
	}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("hostfs: extract to %s: %w", dest, err)
		}
		if err := x.entry(h, r); err != nil {
			return err
		}
	}
	return x.finish()
}

func prepareDest(dest string, overwrite bool) error {
	f, err := os.Open(dest)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return pathErr(dest, "mkdir", err)
		}
		return nil
	}
	if err != nil {
		return pathErr(dest, "open", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return pathErr(dest, "readdir", err)
	}
	if len(names) > 0 && !overwrite {
		return fmt.Errorf("hostfs: extract to %s: %w (set Overwrite to extract over it)", dest, ErrNotEmpty)
	}
	return nil
}

// ErrNotEmpty reports an Extract into a directory that already holds files
// without ExtractOptions.Overwrite.
var ErrNotEmpty = errors.New("destination is not empty")

type extractor struct {
	dest  string
	chown bool
	safe  map[string]bool          // relative dirs known to be real directories
	done  map[string]bool          // paths written from the stream
	dirs  map[string]*entry.Header // attributes to apply at the end
	links []*entry.Header          // hardlinks whose target had not come yet
	buf   []byte
}

func (x *extractor) entry(h *entry.Header, r io.Reader) error {
	full := filepath.Join(x.dest, filepath.FromSlash(h.Path))
	if err := h.Validate(); err != nil {
		return fmt.Errorf("hostfs: extract %s: %w", full, err)
	}
	if err := x.parents(h.Path); err != nil {
		return err
	}
	if h.Type == entry.TypeHardlink && !x.done[h.Linkname] {
		x.links = append(x.links, h)
		return nil
	}
	if err := x.clear(h, full); err != nil {
		return err
	}
	var err error
	switch h.Type {
	case entry.TypeDir:
		err = x.dir(h, full)
	case entry.TypeRegular:
		err = x.file(h, full, r)
	case entry.TypeHardlink:
		err = x.link(h, full)
	default:
		err = x.special(h, full)
	}
	if err != nil {
		return fmt.Errorf("hostfs: extract %s: %w", full, err)
	}
	x.done[h.Path] = true
	return nil
}

// parents makes sure every directory above rel is a real directory inside
// dest, creating missing ones (mode 0755) as tar does.
func (x *extractor) parents(rel string) error {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		if x.safe[dir] {
			continue
		}
		full := filepath.Join(x.dest, filepath.FromSlash(dir))
		var st unix.Stat_t
		err := unix.Lstat(full, &st)
		switch {
		case errors.Is(err, unix.ENOENT):
			if err := unix.Mkdir(full, 0o755); err != nil {
				return pathErr(full, "mkdir", err)
			}
		case err != nil:
			return pathErr(full, "lstat", err)
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return fmt.Errorf("hostfs: extract %s: parent %s is a symlink: %w", filepath.Join(x.dest, rel), full, ErrEscape)
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("hostfs: extract %s: parent %s is not a directory", filepath.Join(x.dest, rel), full)
		}
		x.safe[dir] = true
	}
	return nil
}

// ErrEscape reports an entry that would be written through a symlink.
var ErrEscape = errors.New("path leaves the destination through a symlink")

// clear removes what stands at full unless both it and h are directories.
func (x *extractor) clear(h *entry.Header, full string) error {
	var st unix.Stat_t
	err := unix.Lstat(full, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return pathErr(full, "lstat", err)
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && h.Type == entry.TypeDir {
		return nil
	}
	if err := os.RemoveAll(full); err != nil {
		return pathErr(full, "remove", err)
	}
	if isDir {
		// What was below the removed directory is gone too.
		x.safe = map[string]bool{".": true}
		gone := func(k string) bool { return k == h.Path || strings.HasPrefix(k, h.Path+"/") }
		maps.DeleteFunc(x.dirs, func(k string, _ *entry.Header) bool { return gone(k) })
		maps.DeleteFunc(x.done, func(k string, _ bool) bool { return gone(k) })
	}
	return nil
}

// depth orders directories for finish: the root "." above everything.
func depth(rel string) int {
	if rel == "." {
		return -1
	}
	return strings.Count(rel, "/")
}

func (x *extractor) dir(h *entry.Header, full string) error {
	// Owner-writable until finish applies the real mode, so a read-only
	// directory can still be filled by a non-root user.
	if err := unix.Mkdir(full, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mkdir: %w", err)
	}
	x.safe[h.Path] = true
	x.dirs[h.Path] = h
	return nil
}

func (x *extractor) link(h *entry.Header, full string) error {
	target := filepath.Join(x.dest, filepath.FromSlash(h.Linkname))
	if err := unix.Linkat(unix.AT_FDCWD, target, unix.AT_FDCWD, full, 0); err != nil {
		return fmt.Errorf("link to %s: %w", target, err)
	}
	return nil
}

// special makes symlinks, devices, fifos and sockets.
func (x *extractor) special(h *entry.Header, full string) error {
	var err error
	switch h.Type {
	case entry.TypeSymlink:
		err = unix.Symlink(h.Linkname, full)
	case entry.TypeCharDev:
		err = unix.Mknod(full, unix.S_IFCHR|0o600, int(unix.Mkdev(h.Devmajor, h.Devminor)))
	case entry.TypeBlockDev:
		err = unix.Mknod(full, unix.S_IFBLK|0o600, int(unix.Mkdev(h.Devmajor, h.Devminor)))
	case entry.TypeFIFO:
		err = unix.Mknod(full, unix.S_IFIFO|0o600, 0)
	case entry.TypeSocket:
		err = unix.Mknod(full, unix.S_IFSOCK|0o600, 0)
	default:
		return fmt.Errorf("%w: %s", entry.ErrUnsupported, h.Type)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", h.Type, err)
	}
	return x.attrs(h, full)
}

// attrs applies owner, then mode (chown clears setuid and setgid), then
// xattrs (chown clears security.capability), then the mtime.
func (x *extractor) attrs(h *entry.Header, full string) error {
	if x.chown {
		if err := unix.Lchown(full, int(h.UID), int(h.GID)); err != nil {
			return fmt.Errorf("lchown: %w", err)
		}
	}
	if h.Type != entry.TypeSymlink { // Linux symlinks have no mode of their own
		if err := unix.Chmod(full, h.Mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for _, name := range h.XattrNames() {
		if skipXattr(name) {
			continue
		}
		if err := unix.Lsetxattr(full, name, h.Xattrs[name], 0); err != nil {
			return fmt.Errorf("lsetxattr %s: %w", name, err)
		}
	}
	return setMtime(h, full)
}

func setMtime(h *entry.Header, full string) error {
	if h.ModTime.IsZero() {
		return nil // the stream does not know; keep the extraction time
	}
	// Not UnixNano: it overflows outside 1678–2262.
	ts := unix.Timespec{Sec: h.ModTime.Unix(), Nsec: int64(h.ModTime.Nanosecond())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimes: %w", err)
	}
	return nil
}

// finish makes the hardlinks that came before their targets, then applies
// the directories' attributes, deepest first.
func (x *extractor) finish() error {
	for _, h := range x.links {
		full := filepath.Join(x.dest, filepath.FromSlash(h.Path))
		if !x.done[h.Linkname] {
			return fmt.Errorf("hostfs: extract %s: hardlink to %s, which is not in the stream", full, h.Linkname)
		}
		if err := x.parents(h.Path); err != nil {
			return err
		}
		if err := x.clear(h, full); err != nil {
			return err
		}
		if err := x.link(h, full); err != nil {
			return fmt.Errorf("hostfs: extract %s: %w", full, err)
		}
	}
	dirs := slices.Collect(maps.Keys(x.dirs))
	slices.SortFunc(dirs, func(a, b string) int {
		if d := depth(b) - depth(a); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, rel := range dirs {
		full := filepath.Join(x.dest, filepath.FromSlash(rel))
		if err := x.attrs(x.dirs[rel], full); err != nil {
			return fmt.Errorf("hostfs: extract %s: %w", full, err)
		}
	}
	return nil
}
