package usbimg

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/image/gpt"
)

// TestLargeDisk: on a disk larger than FAT32 allows (3 TiB), the FAT
// partition stops at FAT32's 2 TiB limit and the rest is left
// unpartitioned, said by the layout; the image written to a sparse 3 TiB
// file passes sgdisk -v, and fsck.fat finds the 2 TiB partition clean.
func TestLargeDisk(t *testing.T) {
	const size = 3 << 40
	l, err := Plan(Options{Size: size, Seed: seed()})
	if err != nil {
		t.Fatal(err)
	}
	if l.FAT.Size() != MaxFATSize || l.FAT.Size()%(1<<20) != 0 || l.FAT.Size()/gpt.SectorSize > 0xFFFFFFFF {
		t.Errorf("FAT partition of %d bytes on a 3 TiB disk, want %d", l.FAT.Size(), int64(MaxFATSize))
	}
	if want := int64(gpt.LastUsableLBA(size)+1)*gpt.SectorSize - l.FAT.Offset() - l.FAT.Size(); l.Unpartitioned != want || l.Unpartitioned < 1<<40-1<<20 {
		t.Errorf("unpartitioned %d, want %d", l.Unpartitioned, want)
	}
	if small, _ := Plan(Options{Size: 64 << 20, Seed: seed()}); small.Unpartitioned != 0 {
		t.Errorf("a 64 MiB disk leaves %d bytes unpartitioned", small.Unpartitioned)
	}

	img := filepath.Join(t.TempDir(), "3t.img")
	start := time.Now()
	files := map[string][]byte{"EFI/BOOT/BOOTX64.EFI": bytes.Repeat([]byte("efi"), 1000), "byzantium/base/000-core.xzm": bytes.Repeat([]byte{1, 2, 3}, 100000)}
	if err := Write(img, tree(files), Options{Size: size, Seed: seed(), ModTime: testTime, Sparse: true, Room: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	t.Logf("a 3 TiB image written in %v", time.Since(start).Round(time.Millisecond))
	out, err := exec.Command(testenv.RequireTool(t, "sgdisk"), "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	out, _ = exec.Command(testenv.RequireTool(t, "sgdisk"), "-p", img).CombinedOutput()
	if !strings.Contains(string(out), "2.0 TiB") || !strings.Contains(string(out), "EF00") {
		t.Errorf("sgdisk -p:\n%s", out)
	}
	// fsck.fat takes no offset: a loop device over the partition.
	if os.Geteuid() == 0 {
		losetup := testenv.RequireTool(t, "losetup")
		b, err := exec.Command(losetup, "--find", "--show", "--read-only", "--offset", "1048576", "--sizelimit", itoa(l.FAT.Size()), img).CombinedOutput()
		if err != nil {
			testenv.Unavailable(t, "losetup: "+err.Error()+": "+string(b))
			return
		}
		dev := strings.TrimSpace(string(b))
		defer exec.Command(losetup, "--detach", dev).Run()
		if out, err := exec.Command(testenv.RequireTool(t, "fsck.fat"), "-n", dev).CombinedOutput(); err != nil {
			t.Errorf("fsck.fat -n on the 2 TiB partition: %v\n%s", err, out)
		}
	}
}

func itoa(n int64) string {
	var b []byte
	for ; n > 0 || len(b) == 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestRoom: Options.Room is the free space the FAT partition keeps after
// the files; files that leave less fail with ErrNoRoom, saying the sizes,
// and leave no image.
func TestRoom(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"byzantium/base/000-core.xzm": bytes.Repeat([]byte{1}, 20<<20)}
	err := Write(filepath.Join(dir, "no.img"), tree(files), Options{Size: 64 << 20, Seed: seed(), Room: 48 << 20})
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "less than the 48.0 MiB of room asked for") || !strings.Contains(err.Error(), "20.0 MiB") {
		t.Errorf("48 MiB of room on 64 MiB with 20 MiB of files: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
	if err := Write(filepath.Join(dir, "yes.img"), tree(files), Options{Size: 64 << 20, Seed: seed(), Room: 40 << 20}); err != nil {
		t.Errorf("40 MiB of room: %v", err)
	}
}
