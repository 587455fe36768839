package media

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"byzantium/image/bootloader"
	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/overlays"
)

// extractTree writes a planned tree out as a folder, as the builder's
// dir output does.
func extractTree(t *testing.T, tr *Tree) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "media")
	must(t, hostfs.Extract(tr.Reader(), dir, hostfs.ExtractOptions{NoChown: true}))
	return dir
}

// manifestOf reads a tree's manifest, by path.
func manifestOf(t *testing.T, fsys fs.FS) map[string]ManifestFile {
	t.Helper()
	b, err := fs.ReadFile(fsys, overlays.ManifestPath)
	must(t, err)
	var m Manifest
	must(t, json.Unmarshal(b, &m))
	out := map[string]ManifestFile{}
	for _, f := range m.Files {
		out[f.Path] = f
	}
	return out
}

// TestBootInfo: boot.json records the menu and epoch; read back, it gives
// the same bootloader.Config, and media made before it existed have theirs read
// back from grub.cfg.
func TestBootInfo(t *testing.T) {
	m := testMedia(t, bootloader.USB)
	m.Menu.Title = "Mesh node"
	m.Menu.Timeout = 3 * time.Second
	tr, err := Plan(m)
	must(t, err)
	fsys := os.DirFS(extractTree(t, tr))
	bi, err := ReadBootInfo(fsys)
	must(t, err)
	if got := bi.Config(); !reflect.DeepEqual(got, m.Menu) || bi.Flavour != "usb" || !bi.ModTime().Equal(epoch) {
		t.Errorf("boot.json gives %+v (%s, %v), want %+v", got, bi.Flavour, bi.ModTime(), m.Menu)
	}
	if _, ok := manifestOf(t, fsys)[overlays.BootInfoPath]; !ok {
		t.Errorf("%s is not in the manifest", overlays.BootInfoPath)
	}

	// An older media: grub.cfg only.
	grub, err := bootloader.Grub(bootloader.Config{Cmdline: "console=ttyS0 quiet", MediaID: "0123456789abcdef", Timeout: 2 * time.Second,
		Entries: []bootloader.Entry{{Label: "A"}, {Label: "B (debug)", Append: "debug", Default: true}}})
	must(t, err)
	old := fstest.MapFS{bootloader.GrubCfgDisk: {Data: grub}}
	bi, err = ReadBootInfo(old)
	must(t, err)
	want := []InfoEntry{{Label: "A", Append: "console=ttyS0 quiet"}, {Label: "B (debug)", Append: "console=ttyS0 quiet debug", Default: true}}
	if !reflect.DeepEqual(bi.Entries, want) || bi.TimeoutMS != 2000 || bi.Flavour != "usb" {
		t.Errorf("from grub.cfg: %+v", bi)
	}
	if _, err := ReadBootInfo(fstest.MapFS{}); !errors.Is(err, ErrBadMedia) {
		t.Errorf("no boot.json and no grub.cfg: %v, want ErrBadMedia", err)
	}
}

