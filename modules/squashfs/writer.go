package squashfs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"runtime"
	"strings"
	"time"

	"byzantium/modules/entry"
)

// ErrBadOption reports Options the Writer cannot honour (a block size that
// is not a power of two in range, a level out of range).
var ErrBadOption = errors.New("squashfs: bad writer option")

// Options configures a Writer. The zero value writes a zstd image with
// 128 KiB blocks, mkfs time 0 and one compression worker per CPU.
type Options struct {
	// Compressor is Zstd (the default when zero), Gzip or XZ.
	Compressor Compressor
	// Level is the compression level; 0 picks the default. zstd takes the
	// numeric 1–22 and maps it to the nearest klauspost encoder (default:
	// its best); gzip takes 1–9 (default 9); xz ignores it.
	Level int
	// BlockSize is the data block size, a power of two in
	// [MinBlockSize, MaxBlockSize]; 0 means DefaultBlockSize.
	BlockSize int
	// ModTime is the mkfs time in the superblock and the mtime of
	// directories the stream implies but never names. Take it from
	// SOURCE_DATE_EPOCH; the zero Time means the Unix epoch.
	ModTime time.Time
	// Export writes the export table so the image can be NFS-exported.
	Export bool
	// Workers is the number of compression goroutines; 0 means
	// runtime.GOMAXPROCS(0). The output does not depend on it.
	Workers int
}

// Writer writes a SquashFS 4.0 image from an entry stream. Entries may come
// in any order; the image is laid out at Close. File data is streamed: it is
// cut into blocks, compressed by Options.Workers goroutines and written in
// order as it arrives, so memory grows with the number of entries, not with
// their size.
//
// Errors other than a refused header or an over-long Write are sticky. Close
// must be called, also after an error, to stop the worker goroutines.
type Writer struct {
	out   *writeOut
	opts  Options
	codec *writeCodec
	pipe  *writePipe
	bs    int // block size

	tree  *entry.Tree[*wnode]
	dedup map[writeDupKey]*wdata
	xsets map[string]string // interned xattr sets
	zero  *wdata            // shared by every empty file

	// The body being written.
	cur     *wnode
	curPath string
	remain  int64
	nblk    int // full blocks of cur submitted
	hash    hash.Hash
	blk     *wjob // accumulates the next full block or the tail
	frag    *wjob // accumulates the current fragment block

	err    error
	closed bool
}

// wnode is one name in the tree. A hardlink is a name whose link resolves,
// at Close, to the node holding the inode.
type wnode struct {
	entry.Node[*wnode]
	mode   uint32 // permission bits incl. setuid/setgid/sticky
	uid    uint32
	gid    uint32
	mtime  uint32
	link   string // symlink target, or hardlink target path
	rdev   uint32
	xattrs string // canonical xattr set (see xattrKey); "" for none
	data   *wdata

	// Filled in at Close.
	target *wnode // the inode this hardlink names
	num    uint32 // inode number, 0 until assigned
	ref    uint64 // inode reference in the inode table
	nlink  uint32
	done   bool // inode written
}

// wdata locates a regular file's content. Duplicate files share one.
type wdata struct {
	size       uint64
	start      uint64   // set by the sink: offset of the first block
	blocks     []uint32 // on-disk sizes (0 = sparse, bit 24 = stored)
	sparse     uint64   // bytes in sparse blocks
	fragIndex  uint32
	fragOffset uint32
}

type writeDupKey struct {
	size uint64
	sum  [sha256.Size]byte
}

