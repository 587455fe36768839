package builder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/image/fat"
	"byzantium/image/gpt"
	"byzantium/image/usbimg"
)

// TestSpareHoldsSaveDat: outputs.usb.spare is free space in the FAT
// partition, which spans the disk: a save.dat of that size fits in the
// image a build makes. Asked for more room than the image size leaves,
// the build fails with ErrNoRoom naming the spec's keys and leaves no
// image.
func TestSpareHoldsSaveDat(t *testing.T) {
	f := newFixture(t)
	cacheDir := filepath.Join(f.dir, "cache")
	y, err := os.ReadFile(f.specPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		usb     string
		noRoom  bool
		saveDat int64
	}{
		{usb: "{spare: 32M}", saveDat: 32 << 20},
		{usb: "{size: 128M, spare: 64M}", saveDat: 64 << 20},
		{usb: "{size: 96M, spare: 90M}", noRoom: true},
	} {
		t.Run(tc.usb, func(t *testing.T) {
			if err := os.WriteFile(f.specPath, bytes.Replace(y, []byte("usb: {spare: 32M}"), []byte("usb: "+tc.usb), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := spec.Load(f.specPath, spec.Options{})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			_, err = Build(s, Options{Out: out, Cache: &cache.Cache{Dir: cacheDir}, Epoch: epoch,
				InitBinary: f.initBin, DebDir: f.debDir, Tool: "test"})
			img := filepath.Join(out, "node-usb.img")
			if tc.noRoom {
				if !errors.Is(err, usbimg.ErrNoRoom) || !strings.Contains(err.Error(), "outputs.usb") || !strings.Contains(err.Error(), "spare 90M") {
					t.Fatalf("Build = %v, want ErrNoRoom naming outputs.usb and the spare", err)
				}
				if _, err := os.Stat(img); err == nil {
					t.Error("the refused image was written")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fl, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			fi, _ := fl.Stat()
			tab, err := gpt.Read(fl, fi.Size())
			if err != nil {
				t.Fatal(err)
			}
			if p := tab.Partitions[0]; p.LastLBA != gpt.LastUsableLBA(fi.Size()) {
				t.Errorf("the FAT partition ends at LBA %d, the disk's last usable is %d: space left outside it", p.LastLBA, gpt.LastUsableLBA(fi.Size()))
			}
			vol, err := fat.OpenVolume(fl, tab.Partitions[0].Offset())
			if err != nil {
				t.Fatal(err)
			}
			if err := vol.AddFile("byzantium/changes/save.dat", tc.saveDat, bytes.NewReader(make([]byte, tc.saveDat)), time.Now()); err != nil {
				t.Errorf("a save.dat of the spare's size (%d MiB) does not fit: %v", tc.saveDat>>20, err)
			}
		})
	}
}
