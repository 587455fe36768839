package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
	"byzantium/modules/internal/testtree"
)

// readHaveRoot reports whether root-only parts of a test can run; without
// root they are left out with a log line, but under CI that is a failure.
func readHaveRoot(t testing.TB) bool {
	t.Helper()
	if os.Geteuid() == 0 {
		return true
	}
	if testtree.InCI() {
		t.Fatalf("root is required under CI (devices, ownership, trusted.* and security.* xattrs)")
	}
	t.Logf("not root: leaving out devices, ownership and trusted/security xattrs")
	return false
}

// buildReadTree fills dir with every kind of entry SquashFS can hold.
func buildReadTree(t *testing.T, dir string, root bool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(p string) { must(os.MkdirAll(filepath.Join(dir, p), 0o755)) }
	write := func(p string, b []byte) { must(os.WriteFile(filepath.Join(dir, p), b, 0o644)) }
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "line %d of a compressible file\n", i)
		}
		return b.Bytes()[:n]
	}

	mkdir("sizes")
	for _, n := range []int{0, 1, 4095, 4096, 4097, 131071, 131072, 131073, 300000} {
		// Random data does not compress, so its blocks are stored
		// uncompressed; text exercises the decompressors.
		write(fmt.Sprintf("sizes/rnd-%d", n), random(n))
		write(fmt.Sprintf("sizes/txt-%d", n), text(n))
	}
	write("sizes/dup-of-txt-300000", text(300000)) // mksquashfs shares the blocks
	// Machine code, on which mksquashfs -Xbcj x86 keeps the filter.
	write("sizes/x86-code", bcjSample(t, "x86", 400000))

	// A sparse file: data, a hole spanning whole blocks of every block
	// size used, data again.
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = f.Write(text(5000))
	must(err)
	_, err = f.WriteAt(text(7000), 3<<20)
	must(err)
	must(f.Close())

	mkdir("many")
	for i := range 10000 {
		write(fmt.Sprintf("many/f%05d", i), []byte(fmt.Sprint(i)))
	}
	deep := "deep"
	for i := range 40 {
		deep += fmt.Sprintf("/d%02d", i)
	}
	mkdir(deep)
	write(deep+"/bottom", []byte("bottom\n"))
	mkdir("empty")

	mkdir("links")
	must(os.Symlink("does/not/exist", filepath.Join(dir, "links/dangling")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "links/absolute")))
	must(os.Symlink("../sizes/txt-1", filepath.Join(dir, "links/relative")))
	must(os.Symlink(strings.Repeat("long/", 800), filepath.Join(dir, "links/long")))

	mkdir("hard/sub")
	write("hard/a", text(10000))
	must(os.Link(filepath.Join(dir, "hard/a"), filepath.Join(dir, "hard/b")))
	must(os.Link(filepath.Join(dir, "hard/a"), filepath.Join(dir, "hard/sub/c")))
	must(os.Symlink("a", filepath.Join(dir, "hard/sym1")))
	must(os.Link(filepath.Join(dir, "hard/sym1"), filepath.Join(dir, "hard/sym2")))

	mkdir("special")
	must(unix.Mkfifo(filepath.Join(dir, "special/fifo"), 0o640))
	must(unix.Mknod(filepath.Join(dir, "special/socket"), unix.S_IFSOCK|0o600, 0))

	mkdir("modes/sticky")
	mkdir("modes/setgid-dir")
	write("modes/setuid", []byte("u"))
	write("modes/setgid", []byte("g"))
	write("modes/none", []byte("n"))
	for p, m := range map[string]os.FileMode{
		"modes/setuid": 0o755 | os.ModeSetuid, "modes/setgid": 0o755 | os.ModeSetgid,
		"modes/sticky": 0o777 | os.ModeSticky, "modes/setgid-dir": 0o775 | os.ModeSetgid, "modes/none": 0,
	} {
		must(os.Chmod(filepath.Join(dir, p), m))
	}

	mkdir("xattr")
	big := bytes.Repeat([]byte("shared value "), 20) // repeated: mksquashfs stores it out of line
	for _, p := range []string{"xattr", "xattr/one", "xattr/two"} {
		if p != "xattr" {
			write(p, []byte(p))
		}
		must(unix.Lsetxattr(filepath.Join(dir, p), "user.big", big, 0))
	}
	must(unix.Lsetxattr(filepath.Join(dir, "xattr/one"), "user.small", []byte("1"), 0))
	must(unix.Lsetxattr(filepath.Join(dir, "xattr/one"), "user.empty", nil, 0))

	if root {
		mkdir("dev")
		must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(dir, "dev/sda1"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 1))))
		must(unix.Mknod(filepath.Join(dir, "dev/big"), unix.S_IFCHR|0o600, int(unix.Mkdev(300, 70000))))
		mkdir("owners")
		for i, id := range [][2]int{{1000, 1000}, {65534, 65534}, {100000, 200000}, {0, 5}} {
			p := filepath.Join(dir, fmt.Sprintf("owners/f%d", i))
			must(os.WriteFile(p, nil, 0o644))
			must(os.Lchown(p, id[0], id[1]))
		}
		must(os.Symlink("f0", filepath.Join(dir, "owners/link")))
		must(os.Lchown(filepath.Join(dir, "owners/link"), 42, 43))
		must(os.Lchown(filepath.Join(dir, "owners"), 7, 8))
		must(unix.Lsetxattr(filepath.Join(dir, "xattr/one"), "trusted.overlay.opaque", []byte("y"), 0))
		must(unix.Lsetxattr(filepath.Join(dir, "xattr/two"), "security.capability", []byte{1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))
		must(unix.Lsetxattr(filepath.Join(dir, "links/absolute"), "trusted.on-a-symlink", []byte("s"), 0))
	}

	// Distinct mtimes, set last so that creating children does not bump
	// a directory's.
	i := 0
	must(filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		i++
		ts := []unix.Timespec{unix.NsecToTimespec(0), unix.NsecToTimespec(int64(1_500_000_000+i*1000) * 1e9)}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

// readWant is what the source tree says an entry must look like.
type readWant struct {
	h   entry.Header
	sum [32]byte
}

// readSourceTree describes dir the way Entries must: the same order
// (WalkDir sorts names bytewise, as the reader does), hard links as
// TypeHardlink naming the first path.
func readSourceTree(t *testing.T, dir string) []readWant {
	t.Helper()
	var out []readWant
	first := map[[2]uint64]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		w := readWant{h: entry.Header{
			Path: filepath.ToSlash(rel), Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
			ModTime: time.Unix(st.Mtim.Sec, 0).UTC(),
		}}
		key := [2]uint64{st.Dev, st.Ino}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			if f, ok := first[key]; ok {
				w.h.Type, w.h.Linkname = entry.TypeHardlink, f
				out = append(out, w)
				return nil
			}
			first[key] = w.h.Path
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			w.h.Type = entry.TypeDir
		case unix.S_IFREG:
			w.h.Type = entry.TypeRegular
			w.h.Size = st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			w.sum = sha256.Sum256(b)
		case unix.S_IFLNK:
			w.h.Type = entry.TypeSymlink
			if w.h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			w.h.Type = entry.TypeCharDev
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				w.h.Type = entry.TypeBlockDev
			}
			w.h.Devmajor, w.h.Devminor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
		case unix.S_IFIFO:
			w.h.Type = entry.TypeFIFO
		case unix.S_IFSOCK:
			w.h.Type = entry.TypeSocket
		}
		w.h.Xattrs, err = readLxattrs(p)
		out = append(out, w)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readLxattrs(p string) (map[string][]byte, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("llistxattr %s: %w", p, err)
	}
	var xs map[string][]byte
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, fmt.Errorf("lgetxattr %s %s: %w", p, name, err)
		}
		if xs == nil {
			xs = map[string][]byte{}
		}
		xs[name] = v[:m]
	}
	return xs, nil
}

