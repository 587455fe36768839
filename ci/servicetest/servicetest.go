// Package servicetest makes a fake running node for tests of the module
// and service manager and of what drives it: a root folder with the media
// (a tmpfs) holding modules made with mksquashfs, the busybox base
// stacked "at boot" as byz-init would have, and its modules.json.
package servicetest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/modules/manifest"
	"byzantium/overlays"
	"byzantium/runtime/sandbox"

	"golang.org/x/sys/unix"
)

// Node is a fake node: Root is its running root, State its state folder.
type Node struct {
	Root, State string
}

// NewNode makes a node with the busybox base from .cache/debs (make
// fetch). It needs root; everything is unmounted when the test ends.
func NewNode(t *testing.T) *Node {
	t.Helper()
	testenv.RequireRoot(t)
	n := &Node{Root: t.TempDir(), State: t.TempDir()}
	media := filepath.Join(n.Root, "run/byz/media")
	os.MkdirAll(media, 0o755)
	if err := unix.Mount("tmpfs", media, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sandbox.UnmountUnder(n.Root) })
	debs, _ := filepath.Glob(filepath.Join(repoRoot(t), ".cache/debs/busybox-static_*.deb"))
	if len(debs) == 0 {
		testenv.Unavailable(t, "no busybox-static .deb in .cache/debs (make fetch)")
	}
	layer := filepath.Join(n.Root, "run/byz/layers/000-busybox")
	os.MkdirAll(layer, 0o755)
	if out, err := exec.Command(testenv.RequireTool(t, "dpkg-deb"), "-x", debs[0], layer).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	for _, d := range []string{"proc", "dev", "tmp", "run", "var/lib"} {
		os.MkdirAll(filepath.Join(layer, d), 0o755)
	}
	b, _ := (&manifest.Manifest{Name: "busybox"}).Marshal()
	os.MkdirAll(filepath.Join(layer, manifest.Dir), 0o755)
	os.WriteFile(filepath.Join(layer, manifest.Path("busybox")), b, 0o644)
	os.MkdirAll(filepath.Join(media, "byzantium/base"), 0o755)
	os.WriteFile(filepath.Join(media, "byzantium/base/000-busybox.xzm"), []byte("stand-in: stacked at boot"), 0o644)
	mj, _ := json.Marshal([]map[string]string{{"name": "busybox", "file": "byzantium/base/000-busybox.xzm", "layer": "/run/byz/layers/000-busybox"}})
	os.MkdirAll(filepath.Join(n.Root, "run/byzantium"), 0o755)
	os.WriteFile(filepath.Join(n.Root, overlays.ModulesJSON), mj, 0o644)
	return n
}

// Module puts a module with the manifest man and files (path → content)
// on the media, in folder ("optional", "modules") as file.
func (n *Node) Module(t *testing.T, folder, file string, man manifest.Manifest, files map[string]string) {
	t.Helper()
	b, err := man.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	files[manifest.Path(man.Name)] = string(b)
	n.ModuleFiles(t, folder, file, files, nil)
}

// ModuleFiles makes a module of files and symlinks (path → target), the
// manifest among the files.
func (n *Node) ModuleFiles(t *testing.T, folder, file string, files, links map[string]string) {
	t.Helper()
	src := t.TempDir()
	for p, data := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		if err := os.Symlink(target, filepath.Join(src, p)); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(n.Root, "run/byz/media/byzantium", folder, file)
	os.MkdirAll(filepath.Dir(out), 0o755)
	if o, err := exec.Command(testenv.RequireTool(t, "mksquashfs"), src, out, "-noappend", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, o)
	}
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}
