package squashfs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
	"byzantium/modules/internal/testtree"
)

// memImage is an in-memory WriteSeeker that can truncate, like an *os.File.
type memImage struct {
	b   []byte
	off int64
}

func (m *memImage) Write(p []byte) (int, error) {
	if end := m.off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	copy(m.b[m.off:], p)
	m.off += int64(len(p))
	return len(p), nil
}

func (m *memImage) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += m.off
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	if off < 0 {
		return 0, errors.New("negative seek")
	}
	m.off = off
	return off, nil
}

func (m *memImage) Truncate(n int64) error {
	m.b = m.b[:n]
	return nil
}

// noTruncImage hides Truncate, for the path where the writer must zero
// what duplicate files left behind.
type noTruncImage struct{ m *memImage }

func (n noTruncImage) Write(p []byte) (int, error)               { return n.m.Write(p) }
func (n noTruncImage) Seek(off int64, whence int) (int64, error) { return n.m.Seek(off, whence) }

// testItem is one entry of a synthetic stream. A body is either held in
// memory or generated on demand (size and sum then describe it).
type testItem struct {
	h    *entry.Header
	body []byte
	gen  func() io.Reader
}

func (it testItem) reader() io.Reader {
	if it.gen != nil {
		return it.gen()
	}
	return bytes.NewReader(it.body)
}

var testEpoch = time.Unix(1700000000, 0)

// testBody returns n bytes: random when rnd is set (so blocks are stored
// uncompressed), otherwise compressible text.
func testBody(seed uint64, n int, rnd bool) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	if rnd {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	words := []string{"mesh ", "node ", "byzantium ", "squash ", "\n", "radio ", "0123 "}
	for i := 0; i < n; {
		i += copy(b[i:], words[r.IntN(len(words))])
	}
	return b
}

func file(p string, mode uint32, body []byte) testItem {
	return testItem{h: &entry.Header{Path: p, Type: entry.TypeRegular, Mode: mode, ModTime: testEpoch, Size: int64(len(body))}, body: body}
}

func node(p string, typ entry.Type, mode uint32) *entry.Header {
	return &entry.Header{Path: p, Type: typ, Mode: mode, ModTime: testEpoch}
}

