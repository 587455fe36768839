// Package tarball turns a tar archive, plain or compressed with gzip, zstd, xz
// or bzip2, into an entry stream. Slackware .txz packages are tar.xz and read
// the same way.
package tarball

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"byzantium/modules/entry"
)

// ErrBroken reports a tarball that cannot be read to its end.
var ErrBroken = errors.New("tarball: broken archive")

// Compression names a compression a tarball came in.
type Compression string

const (
	None  Compression = "none"
	Gzip  Compression = "gzip"
	Zstd  Compression = "zstd"
	XZ    Compression = "xz"
	Bzip2 Compression = "bzip2"
)

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{XZ, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
}

// isBzip2 checks more than the printable "BZh": an uncompressed tar whose
// first member is named "BZh..." must not be taken for bzip2. The stream
// header is "BZh" and a block size digit, followed by the magic of the
// first block or, for an empty stream, of the end of stream.
func isBzip2(head []byte) bool {
	if len(head) < 10 || string(head[:3]) != "BZh" || head[3] < '1' || head[3] > '9' {
		return false
	}
	m := string(head[4:10])
	return m == "1AY&SY" || m == "\x17\x72\x45\x38\x50\x90"
}

// Decompress sniffs the compression of r from its first bytes and returns
// a reader of the decompressed stream. The returned close function releases
// the decoder (zstd keeps goroutines).
func Decompress(r io.Reader) (io.Reader, Compression, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(10)
	if err != nil && err != io.EOF {
		return nil, None, nil, fmt.Errorf("%w: %v", ErrBroken, err)
	}
	c := None
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			c = m.c
			break
		}
	}
	if isBzip2(head) {
		c = Bzip2
	}
	noop := func() {}
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, nil, fmt.Errorf("%w: gzip: %v", ErrBroken, err)
		}
		return zr, c, noop, nil
	case Zstd:
		// The window a frame may ask for is capped: zstd --ultra -22 uses
		// 128 MiB, and a 10-byte header must not reserve more than that.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow),
			zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, c, nil, fmt.Errorf("%w: zstd: %v", ErrBroken, err)
		}
		return zr, c, zr.Close, nil
	case XZ:
		if err := checkXZDict(br); err != nil {
			return nil, c, nil, err
		}
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, c, nil, fmt.Errorf("%w: xz: %v", ErrBroken, err)
		}
		return zr, c, noop, nil
	case Bzip2:
		return bzip2.NewReader(br), c, noop, nil
	}
	return br, c, noop, nil
}

// Reader is an entry stream over a tar archive.
type Reader struct {
	tr    *tar.Reader
	close func()
	name  string // for errors: the archive's name
	last  string // path of the last entry, for errors
	done  bool
}

// NewReader returns an entry stream of the (possibly compressed) tar archive
// in r. name labels errors, typically the file name. Call Close when done.
func NewReader(r io.Reader, name string) (*Reader, error) {
	dr, _, closeFn, err := Decompress(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Reader{tr: tar.NewReader(dr), close: closeFn, name: name}, nil
}

// Close releases the decompressor.
func (r *Reader) Close() error {
	if r.close != nil {
		r.close()
		r.close = nil
	}
	return nil
}

// Next returns the next entry's header.
func (r *Reader) Next() (*entry.Header, error) {
	if r.done {
		return nil, io.EOF
	}
	for {
		th, err := r.tr.Next()
		if err == io.EOF {
			r.done = true
			return nil, io.EOF
		}
		if err != nil {
			where := "at its start"
			if r.last != "" {
				where = "after " + r.last
			}
			return nil, fmt.Errorf("%s: %w %s: %v", r.name, ErrBroken, where, err)
		}
		h, skip, err := convert(th)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		if skip {
			continue
		}
		r.last = h.Path
		return h, nil
	}
}

// Read reads the body of the current entry.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.tr.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %s: %w: %v", r.name, r.last, ErrBroken, err)
	}
	return n, err
}

const xattrPrefix = "SCHILY.xattr."

