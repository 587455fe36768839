// Package initramfs writes the initial RAM filesystem the kernel unpacks
// before it runs /init: a newc ("070701") cpio archive, zstd-compressed.
//
// The Writer consumes an entry stream like every other writer in
// Byzantium; Write is the convenience for a list of files that sorts them
// and adds their parent directories. The archive never holds device nodes
// (the cpio library cannot write rdev): the init mounts devtmpfs on /dev.
package initramfs

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"

	"byzantium/modules/entry"
)

// ErrWriteAfterClose is returned by every call after Close.
var ErrWriteAfterClose = errors.New("initramfs: write after close")

// Options configure a Writer. The zero value writes a zstd archive at the
// best compression with every mtime at the Unix epoch.
type Options struct {
	// ModTime clamps every entry's mtime (entries without one get it).
	// Take it from SOURCE_DATE_EPOCH; the zero Time means the Unix epoch.
	ModTime time.Time
	// Uncompressed writes a bare cpio, for tests and `cpio -t`.
	Uncompressed bool
	// Level is the zstd level 1–22, mapped to the nearest klauspost
	// encoder; 0 means its best.
	Level int
}

// Writer writes an initramfs from an entry stream. Entries are written in
// the order given, with inode numbers handed out in that order, UID and GID
// kept as given. Close must be called to finish the archive.
type Writer struct {
	zw     *zstd.Encoder
	cw     *cpio.Writer
	epoch  time.Time
	err    error
	closed bool
}

// NewWriter returns a Writer that writes the archive to w.
func NewWriter(w io.Writer, opts Options) (*Writer, error) {
	iw := &Writer{epoch: opts.ModTime}
	if iw.epoch.IsZero() {
		iw.epoch = time.Unix(0, 0)
	}
	if !opts.Uncompressed {
		level := zstd.SpeedBestCompression
		if opts.Level > 0 {
			level = zstd.EncoderLevelFromZstd(opts.Level)
		}
		// The kernel's unzstd decompresses the initramfs in a streaming
		// fashion and must allocate the frame's window: a bounded window
		// keeps that allocation small on low-memory machines. One encoder
		// goroutine keeps the CPU use predictable; the output does not
		// depend on it.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithWindowSize(windowSize),
			zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, fmt.Errorf("initramfs: zstd: %w", err)
		}
		iw.zw = zw
		w = zw
	}
	iw.cw = cpio.NewWriter(w)
	return iw, nil
}

// windowSize is the zstd window: 8 MiB, the largest the klauspost
// encoder's best level uses by default, and a size the 6.1 kernel was
// booted with (see ci/boot_test.go).
const windowSize = 8 << 20

var cpioTypes = map[entry.Type]cpio.FileMode{
	entry.TypeRegular: cpio.TypeReg,
	entry.TypeDir:     cpio.TypeDir,
	entry.TypeSymlink: cpio.TypeSymlink,
}

// WriteHeader starts an entry. Regular files, directories and symlinks are
// supported; hardlinks, devices, FIFOs and sockets are refused with
// entry.ErrUnsupported. The root "." is skipped: the kernel's rootfs exists.
func (w *Writer) WriteHeader(h *entry.Header) error {
	if w.closed {
		return ErrWriteAfterClose
	}
	if w.err != nil {
		return w.err
	}
	if err := h.Validate(); err != nil {
		return err
	}
	typ, ok := cpioTypes[h.Type]
	if !ok {
		return fmt.Errorf("%w: %s is a %s; an initramfs holds files, directories and symlinks (init mounts devtmpfs)",
			entry.ErrUnsupported, h.Path, h.Type)
	}
	if h.Path == "." {
		return nil
	}
	mtime := h.ModTime
	if mtime.IsZero() || mtime.After(w.epoch) {
		mtime = w.epoch
	}
	ch := &cpio.Header{
		Name: h.Path, Mode: typ | cpio.FileMode(h.Mode&entry.ModePerm), Uid: int(h.UID), Guid: int(h.GID),
		ModTime: mtime, Size: h.Size, Links: 1,
	}
	if h.Type == entry.TypeDir {
		ch.Links = 2
	}
	if h.Type == entry.TypeSymlink {
		// newc keeps a symlink's target as its body.
		ch.Size = int64(len(h.Linkname))
	}
	if err := w.cw.WriteHeader(ch); err != nil {
		w.err = fmt.Errorf("initramfs: %s: %w", h.Path, err)
		return w.err
	}
	if h.Type == entry.TypeSymlink {
		if _, err := io.WriteString(w.cw, h.Linkname); err != nil {
			w.err = fmt.Errorf("initramfs: %s: %w", h.Path, err)
			return w.err
		}
	}
	return nil
}

// Write writes the body of the current regular file.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrWriteAfterClose
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.cw.Write(p)
	if err != nil {
		w.err = fmt.Errorf("initramfs: %w", err)
	}
	return n, w.err
}

// Close writes the cpio trailer and ends the zstd frame. It does not close
// the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return ErrWriteAfterClose
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.cw.Close(); err != nil {
		return fmt.Errorf("initramfs: cpio trailer: %w", err)
	}
	if w.zw != nil {
		if err := w.zw.Close(); err != nil {
			return fmt.Errorf("initramfs: zstd: %w", err)
		}
	}
	return nil
}
