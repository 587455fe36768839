package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// readDecoder decompresses one metadata or data block. Every block of a
// SquashFS image is compressed on its own, so a decoder is a function from
// one compressed buffer to one uncompressed buffer. decode appends to
// dst[:0] and fails, rather than allocating, when the output would exceed
// limit: the limit (8 KiB for metadata, the block size for data) is the only
// thing that keeps a hostile block from inflating without bound.
type readDecoder interface {
	decode(dst, src []byte, limit int) ([]byte, error)
}

// newReadDecoder returns the decoder for c, or an error wrapping
// ErrUnsupportedCompression for an id SquashFS 4.0 does not define.
func newReadDecoder(c Compressor) (readDecoder, error) {
	switch c {
	case Gzip:
		return &readZlib{}, nil
	case XZ:
		return readXZ{}, nil
	case Zstd:
		d, err := readZstdDecoder()
		if err != nil {
			return nil, err
		}
		return readZstd{d}, nil
	case LZ4:
		return readLZ4{}, nil
	case LZO:
		return readLZO{}, nil
	case LZMA:
		return readLZMA{}, nil
	}
	return nil, fmt.Errorf("%w: compressor id %d is none of the six SquashFS 4.0 defines (gzip, lzma, lzo, xz, lz4, zstd): "+
		"the image is damaged, or was made by a newer tool than this reader knows: unpack it with that tool and rebuild it with byz module create",
		ErrUnsupportedCompression, uint16(c))
}

// readZlib decodes gzip-compressor blocks, which are zlib streams. The
// inflater is reused across blocks because it holds ~40 KiB of window and
// tables; a mutex makes the Reader safe for concurrent use.
type readZlib struct {
	mu sync.Mutex
	zr io.ReadCloser
}

func (z *readZlib) decode(dst, src []byte, limit int) ([]byte, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.zr == nil {
		zr, err := zlib.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
		z.zr = zr
	} else if err := z.zr.(zlib.Resetter).Reset(bytes.NewReader(src), nil); err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	return readAllLimit(z.zr, dst, limit, "zlib")
}

// readAllLimit reads r to io.EOF into dst[:0], failing once the output passes
// limit. Only io.EOF counts as a clean end: the inflaters return it after
// checking the stream's checksum, while a truncated stream reports
// io.ErrUnexpectedEOF.
func readAllLimit(r io.Reader, dst []byte, limit int, name string) ([]byte, error) {
	if cap(dst) < limit+1 {
		dst = make([]byte, 0, limit+1)
	}
	buf := dst[:limit+1]
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if n > limit {
			return nil, fmt.Errorf("%s: block inflates past %d bytes", name, limit)
		}
		if err == io.EOF {
			return buf[:n], nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if m == 0 {
			// Guard against a reader that makes no progress without an
			// error; a well-behaved one never does this for long.
			return nil, fmt.Errorf("%s: %w", name, io.ErrNoProgress)
		}
	}
}

// readZstd decodes zstd blocks with one shared decoder: DecodeAll is safe
// for concurrent use and the decoder keeps its buffers between calls.
type readZstd struct{ d *zstd.Decoder }

var (
	readZstdOnce sync.Once
	readZstdDec  *zstd.Decoder
	readZstdErr  error
)

// readZstdDecoder builds the shared decoder on first use. WithDecoderMaxMemory
// caps what one DecodeAll may produce, so a frame that claims a huge content
// size or window is refused before anything is allocated for it.
func readZstdDecoder() (*zstd.Decoder, error) {
	readZstdOnce.Do(func() {
		readZstdDec, readZstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(2),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxBlockSize),
			zstd.WithDecoderMaxWindow(MaxBlockSize))
	})
	return readZstdDec, readZstdErr
}

func (z readZstd) decode(dst, src []byte, limit int) ([]byte, error) {
	out, err := z.d.DecodeAll(src, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("zstd: block inflates to %d bytes, more than %d", len(out), limit)
	}
	return out, nil
}

// readXZ decodes xz blocks. squashfs-tools writes each block as one xz
// stream holding one xz block with an LZMA2 filter, optionally preceded by
// a BCJ filter (undone here, see bcj.go). The container is parsed here
// rather than by xz.Reader because xz.Reader allocates whatever dictionary
// a block header asks for (up to 4 GiB); since a block's output is bounded
// by limit and LZMA2 cannot refer back past the start of its output, a
// dictionary of limit bytes suffices.
// The trailing index and the check of the uncompressed data are not
// verified.
type readXZ struct{}

var readXZMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0}

