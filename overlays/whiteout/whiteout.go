// Package whiteout translates the whiteouts of OCI image layers into the ones
// overlayfs understands, so that a layer written as a module deletes and hides
// files of the modules below it when the init stacks them.
//
// OCI marks a deleted name with an empty file "dir/.wh.name" and a directory
// whose lower contents are hidden with "dir/.wh..wh..opq". Overlayfs marks the
// first with a character device 0:0 at "dir/name" and the second with the
// xattr trusted.overlay.opaque="y" on "dir".
package whiteout

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"strings"

	"byzantium/modules/entry"
)

// Names and values from the OCI image spec (layer.md, "Whiteouts") and the
// overlayfs documentation.
const (
	// Prefix starts the base name of every OCI whiteout.
	Prefix = ".wh."
	// MetaPrefix starts names aufs kept for itself (.wh..wh.plnk, .wh..wh.aufs,
	// .wh..wh.orph) and the opaque marker.
	MetaPrefix = ".wh..wh."
	// OpaqueMarker is the base name of an OCI opaque whiteout.
	OpaqueMarker = ".wh..wh..opq"
	// OpaqueXattr is the overlayfs xattr that makes a directory opaque.
	OpaqueXattr = "trusted.overlay.opaque"
)

// ErrBadWhiteout reports a whiteout entry that cannot be translated.
var ErrBadWhiteout = errors.New("whiteout: bad whiteout")

// FromOCI returns r with its OCI whiteouts turned into overlayfs whiteouts.
// r is the stream of one layer: whiteouts hide what lies below that layer,
// never entries of the same stream.
//
//   - "dir/.wh.name" becomes a character device 0:0 at "dir/name", mode 0,
//     with the whiteout's owner and mtime. If "dir/name" was already emitted
//     by this stream as a file, the whiteout is dropped (the file replaces the
//     lower one by itself); if it was emitted as a directory, that directory is
//     made opaque instead, which is what "delete the lower one, then create
//     this one" means to overlayfs.
//   - "dir/.wh..wh..opq" re-emits a directory header for "dir" carrying
//     trusted.overlay.opaque="y", with the metadata of the last header seen
//     for "dir" in this stream, or mode 0755, owner root and the marker's
//     mtime if there was none. Consumers must treat a later header for an
//     existing directory as replacing its metadata and keeping its children
//     (the squashfs writer does). Any later header for "dir", and for a
//     directory at a whited-out path, gets the xattr too, so the
//     marker holds whatever the order of the layer's entries.
//   - Other aufs metadata (names starting ".wh..wh.", and everything under
//     such a directory) are dropped, as Docker and containerd drop them when
//     they apply a layer. A hardlink into ".wh..wh.plnk" (aufs-era images)
//     fails with entry.ErrUnsupported rather than dangle.
//   - A ".wh." name with nothing after it, or an entry inside a whiteout
//     ("dir/.wh.x/y"), fails with ErrBadWhiteout.
//
// Memory grows with the number of directories and the number of non-directory
// paths in the stream (one map key each): streaming needs to know what the
// layer has already emitted.
func FromOCI(r entry.Reader) entry.Reader {
	return &filter{
		r:      r,
		dirs:   map[string]*entry.Header{},
		opaque: map[string]bool{},
		whited: map[string]bool{},
		files:  map[string]bool{},
	}
}

type filter struct {
	r entry.Reader
	// dirs holds a private copy of the last header passed for each directory.
	dirs map[string]*entry.Header
	// opaque holds the directories made opaque so far.
	opaque map[string]bool
	// whited holds the paths turned into character devices.
	whited map[string]bool
	// files holds the non-directory paths passed through.
	files map[string]bool
	// body is set while the current entry is r's own, so Read may forward.
	body bool
	err  error
}

func (f *filter) Next() (*entry.Header, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.body = false
	for {
		h, err := f.r.Next()
		if err != nil {
			if err != io.EOF {
				f.err = err
			}
			return nil, err
		}
		out, err := f.translate(h)
		if err != nil {
			f.err = err
			return nil, err
		}
		if out != nil {
			return out, nil
		}
	}
}

