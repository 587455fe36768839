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
// ErrUnknownCompressor for the compressors this package does not read.
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
	}
	return nil, fmt.Errorf("%w: %s images cannot be read (only gzip, xz and zstd)", ErrUnknownCompressor, c)
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
// stream holding one xz block with an LZMA2 filter (optionally preceded by a
// BCJ filter). The container is parsed here rather than by xz.Reader because
// xz.Reader allocates whatever dictionary a block header asks for (up to
// 4 GiB); since a block's output is bounded by limit and LZMA2 cannot refer
// back past the start of its output, a dictionary of limit bytes suffices.
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
	nfilters := int(flags&3) + 1
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
		q = q[psize:]
		if i < nfilters-1 {
			return nil, fmt.Errorf("%w: xz filter %#x (mksquashfs -Xbcj) is not supported", ErrUnknownCompressor, id)
		}
		if id != 0x21 || psize != 1 {
			return nil, fmt.Errorf("xz: filter %#x where LZMA2 was expected", id)
		}
	}
	dict := max(limit, lzma.MinDictCap)
	lr, err := lzma.Reader2Config{DictCap: dict}.NewReader2(bytes.NewReader(p[hs:]))
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return readAllLimit(lr, dst, limit, "xz")
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