// NewWriter returns a Writer that writes an image to w, starting at w's
// current offset. The superblock is written last, at that offset.
func NewWriter(w io.WriteSeeker, opts Options) (*Writer, error) {
	if opts.Compressor == 0 {
		opts.Compressor = Zstd
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if bs := opts.BlockSize; bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("%w: block size %d is not a power of two in [%d, %d]", ErrBadOption, bs, MinBlockSize, MaxBlockSize)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	codec, err := newWriteCodec(opts)
	if err != nil {
		return nil, err
	}
	out, err := newWriteOut(w)
	if err != nil {
		return nil, err
	}
	// Reserve the superblock, then the compressor options as one stored
	// metadata block, which is where the kernel and unsquashfs look.
	out.write(make([]byte, SuperblockSize))
	copts := codec.options()
	out.write(metaHeader(len(copts), false))
	out.write(copts)

	mtime := writeTime(opts.ModTime)
	tw := &Writer{
		out:   out,
		opts:  opts,
		codec: codec,
		bs:    opts.BlockSize,
		tree: entry.NewTree("squashfs", &wnode{mode: 0o755, mtime: mtime}, func() *wnode {
			return &wnode{mode: 0o755, mtime: mtime}
		}),
		dedup: map[writeDupKey]*wdata{},
		xsets: map[string]string{},
		zero:  &wdata{fragIndex: noFragment},
		hash:  sha256.New(),
	}
	tw.tree.MaxName = writeMaxName
	tw.pipe, err = newWritePipe(codec, opts.Workers, opts.BlockSize, out)
	if err != nil {
		return nil, err
	}
	return tw, nil
}

// writeTime turns a time into squashfs's u32 seconds, clamping times before
// 1970 to 0 and after 2106 to the maximum.
func writeTime(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix()
	switch {
	case s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// WriteHeader starts a new entry. A regular file's body follows through
// Write. A header for a path already written replaces it; when both are
// directories the children stay and only the metadata changes.
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
		return fmt.Errorf("squashfs: %w", err)
	}
	xkey, err := w.xattrKey(h)
	if err != nil {
		return err
	}
	n := &wnode{
		mode:   h.Mode,
		uid:    h.UID,
		gid:    h.GID,
		mtime:  writeTime(h.ModTime),
		xattrs: xkey,
	}
	n.Type = h.Type
	switch h.Type {
	case entry.TypeSymlink, entry.TypeHardlink:
		n.link = h.Linkname
	case entry.TypeCharDev, entry.TypeBlockDev:
		n.rdev = encodeDev(h.Devmajor, h.Devminor)
	}
	got, err := w.tree.Add(h.Path, n)
	if err != nil {
		return err
	}
	if got != n {
		// A directory written again (the root too) keeps its children;
		// only its metadata changes.
		got.mode, got.uid, got.gid, got.mtime, got.xattrs = n.mode, n.uid, n.gid, n.mtime, n.xattrs
		return nil
	}
	if n.Type == entry.TypeRegular {
		n.data = w.zero
		if h.Size > 0 {
			w.cur, w.curPath, w.remain, w.nblk = n, h.Path, h.Size, 0
			n.data = &wdata{size: uint64(h.Size), fragIndex: noFragment}
			w.hash.Reset()
		}
	}
	return nil
}

// writeMaxName is the longest name the kernel accepts (SQUASHFS_NAME_LEN).
const writeMaxName = 256

// xattrKey validates h's xattrs and returns their canonical, interned form:
// for each name in sorted order, its type id, the name without the prefix
// and the value, all length-prefixed as in the xattr table.
func (w *Writer) xattrKey(h *entry.Header) (string, error) {
	if len(h.Xattrs) == 0 {
		return "", nil
	}
	var b []byte
	for _, name := range h.XattrNames() {
		typ := -1
		for id, prefix := range xattrPrefixes {
			if strings.HasPrefix(name, prefix) && len(name) > len(prefix) {
				typ = id
				break
			}
		}
		if typ < 0 {
			return "", fmt.Errorf("squashfs: %s: xattr %q: only user., trusted. and security. names fit in squashfs: %w", h.Path, name, entry.ErrUnsupported)
		}
		short := name[len(xattrPrefixes[typ]):]
		val := h.Xattrs[name]
		if len(short) > math.MaxUint16 || uint64(len(val)) > math.MaxUint32 {
			return "", fmt.Errorf("squashfs: %s: xattr %q too large: %w", h.Path, name, entry.ErrUnsupported)
		}
		b = le16(b, uint16(typ))
		b = le16(b, uint16(len(short)))
		b = append(b, short...)
		b = le32(b, uint32(len(val)))
		b = append(b, val...)
	}
	k := string(b)
	if s, ok := w.xsets[k]; ok {
		return s, nil
	}
	w.xsets[k] = k
	return k, nil
}

// Write writes the body of the current regular file. It refuses bytes past
// the size in the header with ErrWriteTooLong.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.bodyErr(); err != nil {
		return 0, err
	}
	if w.cur == nil {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("%w: no regular file body expected", ErrWriteTooLong)
	}
	path := w.curPath
	over := false
	if int64(len(p)) > w.remain {
		p, over = p[:w.remain], true
	}
	n := len(p)
	for len(p) > 0 {
		buf, err := w.space()
		if err != nil {
			return n - len(p), err
		}
		c := copy(buf, p)
		p = p[c:]
		if err := w.consume(c); err != nil {
			return n - len(p), err
		}
	}
	if over {
		return n, fmt.Errorf("%w: %s", ErrWriteTooLong, path)
	}
	return n, nil
}

