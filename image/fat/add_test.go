package fat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"byzantium/modules/entry"
)

// TestAddFile adds files to a volume Writer made: into an existing folder
// with a long name, into new nested folders, enough of them to grow a
// directory past one cluster, one empty and one over a megabyte.
// fsck.fat must find it all clean (FSInfo included) and mtools must read
// back exactly the old and the new files.
func TestAddFile(t *testing.T) {
	img := filepath.Join(t.TempDir(), "v.img")
	hs := []*entry.Header{dir("byzantium"), dir("byzantium/base"), file("byzantium/base/000-kernel.xzm", 70000), file("README.txt", 12)}
	write(t, img, 0, 40<<20, Options{Label: "BYZANTIUM", VolumeID: 1, ModTime: testTime}, hs)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := OpenVolume(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	add := func(p string, size int64) {
		t.Helper()
		if err := v.AddFile(p, size, body(p, size), testTime); err != nil {
			t.Fatalf("AddFile(%s): %v", p, err)
		}
		hs = append(hs, file(p, size))
	}
	add("byzantium/changes/save.dat", 1<<20+1)
	add("byzantium/base/001-new module.xzm", 5000)
	add("empty", 0)
	for i := range 120 { // 120 long names: several clusters of entries
		add(fmt.Sprintf("many/a rather long file name number %03d.txt", i), int64(i))
	}
	hs = append(hs, dir("byzantium/changes"), dir("many"))
	if err := v.AddFile("byzantium/changes/SAVE.DAT", 1, body("x", 1), testTime); !errors.Is(err, ErrExists) {
		t.Errorf("adding over an existing file (other case): %v, want ErrExists", err)
	}
	if err := v.AddFile("README.txt/x", 1, body("x", 1), testTime); err == nil {
		t.Error("adding under a file succeeded")
	}
	if err := v.AddFile("huge", 39<<20, body("huge", 39<<20), testTime); !errors.Is(err, ErrNoSpace) {
		t.Errorf("adding more than fits: %v, want ErrNoSpace", err)
	}
	f.Close()
	fsck(t, img)
	compareTree(t, extract(t, img, 0), hs)
}
