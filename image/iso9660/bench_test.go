package iso9660

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkWriter streams 1,000 files of 64 KiB (64 MiB) into an image in
// memory, the way make bench compares us with xorriso.
func BenchmarkWriter(b *testing.B) {
	s := newStream()
	for i := range 1000 {
		s.file(fmt.Sprintf("d%02d/f%04d.bin", i%50, i), 0o644, randBytes(uint64(i), 64<<10))
	}
	b.SetBytes(1000 * 64 << 10)
	b.ResetTimer()
	for b.Loop() {
		w, err := NewWriter(&discardSeeker{}, Options{ModTime: epoch})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := copyStream(w, s); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func copyStream(w *Writer, s *stream) (int, error) {
	r := s.reader()
	n := 0
	for {
		h, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := w.WriteHeader(h); err != nil {
			return n, err
		}
		if _, err := w.Write(s.bodies[h.Path]); err != nil {
			return n, err
		}
		n++
	}
}

// discardSeeker drops writes but tracks the position, so the benchmark
// measures the writer, not the disk.
type discardSeeker struct{ pos int64 }

func (d *discardSeeker) Write(p []byte) (int, error) { d.pos += int64(len(p)); return len(p), nil }

func (d *discardSeeker) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekStart {
		d.pos = off
	} else {
		d.pos += off
	}
	return d.pos, nil
}
