package testtree

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
)

// Options chooses what Build makes. The zero value builds everything an
// unprivileged user can make.
type Options struct {
	// Privileged adds what only root can make: device nodes, files owned by
	// other users (with setuid/setgid set after the chown), mode 000 files,
	// trusted.* and security.* xattrs. Build fails the test if it is set
	// without root; call RequireRoot first.
	Privileged bool
	// WideEntries is the number of files in wide/; 0 means 10,000.
	WideEntries int
}

// Paths of entries tests look at by name.
const (
	// SparsePath is a SparseSize-byte file that is mostly holes: 4 KiB of
	// data at 0, 100 bytes at 1 MiB+7 and one byte at the end.
	SparsePath = "files/sparse"
	SparseSize = 4<<20 + 1
	// DeepDepth is the number of nested directories under deep/.
	DeepDepth = 40
)

// FileSizes are the sizes of files/size-N: around 0, one 4 KiB block and
// 128 KiB (a squashfs block).
var FileSizes = []int64{0, 1, 4095, 4096, 4097, 131071, 131072, 131073}

// Tree describes what Build made.
type Tree struct {
	Root string
	// Count is the number of entries under Root, Root itself included.
	Count      int
	Privileged bool
}

type node struct {
	path   string
	typ    entry.Type
	mode   uint32
	size   int64  // regular files; the body comes from Content
	link   string // symlink target, or the first name of a hardlink
	major  uint32 // devices
	minor  uint32
	owner  []int // uid, gid; nil leaves the creator's
	xattrs map[string]string
	priv   bool
}

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value granting
// cap_net_raw (bit 13) permitted and effective; the kernel rejects values
// that are not well formed.
var capNetRaw = func() string {
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<13)        // permitted, low word
	return string(b[:])
}()

