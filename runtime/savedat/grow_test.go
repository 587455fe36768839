package savedat_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"
	"byzantium/runtime/savedat/mkfs"

	"golang.org/x/sys/unix"
)

// TestGrowRefused: Grow refuses what it cannot grow and leaves the file
// byte for byte as it was.
func TestGrowRefused(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "save.dat")
	if err := mkfs.Create(sd, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a save.dat\n"), 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path string
		size       int64
		err        error
		names      []string
	}{
		{"shrink", sd, 32 << 20, savedat.ErrBadOption, []string{"64 MiB", "32 MiB", "never shrinks"}},
		{"same size", sd, 64 << 20, savedat.ErrBadOption, []string{"64 MiB"}},
		{"not whole MiB", sd, 128<<20 + 4096, savedat.ErrBadOption, []string{"134221824", "1 MiB"}},
		{"not a save.dat", junk, 128 << 20, savedat.ErrNotSaveDat, []string{junk, "neither"}},
		{"empty file", empty, 128 << 20, savedat.ErrNotSaveDat, []string{empty}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := readAll(t, tt.path)
			err := savedat.Grow(tt.path, tt.size)
			if !errors.Is(err, tt.err) {
				t.Fatalf("savedat.Grow(%s, %d) = %v, want %v", tt.path, tt.size, err, tt.err)
			}
			for _, s := range tt.names {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%v: does not say %q", err, s)
				}
			}
			if !bytes.Equal(before, readAll(t, tt.path)) {
				t.Error("a refused Grow changed the file")
			}
		})
	}
	if err := savedat.Grow(filepath.Join(dir, "nope"), 128<<20); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Grow of a missing file = %v", err)
	}
}

// TestGrowEncrypted: an encrypted save.dat grows with its header and data
// untouched, and its dynamic segment then spans the larger file.
func TestGrowEncrypted(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "save.dat")
	if err := mkfs.Create(sd, mkfs.Options{Size: 64 << 20, Passphrase: []byte("mesh"), KDF: cheapKDF}); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, sd)
	if err := savedat.Grow(sd, 256<<20); err != nil {
		t.Fatal(err)
	}
	after := readAll(t, sd)
	if len(after) != 256<<20 || !bytes.Equal(after[:len(before)], before) {
		t.Fatalf("grown to %d bytes; the first 64 MiB unchanged: %v", len(after), bytes.Equal(after[:len(before)], before))
	}
	if bytes.ContainsFunc(after[len(before):], func(r rune) bool { return r != 0 }) {
		t.Error("the new space is not zeros")
	}
	f, err := os.Open(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := luks2.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := luks2.Unlock(f, h, []byte("mesh"))
	if err != nil {
		t.Fatal(err)
	}
	_, length, _, err := luks2.CryptTable(h, key, "7:0", 256<<20)
	if err != nil || length != (256<<20-luks2.DataOffset)/512 {
		t.Errorf("CryptTable on the grown file: %d sectors, %v; want %d", length, err, (256<<20-luks2.DataOffset)/512)
	}
	if cs, err := exec.LookPath("cryptsetup"); err == nil {
		kf := filepath.Join(dir, "kf")
		os.WriteFile(kf, []byte("mesh"), 0o600)
		if out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", kf, sd).CombinedOutput(); err != nil {
			t.Errorf("cryptsetup open --test-passphrase: %v\n%s", err, out)
		}
	}
}

