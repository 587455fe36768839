package squashfs

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"byzantium/modules/entry"
)

// Reader reads a SquashFS 4.0 image: the tree as an entry stream (Entries),
// single files (ReadFile, Stat) and the superblock. Images are untrusted
// (modules come from USB sticks and the network), so every length read from
// the image is checked against the image size, the block size or the 8 KiB
// metadata block size before anything is allocated for it, and every
// inconsistency is reported as an error wrapping ErrCorrupt.
//
// A Reader is safe for concurrent use; each stream returned by Entries is
// not.
type Reader struct {
	ra  io.ReaderAt
	sb  Superblock
	dec readDecoder
	// end is BytesUsed: nothing the reader follows lies past it.
	end int64
	// inodeEnd and dirEnd bound where inode and directory table blocks may
	// start; the tables themselves start at sb.InodeTableStart and
	// sb.DirTableStart.
	inodeEnd, dirEnd int64

	ids        []uint32
	fragIndex  []uint64 // locations of the fragment table's metadata blocks
	xattrIndex []uint64 // locations of the xattr id table's metadata blocks
	xattrCount uint32
	xattrKV    int64 // start of the xattr key/value metadata blocks

	mu    sync.Mutex
	meta  readLRU // decompressed metadata blocks by image offset
	frags readLRU // decompressed fragment blocks by image offset
}

// Cache sizes: 256 metadata blocks are at most 2 MiB and cover the inode and
// directory blocks a walk of a large directory revisits; consecutive small
// files usually share a fragment block, so a few are enough.
const (
	readMetaCacheBlocks = 256
	readFragCacheBlocks = 4
)

// NewReader opens the image of size bytes in r. It checks the superblock
// (ErrNotSquashfs for something that is not SquashFS 4.0, ErrCorrupt for
// impossible values), that every table lies inside the image, loads the id
// table and decodes the root inode. It reads every compressor squashfs-tools
// writes (gzip, lzma, lzo, xz with or without BCJ filters, lz4, zstd); an
// image it cannot decompress gives an error wrapping
// ErrUnsupportedCompression, naming what is not supported.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	if size < SuperblockSize {
		return nil, fmt.Errorf("%w: image is %d bytes, shorter than a superblock", ErrNotSquashfs, size)
	}
	b := make([]byte, SuperblockSize)
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("squashfs: reading superblock: %w", err)
	}
	rd := &Reader{ra: r}
	if err := rd.sb.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	sb := &rd.sb
	if sb.BytesUsed > uint64(size) {
		return nil, readCorruptf("superblock says %d bytes used, image is %d bytes (truncated?)", sb.BytesUsed, size)
	}
	rd.end = int64(sb.BytesUsed)
	dec, err := newReadDecoder(sb.Compressor)
	if err != nil {
		return nil, err
	}
	rd.dec = dec
	rd.meta.max = readMetaCacheBlocks
	rd.frags.max = readFragCacheBlocks

	// The tables follow the data in a fixed order; check the ones this
	// reader follows lie inside the image and after the inode table.
	if sb.InodeTableStart < SuperblockSize || sb.InodeTableStart >= sb.DirTableStart || sb.DirTableStart > sb.BytesUsed {
		return nil, readCorruptf("inode table at %d, directory table at %d, %d bytes used", sb.InodeTableStart, sb.DirTableStart, sb.BytesUsed)
	}
	rd.inodeEnd = int64(sb.DirTableStart)
	rd.dirEnd = rd.end
	for _, t := range []struct {
		name  string
		start uint64
		used  bool
	}{
		{"fragment table", sb.FragTableStart, sb.FragmentCount > 0},
		{"export table", sb.ExportTableStart, sb.ExportTableStart != noTable},
		{"id table", sb.IDTableStart, true},
		{"xattr id table", sb.XattrIDTableStart, sb.XattrIDTableStart != noTable},
	} {
		if !t.used {
			continue
		}
		if t.start < sb.DirTableStart || t.start > sb.BytesUsed {
			return nil, readCorruptf("%s at %d, outside the tables (%d to %d)", t.name, t.start, sb.DirTableStart, sb.BytesUsed)
		}
		// Directory blocks end where the first later table begins.
		if t.start > sb.DirTableStart && int64(t.start) < rd.dirEnd {
			rd.dirEnd = int64(t.start)
		}
	}
	if sb.RootInode>>16 >= sb.DirTableStart-sb.InodeTableStart {
		return nil, readCorruptf("root inode reference %#x outside the inode table", sb.RootInode)
	}
	if err := rd.loadIDs(); err != nil {
		return nil, err
	}
	if sb.FragmentCount > 0 {
		if rd.fragIndex, err = rd.readTableIndex("fragment table", int64(sb.FragTableStart), uint64(sb.FragmentCount), 16); err != nil {
			return nil, err
		}
	}
	if sb.XattrIDTableStart != noTable {
		if err := rd.loadXattrIndex(); err != nil {
			return nil, err
		}
	}
	root, err := rd.readInode(sb.RootInode)
	if err != nil {
		return nil, readWrap("root inode", err)
	}
	if !root.isDir() {
		return nil, readCorruptf("root inode is of type %d, not a directory", root.typ)
	}
	if sb.Compressor == LZ4 {
		// squashfs-tools records the LZ4 block format's version; only
		// version 1, "legacy" (raw blocks), was ever defined.
		opts, err := rd.CompressorOptions()
		if err != nil {
			return nil, err
		}
		if v, ok := opts["version"]; ok && v != 1 {
			return nil, fmt.Errorf("%w: lz4 format version %d (only version 1 is defined): the image is damaged, or was made by a newer tool: "+
				"unpack it with that tool and rebuild it with byz module create", ErrUnsupportedCompression, v)
		}
	}
	return rd, nil
}

