package builder

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
)

// TestBabeldModule builds the babeld module the example specs load at
// boot from the locked Debian packages, with the builder's own module
// stage, and checks that byzd's mesh manager can run babeld from it on a
// node whose base is busybox-static alone: it declares no service (byzd
// launches babeld itself), every ELF file in it finds each library it
// needs inside the module, and babeld run chrooted into the module alone
// prints its version.
func TestBabeldModule(t *testing.T) {
	root := repoRoot(t)
	var mods [2]spec.Module
	var specs [2]*spec.Spec
	for i, name := range []string{"byzantium.yaml", "test.yaml"} {
		s, err := spec.Load(filepath.Join(root, "examples", name), spec.Options{SkipInputChecks: true})
		if err != nil {
			t.Fatal(err)
		}
		specs[i] = s
		found := 0
		for _, m := range s.Modules {
			if m.Name == "babeld" {
				mods[i] = m
				found++
			}
		}
		if found != 1 {
			t.Fatalf("%s: want one module babeld under modules: (loaded at boot), found %d", name, found)
		}
		if len(mods[i].Services) != 0 {
			t.Errorf("%s: babeld declares services %+v: byzd's mesh manager runs it", name, mods[i].Services)
		}
	}
	// The node the end-to-end tests boot carries the same engine.
	if !reflect.DeepEqual(mods[0].Sources, mods[1].Sources) || !reflect.DeepEqual(mods[0].Depends, mods[1].Depends) {
		t.Errorf("examples/byzantium.yaml and examples/test.yaml declare different babeld modules")
	}
	for _, src := range mods[0].Sources {
		testenv.RequireFile(t, src, "run make fetch")
	}

	s := &spec.Spec{File: specs[0].File, Dir: specs[0].Dir, Name: specs[0].Name, Modules: []spec.Module{mods[0]}}
	b := &builder{spec: s, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: &cache.Cache{Dir: t.TempDir()}, tool: "test"}
	start := time.Now()
	built, err := b.moduleStage()
	if err != nil {
		t.Fatalf("moduleStage: %v", err)
	}
	xzm := built[0].path
	fi, _ := os.Stat(xzm)
	t.Logf("built modules/%s in %v: %d bytes", built[0].file, time.Since(start).Round(time.Millisecond), fi.Size())
	if mf := moduleManifest(t, xzm); len(mf.Services) != 0 {
		t.Errorf("manifest services = %+v, want none", mf.Services)
	}

	tree := readTree(t, xzm)
	t.Run("libraries", func(t *testing.T) { checkLibraries(t, tree, "usr/sbin/babeld", 4, 2) })
	t.Run("runs", func(t *testing.T) { runBabeldVersion(t, xzm) })
}

// runBabeldVersion mounts the module and runs babeld -V chrooted into it:
// the dynamic linker, libc, libb2 and libgomp all come from the module.
func runBabeldVersion(t *testing.T, xzm string) {
	testenv.RequireRoot(t)
	mount := testenv.RequireTool(t, "mount")
	mnt := t.TempDir()
	if out, err := exec.Command(mount, "-t", "squashfs", "-o", "loop,ro", xzm, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", xzm, err, out)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	cmd := exec.Command("/usr/sbin/babeld", "-V")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: mnt, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		t.Fatalf("babeld -V in the module: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1.12.1") {
		t.Errorf("babeld -V = %q, want version 1.12.1", out.String())
	}
}