// testStream builds a stream with every kind of entry for block size bs.
func testStream(bs int) []testItem {
	var items []testItem
	add := func(it ...testItem) { items = append(items, it...) }
	hdr := func(h *entry.Header) { add(testItem{h: h}) }

	root := node(".", entry.TypeDir, 0o755)
	root.Xattrs = map[string][]byte{"user.root": []byte("yes")}
	hdr(root)
	// Sizes around block boundaries, random and compressible.
	for i, n := range []int{0, 1, bs - 1, bs, bs + 1, 5*bs + 123, 3 * bs} {
		add(file(fmt.Sprintf("sizes/rand%d", n), 0o644, testBody(uint64(i), n, true)))
		add(file(fmt.Sprintf("sizes/text%d", n), 0o600, testBody(uint64(100+i), n, false)))
	}
	// A sparse file: data, two zero blocks, data, a zero block, a tail.
	var sparse []byte
	sparse = append(sparse, testBody(1, bs, false)...)
	sparse = append(sparse, make([]byte, 2*bs)...)
	sparse = append(sparse, testBody(2, bs, true)...)
	sparse = append(sparse, make([]byte, bs)...)
	sparse = append(sparse, testBody(3, 77, false)...)
	add(file("sparse/holes", 0o644, sparse))
	add(file("sparse/allzero", 0o644, make([]byte, 2*bs+5)))

	// Duplicates: same content under other names and metadata.
	dup := testBody(42, 4*bs+99, true)
	add(file("dup/a", 0o644, dup), file("dup/b", 0o755, dup))
	// The writer rewinds over dup/b's blocks: what follows must land right.
	add(file("dup/c", 0o644, testBody(44, 2*bs+7, true)))
	small := []byte("small duplicate\n")
	add(file("dup/s1", 0o644, small), file("dup/s2", 0o640, small))
	exact := testBody(43, 2*bs, false)
	add(file("dup/e1", 0o644, exact), file("dup/e2", 0o644, exact))

	// Owners, modes, times.
	for i, o := range []struct {
		uid, gid, mode uint32
	}{{0, 0, 0o4755}, {1000, 100, 0o2755}, {65534, 65534, 0o444}, {4000000000, 7, 0o6711}, {33, 33, 0}} {
		it := file(fmt.Sprintf("owners/f%d", i), o.mode, []byte(fmt.Sprintf("owner %d\n", i)))
		it.h.UID, it.h.GID = o.uid, o.gid
		it.h.ModTime = time.Unix(int64(1e9+i*86400), 0)
		add(it)
	}
	tmp := node("owners/tmp", entry.TypeDir, 0o1777)
	tmp.UID, tmp.GID = 12, 34
	hdr(tmp)
	old := file("owners/before1970", 0o644, []byte("old"))
	old.h.ModTime = time.Unix(-1000, 0)
	add(old)

	// Symlinks, devices, fifo, socket.
	hdr(&entry.Header{Path: "links/dangling", Type: entry.TypeSymlink, Mode: 0o777, ModTime: testEpoch, Linkname: "../nowhere/at/all"})
	hdr(&entry.Header{Path: "links/abs", Type: entry.TypeSymlink, Mode: 0o777, ModTime: testEpoch, Linkname: "/usr/bin/env"})
	hdr(&entry.Header{Path: "links/rel", Type: entry.TypeSymlink, Mode: 0o777, ModTime: testEpoch, Linkname: "../sizes/text1",
		Xattrs: map[string][]byte{"trusted.sym": []byte("on a symlink")}})
	hdr(&entry.Header{Path: "dev/null", Type: entry.TypeCharDev, Mode: 0o666, ModTime: testEpoch, Devmajor: 1, Devminor: 3})
	hdr(&entry.Header{Path: "dev/sda1", Type: entry.TypeBlockDev, Mode: 0o660, GID: 6, ModTime: testEpoch, Devmajor: 8, Devminor: 1})
	hdr(&entry.Header{Path: "dev/big", Type: entry.TypeBlockDev, Mode: 0o600, ModTime: testEpoch, Devmajor: 259, Devminor: 70000,
		Xattrs: map[string][]byte{"security.dev": []byte("label")}})
	hdr(&entry.Header{Path: "dev/fifo", Type: entry.TypeFIFO, Mode: 0o644, ModTime: testEpoch})
	hdr(&entry.Header{Path: "dev/sock", Type: entry.TypeSocket, Mode: 0o755, ModTime: testEpoch})

	// Hardlinks: one after its target, one before, one through another
	// link, and a device with two names.
	add(file("hl/target", 0o644, testBody(9, bs+10, false)))
	hdr(&entry.Header{Path: "hl/after", Type: entry.TypeHardlink, Linkname: "hl/target"})
	hdr(&entry.Header{Path: "hl/early", Type: entry.TypeHardlink, Linkname: "hl/sub/late"})
	hdr(&entry.Header{Path: "hl/chain", Type: entry.TypeHardlink, Linkname: "hl/early"})
	late := file("hl/sub/late", 0o600, []byte("late target\n"))
	late.h.Xattrs = map[string][]byte{"user.late": []byte("1")}
	add(late)
	hdr(&entry.Header{Path: "hl/null2", Type: entry.TypeHardlink, Linkname: "dev/null"})

	// Xattrs in every namespace, identical sets on two files, a large value.
	xa := file("xattr/a", 0o644, []byte("a"))
	xa.h.Xattrs = map[string][]byte{"user.mime": []byte("text/plain"), "trusted.overlay.opaque": []byte("y"), "security.test": {0, 1, 2, 255}}
	xb := file("xattr/b", 0o644, []byte("b"))
	xb.h.Xattrs = map[string][]byte{"user.mime": []byte("text/plain"), "trusted.overlay.opaque": []byte("y"), "security.test": {0, 1, 2, 255}}
	xc := file("xattr/c", 0o644, []byte("c"))
	xc.h.Xattrs = map[string][]byte{"user.big": bytes.Repeat([]byte("v"), 3000), "user.empty": {}}
	add(xa, xb, xc)
	xd := node("xattr/dir", entry.TypeDir, 0o750)
	xd.Xattrs = map[string][]byte{"trusted.overlay.opaque": []byte("y")}
	hdr(xd)

	// Later headers replace earlier ones; a re-emitted directory keeps its
	// children.
	add(file("replace/f", 0o644, []byte("first version\n")))
	hdr(node("replace/d", entry.TypeDir, 0o755))
	add(file("replace/d/child", 0o644, []byte("kept\n")))
	add(file("replace/f", 0o600, []byte("second, longer version\n")))
	d2 := node("replace/d", entry.TypeDir, 0o700)
	d2.Xattrs = map[string][]byte{"trusted.overlay.opaque": []byte("y")}
	hdr(d2)
	hdr(node("replace/gone", entry.TypeDir, 0o755))
	add(file("replace/gone/lost", 0o644, []byte("lost\n")))
	add(file("replace/gone", 0o644, []byte("now a file\n")))

	// A directory with 10,000 entries (its listing outgrows the basic
	// inode) and a 40-deep tree whose parents are implied.
	for i := range 10000 {
		add(file(fmt.Sprintf("big/f%05d", i), 0o644, []byte(strconv.Itoa(i*7919)+"\n")))
	}
	deep := "deep"
	for i := range 40 {
		deep += fmt.Sprintf("/d%02d", i)
	}
	add(file(deep+"/leaf", 0o644, []byte("deep leaf\n")))
	return items
}

