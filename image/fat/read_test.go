package fat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"testing/fstest"
	"time"

	"byzantium/ci/testenv"
	"byzantium/modules/entry"
)

// checkFS reads every file the tree should hold through OpenFS, checks
// its content, runs testing/fstest over the whole file system and checks
// that nothing else is there.
func checkFS(t *testing.T, img string, offset int64, want map[string]int64) *FS {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fsys, err := OpenFS(f, offset)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for p, size := range want {
		names = append(names, p)
		got, err := fs.ReadFile(fsys, p)
		if err != nil {
			t.Errorf("ReadFile(%s): %v", p, err)
			continue
		}
		wantBody, _ := io.ReadAll(body(p, size))
		if !bytes.Equal(got, wantBody) {
			t.Errorf("%s: %d bytes read, differing from the %d written", p, len(got), size)
		}
	}
	sort.Strings(names)
	if err := fstest.TestFS(fsys, names...); err != nil {
		t.Error(err)
	}
	seen := 0
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		if !d.IsDir() {
			seen++
			if _, ok := want[p]; !ok {
				t.Errorf("unexpected file %s", p)
			}
		}
		return nil
	})
	if seen != len(want) {
		t.Errorf("%d files found, want %d", seen, len(want))
	}
	return fsys
}

// TestReadOwnWriter reads back what Writer wrote, at an offset as in a
// partition.
func TestReadOwnWriter(t *testing.T) {
	img := filepath.Join(t.TempDir(), "w.img")
	hs := []*entry.Header{dir("EFI"), dir("EFI/BOOT"), file("EFI/BOOT/BOOTX64.EFI", 9000), file("boot/vmlinuz", 3<<20+17),
		file("byzantium/manifest.json", 700), file("byzantium/media-0123456789abcdef", 17), file("empty", 0),
		file("byzantium/rootcopy/etc/a rather long name with spaces.conf", 33), file("README.txt", 5)}
	want := map[string]int64{}
	for _, h := range hs {
		if h.Type == entry.TypeRegular {
			want[h.Path] = h.Size
		}
	}
	write(t, img, 1<<20, 40<<20, Options{Label: "BYZANTIUM", VolumeID: 0x12345678, ModTime: testTime}, hs)
	fsys := checkFS(t, img, 1<<20, want)
	if fsys.Label() != "BYZANTIUM" || fsys.VolumeID() != 0x12345678 {
		t.Errorf("label %q, ID %#x", fsys.Label(), fsys.VolumeID())
	}
	// Case-insensitive lookup, as FAT compares names; the stored name
	// comes back.
	fi, err := fs.Stat(fsys, "BOOT/VMLINUZ")
	// FAT keeps even seconds: 07:08:09 comes back as 07:08:08.
	if err != nil || fi.Name() != "vmlinuz" || fi.Size() != 3<<20+17 || !fi.ModTime().Equal(testTime.Add(-time.Second)) {
		t.Errorf("Stat(BOOT/VMLINUZ) = %v, %v", fi, err)
	}
	if _, err := fsys.Open("boot/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
	if _, err := fsys.Open("README.txt/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(under a file) = %v, want ErrNotExist", err)
	}
}

