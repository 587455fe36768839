package squashfs

import (
	"errors"
	"io"
	"time"

	"byzantium/modules/entry"
)

// readMaxDepth bounds how deep a walk descends. PATH_MAX (4096) allows at
// most 2048 levels of one-letter names, so anything deeper is not a tree
// Linux could have produced.
const readMaxDepth = 2048

// readWalker is the entry stream returned by Reader.Entries. It keeps an
// explicit stack instead of recursing, so a deep (hostile) tree costs heap,
// bounded by readMaxDepth, rather than goroutine stack.
type readWalker struct {
	r       *Reader
	started bool
	stack   []readFrame
	// seenDirs holds every directory inode entered: a directory reached
	// twice means the image has a loop or a shared subtree.
	seenDirs map[uint64]bool
	// links maps a multiply-linked inode to the first path it was seen at.
	links  map[uint64]string
	budget int64
	body   io.Reader
	err    error
}

type readFrame struct {
	path string
	ents []rdirent
	next int
}

// Next returns the header of the next entry, or io.EOF after the last one.
// Errors are sticky.
func (w *readWalker) Next() (*entry.Header, error) {
	if w.err != nil {
		return nil, w.err
	}
	h, err := w.next()
	if err != nil {
		w.err = err
		w.body = nil
		return nil, err
	}
	return h, nil
}

func (w *readWalker) next() (*entry.Header, error) {
	w.body = nil
	r := w.r
	if !w.started {
		w.started = true
		w.seenDirs = make(map[uint64]bool)
		w.links = make(map[uint64]string)
		// Every entry takes a directory entry and (but for hard links) an
		// inode; even squeezed by compression that is well over a quarter
		// of a byte, so this is generous for real images and stops a small
		// hostile one from listing one huge directory from many inodes.
		w.budget = 4*r.end + 1<<16
		root, err := r.readInode(r.sb.RootInode)
		if err != nil {
			return nil, readWrap("root inode", err)
		}
		return w.enter(".", root)
	}
	for len(w.stack) > 0 {
		f := &w.stack[len(w.stack)-1]
		if f.next == len(f.ents) {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		e := f.ents[f.next]
		f.next++
		p := e.name
		if f.path != "." {
			p = f.path + "/" + e.name
		}
		in, err := r.readInode(e.ref)
		if err != nil {
			return nil, readWrap(p, err)
		}
		if in.basicType() != e.typ {
			return nil, readCorruptf("%s: directory says type %d, inode is type %d", p, e.typ, in.typ)
		}
		if in.isDir() {
			return w.enter(p, in)
		}
		if in.nlink > 1 {
			if first, ok := w.links[in.ref]; ok {
				// The inode's metadata rides along, as tar does, but not
				// its body or xattrs: those belong to the first name.
				return &entry.Header{Path: p, Type: entry.TypeHardlink, Linkname: first,
					Mode: uint32(in.perm), UID: in.uid, GID: in.gid, ModTime: time.Unix(int64(in.mtime), 0).UTC()}, nil
			}
			w.links[in.ref] = p
		}
		h, err := r.readHeader(p, in)
		if err != nil {
			return nil, err
		}
		if h.Type == entry.TypeRegular {
			w.body = r.newFileReader(in)
		}
		return h, nil
	}
	return nil, io.EOF
}

// enter returns the header of directory in at p and pushes its listing.
func (w *readWalker) enter(p string, in *rinode) (*entry.Header, error) {
	if w.seenDirs[in.ref] {
		return nil, readCorruptf("%s: directory inode %#x reached twice (a loop)", p, in.ref)
	}
	if len(w.stack) >= readMaxDepth {
		return nil, readCorruptf("%s: directories nested more than %d deep", p, readMaxDepth)
	}
	w.seenDirs[in.ref] = true
	h, err := w.r.readHeader(p, in)
	if err != nil {
		return nil, err
	}
	ents, err := w.r.readDir(in, &w.budget)
	if err != nil {
		return nil, readWrap(p, err)
	}
	w.stack = append(w.stack, readFrame{path: p, ents: ents})
	return h, nil
}

// Read reads the body of the current regular file.
func (w *readWalker) Read(p []byte) (int, error) {
	if w.body == nil {
		if w.err != nil && !errors.Is(w.err, io.EOF) {
			return 0, w.err
		}
		return 0, io.EOF
	}
	return w.body.Read(p)
}
