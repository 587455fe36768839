package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Defaults and bounds of the compression levels the Writer accepts.
const (
	writeZstdMaxLevel = 22
	// writeZstdDefaultRecorded is the level recorded in the compressor
	// options when the caller leaves Level at 0: klauspost's best encoder
	// compresses about as well as zstd -11, and squashfs-tools only prints the
	// number.
	writeZstdDefaultRecorded = 11
	writeGzipDefaultLevel    = 9
	writeGzipWindowBits      = 15
)

// writeCompressor compresses one data or metadata block. Each worker owns
// one, so implementations need not be safe for concurrent use.
type writeCompressor interface {
	// compress appends the compressed form of src to dst.
	compress(dst, src []byte) ([]byte, error)
}

// writeCodec resolves Options into what the superblock records and makes
// one writeCompressor per goroutine.
type writeCodec struct {
	id        Compressor
	level     int // as given, after defaults; recorded in the options block
	zlevel    zstd.EncoderLevel
	blockSize int
}

func newWriteCodec(opts Options) (*writeCodec, error) {
	c := &writeCodec{id: opts.Compressor, level: opts.Level, blockSize: opts.BlockSize}
	switch c.id {
	case Zstd:
		switch {
		case c.level == 0:
			// Level 0 asks for the best klauspost offers: squashfs images
			// are written once and read many times.
			c.zlevel = zstd.SpeedBestCompression
			c.level = writeZstdDefaultRecorded
		case c.level >= 1 && c.level <= writeZstdMaxLevel:
			c.zlevel = zstd.EncoderLevelFromZstd(c.level)
		default:
			return nil, fmt.Errorf("%w: zstd level %d, want 1–%d", ErrBadOption, c.level, writeZstdMaxLevel)
		}
	case Gzip:
		switch {
		case c.level == 0:
			c.level = writeGzipDefaultLevel
		case c.level < 1 || c.level > 9:
			return nil, fmt.Errorf("%w: gzip level %d, want 1–9", ErrBadOption, c.level)
		}
	case XZ:
		// ulikunitz/xz has no presets; the level is ignored.
		c.level = 0
	default:
		return nil, fmt.Errorf("%w: %v: this writer makes zstd, gzip or xz", ErrUnknownCompressor, c.id)
	}
	return c, nil
}

// options returns the compressor options block squashfs-tools writes for
// these settings (the kernel only reads xz's).
func (c *writeCodec) options() []byte {
	le := binary.LittleEndian
	switch c.id {
	case Zstd:
		return le.AppendUint32(nil, uint32(c.level))
	case Gzip:
		b := le.AppendUint32(nil, uint32(c.level))
		b = le.AppendUint16(b, writeGzipWindowBits)
		return le.AppendUint16(b, 0) // no strategies: zlib's default
	case XZ:
		// The kernel preallocates its xz dictionary from this field and
		// refuses streams that declare a larger one, so it must match the
		// LZMA2 dictionary newCompressor configures. No BCJ filters.
		b := le.AppendUint32(nil, uint32(c.blockSize))
		return le.AppendUint32(b, 0)
	}
	return nil
}

// windowSize is the largest back-reference any block may use: the kernel
// sizes its zstd workspace by max(block size, metadata block size), so a
// frame declaring more fails with EIO.
func (c *writeCodec) windowSize() int { return max(c.blockSize, MetadataBlockSize) }

func (c *writeCodec) newCompressor() (writeCompressor, error) {
	switch c.id {
	case Zstd:
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(c.zlevel),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(c.windowSize()),
			zstd.WithEncoderCRC(false),
			zstd.WithZeroFrames(true),
		)
		if err != nil {
			return nil, fmt.Errorf("squashfs: zstd encoder: %w", err)
		}
		return writeZstd{enc}, nil
	case Gzip:
		zw, err := zlib.NewWriterLevel(nil, c.level)
		if err != nil {
			return nil, fmt.Errorf("squashfs: zlib encoder: %w", err)
		}
		return &writeZlib{zw: zw}, nil
	case XZ:
		cfg := xz.WriterConfig{DictCap: c.windowSize(), CheckSum: xz.CRC32}
		if err := cfg.Verify(); err != nil {
			return nil, fmt.Errorf("squashfs: xz encoder: %w", err)
		}
		return &writeXZ{cfg: cfg}, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnknownCompressor, c.id)
}

type writeZstd struct{ enc *zstd.Encoder }

func (z writeZstd) compress(dst, src []byte) ([]byte, error) { return z.enc.EncodeAll(src, dst), nil }

// writeSliceBuf lets a stream compressor append straight into a caller's
// slice without a bytes.Buffer copy.
type writeSliceBuf struct{ b []byte }

func (s *writeSliceBuf) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

type writeZlib struct {
	zw  *zlib.Writer
	out writeSliceBuf
}

func (z *writeZlib) compress(dst, src []byte) ([]byte, error) {
	z.out.b = dst
	z.zw.Reset(&z.out)
	if _, err := z.zw.Write(src); err != nil {
		return dst, fmt.Errorf("squashfs: zlib: %w", err)
	}
	if err := z.zw.Close(); err != nil {
		return dst, fmt.Errorf("squashfs: zlib: %w", err)
	}
	b := z.out.b
	z.out.b = nil
	return b, nil
}

type writeXZ struct {
	cfg xz.WriterConfig
	buf bytes.Buffer
}

func (x *writeXZ) compress(dst, src []byte) ([]byte, error) {
	x.buf.Reset()
	w, err := x.cfg.NewWriter(&x.buf)
	if err != nil {
		return dst, fmt.Errorf("squashfs: xz: %w", err)
	}
	if _, err := w.Write(src); err != nil {
		return dst, fmt.Errorf("squashfs: xz: %w", err)
	}
	if err := w.Close(); err != nil {
		return dst, fmt.Errorf("squashfs: xz: %w", err)
	}
	return append(dst, x.buf.Bytes()...), nil
}
