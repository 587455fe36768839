package builder

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
)

// TestWifiModule builds the wifi module the default spec loads at boot
// (wpa_supplicant for SAE on a keyed 802.11s mesh) from the locked Debian
// packages with the builder's module stage, and checks that byzd's mesh
// manager can run it on a node whose base is busybox-static alone: no
// service (byzd launches it), every ELF file finds each library it needs
// inside the module (but wpa_cli's libreadline), and wpa_supplicant run chrooted into the module
// alone prints its version.
func TestWifiModule(t *testing.T) {
	root := repoRoot(t)
	s, err := spec.Load(filepath.Join(root, "examples", "byzantium.yaml"), spec.Options{SkipInputChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	var mods []spec.Module
	for _, m := range s.Modules {
		if m.Name == "wifi" {
			mods = append(mods, m)
		}
	}
	if len(mods) != 1 {
		t.Fatalf("examples/byzantium.yaml: want one module wifi under modules: (loaded at boot), found %d", len(mods))
	}
	if len(mods[0].Services) != 0 {
		t.Errorf("wifi declares services %+v: byzd's mesh manager runs wpa_supplicant", mods[0].Services)
	}
	for _, src := range mods[0].Sources {
		testenv.RequireFile(t, src, "run make fetch")
	}
	one := &spec.Spec{File: s.File, Dir: s.Dir, Name: s.Name, Modules: mods}
	b := &builder{spec: one, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: &cache.Cache{Dir: t.TempDir()}, tool: "test"}
	start := time.Now()
	built, err := b.moduleStage()
	if err != nil {
		t.Fatalf("moduleStage: %v", err)
	}
	xzm := built[0].path
	fi, _ := os.Stat(xzm)
	t.Logf("built modules/%s in %v: %d bytes", built[0].file, time.Since(start).Round(time.Millisecond), fi.Size())
	tree := readTree(t, xzm)
	// wpa_cli, the interactive control tool, needs libreadline8 and
	// libtinfo6, which WIFI_DEBS does not lock: byzd never runs it, and
	// the node's wpa_cli stays broken until they are added.
	if _, ok := tree.elfs["sbin/wpa_cli"]; !ok {
		t.Errorf("no sbin/wpa_cli in the module: has the package changed?")
	}
	delete(tree.elfs, "sbin/wpa_cli")
	t.Run("libraries", func(t *testing.T) { checkLibraries(t, tree, "sbin/wpa_supplicant", 10, 5) })
	t.Run("runs", func(t *testing.T) {
		testenv.RequireRoot(t)
		mount := testenv.RequireTool(t, "mount")
		mnt := t.TempDir()
		if out, err := exec.Command(mount, "-t", "squashfs", "-o", "loop,ro", xzm, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v\n%s", xzm, err, out)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		cmd := exec.Command("/sbin/wpa_supplicant", "-v")
		cmd.Dir = "/"
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: mnt, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Run(); err != nil {
			t.Fatalf("wpa_supplicant -v in the module: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "v2.10") {
			t.Errorf("wpa_supplicant -v = %q, want v2.10", out.String())
		}
	})
}
