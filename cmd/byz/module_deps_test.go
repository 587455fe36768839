package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

// TestDepsBuiltMedia builds real media with byz build (the cloud kernel,
// busybox, two modules, an optional one; ISO, USB image and a media
// folder), drops a Porteus module into the folder as a user would, and
// runs byz module deps the ways the README shows: on the output folder,
// on the media folder, on the USB image, on an output folder holding only
// the ISO and image (what make builds), and on one holding only the ISO.
func TestDepsBuiltMedia(t *testing.T) {
	mksquashfs := testenv.RequireTool(t, "mksquashfs")
	debs, err := filepath.Abs("../../.cache/debs")
	if err != nil {
		t.Fatal(err)
	}
	glob := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(debs, pattern))
		if len(m) == 0 {
			testenv.RequireFile(t, filepath.Join(debs, pattern), "run make fetch")
		}
		return m[len(m)-1]
	}
	kernel, busybox := glob("linux-image-*-cloud-amd64_*.deb"), glob("busybox-static_*.deb")
	dir := t.TempDir()
	initBin := filepath.Join(dir, "byz-init")
	cmd := exec.Command("go", "build", "-o", initBin, "../byz-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building byz-init: %v\n%s", err, out)
	}
	for _, d := range []string{"files/a", "files/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
		os.WriteFile(filepath.Join(dir, d, "f"), []byte(d), 0o644)
	}
	// web is listed before lib, which it needs: the builder numbers
	// modules in spec order, so lib stacks above web.
	spec := `name: node
version: "1"
kernel:
  deb: ` + kernel + `
base:
  - name: busybox
    sources: [` + busybox + `]
    comp: gzip
    level: 1
modules:
  - name: web
    sources: [files/a/]
    depends: [lib]
  - name: lib
    sources: [files/b/]
    depends: [busybox]
optional:
  - name: extra
    sources: [files/b/]
outputs:
  iso: true
  usb: {spare: 8M}
  dir: media
`
	if err := os.WriteFile(filepath.Join(dir, "node.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if r := byz(t, nil, "build", "-q", "-f", filepath.Join(dir, "node.yaml"), "-o", out, "--cache", filepath.Join(dir, "cache"),
		"--debs", debs, "--init", initBin); r.code != 0 {
		t.Fatalf("byz build: exit %d\n%s", r.code, r.stderr)
	}
	media := filepath.Join(out, "media", "byzantium")
	porteus := filepath.Join(media, "modules", "003-porteus-tool.xzm")
	if b, err := exec.Command(mksquashfs, filepath.Join(dir, "files"), porteus, "-quiet", "-no-progress",
		"-comp", "xz", "-b", "256K", "-Xbcj", "x86").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, b)
	}

	// console: the build's own module, /etc/inittab for the console setting.
	built := []string{"kernel base/000-kernel.xzm", "busybox base/001-busybox.xzm", "console base/002-console.xzm",
		"web modules/001-web.xzm", "lib modules/002-lib.xzm", "extra optional/001-extra.xzm"}
	withPorteus := append(append(built[:5:5], "porteus-tool modules/003-porteus-tool.xzm"), built[5])
	// deps runs byz module deps and returns "name folder/file" per line,
	// the file relative to the media tree's byzantium/ folder.
	deps := func(arg string, want []string, source string) {
		t.Helper()
		r := byz(t, nil, "module", "deps", arg)
		if r.code != 0 {
			t.Fatalf("deps %s: exit %d\n%s", arg, r.code, r.stderr)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			f := strings.Split(l, "\t")
			if len(f) < 3 {
				t.Fatalf("deps %s: line %q", arg, l)
			}
			file := f[2]
			if i := strings.Index(file, "byzantium/"); i >= 0 {
				file = file[i+len("byzantium/"):]
			}
			got = append(got, f[0]+" "+file)
			if strings.HasPrefix(f[0], "porteus") != (len(f) == 4 && strings.Contains(f[3], "no manifest")) {
				t.Errorf("deps %s: line %q: the Porteus module, and only it, is said to have no manifest", arg, l)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("deps %s:\n%s\nwant\n%s", arg, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !strings.Contains(r.stderr, source) || !strings.Contains(r.stderr, "note: web needs lib, which stacks above it") {
			t.Errorf("deps %s: stderr %q; want it to name %s and note web's dependency", arg, r.stderr, source)
		}
	}
	deps(out, withPorteus, "the media tree in "+filepath.Join(out, "media"))
	deps(media, withPorteus, "the media folder "+media)
	img := filepath.Join(out, "node-usb.img")
	deps(img, built, "the media tree in "+img+" (partition 1)")

	// What make leaves in out/: an ISO and a USB image.
	if err := os.RemoveAll(filepath.Join(out, "media")); err != nil {
		t.Fatal(err)
	}
	deps(out, built, "the media tree in "+img+" (partition 1) (also there, not read: "+filepath.Join(out, "node.iso")+")")

	if err := os.Remove(img); err != nil {
		t.Fatal(err)
	}
	r := byz(t, nil, "module", "deps", out)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "no modules found in "+out) ||
		!strings.Contains(r.stderr, filepath.Join(out, "node.iso")+" is an ISO image") {
		t.Errorf("deps on a folder with only an ISO: exit %d, stdout %q, stderr %q; want exit 1 saying what was looked for and why the ISO is not read",
			r.code, r.stdout, r.stderr)
	}
}

// TestReadPorteusAndUnsupported: a module made as Porteus makes them
// (xz, 256 KiB blocks, the x86 BCJ filter) extracts; one whose compressor
// this reader does not know is refused as unsupported, saying what to do,
// and not called corrupt.
func TestReadPorteusAndUnsupported(t *testing.T) {
	mksquashfs := testenv.RequireTool(t, "mksquashfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "usr/bin"), 0o755)
	exe, err := os.Executable() // x86 code, on which the filter is kept
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "usr/bin/tool"), code, 0o755)
	mod := filepath.Join(dir, "003-porteus-tool.xzm")
	if b, err := exec.Command(mksquashfs, src, mod, "-quiet", "-no-progress", "-comp", "xz", "-b", "256K", "-Xbcj", "x86").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, b)
	}
	dest := filepath.Join(dir, "x")
	if r := byz(t, nil, "module", "extract", mod, dest); r.code != 0 {
		t.Fatalf("extract: exit %d: %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "usr/bin/tool")); !bytes.Equal(b, code) {
		t.Errorf("extracted usr/bin/tool differs from the original (%d bytes, want %d)", len(b), len(code))
	}

	img, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	img[20], img[21] = 7, 0 // the superblock's compressor id
	odd := filepath.Join(dir, "odd.xzm")
	os.WriteFile(odd, img, 0o644)
	for _, cmd := range []string{"ls", "info", "extract"} {
		args := []string{"module", cmd, odd}
		if cmd == "extract" {
			args = append(args, filepath.Join(dir, "y"))
		}
		r := byz(t, nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "unsupported compression: compressor id 7") ||
			!strings.Contains(r.stderr, "byz module create") || strings.Contains(r.stderr, "corrupt") {
			t.Errorf("module %s of an image with compressor id 7: exit %d, %q; want exit 1, unsupported, what to do, not corrupt", cmd, r.code, r.stderr)
		}
	}
}