// writeImage writes items into an image with opts.
func writeImage(t testing.TB, ws io.WriteSeeker, opts Options, items []testItem) {
	t.Helper()
	w, err := NewWriter(ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := w.WriteHeader(it.h); err != nil {
			t.Fatalf("WriteHeader(%s): %v", it.h.Path, err)
		}
		if it.h.Type == entry.TypeRegular {
			if _, err := io.Copy(w, it.reader()); err != nil {
				t.Fatalf("Write(%s): %v", it.h.Path, err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// testIFMT holds the S_IFMT bits of each type, as stat reports them.
var testIFMT = map[entry.Type]uint32{
	entry.TypeDir: unix.S_IFDIR, entry.TypeRegular: unix.S_IFREG, entry.TypeSymlink: unix.S_IFLNK,
	entry.TypeBlockDev: unix.S_IFBLK, entry.TypeCharDev: unix.S_IFCHR, entry.TypeFIFO: unix.S_IFIFO, entry.TypeSocket: unix.S_IFSOCK,
}

// want is what the image must hold at one path.
type want struct {
	typ            entry.Type
	mode, uid, gid uint32
	mtime          int64
	size           int64
	sum            [32]byte
	link           string
	major, minor   uint32
	xattrs         map[string][]byte
	group          string // hardlink group: the path holding the inode
}

// expect applies the writer's semantics to items: later headers replace
// earlier ones, re-emitted directories keep their children, parents are
// implied, hardlinks share their target's inode.
func expect(items []testItem, modTime time.Time) map[string]*want {
	m := map[string]*want{".": {typ: entry.TypeDir, mode: 0o755, mtime: modTime.Unix()}}
	for _, it := range items {
		h := it.h
		for d := path.Dir(h.Path); d != "."; d = path.Dir(d) {
			if m[d] == nil {
				m[d] = &want{typ: entry.TypeDir, mode: 0o755, mtime: modTime.Unix()}
			}
		}
		if old := m[h.Path]; old != nil && old.typ == entry.TypeDir && h.Type != entry.TypeDir {
			for p := range m {
				if strings.HasPrefix(p, h.Path+"/") {
					delete(m, p)
				}
			}
		}
		w := &want{typ: h.Type, mode: h.Mode, uid: h.UID, gid: h.GID, mtime: max(h.ModTime.Unix(), 0),
			link: h.Linkname, major: h.Devmajor, minor: h.Devminor, xattrs: h.Xattrs, group: h.Path}
		if h.Type == entry.TypeRegular {
			hs := sha256.New()
			n, _ := io.Copy(hs, it.reader())
			w.size = n
			hs.Sum(w.sum[:0])
		}
		m[h.Path] = w
	}
	for p, w := range m {
		if w.typ != entry.TypeHardlink {
			continue
		}
		t := w
		for t.typ == entry.TypeHardlink {
			t = m[t.link]
		}
		c := *t
		m[p] = &c
	}
	return m
}

// checkTree compares an extracted or mounted tree with want. Sockets are
// not checked when skipSockets is set (unsquashfs does not create them).
func checkTree(t *testing.T, root string, wants map[string]*want, skipSockets bool) {
	t.Helper()
	seen := map[string]bool{}
	inoOf := map[string]uint64{} // hardlink group → inode
	groupOf := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		seen[rel] = true
		w := wants[rel]
		if w == nil {
			t.Errorf("%s: in the image but not in the stream", rel)
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		wantMode := testIFMT[w.typ] | w.mode
		if st.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", rel, st.Mode, wantMode)
		}
		if st.Uid != w.uid || st.Gid != w.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, w.uid, w.gid)
		}
		if st.Mtim.Sec != w.mtime {
			t.Errorf("%s: mtime %d, want %d", rel, st.Mtim.Sec, w.mtime)
		}
		switch w.typ {
		case entry.TypeRegular:
			if st.Size != w.size {
				t.Errorf("%s: size %d, want %d", rel, st.Size, w.size)
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			hs := sha256.New()
			_, err = io.Copy(hs, f)
			f.Close()
			if err != nil {
				t.Errorf("%s: read: %v", rel, err)
			} else if !bytes.Equal(hs.Sum(nil), w.sum[:]) {
				t.Errorf("%s: content differs", rel)
			}
		case entry.TypeSymlink:
			if l, err := os.Readlink(p); err != nil || l != w.link {
				t.Errorf("%s: link %q (%v), want %q", rel, l, err, w.link)
			}
		case entry.TypeCharDev, entry.TypeBlockDev:
			if unix.Major(st.Rdev) != w.major || unix.Minor(st.Rdev) != w.minor {
				t.Errorf("%s: device %d,%d, want %d,%d", rel, unix.Major(st.Rdev), unix.Minor(st.Rdev), w.major, w.minor)
			}
		}
		if w.typ != entry.TypeDir {
			if ino, ok := inoOf[w.group]; ok && ino != st.Ino {
				t.Errorf("%s: inode %d, but its hardlink group %s has %d", rel, st.Ino, w.group, ino)
			}
			if g, ok := groupOf[st.Ino]; ok && g != w.group {
				t.Errorf("%s: shares inode %d with group %s, want group %s", rel, st.Ino, g, w.group)
			}
			inoOf[w.group], groupOf[st.Ino] = st.Ino, w.group
		}
		checkXattrs(t, rel, p, w.xattrs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range wants {
		if !seen[p] && !(skipSockets && w.typ == entry.TypeSocket) {
			t.Errorf("%s: in the stream but not in the image", p)
		}
	}
}

func checkXattrs(t *testing.T, rel, p string, want map[string][]byte) {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.EOPNOTSUPP) && len(want) == 0 {
		// The kernel has no xattr handler for an image without an xattr
		// table.
		return
	}
	if err != nil {
		t.Errorf("%s: listxattr: %v", rel, err)
		return
	}
	var got []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		// Filesystems add their own security labels; only ours count.
		if name != "" && !strings.HasPrefix(name, "security.selinux") {
			got = append(got, name)
		}
	}
	sort.Strings(got)
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s: xattrs %q, want %q", rel, got, names)
		return
	}
	for _, name := range names {
		n, err := unix.Lgetxattr(p, name, buf)
		if err != nil || !bytes.Equal(buf[:n], want[name]) {
			t.Errorf("%s: xattr %s = %q (%v), want %q", rel, name, buf[:n], err, want[name])
		}
	}
}

// llsLine matches one line of unsquashfs -lln.
var llsLine = regexp.MustCompile(`^(\S{10}) (\d+)/(\d+) +(\d+|\d+, *\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) squashfs-root(.*)$`)

// checkListing checks unsquashfs -lln against want.
func checkListing(t *testing.T, img string, wants map[string]*want) {
	t.Helper()
	cmd := exec.Command("unsquashfs", "-lln", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		m := llsLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		rel, link := strings.TrimPrefix(m[6], "/"), ""
		if m[1][0] == 'l' {
			rel, link, _ = strings.Cut(rel, " -> ")
		}
		if rel == "" {
			rel = "."
		}
		seen[rel] = true
		w := wants[rel]
		if w == nil {
			t.Errorf("-lln: %s: not in the stream", rel)
			continue
		}
		if got, wantPerm := m[1], lsMode(w); got != wantPerm {
			t.Errorf("-lln: %s: mode %s, want %s", rel, got, wantPerm)
		}
		if m[2] != strconv.Itoa(int(w.uid)) || m[3] != strconv.Itoa(int(w.gid)) {
			t.Errorf("-lln: %s: owner %s/%s, want %d/%d", rel, m[2], m[3], w.uid, w.gid)
		}
		if wt := time.Unix(w.mtime, 0).UTC().Format("2006-01-02 15:04"); m[5] != wt {
			t.Errorf("-lln: %s: time %s, want %s", rel, m[5], wt)
		}
		switch w.typ {
		case entry.TypeRegular:
			if m[4] != strconv.FormatInt(w.size, 10) {
				t.Errorf("-lln: %s: size %s, want %d", rel, m[4], w.size)
			}
		case entry.TypeSymlink:
			if link != w.link {
				t.Errorf("-lln: %s: link %q, want %q", rel, link, w.link)
			}
		case entry.TypeCharDev, entry.TypeBlockDev:
			// unsquashfs 4.5 prints the stored number split the old 8:8
			// way (major = dev>>8, minor = dev&0xff) while extracting it
			// right; accept that rendering too.
			dev := encodeDev(w.major, w.minor)
			got := strings.Join(strings.Fields(strings.ReplaceAll(m[4], ",", " ")), ",")
			if got != fmt.Sprintf("%d,%d", w.major, w.minor) && got != fmt.Sprintf("%d,%d", dev>>8, dev&0xff) {
				t.Errorf("-lln: %s: device %s, want %d,%d", rel, m[4], w.major, w.minor)
			}
		}
	}
	for p := range wants {
		if !seen[p] {
			t.Errorf("-lln: %s: missing", p)
		}
	}
}

// lsMode renders a mode the way ls and unsquashfs do.
func lsMode(w *want) string {
	return (&entry.Header{Type: w.typ, Mode: w.mode}).ModeString()
}

func TestWriterOracle(t *testing.T) {
	testtree.RequireTool(t, "unsquashfs")
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"zstd", Options{Compressor: Zstd, Export: true}},
		{"zstd-level3-4k", Options{Compressor: Zstd, Level: 3, BlockSize: 4096}},
		{"gzip-64k", Options{Compressor: Gzip, BlockSize: 64 << 10, Export: true}},
		{"xz", Options{Compressor: XZ}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			opts.ModTime = testEpoch
			bs := cmpOr(opts.BlockSize, DefaultBlockSize)
			items := testStream(bs)
			wants := expect(items, opts.ModTime)
			dir := t.TempDir()
			img := filepath.Join(dir, "img.sqfs")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			writeImage(t, f, opts, items)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(img)
			if st.Size()%Padding != 0 {
				t.Errorf("image is %d bytes, not a multiple of %d", st.Size(), Padding)
			}
			if out, err := exec.Command("unsquashfs", "-s", img).CombinedOutput(); err != nil {
				t.Fatalf("unsquashfs -s: %v\n%s", err, out)
			} else if !bytes.Contains(out, []byte(tc.opts.Compressor.String())) {
				t.Errorf("unsquashfs -s does not name %v:\n%s", tc.opts.Compressor, out)
			}
			checkListing(t, img, wants)

			testtree.RequireRoot(t)
			ext := filepath.Join(dir, "x")
			out, err := exec.Command("unsquashfs", "-d", ext, img).CombinedOutput()
			if err != nil {
				t.Fatalf("unsquashfs -d: %v\n%s", err, out)
			}
			checkTree(t, ext, wants, true)

			mnt := filepath.Join(dir, "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("mount", "-o", "loop,ro", "-t", "squashfs", img, mnt).CombinedOutput(); err != nil {
				t.Fatalf("mount: %v\n%s", err, out)
			}
			t.Cleanup(func() {
				if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
					t.Errorf("umount: %v\n%s", err, out)
				}
			})
			checkTree(t, mnt, wants, false)
		})
	}
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestWriterReproducible(t *testing.T) {
	const bs = 4096
	items := testStream(bs)
	var first []byte
	for i, workers := range []int{1, 2, 2, 5} {
		var m memImage
		writeImage(t, &m, Options{BlockSize: bs, Level: 3, Workers: workers, ModTime: testEpoch, Export: true}, items)
		if i == 0 {
			first = m.b
			continue
		}
		if !bytes.Equal(m.b, first) {
			t.Fatalf("Workers=%d: image differs from Workers=1 (%d vs %d bytes, sha256 %x vs %x)",
				workers, len(m.b), len(first), sha256.Sum256(m.b), sha256.Sum256(first))
		}
	}

	// Without Truncate the bytes the writer rewound over past the end
	// must be zeroes, and the image itself the same.
	m := &memImage{}
	writeImage(t, noTruncImage{m}, Options{BlockSize: bs, Level: 3, ModTime: testEpoch, Export: true}, items)
	if len(m.b) < len(first) || !bytes.Equal(m.b[:len(first)], first) {
		t.Fatalf("without Truncate: image differs")
	}
	if !writeIsZero(m.b[len(first):]) || len(m.b)%Padding != 0 {
		t.Errorf("without Truncate: %d bytes after the image are not zero padding", len(m.b)-len(first))
	}

	// A different mkfs time must show up in the image; nothing else (like
	// the wall clock) may.
	var later memImage
	writeImage(t, &later, Options{BlockSize: bs, Level: 3, ModTime: testEpoch.Add(time.Hour), Export: true}, items)
	if bytes.Equal(later.b, first) {
		t.Errorf("ModTime does not reach the image")
	}
}

