package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/image/bootloader"
	"byzantium/modules/entry"
	"byzantium/overlays"
)

var epoch = time.Unix(1700000000, 0).UTC()

// fakeLoader holds every named bootloader file with made-up contents,
// but those in leave.
func fakeLoader(leave ...string) *bootloader.Loader {
	var files []*bootloader.File
	for _, name := range []string{bootloader.IsolinuxBin, bootloader.IsohdpfxBin, bootloader.LdlinuxC32, bootloader.Libcom32C32,
		bootloader.LibutilC32, bootloader.MenuC32, bootloader.Shim, bootloader.MokManager, bootloader.GrubDisk, bootloader.GrubCD} {
		if slices.Contains(leave, name) {
			continue
		}
		data := []byte("fake " + name)
		sum := sha256.Sum256(data)
		files = append(files, &bootloader.File{Name: name, Data: data, SHA256: hex.EncodeToString(sum[:])})
	}
	return bootloader.New(files...)
}

// testMedia writes small inputs under a temp dir.
func testMedia(t *testing.T, f bootloader.Flavour) Media {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, body string) string {
		p := filepath.Join(dir, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	write("rc1/etc/motd", "one\n")
	write("rc1/etc/hostname", "node\n")
	write("rc2/etc/motd", "two\n")
	return Media{
		Flavour: f, Loader: fakeLoader(),
		Kernel: write("vmlinuz", "kernel"), Initramfs: write("initrd", "initramfs"),
		Base:     []string{write("m/000-kernel.xzm", "k"), write("m/001-core.xzm", "c")},
		Modules:  []string{write("m/010-byzd.xzm", "d")},
		Optional: []string{write("m/100-extra.xzm", "e")},
		Rootcopy: []string{filepath.Join(dir, "rc1"), filepath.Join(dir, "rc2")},
		Menu:     bootloader.Config{Cmdline: "console=ttyS0", Entries: bootloader.StandardMenu("Byzantium")},
		ModTime:  epoch,
	}
}

// drain reads a stream into paths and bodies.
func drain(t *testing.T, r entry.Reader) ([]string, map[string][]byte) {
	t.Helper()
	var paths []string
	bodies := map[string][]byte{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			return paths, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Validate(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, h.Path)
		if h.Type == entry.TypeRegular {
			b, err := io.ReadAll(io.LimitReader(r, h.Size))
			if err != nil {
				t.Fatalf("%s: %v", h.Path, err)
			}
			bodies[h.Path] = b
		}
	}
}

func TestMediaUSB(t *testing.T) {
	tr, err := Plan(testMedia(t, bootloader.USB))
	if err != nil {
		t.Fatal(err)
	}
	paths, bodies := drain(t, tr.Reader())
	want := []string{".", "EFI", "EFI/BOOT", "EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi", "EFI/BOOT/mmx64.efi",
		"EFI/debian", "EFI/debian/grub.cfg", "boot", "boot/grub", "boot/grub/grub.cfg", "boot/initrd.zst", "boot/vmlinuz",
		"byzantium", "byzantium/base", "byzantium/base/000-kernel.xzm", "byzantium/base/001-core.xzm",
		"byzantium/boot.json", "byzantium/manifest.json", "byzantium/media-" + tr.ID, "byzantium/modules", "byzantium/modules/010-byzd.xzm",
		"byzantium/optional", "byzantium/optional/100-extra.xzm",
		"byzantium/rootcopy", "byzantium/rootcopy/etc", "byzantium/rootcopy/etc/hostname", "byzantium/rootcopy/etc/motd"}
	if len(paths) != len(want) {
		t.Fatalf("paths:\n%q\nwant\n%q", paths, want)
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Fatalf("entry %d is %s, want %s; all:\n%q", i, paths[i], want[i], paths)
		}
	}
	if string(bodies["EFI/BOOT/grubx64.efi"]) != "fake "+bootloader.GrubDisk || string(bodies["EFI/BOOT/BOOTX64.EFI"]) != "fake "+bootloader.Shim {
		t.Error("USB flavour: wrong GRUB or shim")
	}
	if got := string(bodies["byzantium/rootcopy/etc/motd"]); got != "two\n" {
		t.Errorf("rootcopy motd = %q, want the later folder's", got)
	}
	// The manifest lists every other file with its true size and digest.
	var man Manifest
	must(t, json.Unmarshal(bodies[overlays.ManifestPath], &man))
	if man.ID != tr.ID || len(man.Files) != len(bodies)-1 {
		t.Errorf("manifest ID %s (want %s), %d files (want %d)", man.ID, tr.ID, len(man.Files), len(bodies)-1)
	}
	for _, f := range man.Files {
		sum := sha256.Sum256(bodies[f.Path])
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(bodies[f.Path])) != f.Size {
			t.Errorf("manifest entry %s does not match the stream", f.Path)
		}
	}
	if !bytes.Contains(bodies[bootloader.GrubCfgDisk], []byte("byz.media="+tr.ID)) {
		t.Errorf("grub.cfg lacks the media ID")
	}
}

