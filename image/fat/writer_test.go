package fat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/modules/entry"
)

// Trees that exercise the layout: sizes around the cluster size, long,
// unicode and awkward names, deep and wide directories.
func testTrees() map[string][]*entry.Header {
	const cs = 512 // cluster size of the 64–256 MiB volumes below
	trees := map[string][]*entry.Header{}

	var mixed []*entry.Header
	mixed = append(mixed, dir("."), dir("EFI"), dir("EFI/BOOT"), file("EFI/BOOT/BOOTX64.EFI", 3000))
	for _, n := range []int64{0, 1, cs - 1, cs, cs + 1, 3*cs + 7} {
		mixed = append(mixed, file(fmt.Sprintf("sizes/f%d", n), n))
	}
	for _, name := range []string{
		"README.TXT", "readme2.txt", "Mixed.Case", ".bashrc", "a.b.c.d", "with space.txt", "trailing~1.x",
		"ünïcödé-✓-日本語.dat", "+plus,comma;semi=eq[br].txt", "x.verylongextension",
		strings.Repeat("L", 255), strings.Repeat("é", 127), "thirteen-char", "twenty-six-characters-xyz",
	} {
		mixed = append(mixed, file("names/"+name, int64(len(name))))
	}
	ro := file("names/readonly", 10)
	ro.Mode = 0o444
	old := file("times/old", 1)
	old.ModTime = time.Date(1985, 3, 4, 5, 6, 7, 0, time.UTC)
	odd := file("times/odd-second", 1)
	odd.ModTime = time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC)
	mixed = append(mixed, ro, old, odd, dir("empty"), file("implied/parent/dirs/file", 5))
	// A later header for the same path replaces the file; its first
	// clusters become free space, which FSInfo must count.
	mixed = append(mixed, file("replaced", 5000), file("after-replaced", 1), file("replaced", 7))
	trees["mixed"] = mixed

	var deep []*entry.Header
	p := ""
	for i := range 10 {
		p += fmt.Sprintf("level-%d-directory/", i)
		deep = append(deep, file(p+"file.txt", int64(100*i)))
	}
	trees["deep"] = deep

	// 2,000 names sharing an 8-character prefix force numeric tails of
	// one to four digits; some names are 8.3 names themselves.
	var wide []*entry.Header
	for i := range 2000 {
		wide = append(wide, file(fmt.Sprintf("many/longprefix-%04d.txt", i), int64(i%7)))
	}
	for i := range 20 {
		wide = append(wide, file(fmt.Sprintf("many/LONGPR~%d.TXT", i+1), 1))
	}
	trees["wide"] = wide
	return trees
}

func TestTreesAgainstOracles(t *testing.T) {
	for name, hs := range testTrees() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "fat.img")
			write(t, img, 0, 64<<20, Options{Label: "BYZANTIUM", VolumeID: 0xC0FFEE, ModTime: testTime}, hs)
			fsck(t, img)
			compareTree(t, extract(t, img, 0), hs)
		})
	}
}

// TestSizes checks the geometry at the sizes the USB image uses, in
// sparse files, with a small tree.
func TestSizes(t *testing.T) {
	hs := []*entry.Header{file("EFI/BOOT/BOOTX64.EFI", 70000), file("a", 1)}
	for _, size := range []int64{64 << 20, 100 << 20, 256 << 20, 260<<20 + 512, 1 << 30, 4 << 30, 32 << 30} {
		t.Run(fmt.Sprintf("%dMiB", size>>20), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fat.img")
			write(t, img, 0, size, Options{ModTime: testTime}, hs)
			fsck(t, img)
			compareTree(t, extract(t, img, 0), hs)
		})
	}
}

// TestBigFile streams a 300 MiB file through in odd-sized writes.
func TestBigFile(t *testing.T) {
	hs := []*entry.Header{file("small-before", 10), file("modules/big.xzm", 300<<20), file("small-after", 10)}
	img := filepath.Join(t.TempDir(), "fat.img")
	write(t, img, 0, 512<<20, Options{ModTime: testTime}, hs)
	fsck(t, img)
	compareTree(t, extract(t, img, 0), hs)
}

