package e2e_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/savedat/mkfs"
)

// TestPersistenceFolder: with changes=/byzantium/changes and boot media
// that is ext4 (the build's media tree put into an ext4 image by
// mkfs.ext4 -d, found by byz.media= as a bootloader would), a file
// written and synced before a power cut is there on the next boot, as is
// byzd's TLS certificate, and the file lies on the media in
// byzantium/changes/upper, as e2fsprogs reads it.
func TestPersistenceFolder(t *testing.T) {
	img := cloudImages(t)
	mkext4 := testenv.RequireTool(t, "mkfs.ext4")
	debugfs := testenv.RequireTool(t, "debugfs")
	fsck := testenv.RequireTool(t, "e2fsck")
	tree := mediaTree(t, img)
	media := filepath.Join(t.TempDir(), "media.img")
	ext4Media(t, mkext4, tree, media)
	opts := qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, Disk: media,
		Append: "console=ttyS0 byz.media=" + mediaID(t, tree) + " changes=/byzantium/changes"}
	var fp string // byzd's certificate, made on the first boot
	for boot := 1; boot <= 2; boot++ {
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		vm := startWithStore(t, opts)
		for _, want := range []string{"media: /dev/vda (ext4", "persistence: folder /byzantium/changes on /dev/vda"} {
			if _, err := vm.Expect(ctx, want); err != nil {
				t.Fatalf("boot %d: %v", boot, err)
			}
		}
		// byzd's state (its TLS key) persists as well.
		line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
		if err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		if m := fingerprintLine.FindStringSubmatch(line); m == nil || boot == 2 && m[1] != fp {
			t.Errorf("boot %d: %q; want the fingerprint of the first boot, %s", boot, line, fp)
		} else {
			fp = m[1]
		}
		if boot == 1 {
			writeAndCrash(ctx, t, vm)
		} else {
			if line := readBack(ctx, t, vm, "dir"); !strings.Contains(line, `"store":"byzantium/changes"`) {
				t.Errorf("persistence report %s, want the store byzantium/changes", line)
			}
			vm.Kill()
		}
		cancel()
	}

	// From the host: the file is in the folder's upper layer. The last
	// boot was killed too, so a copy has its journal replayed first
	// (debugfs does not replay it).
	cp := scratchCopy(t, media)
	if out, err := exec.Command(fsck, "-E", "journal_only", "-y", cp).CombinedOutput(); err != nil {
		// Exit 1: "errors corrected", which a replay is.
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("e2fsck -E journal_only: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(debugfs, "-R", "cat /byzantium/changes/upper/root/p", cp).Output()
	if err != nil || string(out) != "persisted-42\n" {
		t.Errorf("debugfs cat byzantium/changes/upper/root/p on the media: %q, %v; want %q", out, err, "persisted-42\n")
	}
}

// TestPersistenceFolderRefused: changes=/byzantium/changes on a CD (which
// cannot be written) or a FAT stick (which cannot hold owners and modes)
// is refused: the node
// boots in RAM, the console and the node's status say why, naming the media's file
// system, and the FAT stick is left as it was.
func TestPersistenceFolderRefused(t *testing.T) {
	img := cloudImages(t)
	for _, tc := range []struct {
		name   string
		opts   func() qemu.Options
		fstype string
		why    string // the media's kind, as the warning says it
	}{
		{"iso9660", func() qemu.Options { return qemu.Options{ISO: img.iso} }, "iso9660", "a CD image (iso9660), which cannot be written"},
		{"vfat", func() qemu.Options { return qemu.Options{Disk: scratchCopy(t, img.usb)} }, "vfat", "vfat, which cannot hold owners and modes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts()
			opts.Kernel, opts.Initrd, opts.Append = img.vmlinuz, img.initrd, "console=ttyS0 changes=/byzantium/changes"
			var before [sha256.Size]byte
			if opts.Disk != "" {
				before = fileSum(t, opts.Disk)
			}
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			want := "changes=/byzantium/changes: the media is " + tc.why
			vm, st := bootWithoutPersistence(ctx, t, opts, "WARNING: persistence is OFF: "+want)
			if p := st.Persistence; p == nil || p.Mode != "ram" || p.Store != "byzantium/changes" || !strings.Contains(p.Warning, want) {
				t.Errorf("persistence %+v; want mode ram, store byzantium/changes, a warning with %q", p, want)
			}
			if p := st.Persistence; p != nil {
				t.Logf("persistence warning: %s", p.Warning)
			}
			vm.Kill()
			if opts.Disk != "" && fileSum(t, opts.Disk) != before {
				t.Errorf("the %s media was written to", tc.fstype)
			}
		})
	}
}

