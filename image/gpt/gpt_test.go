package gpt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// layout returns a table with an aligned ESP and a Linux partition filling
// the rest, the shape the USB image uses.
func layout(diskSize int64) *Table {
	seed := []byte("byzantium test 1.0")
	espLast := AlignUp(FirstUsableLBA) + 64<<20/SectorSize - 1
	return &Table{
		DiskGUID: DeriveGUID(seed, "disk"),
		BootCode: bytes.Repeat([]byte{0x90}, 100),
		Partitions: []Partition{
			{Type: TypeESP, GUID: DeriveGUID(seed, "part1"), Name: "BYZANTIUM",
				FirstLBA: AlignUp(FirstUsableLBA), LastLBA: espLast, Attributes: AttrLegacyBIOSBootable},
			{Type: TypeLinuxFS, GUID: DeriveGUID(seed, "part2"), Name: "persistence ✓",
				FirstLBA: AlignUp(espLast + 1), LastLBA: LastUsableLBA(diskSize)},
		},
	}
}

func writeImage(t *testing.T, tab *Table, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return img
}

func TestGUID(t *testing.T) {
	const esp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	if got := TypeESP.String(); got != esp {
		t.Errorf("TypeESP.String() = %s, want %s", got, esp)
	}
	// On disk the first three fields are little-endian.
	if TypeESP[0] != 0x28 || TypeESP[4] != 0x1F || TypeESP[8] != 0xBA {
		t.Errorf("TypeESP bytes = % x, want mixed-endian layout", TypeESP[:])
	}
	a, b := DeriveGUID([]byte("s"), "disk"), DeriveGUID([]byte("s"), "disk")
	if a != b {
		t.Errorf("DeriveGUID is not deterministic: %s vs %s", a, b)
	}
	if c := DeriveGUID([]byte("s"), "part1"); c == a {
		t.Errorf("DeriveGUID ignores the label: %s", c)
	}
	if s := a.String(); s[14] != '8' || !strings.ContainsRune("89AB", rune(s[19])) {
		t.Errorf("DeriveGUID = %s, want version 8 and the RFC variant", s)
	}
	if _, err := ParseGUID("not-a-guid"); err == nil {
		t.Error("ParseGUID accepted garbage")
	}
}

func TestRoundTripAndBackup(t *testing.T) {
	const size = 256 << 20
	tab := layout(size)
	img := writeImage(t, tab, size)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check := func(what string) {
		got, err := Read(f, size)
		if err != nil {
			t.Fatalf("Read (%s): %v", what, err)
		}
		if !reflect.DeepEqual(got.Partitions, tab.Partitions) || got.DiskGUID != tab.DiskGUID {
			t.Errorf("Read (%s) = %+v, want %+v", what, got, tab)
		}
		if !bytes.HasPrefix(got.BootCode, tab.BootCode) || got.MBRBootable {
			t.Errorf("Read (%s): boot code or active flag not preserved", what)
		}
	}
	check("primary")
	// Corrupt the primary header: Read must fall back to the backup.
	if _, err := f.WriteAt([]byte{0xFF}, SectorSize+24); err != nil {
		t.Fatal(err)
	}
	check("backup")
}

func TestWriteRejects(t *testing.T) {
	const size = 64 << 20
	last := LastUsableLBA(size)
	for _, tc := range []struct {
		name string
		p    []Partition
		size int64
	}{
		{"before first usable", []Partition{{Type: TypeESP, FirstLBA: 33, LastLBA: 100}}, size},
		{"past last usable", []Partition{{Type: TypeESP, FirstLBA: 2048, LastLBA: last + 1}}, size},
		{"zero type", []Partition{{FirstLBA: 2048, LastLBA: 4095}}, size},
		{"overlap", []Partition{{Type: TypeESP, FirstLBA: 2048, LastLBA: 4096}, {Type: TypeESP, FirstLBA: 4096, LastLBA: 8191}}, size},
		{"long name", []Partition{{Type: TypeESP, FirstLBA: 2048, LastLBA: 4095, Name: strings.Repeat("x", 37)}}, size},
		{"unaligned disk", nil, size + 1},
		{"shared GUID", []Partition{{Type: TypeESP, GUID: TypeESP, FirstLBA: 2048, LastLBA: 4095}, {Type: TypeESP, GUID: TypeESP, FirstLBA: 4096, LastLBA: 8191}}, size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := &Table{Partitions: tc.p}
			err := tab.Write(discard{}, tc.size)
			if !errors.Is(err, ErrBadTable) {
				t.Errorf("Write = %v, want ErrBadTable", err)
			}
		})
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// TestOracles checks what sgdisk and sfdisk read from our tables, at sizes
// where the backup lands at different offsets (and one past 2 TiB, where
// the protective MBR saturates).
func TestOracles(t *testing.T) {
	sgdisk := testenv.RequireTool(t, "sgdisk")
	sfdisk := testenv.RequireTool(t, "sfdisk")
	for _, size := range []int64{100 << 20, 1 << 30, 3 << 40} {
		t.Run(fmt.Sprintf("%dMiB", size>>20), func(t *testing.T) {
			tab := layout(size)
			img := writeImage(t, tab, size)
			out, err := exec.Command(sgdisk, "-v", img).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "No problems found") {
				t.Fatalf("sgdisk -v: %v\n%s", err, out)
			}
			out, err = exec.Command(sgdisk, "-p", img).CombinedOutput()
			if err != nil {
				t.Fatalf("sgdisk -p: %v\n%s", err, out)
			}
			for _, want := range []string{"Disk identifier (GUID): " + tab.DiskGUID.String(), "BYZANTIUM", "persistence ✓", " EF00 ", " 8300 "} {
				if !strings.Contains(string(out), want) {
					t.Errorf("sgdisk -p lacks %q:\n%s", want, out)
				}
			}
			out, err = exec.Command(sgdisk, "-i", "1", img).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Attribute flags: 0000000000000004") ||
				!strings.Contains(string(out), "Partition unique GUID: "+tab.Partitions[0].GUID.String()) {
				t.Errorf("sgdisk -i 1: %v\n%s", err, out)
			}
			out, err = exec.Command(sfdisk, "--dump", img).CombinedOutput()
			if err != nil {
				t.Fatalf("sfdisk --dump: %v\n%s", err, out)
			}
			p0 := tab.Partitions[0]
			for _, want := range []string{
				"label: gpt", "label-id: " + tab.DiskGUID.String(), "first-lba: 34",
				"start=        2048, size=      131072, type=" + TypeESP.String() + ", uuid=" + p0.GUID.String() + `, name="BYZANTIUM", attrs="LegacyBIOSBootable"`,
			} {
				if !strings.Contains(string(out), want) {
					t.Errorf("sfdisk --dump lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