// Superblock returns a copy of the image's superblock; InodeCount,
// FragmentCount, IDCount and BytesUsed double as statistics.
func (r *Reader) Superblock() Superblock { return r.sb }

// CompressorOptions returns the compressor options stored in the image, by
// name: "level" (gzip, zstd, lzo), "window-size" and "strategies" (gzip),
// "dict-size" and "filters" (xz, filters being the -Xbcj bit mask),
// "algorithm" (lzo), "version" and "flags" (lz4). The map is empty when the
// image stores none, which means squashfs-tools' defaults: gzip level 9,
// zstd level 15, xz with a dictionary of the block size.
func (r *Reader) CompressorOptions() (map[string]int, error) {
	opts := map[string]int{}
	if r.sb.Flags&FlagCompressorOptions == 0 {
		return opts, nil
	}
	b, _, err := r.readMeta("compressor options", SuperblockSize, int64(r.sb.InodeTableStart))
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	need := map[Compressor]int{Gzip: 8, XZ: 8, Zstd: 4, LZO: 8, LZ4: 8}[r.sb.Compressor]
	if len(b) < need {
		return nil, readCorruptf("compressor options: %d bytes for %s", len(b), r.sb.Compressor)
	}
	switch r.sb.Compressor {
	case Gzip:
		opts["level"] = int(le.Uint32(b))
		opts["window-size"] = int(le.Uint16(b[4:]))
		opts["strategies"] = int(le.Uint16(b[6:]))
	case XZ:
		opts["dict-size"] = int(le.Uint32(b))
		opts["filters"] = int(le.Uint32(b[4:]))
	case Zstd:
		opts["level"] = int(le.Uint32(b))
	case LZO:
		opts["algorithm"] = int(le.Uint32(b))
		opts["level"] = int(le.Uint32(b[4:]))
	case LZ4:
		opts["version"] = int(le.Uint32(b))
		opts["flags"] = int(le.Uint32(b[4:]))
	}
	return opts, nil
}

// Entries returns the whole tree as an entry stream: the root "." first,
// then depth first with every directory before its children and the names
// of a directory in sorted order. The second and later names of an inode
// with several links come as entry.TypeHardlink naming the first.
func (r *Reader) Entries() entry.Reader { return &readWalker{r: r} }

// readCorruptf returns an error wrapping ErrCorrupt with context.
func readCorruptf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, a...)...)
}

// readCtxError is an error with context inserted into its message.
type readCtxError struct {
	msg string
	err error
}

func (e *readCtxError) Error() string { return e.msg }
func (e *readCtxError) Unwrap() error { return e.err }

// readDecodeErr reports a block (what) that would not decompress: as
// corruption, unless the decoder found a compression it does not support,
// which says nothing about the image being damaged.
func readDecodeErr(what string, err error) error {
	if errors.Is(err, ErrUnsupportedCompression) {
		return readWrap(what, err)
	}
	return readCorruptf("%s: %w", what, err)
}

// readWrap adds where (a path, an inode) to an error from deeper down. The
// context goes after the "squashfs: corrupt image: " prefix rather than in
// front of it, so messages read "squashfs: corrupt image: usr/bin: inode
// 0x20: unknown inode type 99" instead of repeating the prefix per level.
func readWrap(where string, err error) error {
	prefix := "squashfs: "
	switch {
	case errors.Is(err, ErrCorrupt):
		prefix = ErrCorrupt.Error() + ": "
	case errors.Is(err, ErrUnsupportedCompression):
		prefix = ErrUnsupportedCompression.Error() + ": "
	}
	if rest, ok := strings.CutPrefix(err.Error(), prefix); ok {
		return &readCtxError{msg: prefix + where + ": " + rest, err: err}
	}
	return fmt.Errorf("squashfs: %s: %w", where, err)
}