// convert maps a tar header onto an entry header. skip is set for entries
// that carry no file (a pax global header).
func convert(th *tar.Header) (h *entry.Header, skip bool, err error) {
	h = &entry.Header{
		Path:    entry.Clean(th.Name),
		Mode:    uint32(th.Mode) & entry.ModePerm,
		UID:     uint32(th.Uid),
		GID:     uint32(th.Gid),
		ModTime: th.ModTime,
	}
	switch th.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // archive/tar maps the old '\x00' form to TypeReg

		h.Type = entry.TypeRegular
		h.Size = th.Size
	case tar.TypeDir:
		h.Type = entry.TypeDir
	case tar.TypeSymlink:
		h.Type = entry.TypeSymlink
		h.Linkname = th.Linkname
	case tar.TypeLink:
		h.Type = entry.TypeHardlink
		h.Linkname = entry.Clean(th.Linkname)
	case tar.TypeChar:
		h.Type = entry.TypeCharDev
		h.Devmajor, h.Devminor = uint32(th.Devmajor), uint32(th.Devminor)
	case tar.TypeBlock:
		h.Type = entry.TypeBlockDev
		h.Devmajor, h.Devminor = uint32(th.Devmajor), uint32(th.Devminor)
	case tar.TypeFifo:
		h.Type = entry.TypeFIFO
	case tar.TypeXGlobalHeader:
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("%s: %w: tar type %q", th.Name, entry.ErrUnsupported, th.Typeflag)
	}
	for k, v := range th.PAXRecords {
		if name, ok := strings.CutPrefix(k, xattrPrefix); ok {
			if h.Xattrs == nil {
				h.Xattrs = map[string][]byte{}
			}
			h.Xattrs[name] = []byte(v)
		}
	}
	if h.Path == "." && h.Type != entry.TypeDir {
		return nil, false, fmt.Errorf("%q: %w: a %s at the archive's root", th.Name, entry.ErrUnsupported, h.Type)
	}
	if err := h.Validate(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", th.Name, err)
	}
	return h, false, nil
}

// maxWindow bounds the history a decompressor may allocate: the largest
// that zstd (--ultra -22) or xz (-9, 64 MiB) use by default, doubled.
const maxWindow = 128 << 20

// checkXZDict reads the LZMA2 dictionary size from the first block header
// of the xz stream in br and refuses one over maxWindow. ulikunitz/xz sizes
// its dictionary from the header alone, so a 68-byte stream could otherwise
// reserve 1.5 GB. Later blocks are not checked: xz writes every block of a
// stream with the same filter.
func checkXZDict(br *bufio.Reader) error {
	const streamHeader = 12
	hdr, _ := br.Peek(streamHeader + 1)
	if len(hdr) <= streamHeader || hdr[streamHeader] == 0 {
		return nil // an empty stream, or too short: the decoder reports it
	}
	size := (int(hdr[streamHeader]) + 1) * 4
	b, err := br.Peek(streamHeader + size)
	if err != nil {
		return nil
	}
	b = b[streamHeader+1 : streamHeader+size-4] // flags .. filters, no CRC32
	flags := b[0]
	b = b[1:]
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && i < len(b); i++ {
			v |= uint64(b[i]&0x7f) << (7 * i)
			if b[i]&0x80 == 0 {
				b = b[i+1:]
				return v, true
			}
		}
		return 0, false
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, ok := varint(); !ok {
				return nil
			}
		}
	}
	for n := int(flags&3) + 1; n > 0; n-- {
		id, ok1 := varint()
		psize, ok2 := varint()
		if !ok1 || !ok2 || uint64(len(b)) < psize {
			return nil
		}
		if id == 0x21 && psize == 1 { // LZMA2: one byte encodes the dictionary
			bits := uint64(b[0] & 0x3f)
			if bits > 40 || (2|bits&1)<<(bits/2+11) > maxWindow {
				return fmt.Errorf("%w: xz: dictionary larger than %d MiB", ErrBroken, maxWindow>>20)
			}
		}
		b = b[psize:]
	}
	return nil
}
