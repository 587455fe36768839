package bootloader

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
)

var epoch = time.Unix(1700000000, 0).UTC()

// TestEFIImageReal makes the CD's EFI image from the real packages and
// checks it with fsck.fat -n and mdir, and that each file reads back.
func TestEFIImageReal(t *testing.T) {
	l, err := Extract(realDebs(t)...)
	must(t, err)
	fsck := testenv.RequireTool(t, "fsck.fat")
	testenv.RequireTool(t, "mdir")
	testenv.RequireTool(t, "mtype")
	cfg, err := Grub(goldenConfig())
	must(t, err)
	files, err := l.EFIFiles(ISO, cfg)
	must(t, err)
	img := filepath.Join(t.TempDir(), "efi.img")
	f, err := os.Create(img)
	must(t, err)
	size, err := EFIImage(f, EFIOptions{ModTime: epoch, Seed: []byte("0123456789abcdef")}, files...)
	must(t, f.Close())
	must(t, err)
	if fi, _ := os.Stat(img); fi.Size() != size {
		t.Fatalf("image is %d bytes, EFIImage says %d", fi.Size(), size)
	}
	t.Logf("EFI image: %d bytes (%d MiB)", size, size>>20)
	if out, err := exec.Command(fsck, "-n", img).CombinedOutput(); err != nil {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
	out, err := exec.Command("mdir", "-i", img, "-/", "-b", "::").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v\n%s", err, out)
	}
	for _, want := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/EFI/BOOT/grubx64.efi", "::/EFI/BOOT/mmx64.efi",
		"::/EFI/debian/grub.cfg", "::/boot/grub/grub.cfg"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("mdir lacks %s:\n%s", want, out)
		}
	}
	for _, b := range files {
		got, err := exec.Command("mtype", "-i", img, "::/"+b.Path).Output()
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Errorf("mtype %s: %v, %d bytes back of %d", b.Path, err, len(got), len(b.Data))
		}
	}
	gcd, _ := l.File(GrubCD)
	for _, b := range files {
		if b.Path == grubPath && !bytes.Equal(b.Data, gcd.Data) {
			t.Error("the CD image's grubx64.efi is not gcdx64")
		}
	}
}