// readAt reads n bytes at off, which must lie inside the image.
func (r *Reader) readAt(what string, off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > r.end || int64(n) > r.end-off {
		return nil, readCorruptf("%s: %d bytes at %d run past the end of the image (%d)", what, n, off, r.end)
	}
	b := make([]byte, n)
	if m, err := r.ra.ReadAt(b, off); m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("squashfs: %s: reading %d bytes at %d: %w", what, n, off, err)
	}
	return b, nil
}

// readMeta returns the decompressed metadata block at pos, which must start
// before end, and the position of the block after it. The slice is shared
// with the cache and must not be modified.
func (r *Reader) readMeta(what string, pos, end int64) ([]byte, int64, error) {
	r.mu.Lock()
	c := r.meta.get(pos)
	r.mu.Unlock()
	if c != nil {
		return c.data, c.next, nil
	}
	if pos < SuperblockSize || pos+2 > end {
		return nil, 0, readCorruptf("%s block at %d: outside %d..%d", what, pos, SuperblockSize, end)
	}
	h, err := r.readAt(what, pos, 2)
	if err != nil {
		return nil, 0, err
	}
	hdr := binary.LittleEndian.Uint16(h)
	n := int64(hdr &^ metaUncompressed)
	if n == 0 || n > MetadataBlockSize || pos+2+n > end {
		return nil, 0, readCorruptf("%s block at %d: length %d (header %#04x)", what, pos, n, hdr)
	}
	src, err := r.readAt(what, pos+2, int(n))
	if err != nil {
		return nil, 0, err
	}
	data := src
	if hdr&metaUncompressed == 0 {
		if data, err = r.dec.decode(nil, src, MetadataBlockSize); err != nil {
			return nil, 0, readDecodeErr(fmt.Sprintf("%s block at %d", what, pos), err)
		}
		if len(data) == 0 {
			return nil, 0, readCorruptf("%s block at %d: empty", what, pos)
		}
	}
	next := pos + 2 + n
	r.mu.Lock()
	r.meta.put(&readCached{key: pos, data: data, next: next})
	r.mu.Unlock()
	return data, next, nil
}

// metaReader reads a byte stream that runs across consecutive metadata
// blocks, as inodes, directory listings and xattrs do.
type metaReader struct {
	r    *Reader
	what string
	end  int64 // no block of this table starts at or after end
	pos  int64 // image offset of the current block
	data []byte
	off  int
	next int64
	tmp  [16]byte
}

// metaAt positions a metaReader at a reference into the table starting at
// start: block is the offset of a metadata block from start, offset the
// position inside its uncompressed data.
func (r *Reader) metaAt(what string, start, end int64, block uint64, offset uint16) (*metaReader, error) {
	if block >= uint64(end-start) {
		return nil, readCorruptf("%s: block %d past the end of the table (%d bytes)", what, block, end-start)
	}
	pos := start + int64(block)
	data, next, err := r.readMeta(what, pos, end)
	if err != nil {
		return nil, err
	}
	if int(offset) > len(data) {
		return nil, readCorruptf("%s block at %d: offset %d in a %d-byte block", what, pos, offset, len(data))
	}
	return &metaReader{r: r, what: what, end: end, pos: pos, data: data, off: int(offset), next: next}, nil
}

// read fills p, moving on to the following blocks as needed.
func (m *metaReader) read(p []byte) error {
	for len(p) > 0 {
		if m.off == len(m.data) {
			data, next, err := m.r.readMeta(m.what, m.next, m.end)
			if err != nil {
				return err
			}
			m.pos, m.data, m.off, m.next = m.next, data, 0, next
		}
		n := copy(p, m.data[m.off:])
		m.off += n
		p = p[n:]
	}
	return nil
}

// bytes reads n bytes into a scratch buffer valid until the next call.
func (m *metaReader) bytes(n int) ([]byte, error) {
	b := m.tmp[:n]
	return b, m.read(b)
}

func (m *metaReader) u32() (uint32, error) {
	b, err := m.bytes(4)
	return binary.LittleEndian.Uint32(b), err
}

func (m *metaReader) u64() (uint64, error) {
	b, err := m.bytes(8)
	return binary.LittleEndian.Uint64(b), err
}

