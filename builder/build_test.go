package builder

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
	"byzantium/modules/deps"
)

var epoch = time.Unix(1700000000, 0).UTC()

// fixture is what every build test needs: the inputs on disk and a spec
// naming them.
type fixture struct {
	dir, initBin, debDir, runtime, specPath string
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := repoRoot(t)
	f := &fixture{dir: t.TempDir(), debDir: filepath.Join(root, ".cache/debs")}
	glob := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(f.debDir, pattern))
		if len(m) == 0 {
			testenv.RequireFile(t, filepath.Join(f.debDir, pattern), "run make fetch")
		}
		return m[len(m)-1]
	}
	kernelDeb := glob("linux-image-*-cloud-amd64_*.deb")
	busybox := glob("busybox-static_*.deb")
	f.initBin = filepath.Join(f.dir, "byz-init")
	cmd := exec.Command("go", "build", "-o", f.initBin, "./cmd/byz-init")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building byz-init: %v\n%s", err, out)
	}
	f.runtime = filepath.Join(f.dir, "runtime")
	os.MkdirAll(filepath.Join(f.runtime, "etc"), 0o755)
	os.WriteFile(filepath.Join(f.runtime, "etc/motd"), []byte("one\n"), 0o644)
	os.MkdirAll(filepath.Join(f.dir, "rootcopy/etc"), 0o755)
	os.WriteFile(filepath.Join(f.dir, "rootcopy/etc/hostname"), []byte("node\n"), 0o644)
	f.specPath = filepath.Join(f.dir, "node.yaml")
	y := `name: node
version: "1"
kernel:
  deb: ` + kernelDeb + `
cmdline: console=ttyS0
base:
  - name: busybox
    sources: [` + busybox + `]
    comp: gzip
    level: 1
modules:
  - name: runtime
    sources: [runtime/]
    depends: [busybox]
rootcopy: [rootcopy/]
outputs:
  iso: true
  usb: {spare: 32M}
`
	if err := os.WriteFile(f.specPath, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) build(t *testing.T, out, cacheDir string, refresh bool) *Result {
	t.Helper()
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(s, Options{Out: out, Cache: &cache.Cache{Dir: cacheDir, Refresh: refresh}, Epoch: epoch,
		InitBinary: f.initBin, DebDir: f.debDir, Tool: "test"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return res
}

// TestBuildCacheAndReproducibility: the artifacts are the kernel's three
// (vmlinuz, 000-kernel.xzm, initramfs), one per module and the console
// module. A second build
// reuses all of them; changing one module's input rebuilds that module
// alone; a build with a fresh cache elsewhere gives the same bytes.
func TestBuildCacheAndReproducibility(t *testing.T) {
	f := newFixture(t)
	cacheDir := filepath.Join(f.dir, "cache")
	out1 := filepath.Join(f.dir, "out1")
	res := f.build(t, out1, cacheDir, false)
	if res.Hits != 0 || res.Misses != 6 {
		t.Errorf("first build: %d hits, %d misses; want 0 and 6", res.Hits, res.Misses)
	}
	for _, name := range []string{"node.iso", "node-usb.img"} {
		if fi, err := os.Stat(filepath.Join(out1, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	// With no size the USB image is as small as its contents allow, plus
	// the spare room: fsck must find it sound all the same.
	if fi, _ := os.Stat(filepath.Join(out1, "node-usb.img")); fi == nil || fi.Size() > 128<<20 {
		t.Errorf("the USB image with no size given is %v bytes; its contents are ~25 MB", fi)
	}
	iso1, _ := os.ReadFile(filepath.Join(out1, "node.iso"))

	if res := f.build(t, out1, cacheDir, false); res.Hits != 6 || res.Misses != 0 {
		t.Errorf("no-change build: %d hits, %d misses; want 6 and 0 (no compression)", res.Hits, res.Misses)
	}

	// A fresh cache and another output folder: the same bytes.
	out2 := filepath.Join(f.dir, "out2")
	f.build(t, out2, filepath.Join(f.dir, "cache2"), true)
	for _, name := range []string{"node.iso", "node-usb.img"} {
		a, _ := os.ReadFile(filepath.Join(out1, name))
		b, _ := os.ReadFile(filepath.Join(out2, name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same inputs", name)
		}
	}

	// Touching a file (a new mtime, same content) changes nothing: times
	// are clamped to the epoch before they are hashed.
	later := time.Now()
	os.Chtimes(filepath.Join(f.runtime, "etc/motd"), later, later)
	if res := f.build(t, out1, cacheDir, false); res.Misses != 0 {
		t.Errorf("after touching a file: %d misses, want 0", res.Misses)
	}

	// Changing one module's content rebuilds that module and the media.
	os.WriteFile(filepath.Join(f.runtime, "etc/motd"), []byte("two\n"), 0o644)
	if res := f.build(t, out1, cacheDir, false); res.Hits != 5 || res.Misses != 1 {
		t.Errorf("after changing the runtime module: %d hits, %d misses; want 5 and 1", res.Hits, res.Misses)
	}
	iso3, _ := os.ReadFile(filepath.Join(out1, "node.iso"))
	if bytes.Equal(iso1, iso3) {
		t.Error("the ISO did not change with a module's content")
	}
	if left, _ := filepath.Glob(filepath.Join(out1, ".*")); len(left) != 0 {
		t.Errorf("temporary files left in the output folder: %v", left)
	}
}

// TestBuildBadInput: problems found before anything is written leave the
// output folder without outputs.
func TestBuildBadInput(t *testing.T) {
	f := newFixture(t)
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(s *spec.Spec, o *Options)
		is     error
		says   string
	}{
		{"missing dependency", func(s *spec.Spec, o *Options) { s.Modules[0].Depends = []string{"nothere"} }, deps.ErrMissing, "nothere"},
		{"no bootloader packages", func(s *spec.Spec, o *Options) { o.DebDir = t.TempDir() }, nil, "isolinux"},
		{"no init binary", func(s *spec.Spec, o *Options) { o.InitBinary = filepath.Join(f.dir, "nope") }, os.ErrNotExist, "byz-init"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := *s
			sc.Modules = append([]spec.Module(nil), s.Modules...)
			out := filepath.Join(t.TempDir(), "out")
			o := Options{Out: out, Cache: &cache.Cache{Dir: t.TempDir()}, Epoch: epoch, InitBinary: f.initBin,
				DebDir: f.debDir, Tool: "test"}
			tt.change(&sc, &o)
			_, err := Build(&sc, o)
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not mention %q", err, tt.says)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("outputs left after a failure: %v", left)
			}
			// These are all found before any work: nothing was built.
			// Checks on the spec alone run before the run takes the
			// lock builds share, later ones after, so the cache holds
			// at most that lock.
			entries, _ := os.ReadDir(o.Cache.Dir)
			if len(entries) > 1 || len(entries) == 1 && entries[0].Name() != ".lock" {
				t.Errorf("the cache holds %v after a failure found up front", entries)
			}
		})
	}
}

// TestBuildDiskFull: an output folder that fills up mid-write gives an
// error saying so and holds no output, whole or partial, afterwards.
func TestBuildDiskFull(t *testing.T) {
	testenv.RequireRoot(t)
	f := newFixture(t)
	out := filepath.Join(f.dir, "small")
	os.Mkdir(out, 0o755)
	if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=40m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(out, syscall.MNT_DETACH) })
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(s, Options{Out: out, Cache: &cache.Cache{Dir: filepath.Join(f.dir, "cache")}, Epoch: epoch,
		InitBinary: f.initBin, DebDir: f.debDir, Tool: "test"})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Build into a full folder: %v, want ENOSPC", err)
	}
	if !strings.Contains(err.Error(), out) {
		t.Errorf("error %q does not name the output", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		names := []string{}
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("left in the full folder: %v", names)
	}
}

// TestBuildFromVmlinuzAndModules: a kernel given as a vmlinuz and its
// /lib/modules/VERSION tree builds the same boot files as its package.
func TestBuildFromVmlinuzAndModules(t *testing.T) {
	testenv.RequireTool(t, "dpkg-deb")
	f := newFixture(t)
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	unpacked := filepath.Join(f.dir, "kernel")
	if out, err := exec.Command("dpkg-deb", "-x", s.Kernel.Deb, unpacked).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(unpacked, "boot/vmlinuz-*"))
	trees, _ := filepath.Glob(filepath.Join(unpacked, "lib/modules/*"))
	if len(vmlinuz) != 1 || len(trees) != 1 {
		t.Fatalf("unpacked kernel: %v %v", vmlinuz, trees)
	}
	build := func(k spec.Kernel, out string) string {
		sc := *s
		sc.Kernel = k
		sc.Outputs = spec.Outputs{Dir: "media"}
		o := Options{Out: out, Cache: &cache.Cache{Dir: filepath.Join(out, "cache")}, Epoch: epoch,
			InitBinary: f.initBin, DebDir: f.debDir, Tool: "test"}
		if _, err := Build(&sc, o); err != nil {
			t.Fatalf("Build with %+v: %v", k, err)
		}
		return filepath.Join(out, "media")
	}
	fromDeb := build(spec.Kernel{Deb: s.Kernel.Deb}, filepath.Join(f.dir, "a"))
	fromTree := build(spec.Kernel{Vmlinuz: vmlinuz[0], Modules: trees[0]}, filepath.Join(f.dir, "b"))
	for _, p := range []string{"boot/vmlinuz", "boot/initrd.zst"} {
		a, _ := os.ReadFile(filepath.Join(fromDeb, p))
		b, _ := os.ReadFile(filepath.Join(fromTree, p))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the package and the unpacked tree (%d vs %d bytes)", p, len(a), len(b))
		}
	}
	if _, err := os.Stat(filepath.Join(fromTree, "byzantium/base/000-kernel.xzm")); err != nil {
		t.Error(err)
	}
}
