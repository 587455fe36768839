// Package hostfs moves entry streams to and from the host filesystem:
// NewReader walks a directory into a stream, Extract writes a stream into a
// directory. Both keep everything a module can carry: type, permission and
// setuid/setgid/sticky bits, owner, nanosecond mtime, device numbers,
// hardlinks, sparse files and xattrs.
//
// Xattrs in the "system." namespace (POSIX ACLs, NFSv4 ACLs) are neither
// read nor written: they are the kernel's encoding of ACLs, not free-form
// attributes, and SquashFS, the format the stream mostly ends up in, can
// only hold user.*, trusted.* and security.*.
package hostfs

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
)

// Reader is an entry stream over a directory tree on the host. It yields the
// root "." first, then a depth-first walk with the names in each directory
// sorted bytewise, a directory before its contents. Symlinks are never
// followed. A regular file is opened when its body is first read and closed
// at the next Next, so at most one file is open at a time.
type Reader struct {
	root    string
	started bool
	stack   []*dirList
	links   map[fileID]string // first path of each multiply-linked inode
	cur     *entry.Header
	st      unix.Stat_t // of cur
	file    *os.File    // cur's body, once opened
	left    int64       // bytes of cur's body still to read
	err     error       // sticky
}

type dirList struct {
	rel   string
	names []string
}

type fileID struct{ dev, ino uint64 }

// NewReader returns a stream of the tree at root, which must be a directory
// (or a symlink to one: the root is the one path that is followed).
func NewReader(root string) (*Reader, error) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return nil, pathErr(root, "stat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("hostfs: %s: not a directory", root)
	}
	// The walk itself never follows symlinks, the root included.
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, pathErr(root, "resolve", err)
	}
	return &Reader{root: resolved, links: map[fileID]string{}}, nil
}

func pathErr(p, op string, err error) error {
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err // the path is already in our message
	}
	return fmt.Errorf("hostfs: %s: %s: %w", p, op, err)
}

// Next returns the header of the next entry, or io.EOF after the last.
func (r *Reader) Next() (*entry.Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.closeFile()
	h, err := r.next()
	if err != nil {
		r.err = err
		r.cur = nil
		return nil, err
	}
	r.cur = h
	return h, nil
}

func (r *Reader) next() (*entry.Header, error) {
	if !r.started {
		r.started = true
		return r.visit(".")
	}
	for len(r.stack) > 0 {
		top := r.stack[len(r.stack)-1]
		if len(top.names) == 0 {
			r.stack = r.stack[:len(r.stack)-1]
			continue
		}
		name := top.names[0]
		top.names = top.names[1:]
		return r.visit(path.Join(top.rel, name))
	}
	return nil, io.EOF
}

// visit lstats rel and builds its header. A directory is listed now, so an
// error reading it is reported with its own header's Next.
func (r *Reader) visit(rel string) (*entry.Header, error) {
	full := filepath.Join(r.root, rel)
	if err := unix.Lstat(full, &r.st); err != nil {
		return nil, pathErr(full, "lstat", err)
	}
	st := &r.st
	h := &entry.Header{
		Path:    rel,
		Mode:    st.Mode & entry.ModePerm,
		UID:     st.Uid,
		GID:     st.Gid,
		ModTime: time.Unix(st.Mtim.Unix()),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Type = entry.TypeDir
		names, err := readNames(full)
		if err != nil {
			return nil, err
		}
		r.stack = append(r.stack, &dirList{rel: rel, names: names})
	case unix.S_IFREG:
		h.Type, h.Size = entry.TypeRegular, st.Size
		r.left = st.Size
	case unix.S_IFLNK:
		h.Type = entry.TypeSymlink
		target, err := os.Readlink(full)
		if err != nil {
			return nil, pathErr(full, "readlink", err)
		}
		h.Linkname = target
	case unix.S_IFCHR:
		h.Type = entry.TypeCharDev
		h.Devmajor, h.Devminor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFBLK:
		h.Type = entry.TypeBlockDev
		h.Devmajor, h.Devminor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFIFO:
		h.Type = entry.TypeFIFO
	case unix.S_IFSOCK:
		h.Type = entry.TypeSocket
	default:
		return nil, fmt.Errorf("hostfs: %s: %w: file type %#o", full, entry.ErrUnsupported, st.Mode&unix.S_IFMT)
	}
	if h.Type != entry.TypeDir && st.Nlink > 1 {
		id := fileID{st.Dev, st.Ino}
		if first, ok := r.links[id]; ok {
			// Same inode as an earlier path: a hardlink carries no body or
			// attributes of its own.
			*h = entry.Header{Path: rel, Type: entry.TypeHardlink, Linkname: first,
				Mode: h.Mode, UID: h.UID, GID: h.GID, ModTime: h.ModTime}
			r.left = 0
			return h, nil
		}
		r.links[id] = rel
	}
	xattrs, err := readXattrs(full)
	if err != nil {
		return nil, err
	}
	h.Xattrs = xattrs
	return h, nil
}

func readNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr(dir, "open", err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, pathErr(dir, "readdir", err)
	}
	slices.Sort(names) // Go compares strings bytewise
	return names, nil
}

// Read reads the body of the current regular file. The file must keep the
// size it had at Next: a shorter file is an error, bytes past it are not read.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.cur == nil || r.cur.Type != entry.TypeRegular || r.left == 0 {
		return 0, io.EOF
	}
	full := filepath.Join(r.root, r.cur.Path)
	if r.file == nil {
		f, err := r.open(full)
		if err != nil {
			r.err = err
			return 0, err
		}
		r.file = f
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.file.Read(p)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = fmt.Errorf("hostfs: %s: file shrank while being read (%d bytes missing): %w", full, r.left, io.ErrUnexpectedEOF)
	} else if err != nil && err != io.EOF {
		err = pathErr(full, "read", err)
	}
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// open opens the current file if it is still the inode Next saw: a path
// swapped for another file, a symlink or a FIFO must not leak other data
// or hang the stream.
func (r *Reader) open(full string) (*os.File, error) {
	return OpenAt(unix.AT_FDCWD, full, &r.st)
}

func (r *Reader) closeFile() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
	r.left = 0
}

// Close releases the open file, if any. The Reader is unusable afterwards.
func (r *Reader) Close() error {
	r.closeFile()
	if r.err == nil {
		r.err = fmt.Errorf("hostfs: %s: reader closed", r.root)
	}
	return nil
}