func (f *filter) Read(p []byte) (int, error) {
	if !f.body {
		return 0, io.EOF
	}
	return f.r.Read(p)
}

// translate returns the header to emit for h, or nil to drop h.
func (f *filter) translate(h *entry.Header) (*entry.Header, error) {
	if h.Path == "." {
		return f.pass(h), nil
	}
	dir, base := path.Dir(h.Path), path.Base(h.Path)
	if drop, err := insideWhiteout(dir); drop || err != nil {
		if err != nil {
			err = fmt.Errorf("%w: %s is inside a whiteout", err, h.Path)
		}
		return nil, err
	}
	if drop, _ := insideWhiteout(h.Linkname); drop && h.Type == entry.TypeHardlink {
		return nil, fmt.Errorf("%w: %s: hardlink to aufs metadata %s", entry.ErrUnsupported, h.Path, h.Linkname)
	}
	switch {
	case !strings.HasPrefix(base, Prefix):
		return f.pass(h), nil
	case base == OpaqueMarker:
		return f.makeOpaque(dir, h), nil
	case strings.HasPrefix(base, MetaPrefix):
		return nil, nil
	}
	name := base[len(Prefix):]
	if name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("%w: %s names nothing", ErrBadWhiteout, h.Path)
	}
	target := path.Join(dir, name)
	switch {
	case f.files[target]:
		return nil, nil
	case f.dirs[target] != nil:
		return f.makeOpaque(target, h), nil
	}
	f.whited[target] = true
	return &entry.Header{
		Path:    target,
		Type:    entry.TypeCharDev,
		UID:     h.UID,
		GID:     h.GID,
		ModTime: h.ModTime,
	}, nil
}

// insideWhiteout reports whether an entry in dir is dropped because dir lies
// inside aufs metadata, or an error if dir lies inside a plain whiteout.
func insideWhiteout(dir string) (drop bool, err error) {
	if !strings.Contains(dir, Prefix) {
		return false, nil // the common case, without splitting
	}
	for c := range strings.SplitSeq(dir, "/") {
		if strings.HasPrefix(c, MetaPrefix) {
			return true, nil
		}
		if strings.HasPrefix(c, Prefix) {
			return false, ErrBadWhiteout
		}
	}
	return false, nil
}

// pass lets an ordinary entry through, remembering what it needs to.
func (f *filter) pass(h *entry.Header) *entry.Header {
	f.body = true
	if h.Type != entry.TypeDir {
		f.files[h.Path] = true
		return h
	}
	if f.whited[h.Path] {
		// A lower entry was deleted and this directory created in its
		// place: nothing of the lower one may show through.
		f.opaque[h.Path] = true
	}
	if f.opaque[h.Path] {
		// Copy rather than change h: sources such as entry.Slice hand out
		// headers they keep.
		h = clone(h)
		h.Xattrs = withOpaque(h.Xattrs)
	}
	f.dirs[h.Path] = clone(h)
	return h
}

// makeOpaque returns a directory header for dir carrying the opaque xattr,
// built from the last header seen for dir or from defaults and marker m.
func (f *filter) makeOpaque(dir string, m *entry.Header) *entry.Header {
	f.opaque[dir] = true
	d := f.dirs[dir]
	if d == nil {
		d = &entry.Header{Path: dir, Type: entry.TypeDir, Mode: 0o755, ModTime: m.ModTime}
	} else {
		d = clone(d)
	}
	d.Xattrs = withOpaque(d.Xattrs)
	f.dirs[dir] = clone(d)
	return d
}

// withOpaque returns a copy of x with the opaque xattr set. It copies so that
// a map shared with the caller or with f.dirs is never changed underneath.
func withOpaque(x map[string][]byte) map[string][]byte {
	x = maps.Clone(x)
	if x == nil {
		x = map[string][]byte{}
	}
	x[OpaqueXattr] = []byte("y")
	return x
}

// clone copies h deeply enough that neither copy sees changes to the other:
// the caller owns a returned header and may modify it.
func clone(h *entry.Header) *entry.Header {
	c := *h
	c.Xattrs = maps.Clone(h.Xattrs)
	return &c
}
