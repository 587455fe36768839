// Package entry defines the stream of filesystem entries that is the spine of
// Byzantium: every source (a directory, a tarball, a .deb, an OCI image, a
// module) produces one, and every writer (squashfs, cpio, ISO, FAT) consumes
// one. The writers that need the whole tree before they can lay it out
// build it with Tree, which owns path resolution, implied parents and
// last-wins replacement for all of them.
//
// The shape follows archive/tar: a Reader hands out one Header at a time with
// Next and streams the body of a regular file through Read; a writer takes a
// Header with WriteHeader and the body through Write.
package entry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// Type is the kind of a filesystem entry.
type Type uint8

const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
	// TypeHardlink is a second name for a regular file (or another
	// non-directory) named by Header.Linkname, which is a path in the same
	// stream. As in tar, the target normally comes first, but a consumer must
	// also accept a hardlink that precedes its target (go-containerregistry's
	// mutate.Extract emits the top layer first).
	TypeHardlink
	TypeCharDev
	TypeBlockDev
	TypeFIFO
	TypeSocket
)

var typeNames = [...]string{
	TypeRegular:  "regular",
	TypeDir:      "dir",
	TypeSymlink:  "symlink",
	TypeHardlink: "hardlink",
	TypeCharDev:  "chardev",
	TypeBlockDev: "blockdev",
	TypeFIFO:     "fifo",
	TypeSocket:   "socket",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Mode bits kept in Header.Mode: permissions plus setuid, setgid and sticky,
// in their Unix positions (not fs.FileMode's).
const (
	ModeSetuid = 0o4000
	ModeSetgid = 0o2000
	ModeSticky = 0o1000
	ModePerm   = 0o7777
)

// Header describes one entry.
type Header struct {
	// Path is slash-separated and relative to the root of the tree, without
	// a leading slash, "." or "..": "usr/bin/busybox". The root directory
	// itself is ".". Use Clean to normalise paths from outside.
	Path string
	Type Type
	// Mode holds the Unix permission bits, setuid, setgid and sticky
	// (ModePerm); the type lives in Type.
	Mode    uint32
	UID     uint32
	GID     uint32
	ModTime time.Time
	// Size is the length of the body of a regular file; zero otherwise.
	Size int64
	// Linkname is the target of a symlink (stored as is, never followed) or
	// the Path of the entry a hardlink names.
	Linkname string
	// Devmajor and Devminor are set for character and block devices.
	Devmajor, Devminor uint32
	// Xattrs maps full names ("user.x", "trusted.overlay.opaque",
	// "security.capability") to values. Consumers must not depend on map
	// order; writers sort the names.
	Xattrs map[string][]byte
}

// IsDir reports whether h is a directory.
func (h *Header) IsDir() bool { return h.Type == TypeDir }

// XattrNames returns the xattr names of h in sorted order.
func (h *Header) XattrNames() []string {
	names := make([]string, 0, len(h.Xattrs))
	for k := range h.Xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// FileMode returns the mode as an fs.FileMode, type bits included.
func (h *Header) FileMode() fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	if h.Mode&ModeSetuid != 0 {
		m |= fs.ModeSetuid
	}
	if h.Mode&ModeSetgid != 0 {
		m |= fs.ModeSetgid
	}
	if h.Mode&ModeSticky != 0 {
		m |= fs.ModeSticky
	}
	switch h.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlockDev:
		m |= fs.ModeDevice
	case TypeFIFO:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// ModeString renders the type and mode the way ls -l and unsquashfs -lls
// do: "drwxr-xr-x", "-rwsr-xr-x", "drwxrwxrwt", "crw-rw-rw-". A hardlink
// shows as the regular file it names.
func (h *Header) ModeString() string {
	typ := map[Type]byte{TypeRegular: '-', TypeHardlink: '-', TypeDir: 'd', TypeSymlink: 'l',
		TypeCharDev: 'c', TypeBlockDev: 'b', TypeFIFO: 'p', TypeSocket: 's'}[h.Type]
	if typ == 0 {
		typ = '?'
	}
	b := []byte{typ}
	for i, c := range "rwxrwxrwx" {
		if h.Mode&(1<<(8-i)) != 0 {
			b = append(b, byte(c))
		} else {
			b = append(b, '-')
		}
	}
	// Setuid, setgid and sticky replace the x they sit on: lower case when
	// x is set, upper case when it is not.
	for _, s := range []struct {
		bit uint32
		pos int
		set byte
	}{{ModeSetuid, 3, 's'}, {ModeSetgid, 6, 's'}, {ModeSticky, 9, 't'}} {
		if h.Mode&s.bit != 0 {
			if b[s.pos] == 'x' {
				b[s.pos] = s.set
			} else {
				b[s.pos] = s.set - 'a' + 'A'
			}
		}
	}
	return string(b)
}

// Validate checks that h is well formed: a clean path, a known type, mode
// bits within ModePerm, a size only on regular files and a link name where
// one is needed.
func (h *Header) Validate() error {
	if h.Path == "" || h.Path != Clean(h.Path) {
		return fmt.Errorf("%w: %q is not a clean relative path", ErrBadHeader, h.Path)
	}
	if h.Type < TypeRegular || h.Type > TypeSocket {
		return fmt.Errorf("%w: %s: unknown type %d", ErrBadHeader, h.Path, h.Type)
	}
	if h.Mode&^ModePerm != 0 {
		return fmt.Errorf("%w: %s: mode %o has bits outside %o", ErrBadHeader, h.Path, h.Mode, ModePerm)
	}
	if h.Size < 0 || (h.Size != 0 && h.Type != TypeRegular) {
		return fmt.Errorf("%w: %s: size %d on a %s", ErrBadHeader, h.Path, h.Size, h.Type)
	}
	if h.Path == "." && h.Type != TypeDir {
		return fmt.Errorf("%w: the root must be a directory, not a %s", ErrBadHeader, h.Type)
	}
	switch h.Type {
	case TypeSymlink:
		if h.Linkname == "" {
			return fmt.Errorf("%w: %s: symlink with an empty target", ErrBadHeader, h.Path)
		}
	case TypeHardlink:
		if h.Linkname == "" || h.Linkname != Clean(h.Linkname) || h.Linkname == "." {
			return fmt.Errorf("%w: %s: hardlink to %q, which is not a clean path", ErrBadHeader, h.Path, h.Linkname)
		}
	}
	return nil
}

// Errors callers branch on.
var (
	// ErrBadHeader reports a Header that fails Validate.
	ErrBadHeader = errors.New("entry: bad header")
	// ErrUnsupported reports an entry kind a source or writer cannot carry.
	ErrUnsupported = errors.New("entry: unsupported entry")
)

// Clean turns a path from a tarball, a directory walk or a user into the form
// Header.Path uses: slash-separated, relative, no "." or ".." components. It
// returns "." for the root. A path that climbs out of the root ("../x") is
// kept inside it, as tar extractors do.
func Clean(p string) string {
	p = path.Clean("/" + strings.TrimPrefix(p, "./"))
	if p == "/" {
		return "."
	}
	return p[1:]
}

// Reader is a stream of entries. Next advances to the next entry and returns
// its header, or io.EOF at the end of the stream. Read reads the body of the
// current entry (only regular files have one) and returns io.EOF at its end;
// the body need not be read in full before the next call to Next.
//
// The Header returned by Next is owned by the caller until the next call to
// Next.
type Reader interface {
	Next() (*Header, error)
	io.Reader
}

// Writer consumes a stream of entries: WriteHeader starts an entry, Write
// streams its body (a regular file's Size bytes exactly), Close finishes the
// output.
type Writer interface {
	WriteHeader(h *Header) error
	io.Writer
	Close() error
}

// Copy writes every entry of r to w, bodies included, and returns the number
// of entries copied. It does not close w.
func Copy(w Writer, r Reader) (int, error) {
	n := 0
	for {
		h, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := w.WriteHeader(h); err != nil {
			return n, err
		}
		if h.Type == TypeRegular && h.Size > 0 {
			m, err := io.Copy(w, io.LimitReader(r, h.Size))
			if err != nil {
				return n, fmt.Errorf("%s: %w", h.Path, err)
			}
			if m != h.Size {
				return n, fmt.Errorf("%s: body is %d bytes, header says %d: %w", h.Path, m, h.Size, io.ErrUnexpectedEOF)
			}
		}
		n++
	}
}

// Concat returns a Reader that yields the entries of each reader in turn.
// Entries of later readers with the same path as earlier ones come later in
// the stream; a writer that keeps the last one merges the sources in order.
func Concat(readers ...Reader) Reader { return &concat{rs: readers} }

type concat struct{ rs []Reader }

func (c *concat) Next() (*Header, error) {
	for len(c.rs) > 0 {
		h, err := c.rs[0].Next()
		if err == io.EOF {
			c.rs = c.rs[1:]
			continue
		}
		return h, err
	}
	return nil, io.EOF
}

func (c *concat) Read(p []byte) (int, error) {
	if len(c.rs) == 0 {
		return 0, io.EOF
	}
	return c.rs[0].Read(p)
}

// Slice is a Reader over headers held in memory, with bodies given as byte
// slices keyed by path. It serves tests and small synthetic entries (a
// manifest appended to a module).
type Slice struct {
	Headers []*Header
	Bodies  map[string][]byte
	i       int
	body    io.Reader
}

func (s *Slice) Next() (*Header, error) {
	if s.i >= len(s.Headers) {
		return nil, io.EOF
	}
	h := s.Headers[s.i]
	s.i++
	s.body = bytes.NewReader(s.Bodies[h.Path])
	return h, nil
}

func (s *Slice) Read(p []byte) (int, error) {
	if s.body == nil {
		return 0, io.EOF
	}
	return s.body.Read(p)
}
