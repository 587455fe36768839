package usbimg

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"byzantium/image/fat"
	"byzantium/modules/entry"
)

// TestOpen finds the media of an image Write made, in partition 1, and
// refuses a disk without a byzantium/ folder, with a GPT or without.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, files ...string) string {
		tree := &entry.Slice{Bodies: map[string][]byte{}}
		for _, p := range files {
			tree.Headers = append(tree.Headers, &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, Size: 3})
			tree.Bodies[p] = []byte("hi\n")
		}
		img := filepath.Join(dir, name)
		if err := Write(img, tree, Options{Size: 64 << 20, Seed: []byte(name)}); err != nil {
			t.Fatal(err)
		}
		return img
	}
	img, err := Open(write("media.img", "byzantium/manifest.json"), os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Partition != 1 || img.Size != 64<<20 || img.Offset != 1<<20 {
		t.Errorf("partition %d at %d on a disk of %d, want 1 at 1 MiB on 64 MiB", img.Partition, img.Offset, img.Size)
	}
	if _, err := img.FS.Open("byzantium/manifest.json"); err != nil {
		t.Error(err)
	}
	if _, err := Open(write("other.img", "data/x"), os.O_RDONLY); !errors.Is(err, ErrNoMedia) {
		t.Errorf("a GPT disk without byzantium/: %v, want ErrNoMedia", err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk, os.O_RDONLY); !errors.Is(err, ErrNoMedia) {
		t.Errorf("zeros: %v, want ErrNoMedia", err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), os.O_RDONLY); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestMinSize: the size MinSize gives holds the files with the room
// asked for, and no smaller image does by the same measure; the floor
// is kept.
func TestMinSize(t *testing.T) {
	hs := []entry.Header{{Path: "byzantium/base/a.xzm", Type: entry.TypeRegular, Size: 50 << 20}}
	for _, tc := range []struct{ room, floor int64 }{{0, 0}, {20 << 20, 0}, {0, 200 << 20}} {
		size, err := MinSize(hs, tc.room, tc.floor)
		if err != nil {
			t.Fatal(err)
		}
		if size%(1<<20) != 0 || size < tc.floor {
			t.Errorf("room %d floor %d: %d", tc.room, tc.floor, size)
		}
		fits := func(size int64) bool {
			l, err := Plan(Options{Size: size, Seed: []byte("x")})
			if err != nil {
				return false
			}
			sp, err := fat.Need(l.FAT.Size(), hs)
			return err == nil && sp.Fits() && sp.Have-sp.Need >= tc.room
		}
		if !fits(size) {
			t.Errorf("room %d: %d does not fit", tc.room, size)
		}
		if tc.floor == 0 && fits(size-1<<20) {
			t.Errorf("room %d: %d fits too", tc.room, size-1<<20)
		}
	}
	if _, err := MinSize([]entry.Header{{Path: "big", Type: entry.TypeRegular, Size: 3 << 40}}, 0, 0); !errors.Is(err, ErrNoRoom) {
		t.Errorf("3 TiB of files: %v, want ErrNoRoom", err)
	}
}