// TestGrowFS grows plain save.dats, mounts them on a loop device, grows
// the ext4 online, and fills the new space; e2fsck then finds them clean
// with the block count of the file. 8 GiB is the most the one group
// descriptor block of a 64 MiB save.dat describes; 16 GiB makes the
// kernel convert it to meta_bg (Linux 6.1 converts at any growth, as
// there is no resize inode; later kernels only when the descriptors
// outgrow their block).
func TestGrowFS(t *testing.T) {
	testenv.RequireRoot(t)
	requireCap(t, unix.CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE, which EXT4_IOC_RESIZE_FS needs")
	losetup := testenv.RequireTool(t, "losetup")
	fsck, dumpe2fs := testenv.RequireTool(t, "e2fsck"), testenv.RequireTool(t, "dumpe2fs")
	for _, tt := range []struct {
		name     string
		to, fill int64
		metaBG   bool
	}{
		{"1G", 1 << 30, 256 << 20, false},
		{"1000M", 1000 << 20, 128 << 20, false},
		{"8G", 8 << 30, 128 << 20, false},
		{"16G", 16 << 30, 128 << 20, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sd := filepath.Join(t.TempDir(), "save.dat")
			if err := mkfs.Create(sd, mkfs.Options{Size: 64 << 20}); err != nil {
				t.Fatal(err)
			}
			if err := savedat.Grow(sd, tt.to); err != nil {
				t.Fatal(err)
			}
			mnt, unmount := loopMount(t, losetup, sd)
			if err := os.WriteFile(filepath.Join(mnt, "before"), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
			var st unix.Statfs_t
			unix.Statfs(mnt, &st)
			statBefore := st.Blocks * uint64(st.Bsize)
			oldB, newB, err := savedat.GrowFS(mnt)
			if err != nil {
				t.Fatal(err)
			}
			if oldB != 64<<20 || newB != tt.to {
				t.Errorf("GrowFS = %d, %d; want %d, %d", oldB, newB, 64<<20, tt.to)
			}
			unix.Statfs(mnt, &st)
			if got := st.Blocks * uint64(st.Bsize); got <= statBefore || got < uint64(tt.to)*9/10 {
				t.Errorf("statfs: %d bytes before, %d after growing to %d", statBefore, got, tt.to)
			}
			if o, n, err := savedat.GrowFS(mnt); err != nil || o != tt.to || n != tt.to {
				t.Errorf("GrowFS again = %d, %d, %v; want a no-op at %d", o, n, err, tt.to)
			}
			fill(t, mnt, tt.fill)
			if b, err := os.ReadFile(filepath.Join(mnt, "before")); string(b) != "kept" {
				t.Errorf("the file written before growing: %q, %v", b, err)
			}
			unmount()
			if out, err := exec.Command(fsck, "-fn", sd).CombinedOutput(); err != nil {
				t.Fatalf("e2fsck -fn: %v\n%s", err, out)
			}
			out, err := exec.Command(dumpe2fs, "-h", sd).CombinedOutput()
			if err != nil {
				t.Fatalf("dumpe2fs -h: %v\n%s", err, out)
			}
			if want := fmt.Sprintf("Block count:              %d\n", tt.to/4096); !strings.Contains(string(out), want) {
				t.Errorf("dumpe2fs -h has no %q:\n%s", want, out)
			}
			if tt.metaBG && !strings.Contains(string(out), " meta_bg") {
				t.Errorf("no meta_bg in dumpe2fs -h:\n%s", out)
			}
		})
	}
}

// TestGrowFSNothingToDo: a file system that fills its device, or leaves
// only a tail too small for a group, stays as it is; a mount that is not
// ext4 is refused.
func TestGrowFSNothingToDo(t *testing.T) {
	testenv.RequireRoot(t)
	losetup := testenv.RequireTool(t, "losetup")
	sd := filepath.Join(t.TempDir(), "save.dat")
	if err := mkfs.Create(sd, mkfs.Options{Size: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{1 << 30, 1<<30 + 1<<20} {
		if size > 1<<30 {
			if err := savedat.Grow(sd, size); err != nil {
				t.Fatal(err)
			}
		}
		mnt, unmount := loopMount(t, losetup, sd)
		if o, n, err := savedat.GrowFS(mnt); err != nil || o != 1<<30 || n != 1<<30 {
			t.Errorf("GrowFS on a %d-byte device = %d, %d, %v; want a no-op", size, o, n, err)
		}
		unmount()
	}
	tmp := t.TempDir()
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "size=1M"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(tmp, 0) })
	if _, _, err := savedat.GrowFS(tmp); err == nil || !strings.Contains(err.Error(), "not on an ext4") {
		t.Errorf("GrowFS on a tmpfs = %v", err)
	}
}

// TestGrowNoSpace: on a small tmpfs, a growth beyond its free space is
// refused and the file left as it was; one that fits goes through.
func TestGrowNoSpace(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=96M"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	sd := filepath.Join(dir, "save.dat")
	if err := mkfs.Create(sd, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, sd)
	err := savedat.Grow(sd, 1<<30)
	if !errors.Is(err, savedat.ErrNoSpace) || !strings.Contains(err.Error(), "needs 960 MiB") {
		t.Errorf("Grow beyond the free space = %v, want savedat.ErrNoSpace naming 960 MiB", err)
	}
	if !bytes.Equal(before, readAll(t, sd)) {
		t.Error("a refused Grow changed the file")
	}
	if err := savedat.Grow(sd, 80<<20); err != nil {
		t.Errorf("Grow within the free space: %v", err)
	}
}

// TestGrowOnFAT: on vfat, where growing writes zeros, a save.dat grows
// and stays clean; past FAT's 4 GiB file limit it is refused.
func TestGrowOnFAT(t *testing.T) {
	testenv.RequireRoot(t)
	losetup, mkvfat := testenv.RequireTool(t, "losetup"), testenv.RequireTool(t, "mkfs.vfat")
	fsck := testenv.RequireTool(t, "e2fsck")
	if fss, _ := os.ReadFile("/proc/filesystems"); !strings.Contains(string(fss), "\tvfat\n") {
		t.Skip("the host kernel has no vfat; ci/e2e TestPersistenceGrow grows a save.dat on FAT in QEMU")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "stick.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 256<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkvfat, "-F", "32", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	src := filepath.Join(dir, "save.dat")
	if err := mkfs.Create(src, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, src)
	mnt, unmount := loopMountType(t, losetup, img, "vfat")
	sd := filepath.Join(mnt, "save.dat")
	if err := os.WriteFile(sd, before, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := savedat.Grow(sd, 4<<30); !errors.Is(err, savedat.ErrBadOption) || !strings.Contains(err.Error(), "FAT") {
		t.Errorf("Grow past 4 GiB on FAT = %v", err)
	}
	if err := savedat.Grow(sd, 128<<20); err != nil {
		t.Fatal(err)
	}
	after := readAll(t, sd)
	if len(after) != 128<<20 || !bytes.Equal(after[:64<<20], before) {
		t.Errorf("grown to %d bytes; the first 64 MiB kept: %v", len(after), bytes.Equal(after[:64<<20], before))
	}
	unmount()
	out := filepath.Join(dir, "grown.dat")
	if err := os.WriteFile(out, after, 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command(fsck, "-fn", out).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, o)
	}
}

// requireCap skips (or under CI fails) the test unless the process has
// the effective capability c: a root in a container may lack some.
// cheapKDF keeps the tests' key derivations quick.
var cheapKDF = luks2.KDFParams{Type: "argon2id", Time: 1, Memory: 8 << 10, Threads: 1}

func requireCap(t *testing.T, c int, what string) {
	t.Helper()
	var data [2]unix.CapUserData
	if err := unix.Capget(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &data[0]); err != nil {
		t.Fatalf("capget: %v", err)
	}
	if data[c/32].Effective&(1<<(c%32)) == 0 {
		// Not testenv.Unavailable: CI's root may lack it too, and
		// ci/e2e's TestPersistenceGrow proves GrowFS in a guest, where
		// byz-init runs it with every capability.
		t.Skip("needs " + what + " (this root lacks it); ci/e2e TestPersistenceGrow covers GrowFS in QEMU")
	}
}

func readAll(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loopMount attaches file to a loop device and mounts its ext4 on a new
// directory. The returned func unmounts and detaches it; it also runs at
// cleanup if the test did not.
func loopMount(t *testing.T, losetup, file string) (string, func()) {
	return loopMountType(t, losetup, file, "ext4")
}

func loopMountType(t *testing.T, losetup, file, fstype string) (string, func()) {
	t.Helper()
	out, err := exec.Command(losetup, "--find", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v\n%s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	mnt := t.TempDir()
	done := false
	undo := func() {
		if done {
			return
		}
		done = true
		if err := unix.Unmount(mnt, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("umount %s: %v", mnt, err)
		}
		if out, err := exec.Command(losetup, "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	}
	t.Cleanup(undo)
	if err := unix.Mount(dev, mnt, fstype, 0, ""); err != nil {
		t.Fatalf("mount -t %s %s: %v", fstype, dev, err)
	}
	return mnt, undo
}

// fill writes n bytes of files into dir and syncs them.
func fill(t *testing.T, dir string, n int64) {
	t.Helper()
	chunk := bytes.Repeat([]byte{0xa5}, 16<<20)
	for i := int64(0); i*int64(len(chunk)) < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("fill%03d", i)), chunk, 0o644); err != nil {
			t.Fatalf("filling: %v", err)
		}
	}
	unix.Sync()
}