func (readXZ) decode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < 12+8 || !bytes.Equal(src[:6], readXZMagic) {
		return nil, errors.New("xz: not an xz stream")
	}
	if src[6] != 0 || src[7]&0xF0 != 0 || crc32.ChecksumIEEE(src[6:8]) != binary.LittleEndian.Uint32(src[8:12]) {
		return nil, errors.New("xz: bad stream header")
	}
	p := src[12:]
	if p[0] == 0 {
		// An index indicator instead of a block header: an empty stream.
		return dst[:0], nil
	}
	hs := (int(p[0]) + 1) * 4
	if hs > len(p) {
		return nil, errors.New("xz: block header past the end of the stream")
	}
	h := p[:hs]
	if crc32.ChecksumIEEE(h[:hs-4]) != binary.LittleEndian.Uint32(h[hs-4:]) {
		return nil, errors.New("xz: bad block header checksum")
	}
	flags := h[1]
	if flags&0x3C != 0 {
		return nil, fmt.Errorf("xz: block flags %#x", flags)
	}
	q := h[2 : hs-4]
	var err error
	if flags&0x40 != 0 { // compressed size present
		if _, q, err = readXZVarint(q); err != nil {
			return nil, err
		}
	}
	if flags&0x80 != 0 { // uncompressed size present
		if _, q, err = readXZVarint(q); err != nil {
			return nil, err
		}
	}
	// Up to three filters may precede LZMA2; squashfs-tools puts at most
	// one BCJ filter there. They are undone last to first.
	nfilters := int(flags&3) + 1
	var bcj []bcjFilter
	for i := 0; i < nfilters; i++ {
		var id, psize uint64
		if id, q, err = readXZVarint(q); err != nil {
			return nil, err
		}
		if psize, q, err = readXZVarint(q); err != nil {
			return nil, err
		}
		if psize > uint64(len(q)) {
			return nil, errors.New("xz: filter properties past the block header")
		}
		props := q[:psize]
		q = q[psize:]
		if i < nfilters-1 {
			f, err := newBCJFilter(id, props)
			if err != nil {
				return nil, err
			}
			bcj = append(bcj, f)
			continue
		}
		if id != xzFilterLZMA2 {
			if _, ok := bcjFilters[id]; ok {
				return nil, fmt.Errorf("xz: the %s filter last in the chain, where LZMA2 must be", bcjFilters[id].name)
			}
			return nil, fmt.Errorf("%w: xz filter %#x in place of LZMA2: this reader decodes LZMA2, which is all squashfs-tools writes; "+
				"unpack the image with a tool that reads it and rebuild it with byz module create", ErrUnsupportedCompression, id)
		}
		if psize != 1 {
			return nil, fmt.Errorf("xz: LZMA2 filter with %d bytes of properties, want 1", psize)
		}
	}
	dict := max(limit, lzma.MinDictCap)
	lr, err := lzma.Reader2Config{DictCap: dict}.NewReader2(bytes.NewReader(p[hs:]))
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	out, err := readAllLimit(lr, dst, limit, "xz")
	if err != nil {
		return nil, err
	}
	for i := len(bcj) - 1; i >= 0; i-- {
		bcj[i].undo(out, bcj[i].start)
	}
	return out, nil
}

// readXZVarint decodes the xz multibyte integer at the start of b.
func readXZVarint(b []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < 9 && i < len(b); i++ {
		v |= uint64(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, b[i+1:], nil
		}
	}
	return 0, nil, errors.New("xz: bad integer in block header")
}

// readLZ4 decodes lz4 blocks: raw LZ4 blocks without a frame, as
// squashfs-tools writes them (its "legacy" format, the only one defined;
// NewReader checks the version in the compressor options). The output
// buffer is the limit, so a block cannot inflate past it.
type readLZ4 struct{}

func (readLZ4) decode(dst, src []byte, limit int) ([]byte, error) {
	if cap(dst) < limit {
		dst = make([]byte, limit)
	}
	n, err := lz4.UncompressBlock(src, dst[:limit])
	if err != nil {
		return nil, fmt.Errorf("lz4: %w (or the block inflates past %d bytes)", err, limit)
	}
	return dst[:n], nil
}

// readLZO decodes lzo blocks: raw LZO1X streams (lzo.go).
type readLZO struct{}

func (readLZO) decode(dst, src []byte, limit int) ([]byte, error) {
	return lzo1xDecode(dst, src, limit)
}

// readLZMA decodes lzma blocks (mksquashfs -comp lzma; the kernel never
// read these). Each block is an LZMA stream in the classic .lzma layout:
// a properties byte, a 32-bit dictionary size and a 64-bit uncompressed
// size, which squashfs-tools fills in, then the range-coded data, which
// liblzma ends with an end marker and the LZMA SDK does not. The header is
// rewritten before decoding so that the dictionary is no larger than the
// block, as for xz; a size larger than the block is refused up front.
type readLZMA struct{}

func (readLZMA) decode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < lzma.HeaderLen {
		return nil, errors.New("lzma: block shorter than its header")
	}
	h := bytes.Clone(src[:lzma.HeaderLen])
	le := binary.LittleEndian
	if size := le.Uint64(h[5:]); size != ^uint64(0) && size > uint64(limit) {
		return nil, fmt.Errorf("lzma: header says %d bytes, more than the %d the block may hold", size, limit)
	}
	dict := max(limit, lzma.MinDictCap)
	le.PutUint32(h[1:], uint32(min(int64(le.Uint32(h[1:])), int64(dict))))
	lr, err := lzma.ReaderConfig{DictCap: dict}.NewReader(io.MultiReader(bytes.NewReader(h), bytes.NewReader(src[lzma.HeaderLen:])))
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	return readAllLimit(lr, dst, limit, "lzma")
}