// readOpen opens an image file with NewReader.
func readOpen(t *testing.T, img string) *Reader {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(f, st.Size())
	if err != nil {
		t.Fatalf("NewReader(%s): %v", img, err)
	}
	return r
}

// readAll walks every entry of r, hashing regular file bodies.
func readAll(t *testing.T, r *Reader) []readWant {
	t.Helper()
	var got []readWant
	es := r.Entries()
	for {
		h, err := es.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("Next after %d entries: %v", len(got), err)
		}
		w := readWant{h: *h}
		if h.Type == entry.TypeRegular {
			s := sha256.New()
			n, err := io.Copy(s, es)
			if err != nil {
				t.Fatalf("%s: reading body: %v", h.Path, err)
			}
			if n != h.Size {
				t.Fatalf("%s: body is %d bytes, header says %d", h.Path, n, h.Size)
			}
			copy(w.sum[:], s.Sum(nil))
		}
		if err := h.Validate(); err != nil {
			t.Errorf("%s: %v", h.Path, err)
		}
		got = append(got, w)
	}
}

// TestReaderOracle builds a tree with every kind of entry, packs it with
// mksquashfs under several compressors and block sizes, and checks that the
// reader gives back exactly what the source tree holds.
func TestReaderOracle(t *testing.T) {
	mksquashfs := testtree.RequireTool(t, "mksquashfs")
	root := readHaveRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	buildReadTree(t, src, root)
	want := readSourceTree(t, src)

	for _, tc := range []struct {
		name     string
		args     []string
		wantOpts map[string]int
	}{
		{"zstd", []string{"-comp", "zstd"}, map[string]int{}},
		{"gzip", []string{"-comp", "gzip"}, map[string]int{}},
		{"xz", []string{"-comp", "xz"}, map[string]int{}},
		{"zstd-level3-b4096", []string{"-comp", "zstd", "-Xcompression-level", "3", "-b", "4096"}, map[string]int{"level": 3}},
		{"gzip-level5-b1m", []string{"-comp", "gzip", "-Xcompression-level", "5", "-b", "1048576"}, map[string]int{"level": 5, "window-size": 15}},
		{"xz-dict64k", []string{"-comp", "xz", "-Xdict-size", "65536"}, map[string]int{"dict-size": 65536}},
		{"lz4", []string{"-comp", "lz4"}, map[string]int{"version": 1, "flags": 0}},
		{"lz4-hc", []string{"-comp", "lz4", "-Xhc"}, map[string]int{"version": 1, "flags": 1}},
		{"lzo", []string{"-comp", "lzo"}, map[string]int{}}, // lzo1x_999 level 8
		{"lzo1x_1", []string{"-comp", "lzo", "-Xalgorithm", "lzo1x_1"}, map[string]int{"algorithm": 0}},
		{"lzma", []string{"-comp", "lzma"}, map[string]int{}},
		{"xz-bcj-x86-b256k", []string{"-comp", "xz", "-b", "256K", "-Xbcj", "x86"}, map[string]int{"dict-size": 256 << 10, "filters": 1}},
		{"always-use-fragments", []string{"-comp", "zstd", "-always-use-fragments"}, map[string]int{}},
		{"no-fragments", []string{"-comp", "gzip", "-no-fragments"}, map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img.sqfs")
			args := append([]string{src, img, "-noappend", "-quiet", "-no-progress", "-processors", "2"}, tc.args...)
			if out, err := exec.Command(mksquashfs, args...).CombinedOutput(); err != nil {
				t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
			}
			r := readOpen(t, img)
			got := readAll(t, r)
			readCompare(t, got, want)

			opts, err := r.CompressorOptions()
			if err != nil {
				t.Fatalf("CompressorOptions: %v", err)
			}
			for k, v := range tc.wantOpts {
				if opts[k] != v {
					t.Errorf("CompressorOptions()[%q] = %d, want %d (all: %v)", k, opts[k], v, opts)
				}
			}
			if len(tc.wantOpts) == 0 && len(opts) != 0 {
				t.Errorf("CompressorOptions() = %v, want none stored", opts)
			}
			if sb := r.Superblock(); int(sb.InodeCount) != readInodeCount(want) {
				t.Errorf("InodeCount = %d, want %d", sb.InodeCount, readInodeCount(want))
			}
			readCheckLookups(t, r, want)
		})
	}
}