func nodes(wide int) []node {
	dir := func(p string, mode uint32) node { return node{path: p, typ: entry.TypeDir, mode: mode} }
	file := func(p string, mode uint32, size int64) node {
		return node{path: p, typ: entry.TypeRegular, mode: mode, size: size}
	}
	sym := func(p, target string) node { return node{path: p, typ: entry.TypeSymlink, link: target} }
	hard := func(p, target string) node { return node{path: p, typ: entry.TypeHardlink, link: target} }
	ns := []node{dir("files", 0o755)}
	for _, s := range FileSizes {
		ns = append(ns, file(fmt.Sprintf("files/size-%d", s), 0o644, s))
	}
	ns = append(ns,
		node{path: SparsePath, typ: entry.TypeRegular, mode: 0o640, size: SparseSize},
		// names/ checks bytewise order: "UPPER" < "a" < "a-b" < "a/b" walk
		// order differs from sorted full paths ('-' < '/').
		dir("names", 0o755), file("names/UPPER", 0o644, 3), file("names/a-b", 0o644, 2),
		dir("names/a", 0o755), file("names/a/b", 0o644, 1), file("names/.hidden", 0o644, 1),
		file("names/with space", 0o644, 1), file("names/ünïcode-名前", 0o644, 7),
		file("names/"+strings.Repeat("l", 255), 0o644, 9),
		dir("links", 0o755), sym("links/dangling", "nowhere/at/all"), sym("links/absolute", "/etc/passwd"),
		sym("links/relative", "../files/size-1"), sym("links/dir", "../deep"), sym("links/self", "self"),
		dir("hard", 0o755), file("hard/a", 0o644, 5000), hard("hard/b", "hard/a"),
		dir("hard/sub", 0o755), hard("hard/sub/c", "hard/a"), hard("hard/z-size-4097", "files/size-4097"),
		node{path: "hard/fifo", typ: entry.TypeFIFO, mode: 0o600}, hard("hard/fifo2", "hard/fifo"),
		file("hard/empty", 0o644, 0), hard("hard/empty2", "hard/empty"),
		dir("special", 0o755),
		node{path: "special/fifo", typ: entry.TypeFIFO, mode: 0o644},
		node{path: "special/socket", typ: entry.TypeSocket, mode: 0o755},
		node{path: "special/null", typ: entry.TypeCharDev, mode: 0o666, major: 1, minor: 3, priv: true},
		node{path: "special/loop0", typ: entry.TypeBlockDev, mode: 0o660, major: 7, minor: 0, priv: true},
		// A minor above 255 and a major above 255 exercise the split
		// major/minor encodings of tar, cpio and squashfs.
		node{path: "special/big", typ: entry.TypeBlockDev, mode: 0o600, major: 259, minor: 65537, priv: true},
		dir("modes", 0o755), file("modes/rwx", 0o777, 1), file("modes/private", 0o600, 1),
		file("modes/setuid", 0o4755, 10), file("modes/setgid", 0o2755, 10),
		dir("modes/sticky-dir", 0o1777), dir("modes/setgid-dir", 0o2755),
		// Unreadable and read-only entries stop an unprivileged reader and
		// the cleanup of t.TempDir, so they are root-only.
		node{path: "modes/none", typ: entry.TypeRegular, size: 1, priv: true},
		node{path: "modes/ro-dir", typ: entry.TypeDir, mode: 0o555, priv: true},
		node{path: "modes/ro-dir/inside", typ: entry.TypeRegular, mode: 0o444, size: 1, priv: true},
		dir("owners", 0o755),
		node{path: "owners/u1000", typ: entry.TypeRegular, mode: 0o644, size: 4, owner: []int{1000, 1000}, priv: true},
		node{path: "owners/nobody", typ: entry.TypeRegular, mode: 0o644, size: 4, owner: []int{65534, 65534}, priv: true},
		node{path: "owners/big", typ: entry.TypeRegular, mode: 0o600, size: 4, owner: []int{100000, 200000}, priv: true},
		node{path: "owners/dir", typ: entry.TypeDir, mode: 0o750, owner: []int{123, 456}, priv: true},
		node{path: "owners/link", typ: entry.TypeSymlink, link: "u1000", owner: []int{7, 8}, priv: true},
		node{path: "owners/setuid-1000", typ: entry.TypeRegular, mode: 0o4755, size: 8, owner: []int{1000, 1000}, priv: true},
		node{path: "owners/setgid-50", typ: entry.TypeRegular, mode: 0o2711, size: 8, owner: []int{0, 50}, priv: true},
		dir("xattrs", 0o755),
		node{path: "xattrs/user", typ: entry.TypeRegular, mode: 0o644, size: 3,
			xattrs: map[string]string{"user.a": "1", "user.empty": "", "user.bin": "\x00\x01\xff"}},
		node{path: "xattrs/dir", typ: entry.TypeDir, mode: 0o755, xattrs: map[string]string{"user.dir": "d"}},
		node{path: "xattrs/opaque", typ: entry.TypeDir, mode: 0o755, priv: true,
			xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
		node{path: "xattrs/cap", typ: entry.TypeRegular, mode: 0o755, size: 16, priv: true,
			xattrs: map[string]string{"security.capability": capNetRaw}},
		node{path: "xattrs/security", typ: entry.TypeRegular, mode: 0o644, size: 1, priv: true,
			xattrs: map[string]string{"security.byzantium": "s", "trusted.t": "t", "user.u": "u"}},
		// user.* is not allowed on symlinks; trusted.* is.
		node{path: "xattrs/symlink", typ: entry.TypeSymlink, link: "user", priv: true,
			xattrs: map[string]string{"trusted.sym": "l"}},
	)
	p := "deep"
	ns = append(ns, dir(p, 0o755))
	for i := 1; i <= DeepDepth; i++ {
		p += fmt.Sprintf("/d%02d", i)
		ns = append(ns, dir(p, 0o755))
	}
	ns = append(ns, file(p+"/leaf", 0o644, 6), dir("wide", 0o755))
	for i := 0; i < wide; i++ {
		ns = append(ns, file(fmt.Sprintf("wide/f%05d", i), 0o644, 0))
	}
	return ns
}

// Build fills dir, which must exist and be empty, with the tree and returns
// what it made. Every entry gets its own nanosecond mtime, directories last
// so that creating their children does not disturb them.
func Build(t testing.TB, dir string, opts Options) *Tree {
	t.Helper()
	if opts.Privileged && os.Geteuid() != 0 {
		t.Fatal("testtree.Build: Privileged needs root; call RequireRoot first")
	}
	wide := opts.WideEntries
	if wide == 0 {
		wide = 10000
	}
	all := nodes(wide)
	var made []node
	for _, n := range all {
		if n.priv && !opts.Privileged {
			continue
		}
		if err := create(dir, n); err != nil {
			t.Fatalf("testtree.Build: %s: %v", n.path, err)
		}
		made = append(made, n)
	}
	// Ownership, then mode (chown clears setuid), then xattrs (chown clears
	// security.capability), deepest first so read-only directories are
	// changed after their contents.
	for _, n := range slices.Backward(made) {
		if err := finish(dir, n); err != nil {
			t.Fatalf("testtree.Build: %s: %v", n.path, err)
		}
	}
	if err := unix.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	count, err := stampTimes(dir)
	if err != nil {
		t.Fatalf("testtree.Build: %v", err)
	}
	return &Tree{Root: dir, Count: count, Privileged: opts.Privileged}
}

func create(root string, n node) error {
	p := filepath.Join(root, n.path)
	switch n.typ {
	case entry.TypeDir:
		return os.Mkdir(p, 0o755)
	case entry.TypeRegular:
		return writeFile(p, n)
	case entry.TypeSymlink:
		return os.Symlink(n.link, p)
	case entry.TypeHardlink:
		return os.Link(filepath.Join(root, n.link), p)
	case entry.TypeFIFO:
		return unix.Mkfifo(p, 0o600)
	case entry.TypeSocket:
		return unix.Mknod(p, unix.S_IFSOCK|0o600, 0)
	case entry.TypeCharDev:
		return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(n.major, n.minor)))
	case entry.TypeBlockDev:
		return unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(n.major, n.minor)))
	}
	return fmt.Errorf("unknown type %v", n.typ)
}

