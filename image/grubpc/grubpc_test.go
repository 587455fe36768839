package grubpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"

	"byzantium/ci/testenv"

	"github.com/ulikunitz/xz/lzma"
)

// grubDir extracts usr/lib/grub/i386-pc from the cached grub-pc-bin .deb.
func grubDir(t *testing.T) string {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join("..", "..", ".cache", "debs", "grub-pc-bin_*.deb"))
	if len(debs) == 0 {
		testenv.RequireFile(t, "../../.cache/debs/grub-pc-bin_VERSION.deb", "run make fetch from the repository root")
	}
	testenv.RequireTool(t, "dpkg-deb")
	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", debs[len(debs)-1], dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	return filepath.Join(dir, "usr", "lib", "grub", "i386-pc")
}

// unpack returns the kernel and modules a core image carries: it checks
// the decompressor's size fields and decodes the LZMA stream after it.
func unpack(t *testing.T, core, decomp []byte) []byte {
	t.Helper()
	body := core[sectorSize:]
	if !bytes.Equal(body[:8], decomp[:8]) || !bytes.Equal(body[16:len(decomp)], decomp[16:]) {
		t.Fatal("the decompressor differs from lzma_decompress.img beyond its size fields")
	}
	packed := binary.LittleEndian.Uint32(body[decompCompressedSize:])
	size := binary.LittleEndian.Uint32(body[decompUncompressedSize:])
	stream := body[len(decomp):]
	if int(packed) > len(stream) {
		t.Fatalf("compressed size %d, but only %d bytes follow the decompressor", packed, len(stream))
	}
	// The stream has no header: give it the one grub's decoder assumes.
	hdr := make([]byte, 13)
	hdr[0] = (2*5+0)*9 + 3 // pb=2, lp=0, lc=3
	binary.LittleEndian.PutUint32(hdr[1:], 1<<16)
	binary.LittleEndian.PutUint64(hdr[5:], uint64(size))
	r, err := lzma.NewReader(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(stream[:packed])))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding the core's LZMA stream: %v", err)
	}
	if len(raw) != int(size) {
		t.Fatalf("decoded %d bytes, the decompressor expects %d", len(raw), size)
	}
	return raw
}

// TestCoreMatchesGrubMkimage builds core images with and without an early
// config and compares them with grub-mkimage's for the same inputs: the
// same diskboot sector and decompressor with the same size fields, and an
// LZMA stream that decodes to the same bytes (the LZMA encoders differ,
// so the compressed bytes do).
func TestCoreMatchesGrubMkimage(t *testing.T) {
	dir := grubDir(t)
	mkimage := testenv.RequireTool(t, "grub-mkimage")
	decomp, err := os.ReadFile(filepath.Join(dir, DecompressImg))
	if err != nil {
		t.Fatal(err)
	}
	mods := []string{"biosdisk", "part_gpt", "fat", "normal", "linux", "search", "configfile", "echo", "test", "serial", "terminal"}
	for _, tc := range []struct {
		name   string
		config []byte
	}{
		{"prefix only", nil},
		{"early config", []byte("search --no-floppy --set=root --file /byzantium/media-0123\nset prefix=($root)/boot/grub\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const prefix = "(,gpt1)/boot/grub"
			ours, err := Core(os.DirFS(dir), CoreOptions{Modules: mods, Prefix: prefix, Config: tc.config})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"-O", "i386-pc", "-d", dir, "-o", filepath.Join(t.TempDir(), "core.img"), "-p", prefix}
			if tc.config != nil {
				cfg := filepath.Join(t.TempDir(), "early.cfg")
				if err := os.WriteFile(cfg, tc.config, 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-c", cfg)
			}
			args = append(args, mods...)
			if out, err := exec.Command(mkimage, args...).CombinedOutput(); err != nil {
				t.Fatalf("grub-mkimage: %v\n%s", err, out)
			}
			theirs, err := os.ReadFile(args[5])
			if err != nil {
				t.Fatal(err)
			}
			if len(ours)%sectorSize != 0 {
				t.Errorf("core image is %d bytes, not whole sectors", len(ours))
			}
			// The sector count differs (our LZMA encoder packs less
			// tightly); it must cover the core after the diskboot sector.
			lenField := sectorSize - listSize + 8
			if !bytes.Equal(ours[:lenField], theirs[:lenField]) || !bytes.Equal(ours[lenField+2:sectorSize], theirs[lenField+2:sectorSize]) {
				t.Errorf("diskboot sector differs:\nours   % x\ntheirs % x", ours[sectorSize-24:sectorSize], theirs[sectorSize-24:sectorSize])
			}
			if n := binary.LittleEndian.Uint16(ours[lenField:]); int(n) != len(ours)/sectorSize-1 {
				t.Errorf("diskboot reads %d sectors, the core has %d after it", n, len(ours)/sectorSize-1)
			}
			if got, want := binary.LittleEndian.Uint32(ours[sectorSize+decompUncompressedSize:]), binary.LittleEndian.Uint32(theirs[sectorSize+decompUncompressedSize:]); got != want {
				t.Errorf("uncompressed size field %d, grub-mkimage's %d", got, want)
			}
			a, b := unpack(t, ours, decomp), unpack(t, theirs, decomp)
			if !bytes.Equal(a, b) {
				i := 0
				for i < min(len(a), len(b)) && a[i] == b[i] {
					i++
				}
				t.Fatalf("unpacked payloads differ at byte %#x (ours %d bytes, grub-mkimage's %d)", i, len(a), len(b))
			}
			t.Logf("core image %d bytes (grub-mkimage: %d), payload %d bytes", len(ours), len(theirs), len(a))
		})
	}
}