// readInodeCount is the number of distinct inodes in a wanted tree.
func readInodeCount(want []readWant) int {
	n := 0
	for _, w := range want {
		if w.h.Type != entry.TypeHardlink {
			n++
		}
	}
	return n
}

func readCompare(t *testing.T, got, want []readWant) {
	t.Helper()
	gotPaths := make([]string, len(got))
	for i, g := range got {
		gotPaths[i] = g.h.Path
	}
	wantPaths := make([]string, len(want))
	for i, w := range want {
		wantPaths[i] = w.h.Path
	}
	if !slices.Equal(gotPaths, wantPaths) {
		for i := range min(len(got), len(want)) {
			if gotPaths[i] != wantPaths[i] {
				t.Fatalf("entry %d is %q, want %q (%d entries, want %d)", i, gotPaths[i], wantPaths[i], len(got), len(want))
			}
		}
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.h.Type == entry.TypeHardlink {
			// The link's own metadata is its target's; only the name matters.
			g.h = entry.Header{Path: g.h.Path, Type: g.h.Type, Linkname: g.h.Linkname}
			w.h = entry.Header{Path: w.h.Path, Type: w.h.Type, Linkname: w.h.Linkname}
		}
		if len(g.h.Xattrs) == 0 && len(w.h.Xattrs) == 0 {
			g.h.Xattrs, w.h.Xattrs = nil, nil
		}
		if !reflect.DeepEqual(g.h, w.h) {
			t.Errorf("%s:\n got %+v\nwant %+v", w.h.Path, g.h, w.h)
		}
		if g.sum != w.sum {
			t.Errorf("%s: content sha256 %x, want %x", w.h.Path, g.sum[:8], w.sum[:8])
		}
	}
}

