// Package fat writes FAT32 filesystems from an entry stream, for the USB
// image's boot partition. File data streams into contiguous cluster runs as
// it arrives; directories, the FATs, FSInfo and the boot sectors are written
// at Close, when every entry is known, so memory grows with the number of
// entries, not with the data.
//
// What FAT cannot hold is refused with an error wrapping
// entry.ErrUnsupported that names the path: symlinks, devices, FIFOs,
// sockets, files of 4 GiB or more, names FAT forbids, and hardlinks. A
// hardlink is refused rather than copied: FAT cannot share clusters between
// names, a copy would mean reading back data already written (widening the
// API from io.WriterAt to a read-write device) or holding it, and the media
// tree has no hardlinks. Names are compared as FAT compares them, without
// regard to case: two names that differ only by case are an error naming
// both paths.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"byzantium/modules/entry"
)

// Errors callers branch on.
var (
	ErrWriteAfterClose = errors.New("fat: write after close")
	ErrWriteTooLong    = errors.New("fat: write past the size in the header")
	// ErrNoSpace reports a stream that does not fit the volume.
	ErrNoSpace = errors.New("fat: no space left on the volume")
	// ErrBadSize reports a volume size FAT32 cannot have.
	ErrBadSize = errors.New("fat: bad volume size")
	// ErrBadOption reports Options or arguments the Writer cannot honour.
	ErrBadOption = errors.New("fat: bad writer option")
)

// Options configures a Writer. The zero value writes a volume without a
// label, volume ID 0 and 1980-01-01 as the default time.
type Options struct {
	// Label is the volume label, up to 11 characters that may appear in an
	// 8.3 name (A–Z, 0–9, space and $%'-_@~`!(){}^#&); lower case is
	// upper-cased. Empty means "NO NAME" and no label entry.
	Label string
	// VolumeID is the volume serial number. Derive it from the content
	// (never the clock) so images are reproducible.
	VolumeID uint32
	// ModTime is the time of directories the stream implies but never
	// names, of the label, and of entries whose ModTime is zero. Take it
	// from SOURCE_DATE_EPOCH.
	ModTime time.Time
	// Sparse leaves runs of file data that are all zeros unwritten: right
	// when the region already reads as zeros (a new image file, where they
	// stay holes), wrong on a used device.
	Sparse bool
}

// maxFileSize is the largest file FAT32's 32-bit size field holds.
const maxFileSize = 1<<32 - 1

// Attribute bits of a directory entry.
const (
	attrReadOnly = 0x01
	attrVolumeID = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	attrLFN      = 0x0F
)

// flushSize is how much file data the Writer gathers before one WriteAt.
const flushSize = 1 << 20

// Writer writes a FAT32 volume into a region of an io.WriterAt. It
// implements entry.Writer. Entries may come in any order; directories the
// stream implies are created with Options.ModTime. A header for a path
// already written replaces it (a file's old clusters become free space).
//
// A refused header leaves the Writer usable; other errors are sticky.
type Writer struct {
	w      io.WriterAt
	off    int64 // byte offset of the volume in w
	g      geometry
	opts   Options
	label  string // 11 bytes, or "" for none
	tree   *entry.Tree[*node]
	next   uint32 // next cluster to allocate; all later ones are free
	mtime  time.Time
	used   uint32 // clusters in use, counted at Close
	cur    *node  // regular file whose body is being written
	remain int64  // bytes of cur still expected
	buf    []byte // pending body bytes, to go at bufAt
	bufAt  int64  // volume offset of buf[0]
	err    error
	closed bool
}

// node is one name in the tree.
type node struct {
	entry.Node[*node] // children by foldKey(name)
	attr              byte
	mtime             time.Time
	size              uint32
	runs              []run // clusters, in chain order
}

// run is a stretch of contiguous clusters.
type run struct{ start, n uint32 }

// NewWriter returns a Writer for a FAT32 volume of size bytes at byte
// offset in w (both multiples of 512). The boot sector's hidden-sector
// count is offset/512, which is right when w is the whole disk and offset
// the partition's start. Nothing is read from w, and only the reserved
// area, the FATs and the clusters in use are written: free clusters keep
// whatever w held.
func NewWriter(w io.WriterAt, offset, size int64, opts Options) (*Writer, error) {
	if offset < 0 || offset%sectorSize != 0 {
		return nil, fmt.Errorf("%w: offset %d is not a non-negative multiple of %d", ErrBadOption, offset, sectorSize)
	}
	label, err := volumeLabel(opts.Label)
	if err != nil {
		return nil, err
	}
	g, err := newGeometry(size)
	if err != nil {
		return nil, err
	}
	mtime := opts.ModTime
	if mtime.IsZero() {
		mtime = fatEpoch
	}
	fw := &Writer{
		w: w, off: offset, g: g, opts: opts, label: label, mtime: mtime,
		// The root's first cluster must be 2 (where every tool expects
		// it); the rest of the root is allocated at Close.
		tree: entry.NewTree("fat", &node{attr: attrDir, mtime: mtime, runs: []run{{rootCluster, 1}}},
			func() *node { return &node{attr: attrDir, mtime: mtime} }),
		next: rootCluster + 1,
		buf:  make([]byte, 0, max(flushSize, g.clusterSize())),
	}
	fw.tree.CheckName, fw.tree.Fold, fw.tree.FixedKinds = checkName, foldKey, true
	return fw, nil
}

