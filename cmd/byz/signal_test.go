package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"byzantium/ci/testenv"
)

// noise writes n bytes that no compressor shrinks (the same every run).
func noise(t *testing.T, path string, n int, seed uint64) {
	t.Helper()
	var b bytes.Buffer
	r := rand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, 1<<20)
	for b.Len() < n {
		r.Read(buf)
		b.Write(buf[:min(len(buf), n-b.Len())])
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// moduleSource is a folder whose module takes seconds to make and to
// extract: a large incompressible file and many small ones.
func moduleSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "many"), 0o755)
	noise(t, filepath.Join(src, "big"), 40<<20, 1)
	for i := range 3000 {
		os.WriteFile(filepath.Join(src, "many", fmt.Sprintf("f%04d", i)), []byte(strings.Repeat("x", i%900)), 0o644)
	}
	os.Symlink("big", filepath.Join(src, "link"))
	return src
}

func mustByz(t *testing.T, args ...string) {
	t.Helper()
	if r := byz(t, nil, args...); r.code != 0 {
		t.Fatalf("byz %v: exit %d\n%s", args, r.code, r.stderr)
	}
}

// TestInterruptModuleCreate: Ctrl-C (or SIGTERM) at once, as the staging
// file appears and in the middle of writing leaves no temporary file, no
// partial module, the earlier module as it was and the sources unchanged.
func TestInterruptModuleCreate(t *testing.T) {
	src := moduleSource(t)
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine\n"), 0o644)
	mod := filepath.Join(out, "050-big.xzm")
	mustByz(t, "module", "create", src, "-o", mod, "-q") // the earlier module, kept through every interrupt
	runSigCase(t, sigCase{
		Args:   []string{"module", "create", src, "-o", mod, "-q", "--processors", "1"},
		Watch:  []string{out},
		Inputs: []string{src},
		Points: []sigPoint{
			{Name: "at once"},
			{Name: "staging made", When: func(p *sigProgress) bool { return p.NewHidden(0) }},
			{Name: "mid-write", When: func(p *sigProgress) bool { return p.NewHidden(4 << 20) }},
			{Name: "SIGTERM mid-write", Signal: syscall.SIGTERM, When: func(p *sigProgress) bool { return p.NewHidden(8 << 20) }},
		},
	})
	// And a module written where none was: none after an interrupt.
	runSigCase(t, sigCase{
		Args:   []string{"module", "create", src, "-o", filepath.Join(out, "060-new.xzm"), "-q", "--processors", "1"},
		Watch:  []string{out},
		Inputs: []string{src},
		Points: []sigPoint{{Name: "new module mid-write", When: func(p *sigProgress) bool { return p.NewHidden(4 << 20) }}},
	})
}