// readCheckLookups checks Stat and ReadFile against the source tree for
// every entry outside the 10,000-entry directory and a sample inside it.
func readCheckLookups(t *testing.T, r *Reader, want []readWant) {
	t.Helper()
	for i, w := range want {
		if strings.HasPrefix(w.h.Path, "many/") && i%997 != 0 {
			continue
		}
		h, err := r.Stat(w.h.Path)
		if err != nil {
			t.Errorf("Stat(%q): %v", w.h.Path, err)
			continue
		}
		if w.h.Type == entry.TypeHardlink {
			if h.Type == entry.TypeHardlink || h.Type == entry.TypeDir {
				t.Errorf("Stat(%q).Type = %s, want the target's type", w.h.Path, h.Type)
			}
			continue
		}
		if h.Type != w.h.Type || h.Mode != w.h.Mode || h.Size != w.h.Size || !h.ModTime.Equal(w.h.ModTime) || !maps.EqualFunc(h.Xattrs, w.h.Xattrs, bytes.Equal) {
			t.Errorf("Stat(%q) = %+v, want %+v", w.h.Path, h, w.h)
		}
		if w.h.Type == entry.TypeRegular {
			b, err := r.ReadFile(w.h.Path)
			if err != nil {
				t.Errorf("ReadFile(%q): %v", w.h.Path, err)
			} else if sha256.Sum256(b) != w.sum {
				t.Errorf("ReadFile(%q): wrong content (%d bytes)", w.h.Path, len(b))
			}
		}
	}
	for _, p := range []string{"nope", "sizes/nope", "sizes/txt-1/below-a-file", "many/f99999"} {
		if _, err := r.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want fs.ErrNotExist", p, err)
		}
		if _, err := r.ReadFile(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%q) = %v, want fs.ErrNotExist", p, err)
		}
	}
	if _, err := r.ReadFile("sizes"); err == nil {
		t.Errorf("ReadFile of a directory succeeded")
	}
}