func TestEmbedAndMBR(t *testing.T) {
	dir := grubDir(t)
	core, err := Core(os.DirFS(dir), CoreOptions{Modules: []string{"biosdisk", "part_gpt"}, Prefix: "(,gpt1)/boot/grub"})
	if err != nil {
		t.Fatal(err)
	}
	placed, err := Embed(core, 40)
	if err != nil {
		t.Fatal(err)
	}
	list := placed[sectorSize-listSize : sectorSize]
	if start, n, seg := binary.LittleEndian.Uint64(list), binary.LittleEndian.Uint16(list[8:]), binary.LittleEndian.Uint16(list[10:]); start != 41 || int(n) != len(core)/sectorSize-1 || seg != 0x820 {
		t.Errorf("blocklist start %d len %d segment %#x, want 41 %d 0x820", start, n, seg, len(core)/sectorSize-1)
	}
	if !bytes.Equal(placed[sectorSize-2*listSize:sectorSize-listSize], make([]byte, listSize)) {
		t.Error("no terminator below the first blocklist entry")
	}
	if !bytes.Equal(placed[sectorSize:], core[sectorSize:]) {
		t.Error("Embed changed more than the diskboot sector")
	}
	mbr, err := MBR(os.DirFS(dir), 40)
	if err != nil {
		t.Fatal(err)
	}
	if len(mbr) != 440 || binary.LittleEndian.Uint64(mbr[mbrKernelSector:]) != 40 || mbr[mbrBootDrive] != 0xff ||
		!bytes.Equal(mbr[mbrDriveCheck:mbrDriveCheck+2], []byte{0x90, 0x90}) {
		t.Errorf("MBR boot code not patched as grub-bios-setup does: % x", mbr[0x5c:0x68])
	}
}

func TestResolve(t *testing.T) {
	deps := []byte("a: b c\nb: c\nc:\nd: a\nloop: loop2\nloop2: loop\nx: p q\np:\nq:\n")
	for _, tc := range []struct {
		mods []string
		want []string
		err  bool
	}{
		{[]string{"a"}, []string{"c", "b", "a"}, false},
		{[]string{"d", "c"}, []string{"c", "b", "a", "d"}, false},
		{[]string{"c.mod", "a"}, []string{"c", "b", "a"}, false},
		{[]string{"loop"}, []string{"loop2", "loop"}, false},
		{[]string{"x"}, []string{"q", "p", "x"}, false},
		{[]string{"nope"}, nil, true},
	} {
		got, err := Resolve(deps, tc.mods)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%v) = %v, %v; want %v (error %v)", tc.mods, got, err, tc.want, tc.err)
		}
	}
	if _, err := Resolve([]byte("a: b\n"), []string{"a"}); err == nil || !errors.Is(err, ErrBadInput) {
		t.Errorf("a missing dependency: %v", err)
	}
}

// TestBadInput: each broken input is an ErrBadInput or a missing-file
// error that names the file.
func TestBadInput(t *testing.T) {
	dir := grubDir(t)
	good := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(dir, p))
		good[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := CoreOptions{Modules: []string{"biosdisk"}, Prefix: "(,gpt1)/boot/grub"}
	without := func(name string) fstest.MapFS {
		m := maps(good)
		delete(m, name)
		return m
	}
	with := func(name string, data []byte) fstest.MapFS {
		m := maps(good)
		m[name] = &fstest.MapFile{Data: data}
		return m
	}
	for _, tc := range []struct {
		name string
		fsys fs.FS
		opts CoreOptions
	}{
		{"no kernel", without(KernelImg), opts},
		{"no moddep", without(ModDep), opts},
		{"no module file", without("biosdisk.mod"), opts},
		{"unknown module", good, CoreOptions{Modules: []string{"nosuch"}, Prefix: "x"}},
		{"no prefix", good, CoreOptions{Modules: []string{"biosdisk"}}},
		{"NUL in config", good, CoreOptions{Prefix: "x", Config: []byte("a\x00b")}},
		{"kernel not ELF", with(KernelImg, []byte("not an elf")), opts},
		{"short diskboot", with(DiskbootImg, make([]byte, 100)), opts},
		{"short decompressor", with(DecompressImg, make([]byte, 4)), opts},
	} {
		if _, err := Core(tc.fsys, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	if _, err := MBR(with(BootImg, make([]byte, 512)), 40); !errors.Is(err, ErrBadInput) {
		t.Errorf("boot.img without a signature: %v", err)
	}
	if _, err := Embed(make([]byte, 700), 40); !errors.Is(err, ErrBadInput) {
		t.Errorf("Embed of a partial sector: %v", err)
	}
}

func maps(m fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