// ReadFrom reads the body of the current regular file from r straight into
// the block buffers, saving io.Copy a copy. It stops at the size in the
// header and returns ErrWriteTooLong if r has more; a short r is reported
// by the next WriteHeader or Close.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.bodyErr(); err != nil {
		return 0, err
	}
	path := w.curPath
	var total int64
	for w.cur != nil {
		buf, err := w.space()
		if err != nil {
			return total, err
		}
		n, rerr := r.Read(buf)
		total += int64(n)
		if err := w.consume(n); err != nil {
			return total, err
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
	// The body is complete: any further byte is one too many.
	var b [1]byte
	for range 8 {
		n, err := r.Read(b[:])
		if n > 0 {
			return total, fmt.Errorf("%w: %s", ErrWriteTooLong, path)
		}
		if err != nil {
			break
		}
	}
	return total, nil
}

func (w *Writer) bodyErr() error {
	if w.closed {
		return ErrWriteAfterClose
	}
	return w.err
}

// space returns where the next body bytes go: the rest of the current
// block buffer, limited to what the body still owes.
func (w *Writer) space() ([]byte, error) {
	if w.blk == nil {
		j, err := w.pipe.take()
		if err != nil {
			return nil, w.fail(err)
		}
		w.blk = j
	}
	in := w.blk.in
	return in[len(in):min(int64(w.bs), int64(len(in))+w.remain)], nil
}

// consume accounts for n bytes just placed by space: it hashes them,
// submits the block once full and ends the file once complete.
func (w *Writer) consume(n int) error {
	in := w.blk.in
	w.hash.Write(in[len(in) : len(in)+n])
	w.blk.in = in[:len(in)+n]
	w.remain -= int64(n)
	if len(w.blk.in) == w.bs {
		if err := w.pipe.submitData(w.blk, w.cur.data, w.nblk == 0); err != nil {
			return w.fail(err)
		}
		w.blk = nil
		w.nblk++
	}
	if w.remain == 0 {
		if err := w.endFile(); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// endFile finishes the current body: it must be complete. A duplicate of an
// earlier file takes the earlier file's data and has its own blocks
// discarded; otherwise its tail goes into the current fragment block.
func (w *Writer) endFile() error {
	n := w.cur
	if n == nil {
		return nil
	}
	if w.remain > 0 {
		return fmt.Errorf("squashfs: %s: body ended %d bytes short of its size: %w", w.curPath, w.remain, io.ErrUnexpectedEOF)
	}
	w.cur = nil
	if err := w.pipe.err(); err != nil {
		return err
	}
	d := n.data
	tail := int(d.size % uint64(w.bs))
	var key writeDupKey
	key.size = d.size
	w.hash.Sum(key.sum[:0])
	if orig := w.dedup[key]; orig != nil {
		n.data = orig
		if w.nblk > 0 {
			if err := w.pipe.submitRewind(d); err != nil {
				return err
			}
		}
	} else {
		w.dedup[key] = d
		if tail > 0 {
			if err := w.addFragment(d, w.blk.in[:tail]); err != nil {
				return err
			}
		}
	}
	if w.blk != nil {
		w.blk.in = w.blk.in[:0]
	}
	return nil
}

// addFragment packs a tail into the current fragment block, starting a new
// one when it does not fit.
func (w *Writer) addFragment(d *wdata, tail []byte) error {
	if w.frag != nil && len(w.frag.in)+len(tail) > w.bs {
		if err := w.pipe.submitFrag(w.frag); err != nil {
			return err
		}
		w.frag = nil
	}
	if w.frag == nil {
		j, err := w.pipe.take()
		if err != nil {
			return err
		}
		w.frag = j
	}
	d.fragIndex = uint32(w.pipe.frags)
	d.fragOffset = uint32(len(w.frag.in))
	w.frag.in = append(w.frag.in, tail...)
	return nil
}

// Close finishes the image: it flushes the data, lays out the inode,
// directory, fragment, export, id and xattr tables, writes the superblock
// at the start and pads the image to a multiple of 4 KiB.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.pipe.abort()
		return w.err
	}
	err := w.endFile()
	if err == nil && w.frag != nil && len(w.frag.in) > 0 {
		err = w.pipe.submitFrag(w.frag)
		w.frag = nil
	}
	if perr := w.pipe.finish(); err == nil {
		err = perr
	}
	if err == nil {
		err = w.writeTables()
	}
	w.err = err
	return err
}