// TestReaderLargeFile checks a file past 4 GiB, which needs the extended
// file inode's 64-bit size and block start, read through sparse blocks.
func TestReaderLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4 GiB")
	}
	mksquashfs := testtree.RequireTool(t, "mksquashfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 4<<30 + 12345
	f, err := os.Create(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1 << 31, 4 << 30, size - 10} {
		if _, err := f.WriteAt(fmt.Appendf(nil, "%10d", off), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img.sqfs")
	if out, err := exec.Command(mksquashfs, src, img, "-noappend", "-quiet", "-no-progress", "-comp", "zstd", "-b", "1048576").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	want := readSourceTree(t, src)
	readCompare(t, readAll(t, readOpen(t, img)), want)
}

// readImage loads a test image from testdata.
func readImage(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readWalkBytes opens b and walks it, reading every body, and returns the
// first error.
func readWalkBytes(b []byte) (int, error) {
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return 0, err
	}
	es := r.Entries()
	n := 0
	for {
		_, err := es.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
		if _, err := io.Copy(io.Discard, es); err != nil {
			return n, err
		}
	}
}

// TestReaderTestdata reads the kept images, each made by testdata/mkimages.sh.
func TestReaderTestdata(t *testing.T) {
	for _, name := range []string{"small-gzip.sqfs", "small-xz.sqfs", "small-zstd.sqfs", "small-lz4.sqfs", "small-lzo.sqfs", "small-lzma.sqfs"} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(readImage(t, name)), int64(len(readImage(t, name))))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]*entry.Header{}
			es := r.Entries()
			for {
				h, err := es.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got[h.Path] = h
			}
			for _, tc := range []struct {
				path string
				want entry.Header
			}{
				{"hello.txt", entry.Header{Type: entry.TypeRegular, Size: 16, Mode: 0o644, Xattrs: map[string][]byte{"user.comment": []byte("a squashfs test")}}},
				{"sub", entry.Header{Type: entry.TypeDir, Mode: 0o755, Xattrs: map[string][]byte{"trusted.overlay.opaque": []byte("y")}}},
				{"sub/hardlink", entry.Header{Type: entry.TypeHardlink, Mode: 0o644, Linkname: "hello.txt"}},
				{"sub/symlink", entry.Header{Type: entry.TypeSymlink, Mode: 0o777, Linkname: "../hello.txt"}},
				{"null", entry.Header{Type: entry.TypeCharDev, Mode: 0o644, Devmajor: 1, Devminor: 3}},
				{"fifo", entry.Header{Type: entry.TypeFIFO, Mode: 0o644}},
				{"zeros", entry.Header{Type: entry.TypeRegular, Mode: 0o644, Size: 5000}},
				{"seq.txt", entry.Header{Type: entry.TypeRegular, Mode: 0o644, Size: 8893}},
			} {
				h := got[tc.path]
				tc.want.Path = tc.path
				tc.want.ModTime = time.Unix(1600000000, 0).UTC()
				if h == nil || !reflect.DeepEqual(*h, tc.want) {
					t.Errorf("%s: got %+v, want %+v", tc.path, h, tc.want)
				}
			}
			b, err := r.ReadFile("seq.txt")
			if err != nil || !strings.HasPrefix(string(b), "1\n2\n3\n") || !strings.HasSuffix(string(b), "1999\n2000\n") {
				t.Errorf("ReadFile(seq.txt) = %d bytes, %v", len(b), err)
			}
			if b, err := r.ReadFile("zeros"); err != nil || !bytes.Equal(b, make([]byte, 5000)) {
				t.Errorf("ReadFile(zeros) = %d bytes, %v; want 5000 zeros", len(b), err)
			}
		})
	}
}

// readPatch returns a copy of b with f applied.
func readPatch(b []byte, f func(b []byte)) []byte {
	c := bytes.Clone(b)
	f(c)
	return c
}