// TestInterruptModuleExtract: an interrupted extract leaves no folder
// where there was none, an existing folder as it was (with --overwrite
// too), and the module unchanged.
func TestInterruptModuleExtract(t *testing.T) {
	src := moduleSource(t)
	mod := filepath.Join(t.TempDir(), "big.xzm")
	mustByz(t, "module", "create", src, "-o", mod, "-q", "--comp", "gzip", "--level", "1")

	parent := t.TempDir()
	os.WriteFile(filepath.Join(parent, "notes.txt"), []byte("mine\n"), 0o644)
	runSigCase(t, sigCase{
		Args:   []string{"module", "extract", mod, filepath.Join(parent, "x")},
		Watch:  []string{parent},
		Inputs: []string{mod},
		Points: []sigPoint{
			{Name: "at once"},
			{Name: "staging made", When: func(p *sigProgress) bool { return p.NewHidden(0) }},
			{Name: "in the big file", When: func(p *sigProgress) bool { return p.NewHidden(8 << 20) }},
			{Name: "among the small files", When: func(p *sigProgress) bool { return p.NewFiles(1500) }},
		},
	})

	// Over an existing folder with --overwrite: its files stay as they
	// were, those the module would replace included.
	dest := filepath.Join(t.TempDir(), "dest")
	os.MkdirAll(filepath.Join(dest, "many"), 0o755)
	os.WriteFile(filepath.Join(dest, "many/f0001"), []byte("older\n"), 0o644)
	os.WriteFile(filepath.Join(dest, "keep"), []byte("mine\n"), 0o644)
	runSigCase(t, sigCase{
		Args:   []string{"module", "extract", "--overwrite", mod, dest},
		Watch:  []string{dest},
		Inputs: []string{mod},
		Points: []sigPoint{
			{Name: "overwrite, among the small files", When: func(p *sigProgress) bool { return p.NewFiles(1500) }},
			{Name: "overwrite, SIGTERM in the big file", Signal: syscall.SIGTERM, When: func(p *sigProgress) bool { return p.NewHidden(8 << 20) }},
		},
	})
	// Uninterrupted, it does extract over the folder.
	mustByz(t, "module", "extract", "--overwrite", mod, dest)
	if b, _ := os.ReadFile(filepath.Join(dest, "many/f0001")); string(b) != "x" {
		t.Errorf("many/f0001 after extracting over it: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "keep")); string(b) != "mine\n" {
		t.Errorf("keep after extracting over the folder: %q", b)
	}
	if fi, err := os.Stat(filepath.Join(dest, "big")); err != nil || fi.Size() != 40<<20 {
		t.Errorf("big after extracting over the folder: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dest, ".*")); len(left) != 0 {
		t.Errorf("left in the folder: %v", left)
	}
}

// TestInterruptBuild interrupts byz build at each of its stages, run from a
// folder that is not the repository (the bootloader packages are found
// above the spec): the output folder keeps the earlier build's outputs and
// an unrelated file, the cache keeps no work folder or half-made artifact,
// and the inputs are unchanged.
func TestInterruptBuild(t *testing.T) {
	root := repoRoot(t)
	debs := filepath.Join(root, ".cache/debs")
	glob := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(debs, pattern))
		if len(m) == 0 {
			testenv.RequireFile(t, filepath.Join(debs, pattern), "run make fetch")
		}
		return m[len(m)-1]
	}
	kernel, busybox := glob("linux-image-*-cloud-amd64_*.deb"), glob("busybox-static_*.deb")
	base := t.TempDir()
	initBin := filepath.Join(base, "bin/byz-init")
	cmd := exec.Command("go", "build", "-o", initBin, "./cmd/byz-init")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building byz-init: %v\n%s", err, out)
	}
	// A repository-like tree: .cache/debs above the spec's folder.
	repo := filepath.Join(base, "repo")
	os.MkdirAll(filepath.Join(repo, ".cache"), 0o755)
	os.Symlink(debs, filepath.Join(repo, ".cache/debs"))
	specDir := filepath.Join(repo, "node")
	os.MkdirAll(filepath.Join(specDir, "runtime/etc"), 0o755)
	os.WriteFile(filepath.Join(specDir, "runtime/etc/motd"), []byte("hello\n"), 0o644)
	os.MkdirAll(filepath.Join(specDir, "rootcopy/etc"), 0o755)
	os.WriteFile(filepath.Join(specDir, "rootcopy/etc/hostname"), []byte("node\n"), 0o644)
	specFile := filepath.Join(specDir, "node.yaml")
	os.WriteFile(specFile, []byte(`name: node
kernel: {deb: `+kernel+`}
cmdline: console=ttyS0
base: [{name: busybox, sources: [`+busybox+`], comp: gzip, level: 1}]
modules: [{name: runtime, sources: [runtime/], depends: [busybox]}]
rootcopy: [rootcopy/]
outputs: {iso: true, usb: {spare: 16M}, dir: true}
`), 0o644)
	out := filepath.Join(base, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine\n"), 0o644)
	cacheDir := filepath.Join(base, "cache")
	elsewhere := filepath.Join(base, "elsewhere")
	os.Mkdir(elsewhere, 0o755)
	args := []string{"build", "-f", specFile, "-o", out, "--cache", cacheDir, "--init", initBin}

	// The earlier build, from another folder, finding the packages.
	c := exec.Command(byzBin, args...)
	c.Dir, c.Env = elsewhere, append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("byz build from %s: %v\n%s", elsewhere, err, b)
	}
	for _, p := range []string{"node.iso", "node-usb.img", "node/byzantium/manifest.json"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Fatal(err)
		}
	}
	noCache := []string{"--no-cache"}
	says := func(s string) func(*sigProgress) bool { return func(p *sigProgress) bool { return p.Says(s) } }
	runSigCase(t, sigCase{
		Args:   args,
		Dir:    elsewhere,
		Watch:  []string{out},
		Inputs: []string{specDir},
		Points: []sigPoint{
			{Name: "at once"},
			{Name: "unpacking the kernel", When: says("unpacking"), Args: noCache},
			{Name: "well into unpacking", When: says("unpacking"), After: 300 * time.Millisecond, Args: noCache},
			{Name: "SIGTERM making 000-kernel.xzm", Signal: syscall.SIGTERM, When: says("building 000-kernel.xzm"), After: 500 * time.Millisecond, Args: noCache},
			{Name: "making the initramfs", When: says("building initramfs"), Args: noCache},
			{Name: "making a module", When: says("building modules/runtime"), Args: noCache},
			{Name: "writing the ISO", When: says("writing " + filepath.Join(out, "node.iso"))},
			{Name: "writing the USB image", When: says("writing " + filepath.Join(out, "node-usb.img"))},
			{Name: "writing the media folder", When: says("writing " + filepath.Join(out, "node") + "/")},
		},
		Check: func(t *testing.T) {
			time.Sleep(100 * time.Millisecond)
			filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
				if err == nil && (strings.HasPrefix(d.Name(), ".work-") || strings.HasPrefix(d.Name(), ".build-") ||
					strings.HasPrefix(d.Name(), "artifact-")) {
					t.Errorf("left in the cache: %s", p)
				}
				return nil
			})
		},
	})
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}