// TestPersistenceCorruptStore: an ext4 store whose superblock the kernel
// refuses (s_inodes_count zeroed; the ext4 magic is intact, so byz-init
// sees ext4 and tries to mount it) is neither repaired nor formatted. The
// node boots in RAM, says so on the console and in its status, keeps
// serving, and a file written and synced there never reaches the store:
// after the power cut the store is byte for byte what it was.
func TestPersistenceCorruptStore(t *testing.T) {
	img := cloudImages(t)
	fsck := testenv.RequireTool(t, "e2fsck")
	store := filepath.Join(t.TempDir(), "store.img")
	if err := mkfs.Create(store, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	corruptInodesCount(t, store)
	// The oracle agrees it is damaged (on a copy: the store must stay as
	// it is).
	if out, err := exec.Command(fsck, "-fn", scratchCopy(t, store)).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "superblock is corrupt") {
		t.Fatalf("e2fsck -fn on the corrupted store: %v, want the superblock reported corrupt\n%s", err, out)
	}
	before := fileSum(t, store)

	opts := qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, ISO: img.iso, Disk: store,
		Append: "console=ttyS0 changes=/dev/vda"}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	// "mount -t ext4": the kernel refused it, not byz-init's sniffing.
	vm, st := bootWithoutPersistence(ctx, t, opts, "WARNING: persistence is OFF: changes=/dev/vda: mount -t ext4 /dev/vda",
		"WARNING: changes made now are lost at shutdown; the store was left untouched for repair")
	if p := st.Persistence; p == nil || p.Mode != "ram" || p.Store != "/dev/vda" || !strings.Contains(p.Warning, "mount -t ext4 /dev/vda") {
		t.Errorf("persistence %+v; want mode ram, store /dev/vda, the mount failure as warning", p)
	}
	writeAndCrash(ctx, t, vm)
	if fileSum(t, store) != before {
		t.Errorf("the corrupt store was written to: byz-init must leave it for repair")
	}
}

// bootWithoutPersistence boots opts with HTTPS forwarded to a loopback
// port and the test's admin password, waits for the warn lines on the
// console, in order, and byzd's certificate, and returns the VM and the
// node's status once /healthz answers. The console's "byzd: serving"
// line is left for the caller (writeAndCrash waits for it).
func bootWithoutPersistence(ctx context.Context, t *testing.T, opts qemu.Options, warn ...string) (*qemu.VM, nodeapi.Status) {
	t.Helper()
	port := freePort(t)
	opts.Forward = []string{fmt.Sprintf("%d:443", port)}
	opts = withCredential(opts)
	vm := qemu.StartT(t, qemu.Config{Options: opts, SerialLog: filepath.Join(t.TempDir(), "serial.log")})
	for _, w := range warn {
		if _, err := vm.Expect(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	m := fingerprintLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("cannot read the fingerprint in %q", line)
	}
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	if h := waitHealth(ctx, t, vm, base, m[1]); h.Status != "ok" {
		t.Errorf("/healthz status %q, want ok", h.Status)
	}
	return vm, nodeStatus(ctx, t, base, m[1], e2ePassword)
}

// mediaTree is the build's media folder (outputs.dir), the one vmlinuz
// and the initrd come from.
func mediaTree(t *testing.T, img *images) string {
	t.Helper()
	tree := filepath.Dir(filepath.Dir(img.vmlinuz))
	if st, err := os.Stat(filepath.Join(tree, "byzantium")); err != nil || !st.IsDir() {
		t.Fatalf("%s is not a media tree (no byzantium/): %v", tree, err)
	}
	return tree
}

// mediaID reads the media ID from the tree's byzantium/media-ID marker.
func mediaID(t *testing.T, tree string) string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(tree, "byzantium/media-*"))
	if err != nil || len(found) != 1 {
		t.Fatalf("media markers in %s: %q, %v; want one", tree, found, err)
	}
	return strings.TrimPrefix(filepath.Base(found[0]), "media-")
}

// ext4Media writes an ext4 image holding the tree at its root, with room
// to spare for the changes: a stick formatted ext4 and the media copied
// onto it.
func ext4Media(t *testing.T, mkfs, tree, dst string) {
	t.Helper()
	var size int64
	err := filepath.WalkDir(tree, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	size = (size*11/10 + 64<<20) &^ (1<<20 - 1)
	// 4 KiB blocks: below 512 MiB mke2fs.conf would pick 1 KiB ("small").
	out, err := exec.Command(mkfs, "-q", "-F", "-b", "4096", "-L", "BYZMEDIA", "-d", tree, dst,
		strconv.FormatInt(size>>10, 10)+"k").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4 -d %s: %v\n%s", tree, err, out)
	}
}

// corruptInodesCount zeroes s_inodes_count in the primary superblock of
// the ext4 file system at path, leaving the magic: the kernel refuses to
// mount it ("inodes count not valid: 0 vs 8192"), and e2fsck -n calls it
// corrupt. A save.dat has no metadata_csum, so no checksum is to be kept.
func corruptInodesCount(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		t.Fatal(err)
	}
	const roCompatMetadataCsum = 0x400
	if binary.LittleEndian.Uint16(sb[56:]) != 0xEF53 || binary.LittleEndian.Uint32(sb[100:])&roCompatMetadataCsum != 0 {
		t.Fatalf("%s: not an ext4 superblock without metadata_csum", path)
	}
	if _, err := f.WriteAt(make([]byte, 4), 1024); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// fileSum is the sha256 of a file's contents.
func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}