// TestReaderCorrupt checks that broken images give the right sentinel error,
// and never a panic.
func TestReaderCorrupt(t *testing.T) {
	gz := readImage(t, "small-gzip.sqfs")
	plain := readImage(t, "plain.sqfs") // uncompressed tables: a/f only
	le := binary.LittleEndian
	var sb Superblock
	if err := sb.UnmarshalBinary(plain); err != nil {
		t.Fatal(err)
	}

	// In plain.sqfs the root listing is the whole directory table: a
	// 2-byte block header, then the root's one header and entry "f".
	// Pointing that entry back at the root makes a loop.
	rootBlock, rootOff := uint32(sb.RootInode>>16), uint16(sb.RootInode)
	dirData := int(sb.DirTableStart) + 2

	for _, tc := range []struct {
		name string
		img  []byte
		want error
	}{
		{"empty", nil, ErrNotSquashfs},
		{"short", gz[:50], ErrNotSquashfs},
		{"bad magic", readPatch(gz, func(b []byte) { b[0] = 'x' }), ErrNotSquashfs},
		{"version 3", readPatch(gz, func(b []byte) { le.PutUint16(b[28:], 3) }), ErrNotSquashfs},
		{"block size", readPatch(gz, func(b []byte) { le.PutUint32(b[12:], 3000) }), ErrCorrupt},
		{"compressor 7", readPatch(gz, func(b []byte) { le.PutUint16(b[20:], 7) }), ErrUnsupportedCompression},
		{"truncated", gz[:len(gz)-100], ErrCorrupt},
		{"bytes used past end", readPatch(gz, func(b []byte) { le.PutUint64(b[40:], 1<<40) }), ErrCorrupt},
		{"inode table after dir table", readPatch(gz, func(b []byte) { le.PutUint64(b[64:], le.Uint64(b[72:])+1) }), ErrCorrupt},
		{"id table outside", readPatch(gz, func(b []byte) { le.PutUint64(b[48:], 10) }), ErrCorrupt},
		{"root ref outside", readPatch(gz, func(b []byte) { le.PutUint64(b[32:], 1<<40) }), ErrCorrupt},
		{"huge fragment count", readPatch(gz, func(b []byte) { le.PutUint32(b[16:], 1<<31) }), ErrCorrupt},
		{"metadata length 0", readPatch(plain, func(b []byte) { le.PutUint16(b[sb.InodeTableStart:], 0x8000) }), ErrCorrupt},
		{"metadata length past table", readPatch(plain, func(b []byte) { le.PutUint16(b[sb.InodeTableStart:], 0x8000|8000) }), ErrCorrupt},
		{"unknown inode type", readPatch(plain, func(b []byte) {
			le.PutUint16(b[int(sb.InodeTableStart)+2+int(rootBlock)+int(rootOff):], 99)
		}), ErrCorrupt},
		{"directory loop", readPatch(plain, func(b []byte) {
			le.PutUint32(b[dirData+4:], rootBlock) // header: inode block
			le.PutUint16(b[dirData+12:], rootOff)  // entry: offset in block
			le.PutUint16(b[dirData+16:], 1)        // entry: type dir
		}), ErrCorrupt},
		{"dot name", readPatch(plain, func(b []byte) { b[dirData+20] = '.' }), ErrCorrupt},
		{"slash in name", readPatch(plain, func(b []byte) { b[dirData+20] = '/' }), ErrCorrupt},
		{"too many entries in header", readPatch(plain, func(b []byte) { le.PutUint32(b[dirData:], 300) }), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readWalkBytes(tc.img)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The patched images must fail for the reason patched in.
			why := map[string]string{
				"directory loop": "reached twice", "dot name": `named "."`, "slash in name": `named "/"`,
				"too many entries in header": "at most 256", "unknown inode type": "type 99", "compressor 7": "compressor id 7",
			}[tc.name]
			if !strings.Contains(err.Error(), why) {
				t.Errorf("error %q does not say %q", err, why)
			}
		})
	}

	// Any single flipped byte past the superblock: an error, if any, wraps
	// ErrCorrupt; nothing panics. The exception is the lz4 format version
	// in the compressor options (the metadata block after the superblock),
	// which reads as a version this reader does not know.
	for _, name := range []string{"small-gzip.sqfs", "plain.sqfs", "small-zstd.sqfs", "small-xz.sqfs",
		"small-lz4.sqfs", "small-lzo.sqfs", "small-lzma.sqfs"} {
		img := readImage(t, name)
		for i := SuperblockSize; i < len(img); i++ {
			c := readPatch(img, func(b []byte) { b[i] ^= 0xA5 })
			_, err := readWalkBytes(c)
			if name == "small-lz4.sqfs" && i >= SuperblockSize+2 && i < SuperblockSize+2+4 && errors.Is(err, ErrUnsupportedCompression) {
				continue
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: byte %d flipped: error %v does not wrap ErrCorrupt", name, i, err)
			}
		}
	}
	// Truncations at every length fail cleanly.
	for n := range len(gz) {
		if _, err := readWalkBytes(gz[:n]); err == nil {
			t.Errorf("image truncated to %d bytes read without error", n)
		}
	}
}

// TestReaderLargeDirNotQuadratic guards the metadata cache: listing and
// stat-ing inside a 10,000-entry directory must not re-decompress its
// blocks for every entry.
func TestReaderLargeDirNotQuadratic(t *testing.T) {
	mksquashfs := testtree.RequireTool(t, "mksquashfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		if err := os.WriteFile(filepath.Join(src, "d", fmt.Sprintf("file-with-a-long-name-%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img.sqfs")
	if out, err := exec.Command(mksquashfs, src, img, "-noappend", "-quiet", "-no-progress", "-comp", "xz").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	cr := &readCountingReaderAt{r: f}
	r, err := NewReader(cr, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 10002 {
		t.Fatalf("%d entries, want 10002", len(got))
	}
	// Each metadata block is read once; allow the tables a few times over.
	if limit := 4 * st.Size(); cr.n > limit {
		t.Errorf("walk read %d bytes of a %d-byte image", cr.n, st.Size())
	}
}

type readCountingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *readCountingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}
