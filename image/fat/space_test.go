package fat

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"byzantium/modules/entry"
)

// TestNeed checks that Need is an upper bound of what Writer uses, and a
// close one, for trees of big files, many small ones and long names.
func TestNeed(t *testing.T) {
	many := []*entry.Header{dir("d")}
	for i := range 300 {
		many = append(many, file(fmt.Sprintf("d/a long file name, number %03d, to need several entries.txt", i), int64(i*37)))
	}
	for name, hs := range map[string][]*entry.Header{
		"big":   {file("boot/vmlinuz", 8<<20), file("byzantium/base/000-kernel.xzm", 20<<20+1), file("x", 0)},
		"many":  many,
		"mixed": append(testTrees()["mixed"], file("EFI/BOOT/BOOTX64.EFI", 1<<20)),
	} {
		t.Run(name, func(t *testing.T) {
			const size = 300 << 20
			var list []entry.Header
			for _, h := range hs {
				list = append(list, *h)
			}
			sp, err := Need(size, list)
			if err != nil {
				t.Fatal(err)
			}
			w, err := NewWriter(discard{}, 0, size, Options{Label: "X"})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hs {
				if err := w.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(w, body(h.Path, h.Size)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			used := int64(w.used) * sp.ClusterSize
			if used > sp.Need || sp.Need > used+used/20+16*sp.ClusterSize {
				t.Errorf("Need says %d bytes, Writer used %d", sp.Need, used)
			}
			if !sp.Fits() || sp.Have != int64(w.g.clusters)*sp.ClusterSize {
				t.Errorf("Have %d, volume has %d clusters of %d", sp.Have, w.g.clusters, sp.ClusterSize)
			}
		})
	}
}

// TestSparse: with Sparse, runs of zeros in file data stay holes in a new
// image file, and the volume reads back the same.
func TestSparse(t *testing.T) {
	img := filepath.Join(t.TempDir(), "s.img")
	f, err := os.Create(img)
	must(t, err)
	defer f.Close()
	must(t, f.Truncate(40<<20))
	w, err := NewWriter(f, 0, 40<<20, Options{Sparse: true, ModTime: testTime})
	must(t, err)
	data := make([]byte, 8<<20)
	copy(data[5<<20:], "not zero")
	must(t, w.WriteHeader(file("save.dat", int64(len(data)))))
	_, err = w.Write(data)
	must(t, err)
	must(t, w.Close())
	var st syscall.Stat_t
	must(t, syscall.Fstat(int(f.Fd()), &st))
	if st.Blocks*512 > 4<<20 {
		t.Errorf("%d bytes allocated for 8 MiB of mostly zeros", st.Blocks*512)
	}
	fsys, err := OpenFS(f, 0)
	must(t, err)
	got, err := fs.ReadFile(fsys, "save.dat")
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}
	fsck(t, img)
}
