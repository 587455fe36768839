package clone

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// TestCloneDevice clones onto a real block device: a loop device with
// partition scanning over a file that held an old image. Its sysfs entry
// says it is not removable, so only --force writes it; it is opened
// exclusively, read back past the page cache, and once the partition
// table is written the kernel rereads it and shows the partition.
func TestCloneDevice(t *testing.T) {
	testenv.RequireRoot(t)
	losetup := testenv.RequireTool(t, "losetup")
	m := sourceMedia(t)
	backing := filepath.Join(t.TempDir(), "stick.img")
	if err := os.WriteFile(backing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, 96<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", "--partscan", backing).CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "losetup: "+err.Error()+": "+string(out))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "--detach", dev).Run() })

	s, err := OpenSource(m.img)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := NewPlan(s, Options{SaveSize: 40 << 20, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sys := System{}
	d, err := sys.Inspect(dev)
	if err != nil || d == nil {
		t.Fatalf("Inspect(%s) = %v, %v", dev, d, err)
	}
	if d.Size != 96<<20 || d.Removable || d.Name != filepath.Base(dev) {
		t.Errorf("device %+v", d)
	}
	if err := sys.Check(d, p.MinSize(), false); !errors.Is(err, ErrRefused) {
		t.Errorf("a loop device without --force: %v, want ErrRefused", err)
	}
	if err := sys.Check(d, p.MinSize(), true); err != nil {
		t.Fatalf("with --force: %v", err)
	}
	if err := sys.Check(d, 1<<30, true); !errors.Is(err, ErrTooSmall) {
		t.Errorf("needing 1 GiB of 96 MiB: %v", err)
	}
	tg, err := OpenDevice(d)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if _, err := OpenDevice(d); !errors.Is(err, ErrRefused) {
		t.Errorf("a second exclusive open: %v, want ErrRefused", err)
	}
	res, err := p.Write(context.Background(), tg, &Progress{})
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join("/sys/class/block", filepath.Base(dev), filepath.Base(dev)+"p1")
	// This host's kernel reads no partition tables at all (no
	// CONFIG_EFI_PARTITION): there, the partition cannot show.
	cfg, _ := exec.Command("sh", "-c", "zcat /proc/config.gz 2>/dev/null").Output()
	if _, err := os.Stat(part); err != nil && !bytes.Contains(cfg, []byte("# CONFIG_EFI_PARTITION is not set")) {
		t.Errorf("the kernel shows no partition after the clone: %v", err)
	}
	oracles(t, backing)
	if got := readIDs(t, backing); got.media != res.MediaID {
		t.Errorf("media %s on the device, %s reported", got.media, res.MediaID)
	}
}