// mtools runs an mtools command on img with the checks that refuse
// unaligned geometries turned off.
func mtools(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(testenv.RequireTool(t, args[0]), args[1:]...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "TZ=UTC")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// TestReadForeign reads volumes other tools made: mkfs.fat's and
// mformat's FAT32 filled by mcopy, with long names, lower-case 8.3 names
// (which mtools stores with the NT case flags or a long name), nested
// folders, a directory of many entries and a file whose clusters are not
// contiguous (written after freeing a gap smaller than it).
func TestReadForeign(t *testing.T) {
	src := t.TempDir()
	want := map[string]int64{}
	put := func(p string, size int64) {
		full := filepath.Join(src, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		b, _ := io.ReadAll(body(p, size))
		must(t, os.WriteFile(full, b, 0o644))
	}
	for _, mk := range []struct {
		name string
		cmd  func(img string) []string
	}{
		{"mkfs.fat", func(img string) []string { return []string{"mkfs.fat", "-F", "32", "-n", "STICK", img} }},
		{"mformat", func(img string) []string { return []string{"mformat", "-F", "-v", "STICK", "-i", img, "::"} }},
	} {
		t.Run(mk.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "v.img")
			must(t, os.WriteFile(img, nil, 0o644))
			must(t, os.Truncate(img, 64<<20))
			mtools(t, mk.cmd(img)...)
			clear(want)
			files := map[string]int64{
				"gap/a":                           5000,
				"gap/b":                           700,
				"boot/vmlinuz":                    300000,
				"boot/initrd.zst":                 1,
				"EFI/BOOT/BOOTX64.EFI":            4097,
				"byzantium/Mixed Case Name.x":     10,
				"byzantium/rootcopy/etc/hostname": 6,
				"UPPER.TXT":                       3,
			}
			for i := range 70 {
				files[fmt.Sprintf("many/file number %02d with a long name.txt", i)] = int64(i * 11)
			}
			for p, size := range files {
				put(p, size)
			}
			mtools(t, "mcopy", "-s", "-i", img, filepath.Join(src, "gap"), filepath.Join(src, "boot"), filepath.Join(src, "EFI"),
				filepath.Join(src, "byzantium"), filepath.Join(src, "UPPER.TXT"), filepath.Join(src, "many"), "::")
			// Free gap/a's clusters and add a file larger than the gap
			// (Volume.AddFile takes the first free clusters), so its
			// chain jumps from the gap to the end.
			mtools(t, "mdel", "-i", img, "::gap/a")
			delete(files, "gap/a")
			files["frag.bin"] = 40000
			rw, err := os.OpenFile(img, os.O_RDWR, 0)
			must(t, err)
			v, err := OpenVolume(rw, 0)
			must(t, err)
			must(t, v.AddFile("frag.bin", 40000, body("frag.bin", 40000), testTime))
			must(t, rw.Close())
			for p, size := range files {
				want[p] = size
			}
			fsys := checkFS(t, img, 0, want)
			if fsys.Label() != "STICK" {
				t.Errorf("label %q", fsys.Label())
			}
			// The fragmented file really is fragmented: else this test
			// proves less than it says.
			e, err := fsys.lookup("t", "frag.bin")
			must(t, err)
			fl := &fileR{fs: fsys, e: e}
			must(t, fl.load())
			if _, n := fl.run(0, int64(e.size)); n == int64(e.size) {
				t.Error("frag.bin came out contiguous: the test does not read a fragmented chain")
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// virtualDisk is fuzz data followed by zeros up to size.
type virtualDisk struct {
	data []byte
	size int64
}

func (d virtualDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > d.size-off {
		n = int(d.size - off)
	}
	clear(p[:n])
	if off < int64(len(d.data)) {
		copy(p[:n], d.data[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// FuzzOpenFS feeds made-up volumes to the reader, which must never panic
// or allocate without bound: a stick plugged into a node is untrusted. The
// seed is the start of a small volume Writer made (boot sector, FATs,
// root directory and the first clusters), the rest reads as zeros.
func FuzzOpenFS(f *testing.F) {
	img := filepath.Join(f.TempDir(), "seed.img")
	hs := []*entry.Header{dir("EFI"), file("EFI/BOOT/BOOTX64.EFI", 700), file("byzantium/a long name.xzm", 3000),
		file("boot/vmlinuz", 1200), file("empty", 0)}
	fh, err := os.Create(img)
	if err != nil {
		f.Fatal(err)
	}
	fh.Truncate(40 << 20)
	w, err := NewWriter(fh, 0, 40<<20, Options{Label: "SEED", ModTime: testTime})
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range hs {
		w.WriteHeader(h)
		io.Copy(w, body(h.Path, h.Size))
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	seed := make([]byte, 1<<20)
	fh.ReadAt(seed, 0)
	fh.Close()
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys, err := OpenFS(virtualDisk{data, 40 << 20}, 0)
		if err != nil {
			return
		}
		n := 0
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if n++; err != nil || n > 1000 {
				return fs.SkipAll
			}
			if !d.IsDir() {
				if fl, err := fsys.Open(p); err == nil {
					io.Copy(io.Discard, io.LimitReader(fl, 1<<20))
					fl.Close()
				}
			}
			return nil
		})
	})
}

// TestReadCycle: a directory entry that points back at the root (a
// damaged or made-up volume) must not make a walk endless.
func TestReadCycle(t *testing.T) {
	img := filepath.Join(t.TempDir(), "c.img")
	write(t, img, 0, 40<<20, Options{ModTime: testTime}, []*entry.Header{dir("A"), file("A/X", 10)})
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	v, err := OpenVolume(f, 0)
	must(t, err)
	raw := make([]byte, v.clusterSize())
	_, err = f.ReadAt(raw, v.clusterOffset(v.root))
	must(t, err)
	i := bytes.Index(raw, []byte("A          \x10"))
	if i < 0 {
		t.Fatal("no entry for A in the root")
	}
	raw[i+20], raw[i+21], raw[i+26], raw[i+27] = 0, 0, byte(v.root), 0
	_, err = f.WriteAt(raw, v.clusterOffset(v.root))
	must(t, err)
	fsys, err := OpenFS(f, 0)
	must(t, err)
	n := 0
	fs.WalkDir(fsys, ".", func(string, fs.DirEntry, error) error {
		if n++; n > 100 {
			t.Fatal("the walk goes on and on")
		}
		return nil
	})
	if _, err := fsys.Open("A/A/A"); err == nil {
		t.Error("A/A/A opens")
	}
}
