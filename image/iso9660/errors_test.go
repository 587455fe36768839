package iso9660

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules/entry"
)

// memFile is an io.WriteSeeker that cannot be truncated, so the Writer
// writes every zero instead of leaving holes.
type memFile struct {
	b   []byte
	pos int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := m.pos + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	copy(m.b[m.pos:], p)
	m.pos += int64(len(p))
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		m.pos = off
	case io.SeekCurrent:
		m.pos += off
	case io.SeekEnd:
		m.pos = int64(len(m.b)) + off
	}
	return m.pos, nil
}

// step is one call in a scripted use of the Writer.
type step struct {
	h     *entry.Header // WriteHeader if set
	write []byte        // else Write if set
	close bool          // else Close
	want  error         // nil: must succeed
	msg   string        // if set, the error text must contain it
}

func reg(p string, size int64) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, Size: size}
}

func TestErrors(t *testing.T) {
	bios := Options{BIOSBoot: &BIOSBoot{Path: "boot/isolinux.bin", CatalogPath: "boot/boot.cat", BootInfoTable: true}}
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"write past size", Options{}, []step{
			{h: reg("f", 3)}, {write: []byte("12345"), want: ErrWriteTooLong, msg: "f"},
		}},
		{"write without a body", Options{}, []step{
			{h: &entry.Header{Path: "d", Type: entry.TypeDir, Mode: 0o755}}, {write: []byte("x"), want: ErrWriteTooLong},
		}},
		{"short body is sticky", Options{}, []step{
			{h: reg("short", 10)}, {write: []byte("abc")},
			{h: reg("next", 0), want: io.ErrUnexpectedEOF, msg: "short"},
			{write: []byte("x"), want: io.ErrUnexpectedEOF},
			{close: true, want: io.ErrUnexpectedEOF},
		}},
		{"bad paths are refused but not sticky", Options{}, []step{
			{h: reg("/abs", 0), want: entry.ErrBadHeader},
			{h: reg("a/../b", 0), want: entry.ErrBadHeader},
			{h: reg("", 0), want: entry.ErrBadHeader},
			{h: reg(".", 0), want: entry.ErrBadHeader},
			{h: reg("ok", 0)}, {close: true},
		}},
		{"parent is a file", Options{}, []step{
			{h: reg("f", 0)}, {h: reg("f/x", 0), want: entry.ErrBadHeader, msg: "parent f is a regular"},
		}},
		{"name too long", Options{}, []step{
			{h: reg(strings.Repeat("x", 256), 0), want: entry.ErrUnsupported},
		}},
		{"boot file missing at Close", bios, []step{
			{h: reg("boot/other", 0)}, {close: true, want: ErrBoot, msg: "boot/isolinux.bin is not in the stream"},
		}},
		{"boot file is a directory", bios, []step{
			{h: &entry.Header{Path: "boot/isolinux.bin", Type: entry.TypeDir, Mode: 0o755}},
			{close: true, want: ErrBoot, msg: "boot/isolinux.bin is not a non-empty regular file"},
		}},
		{"boot file too short for a boot info table", bios, []step{
			{h: reg("boot/isolinux.bin", 10)}, {write: make([]byte, 10)},
			{close: true, want: ErrBoot, msg: "too short"},
		}},
		{"EFI image missing", Options{EFIBoot: &EFIBoot{Path: "efi.img"}}, []step{
			{close: true, want: ErrBoot, msg: "EFI boot image efi.img"},
		}},
		{"entry where the boot catalog goes", bios, []step{
			{h: reg("boot/boot.cat", 0), want: entry.ErrBadHeader, msg: "boot catalog"},
		}},
		{"directory where the boot catalog goes", bios, []step{
			{h: reg("boot/boot.cat/x", 0)}, {close: true, want: entry.ErrBadHeader, msg: "boot/boot.cat: the boot catalog goes there"},
		}},
		{"dangling hardlink", Options{}, []step{
			{h: &entry.Header{Path: "h", Type: entry.TypeHardlink, Linkname: "nowhere"}},
			{close: true, want: entry.ErrBadHeader, msg: "h: hardlink to nowhere"},
		}},
		{"hardlink to a directory", Options{}, []step{
			{h: &entry.Header{Path: "d", Type: entry.TypeDir, Mode: 0o755}},
			{h: &entry.Header{Path: "h", Type: entry.TypeHardlink, Linkname: "d"}},
			{close: true, want: entry.ErrUnsupported},
		}},
		{"close twice", Options{}, []step{
			{h: reg("f", 1)}, {write: []byte("x")}, {close: true},
			{close: true, want: ErrWriteAfterClose},
			{h: reg("g", 0), want: ErrWriteAfterClose},
			{write: []byte("x"), want: ErrWriteAfterClose},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWriter(&memFile{}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				var err error
				switch {
				case s.h != nil:
					err = w.WriteHeader(s.h)
				case s.write != nil:
					_, err = w.Write(s.write)
				default:
					err = w.Close()
				}
				if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
					t.Fatalf("step %d: error %v, want %v", i, err, s.want)
				}
				if s.msg != "" && !strings.Contains(err.Error(), s.msg) {
					t.Errorf("step %d: error %q does not mention %q", i, err, s.msg)
				}
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"volume ID too long", Options{VolumeID: strings.Repeat("V", 33)}},
		{"volume ID not ASCII", Options{VolumeID: "vólume"}},
		{"hybrid without MBR template", Options{Hybrid: true}},
		{"hybrid with a short template", Options{Hybrid: true, MBRTemplate: make([]byte, 400)}},
		{"unclean boot path", Options{BIOSBoot: &BIOSBoot{Path: "/boot/x"}}},
		{"catalog on the boot file", Options{BIOSBoot: &BIOSBoot{Path: "b", CatalogPath: "b"}}},
		{"empty EFI path", Options{EFIBoot: &EFIBoot{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewWriter(&memFile{}, tc.opts); !errors.Is(err, ErrBadOption) {
				t.Errorf("NewWriter: %v, want ErrBadOption", err)
			}
		})
	}
}

// TestMemoryMatchesFile writes the same hybrid image to a file (zero
// sectors become holes) and to memory (zeros written out), at an offset in
// both, and requires the same bytes.
func TestMemoryMatchesFile(t *testing.T) {
	s := newStream()
	s.file("zeros", 0o644, make([]byte, 5*2048+7))
	s.file("mixed", 0o644, append(make([]byte, 4096), randBytes(3, 3000)...))
	s.file("boot/b.bin", 0o644, randBytes(4, 4000))
	opts := Options{ModTime: epoch, Hybrid: true, MBRTemplate: bytes.Repeat([]byte{0xAB}, 432),
		BIOSBoot: &BIOSBoot{Path: "boot/b.bin", BootInfoTable: true}}

	const lead = 4096
	mem := &memFile{}
	mem.Write(make([]byte, lead))
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(bytes.Repeat([]byte{1}, lead))
	for _, out := range []io.WriteSeeker{mem, f} {
		w, err := NewWriter(out, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := entry.Copy(w, s.reader()); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fb, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fb[lead:], mem.b[lead:]) {
		t.Errorf("file and memory images differ (%d and %d bytes)", len(fb)-lead, len(mem.b)-lead)
	}
	if !bytes.Equal(fb[:lead], bytes.Repeat([]byte{1}, lead)) {
		t.Errorf("the writer touched bytes before its start offset")
	}
}
