package usbimg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"byzantium/image/gpt"
)

// recorder is a Disk that notes where each write went, in order.
type recorder struct {
	*os.File
	writes []int64 // offsets
	syncs  []int   // len(writes) at each Sync
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	r.writes = append(r.writes, off)
	return r.File.WriteAt(p, off)
}

func (r *recorder) Sync() error {
	r.syncs = append(r.syncs, len(r.writes))
	return r.File.Sync()
}

// usedDisk is a file of size bytes holding a complete old image, as a
// stick that was written before.
func usedDisk(t *testing.T, size int64) *os.File {
	t.Helper()
	old := filepath.Join(t.TempDir(), "old.img")
	if err := Write(old, tree(map[string][]byte{"old/file": bytes.Repeat([]byte("old"), 5000)}),
		Options{Size: size, Seed: []byte("old"), ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(old, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := gpt.Read(f, size); err != nil {
		t.Fatalf("the old image has no GPT to begin with: %v", err)
	}
	return f
}

// TestWriteDiskOrder: on a used disk, WriteDisk wipes both ends first and
// writes the partition table last, after a sync and after Verify; its
// result equals what Write makes of the same stream on a fresh file.
func TestWriteDiskOrder(t *testing.T) {
	const size = 64 << 20
	files := map[string][]byte{"EFI/BOOT/BOOTX64.EFI": bytes.Repeat([]byte("efi"), 1000), "a/b": []byte("b")}
	opts := Options{Size: size, Seed: seed(), ModTime: testTime, BootCode: bytes.Repeat([]byte{7}, 440),
		BIOSCore: bytes.Repeat([]byte{9}, 3000)}
	rec := &recorder{File: usedDisk(t, size)}
	verified := -1
	opts.Wipe = true
	opts.Verify = func(l *Layout) error {
		verified = len(rec.writes)
		if l.FAT.FirstLBA != gpt.AlignmentLBA || l.Label != DefaultLabel {
			t.Errorf("layout %+v", l)
		}
		if _, err := gpt.Read(rec.File, size); err == nil {
			t.Error("a GPT is readable before the table is written")
		}
		return nil
	}
	if err := WriteDisk(rec, tree(files), opts); err != nil {
		t.Fatal(err)
	}
	// The wipe: the first writes cover both ends.
	if rec.writes[0] != 0 || len(rec.syncs) < 3 {
		t.Fatalf("writes %v, syncs %v", rec.writes, rec.syncs)
	}
	// The table: the last five writes (MBR, primary header and entries,
	// backup entries and header), after Verify and a sync.
	n := len(rec.writes)
	if verified != n-5 || rec.syncs[len(rec.syncs)-2] != n-5 || rec.syncs[len(rec.syncs)-1] != n {
		t.Errorf("Verify after %d writes, syncs at %v, %d writes in all: the table was not last", verified, rec.syncs, n)
	}
	for _, off := range rec.writes[n-5:] {
		if off >= gpt.FirstUsableLBA*gpt.SectorSize && off < size-33*gpt.SectorSize {
			t.Errorf("one of the last writes is at %d, not in a table area", off)
		}
	}
	fresh := filepath.Join(t.TempDir(), "fresh.img")
	opts.Wipe, opts.Verify = false, nil
	if err := Write(fresh, tree(files), opts); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(fresh)
	b, _ := os.ReadFile(rec.File.Name())
	// The old image's file data may survive in free clusters; everything
	// Write wrote must be the same.
	for _, r := range [][2]int64{{0, 2 << 20}, {size - 2<<20, size}} {
		if !bytes.Equal(a[r[0]:r[1]], b[r[0]:r[1]]) {
			t.Errorf("bytes %d-%d differ from a fresh Write", r[0], r[1])
		}
	}
}

// TestWriteDiskVerifyFails: an error from Verify leaves a used disk with
// no partition table at all, neither the old one nor the new one.
func TestWriteDiskVerifyFails(t *testing.T) {
	const size = 64 << 20
	f := usedDisk(t, size)
	bad := errors.New("read-back differs")
	err := WriteDisk(f, tree(map[string][]byte{"x": []byte("x")}), Options{Size: size, Seed: seed(), Wipe: true,
		Verify: func(*Layout) error { return bad }})
	if !errors.Is(err, bad) {
		t.Fatalf("WriteDisk = %v, want the Verify error", err)
	}
	if _, err := gpt.Read(f, size); err == nil {
		t.Error("a GPT survived a failed verification")
	}
	mbr := make([]byte, 512)
	f.ReadAt(mbr, 0)
	if !bytes.Equal(mbr, make([]byte, 512)) {
		t.Error("the MBR is not zero")
	}
}

// TestPlanDeviceSize: a disk whose size is not a whole number of MiB (a
// real stick) gets a FAT partition ending on a MiB boundary.
func TestPlanDeviceSize(t *testing.T) {
	const size = 7_813_127 * 512 // 3.7 GiB and 7 sectors
	l, err := Plan(Options{Size: size, Seed: seed()})
	if err != nil {
		t.Fatal(err)
	}
	if end := l.FAT.Offset() + l.FAT.Size(); end != size-33*512 {
		t.Errorf("FAT partition ends at %d on a disk of %d", end, size)
	}
	if _, err := Plan(Options{Size: size + 1, Seed: seed()}); !errors.Is(err, ErrBadOption) {
		t.Errorf("a size that is no whole sector: %v", err)
	}
}