// volumeLabel checks and pads a label to 11 bytes.
func volumeLabel(l string) (string, error) {
	if l == "" {
		return "", nil
	}
	up := strings.ToUpper(l)
	if len(up) > 11 || strings.IndexFunc(up, func(c rune) bool { return c != ' ' && !shortChar(c) }) >= 0 {
		return "", fmt.Errorf("%w: label %q is not up to 11 characters of A–Z, 0–9, space and $%%'-_@~`!(){}^#&", ErrBadOption, l)
	}
	return pad(up, 11), nil
}

// WriteHeader starts a new entry. A regular file's body follows through
// Write, Size bytes exactly.
func (w *Writer) WriteHeader(h *entry.Header) error {
	if w.closed {
		return ErrWriteAfterClose
	}
	if w.err != nil {
		return w.err
	}
	if err := w.endFile(); err != nil {
		return w.fail(err)
	}
	if err := h.Validate(); err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	switch h.Type {
	case entry.TypeRegular, entry.TypeDir:
	default:
		return fmt.Errorf("fat: %s: a %s cannot be stored on FAT: %w", h.Path, h.Type, entry.ErrUnsupported)
	}
	if h.Size > maxFileSize {
		return fmt.Errorf("fat: %s: %d bytes; a FAT32 file holds at most 4 GiB − 1 (%d): %w", h.Path, h.Size, int64(maxFileSize), entry.ErrUnsupported)
	}
	mtime := h.ModTime
	if mtime.IsZero() {
		mtime = w.mtime
	}
	n := &node{mtime: mtime, attr: attrDir}
	n.Type = h.Type
	if h.Type == entry.TypeRegular {
		n.attr, n.size = attrArchive, uint32(h.Size)
		if h.Mode&0o222 == 0 {
			n.attr |= attrReadOnly
		}
	}
	var r run
	if h.Size > 0 {
		var err error
		if r, err = w.alloc(uint32((h.Size+w.g.clusterSize()-1)/w.g.clusterSize()), h.Path); err != nil {
			return err
		}
	}
	got, err := w.tree.Add(h.Path, n)
	if err != nil {
		w.next -= r.n // nothing was allocated since: hand the clusters back
		return err
	}
	if got != n {
		got.mtime = mtime // a directory written again keeps its children
		return nil
	}
	if h.Size > 0 {
		n.runs = []run{r}
		w.cur, w.remain = n, h.Size
		w.bufAt = w.g.clusterOffset(r.start)
	}
	return nil
}

// alloc takes the next n clusters.
func (w *Writer) alloc(n uint32, p string) (run, error) {
	if uint64(w.next)+uint64(n) > uint64(w.g.clusters)+2 {
		return run{}, fmt.Errorf("%w: %s needs %d clusters of %d bytes, %d are left",
			ErrNoSpace, p, n, w.g.clusterSize(), w.g.clusters+2-w.next)
	}
	r := run{w.next, n}
	w.next += n
	return r, nil
}

// Write writes body bytes of the current regular file. It refuses bytes
// past the size in the header with ErrWriteTooLong.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrWriteAfterClose
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if w.remain == 0 {
			if w.cur == nil {
				return n, fmt.Errorf("%w: no regular file body expected", ErrWriteTooLong)
			}
			return n, fmt.Errorf("%w: %s", ErrWriteTooLong, w.cur.Path)
		}
		m := min(int64(len(p)), w.remain, int64(cap(w.buf)-len(w.buf)))
		w.buf = append(w.buf, p[:m]...)
		p, n, w.remain = p[m:], n+int(m), w.remain-m
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, w.fail(err)
			}
		}
	}
	return n, nil
}

// flush writes the pending body bytes.
func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.opts.Sparse && allZero(w.buf) {
		w.bufAt += int64(len(w.buf))
		w.buf = w.buf[:0]
		return nil
	}
	if _, err := w.w.WriteAt(w.buf, w.off+w.bufAt); err != nil {
		return fmt.Errorf("fat: writing %s: %w", w.cur.Path, err)
	}
	w.bufAt += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// endFile finishes the current body: it must be complete, and its last
// cluster is padded with zeros so the image does not depend on what the
// device held before.
func (w *Writer) endFile() error {
	if w.cur == nil {
		return nil
	}
	if w.remain != 0 {
		return fmt.Errorf("fat: %s: body ended %d bytes short of its size: %w", w.cur.Path, w.remain, io.ErrUnexpectedEOF)
	}
	if tail := w.bufAt + int64(len(w.buf)); tail%w.g.clusterSize() != 0 {
		w.buf = append(w.buf, make([]byte, w.g.clusterSize()-tail%w.g.clusterSize())...)
	}
	err := w.flush()
	w.cur = nil
	return err
}

func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

// allZero reports whether b holds only zeros.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