// TestWriterDedup checks that duplicate files are stored once: the image of
// a file written twice is barely larger than that of the file once.
func TestWriterDedup(t *testing.T) {
	const bs = 4096
	body := testBody(5, 20*bs+100, true) // random: does not compress
	once, twice := &memImage{}, &memImage{}
	writeImage(t, once, Options{BlockSize: bs}, []testItem{file("a", 0o644, body)})
	writeImage(t, twice, Options{BlockSize: bs}, []testItem{file("a", 0o644, body), file("b", 0o600, body), file("c", 0o644, []byte("c"))})
	if len(twice.b) > len(once.b)+Padding {
		t.Errorf("a duplicate file grows the image from %d to %d bytes", len(once.b), len(twice.b))
	}
	var sb Superblock
	if err := sb.UnmarshalBinary(twice.b); err != nil {
		t.Fatal(err)
	}
	if sb.Flags&FlagDuplicates == 0 || sb.InodeCount != 4 || sb.BytesUsed > uint64(len(twice.b)) {
		t.Errorf("superblock %+v", sb)
	}
	if int(sb.InodeTableStart) > 21*bs+200 {
		t.Errorf("data ends at %d: the duplicate's blocks were kept", sb.InodeTableStart)
	}
}

func TestWriterErrors(t *testing.T) {
	reg := func(p string, size int64) *entry.Header {
		return &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, Size: size}
	}
	for _, tc := range []struct {
		name    string
		opts    Options
		run     func(w *Writer) error
		want    error
		mention []string
	}{
		{name: "unclean path", run: func(w *Writer) error { return w.WriteHeader(reg("/abs", 0)) },
			want: entry.ErrBadHeader, mention: []string{"/abs"}},
		{name: "unknown type", run: func(w *Writer) error { return w.WriteHeader(&entry.Header{Path: "t", Type: 99}) },
			want: entry.ErrBadHeader, mention: []string{"t:"}},
		{name: "size on a dir", run: func(w *Writer) error { return w.WriteHeader(&entry.Header{Path: "d", Type: entry.TypeDir, Size: 3}) },
			want: entry.ErrBadHeader, mention: []string{"d:"}},
		{name: "xattr namespace", run: func(w *Writer) error {
			h := reg("acl", 0)
			h.Xattrs = map[string][]byte{"user.ok": nil, "system.posix_acl_access": {2}}
			return w.WriteHeader(h)
		}, want: entry.ErrUnsupported, mention: []string{"acl", "system.posix_acl_access"}},
		{name: "bare prefix", run: func(w *Writer) error {
			h := reg("bare", 0)
			h.Xattrs = map[string][]byte{"user.": nil}
			return w.WriteHeader(h)
		}, want: entry.ErrUnsupported, mention: []string{"bare"}},
		{name: "write past size", run: func(w *Writer) error {
			if err := w.WriteHeader(reg("three", 3)); err != nil {
				return err
			}
			n, err := w.Write([]byte("abcd"))
			if n != 3 {
				return fmt.Errorf("wrote %d bytes, want 3", n)
			}
			return err
		}, want: ErrWriteTooLong, mention: []string{"three"}},
		{name: "ReadFrom past size", run: func(w *Writer) error {
			if err := w.WriteHeader(reg("dir/three", 3)); err != nil {
				return err
			}
			n, err := w.ReadFrom(strings.NewReader("abcd"))
			if n != 3 {
				return fmt.Errorf("read %d bytes, want 3", n)
			}
			return err
		}, want: ErrWriteTooLong, mention: []string{"dir/three"}},
		{name: "write to a dir", run: func(w *Writer) error {
			if err := w.WriteHeader(&entry.Header{Path: "d", Type: entry.TypeDir}); err != nil {
				return err
			}
			_, err := w.Write([]byte("x"))
			return err
		}, want: ErrWriteTooLong},
		{name: "short body at next header", run: func(w *Writer) error {
			w.WriteHeader(reg("short", 10))
			w.Write([]byte("abc"))
			err := w.WriteHeader(reg("next", 0))
			if err2 := w.Close(); !errors.Is(err2, io.ErrUnexpectedEOF) {
				return fmt.Errorf("error not sticky: Close = %v after %v", err2, err)
			}
			return err
		}, want: io.ErrUnexpectedEOF, mention: []string{"short", "7 bytes"}},
		{name: "short body at close", run: func(w *Writer) error {
			w.WriteHeader(reg("dir/short", 1<<20))
			w.Write(make([]byte, 5000))
			return w.Close()
		}, opts: Options{BlockSize: 4096}, want: io.ErrUnexpectedEOF, mention: []string{"dir/short"}},
		{name: "hardlink to missing", run: func(w *Writer) error {
			w.WriteHeader(&entry.Header{Path: "a/link", Type: entry.TypeHardlink, Linkname: "b/missing"})
			return w.Close()
		}, want: entry.ErrBadHeader, mention: []string{"a/link", "b/missing"}},
		{name: "hardlink to dir", run: func(w *Writer) error {
			w.WriteHeader(&entry.Header{Path: "link", Type: entry.TypeHardlink, Linkname: "d"})
			w.WriteHeader(&entry.Header{Path: "d", Type: entry.TypeDir})
			return w.Close()
		}, want: entry.ErrBadHeader, mention: []string{"link", "directory d"}},
		{name: "hardlink loop", run: func(w *Writer) error {
			w.WriteHeader(&entry.Header{Path: "x", Type: entry.TypeHardlink, Linkname: "y"})
			w.WriteHeader(&entry.Header{Path: "y", Type: entry.TypeHardlink, Linkname: "x"})
			return w.Close()
		}, want: entry.ErrBadHeader, mention: []string{"loop"}},
		{name: "parent is a file", run: func(w *Writer) error {
			w.WriteHeader(reg("f", 0))
			return w.WriteHeader(reg("f/x", 0))
		}, want: entry.ErrBadHeader, mention: []string{"f/x", "parent f"}},
		{name: "name too long", run: func(w *Writer) error { return w.WriteHeader(reg("d/"+strings.Repeat("n", 257), 0)) },
			want: entry.ErrUnsupported, mention: []string{"nnnn"}},
		{name: "after close", run: func(w *Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			if _, err := w.Write(nil); !errors.Is(err, ErrWriteAfterClose) {
				return fmt.Errorf("Write after Close: %v", err)
			}
			return w.WriteHeader(reg("late", 0))
		}, want: ErrWriteAfterClose},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWriter(&memImage{}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.run(w)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			w.Close()
		})
	}
}

func TestWriterBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want error
	}{
		{Options{BlockSize: 1000}, ErrBadOption},
		{Options{BlockSize: 3 << 12}, ErrBadOption},
		{Options{BlockSize: 2 << 20}, ErrBadOption},
		{Options{Level: 23}, ErrBadOption},
		{Options{Compressor: Gzip, Level: 10}, ErrBadOption},
		{Options{Compressor: LZ4}, ErrUnknownCompressor},
		{Options{Compressor: 77}, ErrUnknownCompressor},
	} {
		if _, err := NewWriter(&memImage{}, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("NewWriter(%+v) = %v, want %v", tc.opts, err, tc.want)
		}
	}
	for _, bs := range []int{MinBlockSize, 1 << 16, MaxBlockSize} {
		if _, err := NewWriter(&memImage{}, Options{BlockSize: bs}); err != nil {
			t.Errorf("block size %d: %v", bs, err)
		}
	}
}

// bigBody yields size bytes of zeros with an 8-byte marker every stride
// and a non-zero tail, without holding them in memory.
type bigBody struct {
	off, size, stride int64
}

func (b *bigBody) byteAt(o int64) byte {
	if o >= b.size-17 {
		return byte(o) | 1
	}
	if k := o % b.stride; k < 8 {
		return byte(o/b.stride+1) << k
	}
	return 0
}

