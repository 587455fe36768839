package iso9660

import (
	"fmt"
	"io"
)

// out is the image being written, addressed in bytes from the offset the
// Writer started at. File data goes through it sector by sector; when the
// destination can be truncated (an *os.File), all-zero sectors are skipped
// with a seek instead of written, so a 4 GiB sparse input makes a sparse
// image rather than 4 GiB of zeros on disk.
type out struct {
	ws     io.WriteSeeker
	base   int64 // offset of byte 0 of the image in ws
	pos    int64 // logical end of what has been emitted (written or skipped)
	wpos   int64 // where ws is positioned, relative to base
	buf    []byte
	sparse bool
}

// truncater is what an *os.File offers beyond io.WriteSeeker.
type truncater interface{ Truncate(size int64) error }

const outBufSize = 256 << 10

func newOut(ws io.WriteSeeker) (*out, error) {
	base, err := ws.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("iso9660: finding the start offset: %w", err)
	}
	o := &out{ws: ws, base: base, buf: make([]byte, 0, outBufSize)}
	// Skipping zeros is only safe if everything past our start reads as
	// zero, which truncating to the start guarantees.
	if t, ok := ws.(truncater); ok && t.Truncate(base) == nil {
		o.sparse = true
	}
	return o, nil
}

// write appends p at the logical end.
func (o *out) write(p []byte) error {
	for len(p) > 0 {
		if len(o.buf) == cap(o.buf) {
			if err := o.flush(); err != nil {
				return err
			}
		}
		n := copy(o.buf[len(o.buf):cap(o.buf)], p)
		o.buf = o.buf[:len(o.buf)+n]
		o.pos += int64(n)
		p = p[n:]
	}
	return nil
}

// sector appends one full sector of file data, skipping it if it is all
// zeros and the output allows holes.
func (o *out) sector(s []byte) error {
	if o.sparse && isZero(s) {
		if err := o.flush(); err != nil {
			return err
		}
		o.pos += int64(len(s))
		return nil
	}
	return o.write(s)
}

// pad appends zeros up to the next multiple of sectorSize.
func (o *out) pad() error {
	if r := o.pos % sectorSize; r != 0 {
		return o.write(make([]byte, sectorSize-r))
	}
	return nil
}

// flush writes the buffer at the logical position it belongs to.
func (o *out) flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	at := o.pos - int64(len(o.buf))
	if at != o.wpos {
		if _, err := o.ws.Seek(o.base+at, io.SeekStart); err != nil {
			return fmt.Errorf("iso9660: seek to %d: %w", at, err)
		}
	}
	if _, err := o.ws.Write(o.buf); err != nil {
		return fmt.Errorf("iso9660: write at %d: %w", at, err)
	}
	o.wpos = o.pos
	o.buf = o.buf[:0]
	return nil
}

// writeAt patches bytes already emitted (volume descriptors, the boot info
// table, the system area). It flushes first so the patch is not overtaken.
func (o *out) writeAt(p []byte, off int64) error {
	if err := o.flush(); err != nil {
		return err
	}
	if _, err := o.ws.Seek(o.base+off, io.SeekStart); err != nil {
		return fmt.Errorf("iso9660: seek to %d: %w", off, err)
	}
	if _, err := o.ws.Write(p); err != nil {
		return fmt.Errorf("iso9660: write at %d: %w", off, err)
	}
	o.wpos = off + int64(len(p))
	return nil
}

// finish makes the image exactly size bytes long: a trailing hole left by
// skipped sectors must still count towards the file's length.
func (o *out) finish(size int64) error {
	if err := o.flush(); err != nil {
		return err
	}
	if size < o.pos {
		return fmt.Errorf("iso9660: internal error: image size %d below written %d", size, o.pos)
	}
	if o.sparse {
		if t, ok := o.ws.(truncater); ok {
			if err := t.Truncate(o.base + size); err != nil {
				return fmt.Errorf("iso9660: extending the image to %d bytes: %w", size, err)
			}
		}
		o.pos = size
		return nil
	}
	for o.pos < size {
		n := min(size-o.pos, outBufSize)
		if err := o.write(make([]byte, n)); err != nil {
			return err
		}
	}
	return o.flush()
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
