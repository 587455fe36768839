package squashfs

import "encoding/binary"

func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// metaHeader is the 2-byte header of a metadata block of n bytes.
func metaHeader(n int, compressed bool) []byte {
	h := uint16(n)
	if !compressed {
		h |= metaUncompressed
	}
	return le16(nil, h)
}

// metaWriter builds a table made of metadata blocks in memory: 8 KiB of
// payload at a time, compressed as each block fills, so that a position in
// the table (the compressed offset of the current block and the offset in
// it) is known the moment something is written there.
type metaWriter struct {
	comp writeCompressor
	buf  []byte // payload of the block being filled
	out  []byte // finished blocks, headers included
	tmp  []byte
	err  error
}

func newMetaWriter(c writeCompressor) *metaWriter {
	return &metaWriter{comp: c, buf: make([]byte, 0, MetadataBlockSize)}
}

// pos returns where the next byte goes: the block's start in the table and
// the offset inside its payload.
func (m *metaWriter) pos() (block uint64, offset uint16) {
	return uint64(len(m.out)), uint16(len(m.buf))
}

func (m *metaWriter) ref() uint64 { return inodeRef(m.pos()) }

func (m *metaWriter) write(p []byte) {
	for len(p) > 0 {
		n := copy(m.buf[len(m.buf):MetadataBlockSize], p)
		m.buf = m.buf[:len(m.buf)+n]
		p = p[n:]
		if len(m.buf) == MetadataBlockSize {
			m.flush()
		}
	}
}

// flush ends the current block; a compressed form that does not shrink it
// is dropped in favour of the payload as is.
func (m *metaWriter) flush() {
	if len(m.buf) == 0 {
		return
	}
	var err error
	m.tmp, err = m.comp.compress(m.tmp[:0], m.buf)
	if err != nil && m.err == nil {
		m.err = err
	}
	if err == nil && len(m.tmp) < len(m.buf) {
		m.out = append(m.out, metaHeader(len(m.tmp), true)...)
		m.out = append(m.out, m.tmp...)
	} else {
		m.out = append(m.out, metaHeader(len(m.buf), false)...)
		m.out = append(m.out, m.buf...)
	}
	m.buf = m.buf[:0]
}

// bytes ends the table and returns it.
func (m *metaWriter) bytes() ([]byte, error) {
	m.flush()
	return m.out, m.err
}

// writeIndexed writes a table of fixed-size entries (ids, fragments, export
// inode references, xattr ids) as metadata blocks followed by prefix (the
// xattr id table's header) and the list of the blocks' absolute offsets. It
// returns the offset of prefix, or of the list when there is none: what the
// superblock records. The kernel requires each such list to end exactly
// where the next table begins, so nothing may be written in between.
func (w *Writer) writeIndexed(c writeCompressor, entries, prefix []byte) (uint64, error) {
	m := newMetaWriter(c)
	var starts []uint64
	for len(entries) > 0 {
		n := min(len(entries), MetadataBlockSize)
		block, _ := m.pos()
		starts = append(starts, uint64(w.out.pos())+block)
		m.write(entries[:n])
		entries = entries[n:]
	}
	b, err := m.bytes()
	if err != nil {
		return 0, err
	}
	w.out.write(b)
	at := uint64(w.out.pos())
	w.out.write(prefix)
	var list []byte
	for _, s := range starts {
		list = le64(list, s)
	}
	w.out.write(list)
	return at, nil
}