// TestOffset writes the volume inside a larger file, as in a partition:
// mtools must read it there, and apart from the hidden-sector count it
// must be the same bytes as at offset 0.
func TestOffset(t *testing.T) {
	hs := testTrees()["mixed"]
	dir := t.TempDir()
	const off, size = 1 << 20, 64 << 20
	at0, atOff := filepath.Join(dir, "0.img"), filepath.Join(dir, "off.img")
	write(t, at0, 0, size, Options{Label: "X", ModTime: testTime}, hs)
	write(t, atOff, off, size, Options{Label: "X", ModTime: testTime}, hs)
	compareTree(t, extract(t, atOff, off), hs)
	a, _ := os.ReadFile(at0)
	b, _ := os.ReadFile(atOff)
	b = b[off:]
	for _, s := range []int{0, backupBoot} {
		if got := b[s*sectorSize+28]; got != off/sectorSize>>0&0xFF && s == 0 {
			t.Errorf("hidden sectors byte = %#x", got)
		}
		copy(b[s*sectorSize+28:s*sectorSize+32], a[s*sectorSize+28:])
	}
	if !bytes.Equal(a, b) {
		t.Error("volume at an offset differs from the volume at 0 beyond the hidden-sector count")
	}
}

func TestReproducible(t *testing.T) {
	hs := testTrees()["mixed"]
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	opts := Options{Label: "BYZ", VolumeID: 42, ModTime: testTime}
	write(t, a, 0, 64<<20, opts, hs)
	// Fill b with garbage first: no byte of the result may come from it
	// except in free clusters, which the comparison skips by comparing
	// the used prefix only (allocation is sequential).
	if err := os.WriteFile(b, bytes.Repeat([]byte{0xA5}, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, b, 0, 64<<20, opts, hs)
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if !bytes.Equal(x[:4<<20], y[:4<<20]) {
		t.Error("same stream and options gave different bytes")
	}
}

func TestRejects(t *testing.T) {
	symlink := &entry.Header{Path: "link", Type: entry.TypeSymlink, Linkname: "x"}
	hardlink := &entry.Header{Path: "hard", Type: entry.TypeHardlink, Linkname: "a"}
	for _, tc := range []struct {
		name    string
		hs      []*entry.Header
		want    error
		mention []string
	}{
		{"symlink", []*entry.Header{symlink}, entry.ErrUnsupported, []string{"link"}},
		{"hardlink", []*entry.Header{file("a", 1), hardlink}, entry.ErrUnsupported, []string{"hard"}},
		{"chardev", []*entry.Header{{Path: "dev/null", Type: entry.TypeCharDev}}, entry.ErrUnsupported, []string{"dev/null"}},
		{"fifo", []*entry.Header{{Path: "p", Type: entry.TypeFIFO}}, entry.ErrUnsupported, []string{"p"}},
		{"socket", []*entry.Header{{Path: "s", Type: entry.TypeSocket}}, entry.ErrUnsupported, []string{"s"}},
		{"case collision", []*entry.Header{file("d/Boot.cfg", 1), file("d/BOOT.CFG", 1)}, entry.ErrUnsupported, []string{"d/Boot.cfg", "d/BOOT.CFG"}},
		{"case collision in parent", []*entry.Header{file("EFI/a", 1), file("efi/b", 1)}, entry.ErrUnsupported, []string{"EFI", "efi"}},
		{"4 GiB", []*entry.Header{file("huge", 1<<32)}, entry.ErrUnsupported, []string{"huge", "4 GiB"}},
		{"colon", []*entry.Header{file("a:b", 1)}, entry.ErrUnsupported, []string{"a:b"}},
		{"trailing dot", []*entry.Header{file("x/name.", 1)}, entry.ErrUnsupported, []string{"x/name."}},
		{"name too long", []*entry.Header{file(strings.Repeat("n", 256), 1)}, entry.ErrUnsupported, []string{"256"}},
		{"file as parent", []*entry.Header{file("f", 1), file("f/g", 1)}, entry.ErrBadHeader, []string{"f/g"}},
		{"no space", []*entry.Header{file("a", 40<<20), file("b", 40<<20)}, ErrNoSpace, []string{"b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWriter(discard{}, 0, 64<<20, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var last error
			for _, h := range tc.hs {
				if last = w.WriteHeader(h); last != nil {
					break
				}
				if _, err := io.Copy(w, body(h.Path, h.Size)); err != nil {
					t.Fatal(err)
				}
			}
			if !errors.Is(last, tc.want) {
				t.Fatalf("error = %v, want %v", last, tc.want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(last.Error(), m) {
					t.Errorf("error %q does not mention %q", last, m)
				}
			}
			// A refused header leaves the writer usable.
			if err := w.Close(); err != nil {
				t.Errorf("Close after a refused header: %v", err)
			}
		})
	}
}

func TestBodyErrors(t *testing.T) {
	w, err := NewWriter(discard{}, 0, 64<<20, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrWriteTooLong) {
		t.Errorf("Write before a header = %v, want ErrWriteTooLong", err)
	}
	if err := w.WriteHeader(file("a", 2)); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write([]byte("xyz")); n != 2 || !errors.Is(err, ErrWriteTooLong) {
		t.Errorf("Write past the size = %d, %v, want 2, ErrWriteTooLong", n, err)
	}
	if err := w.WriteHeader(file("b", 2)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Close with a short body = %v, want io.ErrUnexpectedEOF", err)
	}
	if err := w.WriteHeader(file("c", 0)); !errors.Is(err, ErrWriteAfterClose) {
		t.Errorf("WriteHeader after Close = %v, want ErrWriteAfterClose", err)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		offset, size int64
		opts         Options
		want         error
	}{
		{"too small for FAT32", 0, 32 << 20, Options{}, ErrBadSize},
		{"over 2 TiB", 0, 3 << 40, Options{}, ErrBadSize},
		{"unaligned offset", 100, 64 << 20, Options{}, ErrBadOption},
		{"long label", 0, 64 << 20, Options{Label: "TWELVE CHARS"}, ErrBadOption},
		{"label with a dot", 0, 64 << 20, Options{Label: "A.B"}, ErrBadOption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewWriter(discard{}, tc.offset, tc.size, tc.opts); !errors.Is(err, tc.want) {
				t.Errorf("NewWriter = %v, want %v", err, tc.want)
			}
		})
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// TestShortNames pins the 8.3 names mtools shows for a directory.
func TestShortNames(t *testing.T) {
	mdir := testenv.RequireTool(t, "mdir")
	hs := []*entry.Header{
		file("d/readme.txt", 1), file("d/README2.TXT", 1), file("d/Long File Name.html", 1),
		file("d/Long File Other.html", 1), file("d/LONGFI~1.HTM", 1), file("d/.bashrc", 1), file("d/ü.txt", 1),
	}
	img := filepath.Join(t.TempDir(), "fat.img")
	write(t, img, 0, 64<<20, Options{}, hs)
	out, err := exec.Command(mdir, "-/", "-i", img, "::d").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v\n%s", err, out)
	}
	for _, want := range []string{
		"README   TXT         1 2024-05-06   7:08  readme.txt",
		"README2  TXT         1 2024-05-06   7:08 \n",
		"LONGFI~1 HTM         1 2024-05-06   7:08 \n",
		"LONGFI~2 HTM         1 2024-05-06   7:08  Long File Name.html",
		"LONGFI~3 HTM         1 2024-05-06   7:08  Long File Other.html",
		"BASHRC~1             1 2024-05-06   7:08  .bashrc",
		"_~1      TXT         1 2024-05-06   7:08  ü.txt",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("mdir lacks %q:\n%s", want, out)
		}
	}
}