func (b *bigBody) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.size-b.off)]
	clear(p)
	// Only markers and the tail are non-zero; visit just those.
	for m := (b.off + b.stride - 1) / b.stride * b.stride; m < b.off+int64(len(p)); m += b.stride {
		for k := int64(0); k < 8 && m+k < b.off+int64(len(p)); k++ {
			p[m+k-b.off] = b.byteAt(m + k)
		}
	}
	if b.off > 0 && b.off%b.stride != 0 && b.off%b.stride < 8 {
		for o := b.off; o < b.off+int64(len(p)) && o%b.stride < 8; o++ {
			p[o-b.off] = b.byteAt(o)
		}
	}
	for o := max(b.off, b.size-17); o < b.off+int64(len(p)); o++ {
		p[o-b.off] = b.byteAt(o)
	}
	b.off += int64(len(p))
	return len(p), nil
}

// TestWriterLargeFile writes a file past 4 GiB (mostly holes) and reads it
// back through unsquashfs and the kernel. It takes tens of seconds.
func TestWriterLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads back 4 GiB")
	}
	testtree.RequireTool(t, "unsquashfs")
	const bs = 1 << 20
	size := int64(4<<30 + 3*bs + 4321)
	gen := func() io.Reader { return &bigBody{size: size, stride: 256<<20 + 3} }
	items := []testItem{
		{h: &entry.Header{Path: "big", Type: entry.TypeRegular, Mode: 0o644, ModTime: testEpoch, Size: size}, gen: gen},
		file("after", 0o644, []byte("after the big one\n")),
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "big.sqfs")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	writeImage(t, f, Options{BlockSize: bs, ModTime: testEpoch}, items)
	f.Close()
	if st, _ := os.Stat(img); st.Size() > 1<<20 {
		t.Errorf("image is %d bytes: the holes were stored", st.Size())
	}
	wants := expect(items, testEpoch)
	checkListing(t, img, wants)

	testtree.RequireRoot(t)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-o", "loop,ro", "-t", "squashfs", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	checkTree(t, mnt, wants, false)
}
