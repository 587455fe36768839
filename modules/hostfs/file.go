package hostfs

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
)

// holeBlock is the granularity of hole detection: the page and block size
// of every filesystem we extract to.
const holeBlock = 4096

var zeros [holeBlock]byte

// file writes a regular file's body from r, leaving holes where whole
// blocks are zero, then sets its attributes through the open descriptor.
func (x *extractor) file(h *entry.Header, full string, r io.Reader) error {
	fd, err := unix.Open(full, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	if err := x.writeSparse(f, io.LimitReader(r, h.Size), h.Size); err != nil {
		return err
	}
	if x.chown {
		if err := unix.Fchown(fd, int(h.UID), int(h.GID)); err != nil {
			return fmt.Errorf("fchown: %w", err)
		}
	}
	// Raw mode bits: os.File.Chmod would need fs.FileMode's setuid flags.
	if err := unix.Fchmod(fd, h.Mode); err != nil {
		return fmt.Errorf("fchmod: %w", err)
	}
	for _, name := range h.XattrNames() {
		if skipXattr(name) {
			continue
		}
		if err := unix.Fsetxattr(fd, name, h.Xattrs[name], 0); err != nil {
			return fmt.Errorf("fsetxattr %s: %w", name, err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return setMtime(h, full)
}

// writeSparse copies size bytes from r to the new, empty file f, seeking
// over all-zero blocks instead of writing them; a final truncate gives the
// file its length when it ends in a hole.
func (x *extractor) writeSparse(f *os.File, r io.Reader, size int64) error {
	var written int64
	for written < size {
		n, err := io.ReadFull(r, x.buf[:min(int64(len(x.buf)), size-written)])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("body ends after %d of %d bytes: %w", written+int64(n), size, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		if err := writeChunk(f, x.buf[:n], written); err != nil {
			return err
		}
		written += int64(n)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

// writeChunk writes b at off, one run of non-zero blocks per write.
func writeChunk(f *os.File, b []byte, off int64) error {
	for len(b) > 0 {
		// Skip leading zero blocks.
		for len(b) > 0 && bytes.Equal(b[:min(holeBlock, len(b))], zeros[:min(holeBlock, len(b))]) {
			k := min(holeBlock, len(b))
			b, off = b[k:], off+int64(k)
		}
		// Collect the run of data blocks that follows.
		end := 0
		for end < len(b) {
			k := min(holeBlock, len(b)-end)
			if bytes.Equal(b[end:end+k], zeros[:k]) {
				break
			}
			end += k
		}
		if end > 0 {
			if _, err := f.WriteAt(b[:end], off); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			b, off = b[end:], off+int64(end)
		}
	}
	return nil
}