// TestMediaDeterministic plans twice from copies of the same inputs in
// different places and expects the same ID and manifest; a change in one
// input changes both.
func TestMediaDeterministic(t *testing.T) {
	a, err := Plan(testMedia(t, bootloader.USB))
	must(t, err)
	b, err := Plan(testMedia(t, bootloader.USB))
	must(t, err)
	if a.ID != b.ID || !bytes.Equal(a.Manifest, b.Manifest) {
		t.Fatalf("two plans differ: %s vs %s", a.ID, b.ID)
	}
	m := testMedia(t, bootloader.USB)
	must(t, os.WriteFile(m.Kernel, []byte("kernel2"), 0o644))
	c, err := Plan(m)
	must(t, err)
	if c.ID == a.ID {
		t.Error("a changed kernel kept the media ID")
	}
	m.Menu.Entries = m.Menu.Entries[:1]
	d, err := Plan(m)
	must(t, err)
	if d.ID == c.ID {
		t.Error("a changed menu kept the media ID")
	}
}

func TestMediaChangedInput(t *testing.T) {
	m := testMedia(t, bootloader.USB)
	tr, err := Plan(m)
	must(t, err)
	must(t, os.WriteFile(m.Kernel, []byte("kernEL"), 0o644))
	r := tr.Reader()
	for {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("Next: %v before reaching the kernel", err)
		}
		if h.Path == bootloader.KernelPath {
			_, err = io.ReadAll(io.LimitReader(r, h.Size))
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("err = %v, want ErrChanged", err)
			}
			return
		}
	}
}

func TestMediaBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Media)
		want error
	}{
		{"no loader", func(m *Media) { m.Loader = nil }, ErrBadMedia},
		{"no flavour", func(m *Media) { m.Flavour = 0 }, ErrBadMedia},
		{"module name", func(m *Media) { m.Base = append(m.Base, m.Kernel) }, ErrBadMedia},
		{"duplicate module", func(m *Media) { m.Modules = append(m.Modules, m.Modules[0]) }, ErrBadMedia},
		{"missing kernel", func(m *Media) { m.Kernel += ".gone" }, os.ErrNotExist},
		{"missing loader file", func(m *Media) { m.Loader = fakeLoader(bootloader.MokManager) }, bootloader.ErrMissingFile},
		{"bad label", func(m *Media) { m.Menu.Entries[0].Label = "a'b" }, bootloader.ErrBadMenu},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMedia(t, bootloader.USB)
			tc.edit(&m)
			if _, err := Plan(m); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestMediaSharedSums: plans sharing Sums agree with plans that hash every
// file, and a file changed behind the shared digest (same size and time)
// is still caught when its tree is written.
func TestMediaSharedSums(t *testing.T) {
	m := testMedia(t, bootloader.USB)
	alone, err := Plan(m)
	must(t, err)
	m.Sums = &Sums{}
	first, err := Plan(m)
	must(t, err)
	m.Flavour = bootloader.ISO
	_, err = Plan(m)
	must(t, err)
	m.Flavour = bootloader.USB
	second, err := Plan(m)
	must(t, err)
	if first.ID != alone.ID || second.ID != alone.ID {
		t.Fatalf("IDs %s, %s with shared sums, %s without", first.ID, second.ID, alone.ID)
	}
	fi, err := os.Stat(m.Kernel)
	must(t, err)
	must(t, os.WriteFile(m.Kernel, []byte("kernEL"), 0o644))
	must(t, os.Chtimes(m.Kernel, fi.ModTime(), fi.ModTime()))
	stale, err := Plan(m)
	must(t, err)
	r := stale.Reader()
	for {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("Next: %v before reaching the kernel", err)
		}
		if h.Path == bootloader.KernelPath {
			if _, err = io.ReadAll(io.LimitReader(r, h.Size)); !errors.Is(err, ErrChanged) {
				t.Fatalf("err = %v, want ErrChanged", err)
			}
			return
		}
	}
}

// TestMediaISO checks what the bootloader.ISO flavour adds: isolinux and its config,
// and the EFI image, which fsck.fat must pass.
func TestMediaISO(t *testing.T) {
	tr, err := Plan(testMedia(t, bootloader.ISO))
	must(t, err)
	_, bodies := drain(t, tr.Reader())
	for _, p := range []string{"boot/isolinux/isolinux.bin", "boot/isolinux/ldlinux.c32", "boot/isolinux/menu.c32",
		"boot/isolinux/libutil.c32", "boot/isolinux/libcom32.c32", "boot/isolinux/isolinux.cfg", bootloader.EFIImagePath} {
		if _, ok := bodies[p]; !ok {
			t.Errorf("ISO tree lacks %s", p)
		}
	}
	if string(bodies["EFI/BOOT/grubx64.efi"]) != "fake "+bootloader.GrubCD {
		t.Errorf("ISO tree's grubx64.efi is %q, want gcdx64", bodies["EFI/BOOT/grubx64.efi"])
	}
	if !bytes.Contains(bodies["boot/isolinux/isolinux.cfg"], []byte("byz.media="+tr.ID)) {
		t.Error("isolinux.cfg lacks the media ID")
	}
	fsck := testenv.RequireTool(t, "fsck.fat")
	img := filepath.Join(t.TempDir(), "efi.img")
	must(t, os.WriteFile(img, bodies[bootloader.EFIImagePath], 0o644))
	if out, err := exec.Command(fsck, "-n", img).CombinedOutput(); err != nil {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// realDebs returns the cached bootloader .debs, one per package.
func realDebs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pkg := range bootloader.Packages() {
		matches, _ := filepath.Glob(filepath.Join("..", "..", ".cache", "debs", pkg+"_*.deb"))
		if len(matches) == 0 {
			testenv.RequireFile(t, filepath.Join("..", "..", ".cache", "debs", pkg+"_VERSION.deb"),
				"run ci/fetch-debs "+strings.Join(bootloader.Packages(), " ")+" from the repository root")
		}
		out = append(out, matches[len(matches)-1])
	}
	return out
}