func writeFile(p string, n node) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if n.path == SparsePath {
		for _, c := range []struct {
			off int64
			len int
		}{{0, 4096}, {1<<20 + 7, 100}, {SparseSize - 1, 1}} {
			if _, err := f.WriteAt(Content(n.path, int64(c.len)), c.off); err != nil {
				return err
			}
		}
		return f.Close()
	}
	if _, err := f.Write(Content(n.path, n.size)); err != nil {
		return err
	}
	return f.Close()
}

func finish(root string, n node) error {
	p := filepath.Join(root, n.path)
	if n.typ == entry.TypeHardlink {
		return nil // shares the inode of its first name
	}
	if n.owner != nil {
		if err := unix.Lchown(p, n.owner[0], n.owner[1]); err != nil {
			return fmt.Errorf("lchown: %w", err)
		}
	}
	if n.typ != entry.TypeSymlink {
		if err := unix.Chmod(p, n.mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n.xattrs)) {
		if err := unix.Lsetxattr(p, k, []byte(n.xattrs[k]), 0); err != nil {
			return fmt.Errorf("lsetxattr %s: %w", k, err)
		}
	}
	return nil
}

// stampTimes gives every entry under root (root included) a distinct mtime
// derived from its path, children before their directory, and counts them.
func stampTimes(root string) (int, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, p := range slices.Backward(paths) {
		rel, _ := filepath.Rel(root, p)
		ts := unix.NsecToTimespec(MtimeOf(filepath.ToSlash(rel)).UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return 0, fmt.Errorf("utimes %s: %w", p, err)
		}
	}
	return len(paths), nil
}

// MtimeOf is the mtime Build gives the entry at path: somewhere in
// 2001–2033, with a nanosecond part, so truncation to seconds or
// microseconds shows.
func MtimeOf(path string) time.Time {
	s := sha256.Sum256([]byte("mtime:" + path))
	sec := 1_000_000_000 + int64(binary.LittleEndian.Uint32(s[:4])%1_000_000_000)
	return time.Unix(sec, int64(binary.LittleEndian.Uint32(s[4:8])%1_000_000_000))
}

// Content is the body Build gives a file at path of the given size:
// pseudo-random bytes seeded by the path, so no block is accidentally all
// zeros and two files never share content.
func Content(path string, size int64) []byte {
	seed := sha256.Sum256([]byte("content:" + path))
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}
