package clone

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/image/gpt"
)

// loopDev attaches file to a loop device for the test's duration.
func loopDev(t *testing.T, file string) string {
	t.Helper()
	losetup := testenv.RequireTool(t, "losetup")
	out, err := exec.Command(losetup, "--find", "--show", file).CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "losetup: "+err.Error()+": "+string(out))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "--detach", dev).Run() })
	return dev
}

// addPart makes partition 1 of dev from sector first, count sectors
// long, with BLKPG (addpart): it works whether or not the kernel reads
// partition tables itself (this host's does not read GPTs).
func addPart(t *testing.T, dev string, first, count int64) string {
	t.Helper()
	addpart := testenv.RequireTool(t, "addpart")
	if out, err := exec.Command(addpart, dev, "1", itoa(first), itoa(count)).CombinedOutput(); err != nil {
		t.Fatalf("addpart: %v\n%s", err, out)
	}
	part := dev + "p1"
	t.Cleanup(func() { exec.Command(testenv.RequireTool(t, "delpart"), dev, "1").Run() })
	if _, err := os.Stat(part); err != nil {
		t.Fatalf("no %s after addpart: %v", part, err)
	}
	return part
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestSameAsSource: a target that is the source, holds it or lives under
// it is refused by device identity, whatever its name: the same image
// file (by name, through a symlink, through a hard link); the same block
// device (by name, through a /dev/disk/by-id style link); a loop device
// over the source image, and the image behind a source loop device; the
// disk of a source partition and a partition of a source disk; the disk
// and the image file a source folder or source image lives on. A copy,
// another loop device and a new file are not refused.
func TestSameAsSource(t *testing.T) {
	testenv.RequireRoot(t)
	m := sourceMedia(t)
	dir := t.TempDir()
	img := copyFile(t, m.img)
	other := copyFile(t, m.img)
	symlink := filepath.Join(dir, "link.img")
	hardlink := filepath.Join(dir, "hard.img")
	if err := os.Symlink(img, symlink); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(img, hardlink); err != nil {
		t.Fatal(err)
	}
	loop := loopDev(t, img)
	otherLoop := loopDev(t, other)
	byID := filepath.Join(dir, "usb-Byz_Stick_0001-0:0")
	if err := os.Symlink(loop, byID); err != nil {
		t.Fatal(err)
	}
	// The source's FAT partition as a block device.
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gpt.Read(f, 64<<20)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	fatPart := tab.Partitions[0]
	part := addPart(t, loop, int64(fatPart.FirstLBA), int64(fatPart.LastLBA-fatPart.FirstLBA+1))

	// A folder and an image on an ext4 partition of a disk image.
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 256<<20); err != nil {
		t.Fatal(err)
	}
	diskLoop := loopDev(t, disk)
	diskPart := addPart(t, diskLoop, 2048, 250<<11)
	if out, err := exec.Command(testenv.RequireTool(t, "mkfs.ext4"), "-q", diskPart).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", diskPart, mnt).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "mount ext4: "+err.Error()+": "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	onDisk := filepath.Join(mnt, "media")
	if err := os.CopyFS(onDisk, os.DirFS(m.dir)); err != nil {
		t.Fatal(err)
	}
	imgOnDisk := filepath.Join(mnt, "src.img")
	if b, err := os.ReadFile(m.img); err != nil || os.WriteFile(imgOnDisk, b, 0o644) != nil {
		t.Fatal("copying the image onto the ext4 disk")
	}

	for _, tc := range []struct {
		name, from, target string
		want               string // in the error; "" for no refusal
	}{
		{"same file", img, img, "the source file"},
		{"through a symlink", img, symlink, "the source file"},
		{"a hard link", img, hardlink, "the source file"},
		{"same device", loop, loop, "the source device"},
		{"device through a by-id link", loop, byID, "the source device"},
		{"loop device over the source image", img, loop, "the file behind"},
		{"image behind the source loop device", loop, img, "the file behind"},
		{"disk of the source partition", part, loop, "the disk of " + part},
		{"partition of the source disk", loop, part, "a partition of " + loop},
		{"disk a source folder lives on", onDisk, diskLoop, "lives on"},
		{"image a source folder lives in", onDisk, disk, "the file behind " + diskLoop},
		{"disk a source image lives on", imgOnDisk, diskLoop, "lives on"},
		{"image a source image lives in", imgOnDisk, disk, "the file behind " + diskLoop},
		{"a copy", img, other, ""},
		{"another loop device", img, otherLoop, ""},
		{"a new file", img, filepath.Join(dir, "new.img"), ""},
		{"a folder elsewhere", m.dir, loop, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenSource(tc.from)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = System{}.SameAsSource(s, tc.target)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("%s → %s: %v", tc.from, tc.target, err)
				}
				return
			}
			if !errors.Is(err, ErrSameAsSource) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s → %s: %v, want ErrSameAsSource saying %q", tc.from, tc.target, err, tc.want)
			}
			t.Log(err)
			if strings.Contains(err.Error(), "--force") {
				t.Errorf("the refusal suggests --force: %v", err)
			}
		})
	}
}