// TestReplanFromFS plans a tree from another media tree (FS, Digests from
// its manifest, IDSalt): the same payload under a new media ID, which the
// configs and the marker carry; a file that differs from the manifest
// stops the stream with ErrChanged naming it.
func TestReplanFromFS(t *testing.T) {
	m := testMedia(t, bootloader.USB)
	orig, err := Plan(m)
	must(t, err)
	dir := extractTree(t, orig)
	fsys := os.DirFS(dir)
	sums := manifestOf(t, fsys)
	bi, err := ReadBootInfo(fsys)
	must(t, err)
	re := Media{Flavour: bootloader.USB, Loader: m.Loader, FS: fsys, Digests: sums, IDSalt: []byte("clone 1"),
		Kernel: bootloader.KernelPath, Initramfs: bootloader.InitramfsPath,
		Base:     []string{"byzantium/base/000-kernel.xzm", "byzantium/base/001-core.xzm"},
		Modules:  []string{"byzantium/modules/010-byzd.xzm"},
		Optional: []string{"byzantium/optional/100-extra.xzm"},
		Rootcopy: []string{overlays.RootcopyDir}, Menu: bi.Config(), ModTime: bi.ModTime()}
	clone, err := Plan(re)
	must(t, err)
	if clone.ID == orig.ID {
		t.Fatal("the re-planned tree kept the media ID")
	}
	paths, bodies := drain(t, clone.Reader())
	opaths, obodies := drain(t, orig.Reader())
	if len(paths) != len(opaths) {
		t.Errorf("re-planned tree has %d entries, the original %d", len(paths), len(opaths))
	}
	for p, b := range obodies {
		nb, ok := bodies[strings.ReplaceAll(p, orig.ID, clone.ID)]
		switch {
		case !ok:
			t.Errorf("%s is missing from the re-planned tree", p)
		case p == overlays.ManifestPath:
			// Checked through the files it lists.
		case strings.HasPrefix(p, overlays.MarkerPath("")) || strings.HasSuffix(p, "grub.cfg"):
			if !bytes.Equal(bytes.ReplaceAll(b, []byte(orig.ID), []byte(clone.ID)), nb) {
				t.Errorf("%s differs by more than the media ID", p)
			}
		case !bytes.Equal(b, nb):
			t.Errorf("%s differs", p)
		}
	}
	a := re
	a.IDSalt = []byte("clone 2")
	other, err := Plan(a)
	must(t, err)
	if other.ID == clone.ID {
		t.Error("two salts gave one media ID")
	}

	// A module changed behind the manifest's back.
	must(t, os.WriteFile(filepath.Join(dir, "byzantium/modules/010-byzd.xzm"), []byte("D"), 0o644))
	bad, err := Plan(re)
	must(t, err)
	r := bad.Reader()
	for {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("Next: %v before the changed module", err)
		}
		if h.Type != entry.TypeRegular {
			continue
		}
		if _, err := io.Copy(io.Discard, io.LimitReader(r, h.Size)); err != nil {
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "byzantium/modules/010-byzd.xzm") {
				t.Fatalf("err = %v, want ErrChanged naming the module", err)
			}
			return
		}
	}
}

// TestLoaderFromMedia: bootloader.USB media carry GRUB's BIOS files, and a Loader
// taken back from the media makes the same BIOS boot code and holds the
// same EFI files as the one taken from the packages.
func TestLoaderFromMedia(t *testing.T) {
	debs, err := bootloader.Extract(realDebs(t)...)
	must(t, err)
	m := testMedia(t, bootloader.USB)
	m.Loader = debs
	tr, err := Plan(m)
	must(t, err)
	fsys := os.DirFS(extractTree(t, tr))
	sums := manifestOf(t, fsys)
	l, err := LoaderFromFS(fsys, sums)
	must(t, err)
	mbr1, core1, err := debs.GrubPC(40)
	must(t, err)
	mbr2, core2, err := l.GrubPC(40)
	must(t, err)
	if !bytes.Equal(mbr1, mbr2) || !bytes.Equal(core1, core2) {
		t.Error("the BIOS boot code made from the media differs from the packages'")
	}
	for _, name := range []string{bootloader.Shim, bootloader.GrubDisk, bootloader.MokManager} {
		a, _ := debs.File(name)
		b, err := l.File(name)
		if err != nil || a.SHA256 != b.SHA256 {
			t.Errorf("%s: %v", name, err)
		}
	}
	n := 0
	for p := range sums {
		if strings.HasPrefix(p, bootloader.GrubPCMediaDir+"/") {
			n++
		}
	}
	if n < 20 || n > 80 {
		t.Errorf("%d GRUB BIOS files on the media; want the images, moddep.lst and the embedded modules' closure", n)
	}
	// A changed file is refused, naming it.
	sums[bootloader.GrubPCMediaDir+"/kernel.img"] = ManifestFile{Path: bootloader.GrubPCMediaDir + "/kernel.img", Size: 1, SHA256: "00"}
	if _, err := LoaderFromFS(fsys, sums); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "kernel.img") {
		t.Errorf("LoaderFromFS with a wrong digest: %v", err)
	}
}