// readTableIndex reads the array of metadata block locations at start that
// indexes a table of count entries of entrySize bytes. The blocks precede
// their index.
func (r *Reader) readTableIndex(what string, start int64, count uint64, entrySize uint64) ([]uint64, error) {
	n := (count*entrySize + MetadataBlockSize - 1) / MetadataBlockSize
	if n*8 > uint64(r.end) {
		return nil, readCorruptf("%s: %d entries need an index larger than the image", what, count)
	}
	b, err := r.readAt(what+" index", start, int(n*8))
	if err != nil {
		return nil, err
	}
	idx := make([]uint64, n)
	for i := range idx {
		idx[i] = binary.LittleEndian.Uint64(b[8*i:])
		if idx[i] < SuperblockSize || idx[i] >= uint64(start) {
			return nil, readCorruptf("%s: block %d at %d, outside %d..%d", what, i, idx[i], SuperblockSize, start)
		}
	}
	return idx, nil
}

// readTableEntry reads entry i of entrySize bytes from an indexed table.
// Entry sizes divide 8 KiB, so an entry never spans two blocks.
func (r *Reader) readTableEntry(what string, index []uint64, tableStart int64, i, entrySize uint64) ([]byte, error) {
	off := i * entrySize
	blk := off / MetadataBlockSize
	if blk >= uint64(len(index)) {
		return nil, readCorruptf("%s: entry %d past the index", what, i)
	}
	data, _, err := r.readMeta(what, int64(index[blk]), tableStart)
	if err != nil {
		return nil, err
	}
	off %= MetadataBlockSize
	if off+entrySize > uint64(len(data)) {
		return nil, readCorruptf("%s: entry %d past the end of its %d-byte block", what, i, len(data))
	}
	return data[off : off+entrySize], nil
}

// loadIDs reads the whole id table (at most 65535 uids and gids).
func (r *Reader) loadIDs() error {
	const what = "id table"
	count := uint64(r.sb.IDCount)
	idx, err := r.readTableIndex(what, int64(r.sb.IDTableStart), count, 4)
	if err != nil {
		return err
	}
	r.ids = make([]uint32, 0, count)
	for _, pos := range idx {
		data, _, err := r.readMeta(what, int64(pos), int64(r.sb.IDTableStart))
		if err != nil {
			return err
		}
		for i := 0; i+4 <= len(data) && uint64(len(r.ids)) < count; i += 4 {
			r.ids = append(r.ids, binary.LittleEndian.Uint32(data[i:]))
		}
	}
	if uint64(len(r.ids)) != count {
		return readCorruptf("%s: %d ids, superblock says %d", what, len(r.ids), count)
	}
	return nil
}

// readID maps an id table index to a uid or gid.
func (r *Reader) readID(i uint16) (uint32, error) {
	if int(i) >= len(r.ids) {
		return 0, readCorruptf("id index %d, table has %d", i, len(r.ids))
	}
	return r.ids[i], nil
}

// readFragment returns the location and on-disk size word of a fragment
// block.
func (r *Reader) readFragment(i uint32) (int64, uint32, error) {
	if i >= r.sb.FragmentCount {
		return 0, 0, readCorruptf("fragment %d, table has %d", i, r.sb.FragmentCount)
	}
	b, err := r.readTableEntry("fragment table", r.fragIndex, int64(r.sb.FragTableStart), uint64(i), 16)
	if err != nil {
		return 0, 0, err
	}
	start := binary.LittleEndian.Uint64(b)
	if start > uint64(r.end) {
		return 0, 0, readCorruptf("fragment %d at %d, past the end of the image", i, start)
	}
	return int64(start), binary.LittleEndian.Uint32(b[8:]), nil
}

// readCached is one decompressed block in a readLRU.
type readCached struct {
	key  int64
	data []byte
	next int64
}

// readLRU is a small least-recently-used cache of decompressed blocks keyed
// by image offset. Its zero value with max set is ready; callers lock.
type readLRU struct {
	max int
	m   map[int64]*list.Element
	l   list.List
}

func (c *readLRU) get(key int64) *readCached {
	e, ok := c.m[key]
	if !ok {
		return nil
	}
	c.l.MoveToFront(e)
	return e.Value.(*readCached)
}

func (c *readLRU) put(v *readCached) {
	if c.m == nil {
		c.m = make(map[int64]*list.Element)
	}
	if e, ok := c.m[v.key]; ok {
		e.Value = v
		c.l.MoveToFront(e)
		return
	}
	c.m[v.key] = c.l.PushFront(v)
	for c.l.Len() > c.max {
		old := c.l.Back()
		c.l.Remove(old)
		delete(c.m, old.Value.(*readCached).key)
	}
}
