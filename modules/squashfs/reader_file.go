package squashfs

import (
	"fmt"
	"io"
)

// readFile streams the body of a regular file: its full blocks, stored one
// after another from blocksStart (a sparse block takes no space and reads as
// zeros), then its tail from a fragment block. The block size list is read
// from the inode table as the blocks are, so a file's size never turns into
// an allocation.
type readFile struct {
	r       *Reader
	in      *rinode
	sizes   metaReader // the next entry of the block size list
	nblocks uint64     // blocks listed in the inode
	blk     uint64     // index of the next block
	pos     int64      // image offset of the next stored block
	left    uint64     // bytes still to deliver
	cur     []byte     // decoded data not yet delivered
	buf     []byte     // the block buffer cur points into
	err     error
}

func (r *Reader) newFileReader(in *rinode) *readFile {
	bs := uint64(r.sb.BlockSize)
	n := in.size / bs
	if in.frag == noFragment && in.size%bs != 0 {
		n++
	}
	return &readFile{r: r, in: in, sizes: in.blockList, nblocks: n, pos: int64(min(in.blocksStart, uint64(r.end))), left: in.size}
}

func (f *readFile) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if len(f.cur) == 0 {
		if f.left == 0 {
			return 0, io.EOF
		}
		if err := f.fill(); err != nil {
			f.err = readWrap(fmt.Sprintf("file inode %#x", f.in.ref), err)
			return 0, f.err
		}
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

// fill decodes the next block or the fragment tail into f.cur.
func (f *readFile) fill() error {
	r := f.r
	bs := uint64(r.sb.BlockSize)
	if f.buf == nil {
		f.buf = make([]byte, 0, min(bs, f.left)+1)
	}
	if f.blk < f.nblocks {
		want := int(min(bs, f.left))
		word, err := f.sizes.u32()
		if err != nil {
			return fmt.Errorf("block list: %w", err)
		}
		f.blk++
		if word&^(dataUncompressed|(dataUncompressed-1)) != 0 {
			return readCorruptf("block %d: size word %#x", f.blk-1, word)
		}
		n := int64(word &^ dataUncompressed)
		if n == 0 {
			// A sparse block: zeros, nothing stored.
			f.cur = f.zeros(want)
			f.left -= uint64(want)
			return nil
		}
		if n > int64(bs) || f.pos+n > int64(r.sb.InodeTableStart) {
			return readCorruptf("block %d: %d bytes at %d (block size %d, data ends at %d)", f.blk-1, n, f.pos, bs, r.sb.InodeTableStart)
		}
		src, err := r.readAt("data block", f.pos, int(n))
		if err != nil {
			return err
		}
		f.pos += n
		out := src
		if word&dataUncompressed == 0 {
			if out, err = r.dec.decode(f.buf, src, want); err != nil {
				return readDecodeErr(fmt.Sprintf("data block at %d", f.pos-n), err)
			}
			f.buf = out[:0]
		}
		if len(out) != want {
			return readCorruptf("data block at %d: %d bytes, want %d", f.pos-n, len(out), want)
		}
		f.cur = out
		f.left -= uint64(want)
		return nil
	}
	if f.in.frag == noFragment {
		return readCorruptf("file of %d bytes ends before its blocks do", f.in.size)
	}
	frag, err := r.readFragmentBlock(f.in.frag)
	if err != nil {
		return err
	}
	off := uint64(f.in.fragOffset)
	if off > uint64(len(frag)) || f.left > uint64(len(frag))-off {
		return readCorruptf("fragment %d: tail of %d bytes at %d in a %d-byte block", f.in.frag, f.left, off, len(frag))
	}
	f.cur = frag[off : off+f.left]
	f.left = 0
	return nil
}

// zeros returns n zero bytes from the block buffer.
func (f *readFile) zeros(n int) []byte {
	if cap(f.buf) < n {
		f.buf = make([]byte, 0, n+1)
	}
	z := f.buf[:n]
	clear(z)
	return z
}

// readFragmentBlock returns fragment block i decoded, from a small cache
// because consecutive small files usually share one. The slice is shared
// and must not be modified.
func (r *Reader) readFragmentBlock(i uint32) ([]byte, error) {
	start, word, err := r.readFragment(i)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	c := r.frags.get(start)
	r.mu.Unlock()
	if c != nil {
		return c.data, nil
	}
	if word&^(dataUncompressed|(dataUncompressed-1)) != 0 {
		return nil, readCorruptf("fragment %d: size word %#x", i, word)
	}
	bs := int64(r.sb.BlockSize)
	n := int64(word &^ dataUncompressed)
	if n == 0 || n > bs || start < SuperblockSize || start+n > int64(r.sb.InodeTableStart) {
		return nil, readCorruptf("fragment %d: %d bytes at %d (block size %d, data ends at %d)", i, n, start, bs, r.sb.InodeTableStart)
	}
	src, err := r.readAt("fragment block", start, int(n))
	if err != nil {
		return nil, err
	}
	data := src
	if word&dataUncompressed == 0 {
		if data, err = r.dec.decode(nil, src, int(bs)); err != nil {
			return nil, readDecodeErr(fmt.Sprintf("fragment %d at %d", i, start), err)
		}
	}
	r.mu.Lock()
	r.frags.put(&readCached{key: start, data: data})
	r.mu.Unlock()
	return data, nil
}
