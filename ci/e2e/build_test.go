package e2e_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/builder"
	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/ci/testenv"
	"byzantium/modules/npm"
)

// epoch is SOURCE_DATE_EPOCH for every build here.
var epoch = time.Unix(1700000000, 0).UTC()

// workDir holds what the builds make, shared by every test of the binary
// (t.TempDir would vanish with the first test); TestMain removes it.
var workDir string

func TestMain(m *testing.M) {
	// The default spec's npm apps come from the repository's npm cache
	// (make npm-fetch), not from one relative to this package.
	if os.Getenv("BYZ_NPM_CACHE") == "" {
		if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
			os.Setenv("BYZ_NPM_CACHE", filepath.Join(filepath.Dir(string(bytes.TrimSpace(out))), npm.DefaultCacheDir))
		}
	}
	var err error
	if workDir, err = os.MkdirTemp("", "byz-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// images are the outputs of one build.
type images struct {
	iso, usb        string // "" when the spec does not ask for it
	vmlinuz, initrd string // from the media tree, for direct kernel boots
	node            string // the node name byzd reports (rootcopy's /etc/hostname)
	buildTime       time.Duration
}

// builds runs each build once per test binary, whichever test asks
// first; a failure is remembered and reported to every test that asks.
type onceBuild struct {
	once sync.Once
	img  *images
	err  error
}

var (
	cloud, generic, genericStock onceBuild
	binsOnce                     sync.Once
	binsErr                      error
)

func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

// requireInputs checks for QEMU, OVMF and the fetched packages, skipping
// (failing under CI) without them.
func requireInputs(t testing.TB, root string, kernelDeb string) {
	t.Helper()
	testenv.RequireTool(t, "qemu-system-x86_64")
	for _, f := range []string{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", "OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd"} {
		testenv.RequireFile(t, filepath.Join("/usr/share/OVMF", f), "install ovmf (ci/install-deps)")
	}
	testenv.RequireFile(t, kernelDeb, "make fetch")
	testenv.RequireFile(t, filepath.Join(root, ".cache/debs"), "make fetch")
}

// buildBins builds byz-init, byzd and byz as make does (static, trimmed)
// into workDir/bin, once.
func buildBins(root string) error {
	binsOnce.Do(func() {
		for _, cmd := range []string{"byz-init", "byzd", "byz"} {
			c := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=e2e",
				"-o", filepath.Join(workDir, "bin", cmd), "./cmd/"+cmd)
			c.Dir = root
			c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
			if out, err := c.CombinedOutput(); err != nil {
				binsErr = fmt.Errorf("building %s: %v\n%s", cmd, err, out)
				return
			}
		}
	})
	return binsErr
}

// runtimeDir assembles the runtime module's source the way `make runtime`
// does (examples/runtime, byzd at usr/sbin/byzd, byz at usr/bin/byz), so
// the tests do not depend on out/runtime.
func runtimeDir(root string) (string, error) {
	dir := filepath.Join(workDir, "runtime")
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := copyTree(filepath.Join(root, "examples/runtime"), dir); err != nil {
		return "", err
	}
	for _, bin := range []string{"usr/sbin/byzd", "usr/bin/byz"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(bin)), 0o755); err != nil {
			return "", err
		}
		b, err := os.ReadFile(filepath.Join(workDir, "bin", filepath.Base(bin)))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, bin), b, 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// copyTree copies folders, files (with their permissions) and symlinks
// (sbin/init -> /bin/busybox).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, fi.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, fi.Mode().Perm())
		}
	})
}

// buildSpec loads an example spec, points its runtime module at the
// assembled runtime folder, lets edit adjust it, and builds it into
// workDir/name.
func buildSpec(t testing.TB, ob *onceBuild, name, specFile string, edit func(*spec.Spec)) *images {
	t.Helper()
	root := repoRoot(t)
	s, err := spec.Load(filepath.Join(root, specFile), spec.Options{SkipInputChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	requireInputs(t, root, s.Kernel.Deb)
	ob.once.Do(func() {
		ob.img, ob.err = doBuild(root, name, s, edit)
	})
	if ob.err != nil {
		t.Fatalf("building %s: %v", specFile, ob.err)
	}
	return ob.img
}

func doBuild(root, name string, s *spec.Spec, edit func(*spec.Spec)) (*images, error) {
	start := time.Now()
	if err := buildBins(root); err != nil {
		return nil, err
	}
	rt, err := runtimeDir(root)
	if err != nil {
		return nil, fmt.Errorf("assembling the runtime module: %w", err)
	}
	found := false
	for i := range s.Modules {
		if s.Modules[i].Name == "runtime" {
			s.Modules[i].Sources = []string{rt + "/"}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s has no runtime module", s.File)
	}
	if edit != nil {
		edit(s)
	}
	if err := s.Validate(spec.Options{}); err != nil {
		return nil, err
	}
	out := filepath.Join(workDir, name)
	_, err = builder.Build(s, builder.Options{
		Out: out, Cache: &cache.Cache{Dir: filepath.Join(workDir, "cache")}, Epoch: epoch,
		InitBinary: filepath.Join(workDir, "bin/byz-init"), DebDir: filepath.Join(root, ".cache/debs"),
	})
	if err != nil {
		return nil, err
	}
	img := &images{buildTime: time.Since(start)}
	if s.Outputs.ISO != "" {
		img.iso = filepath.Join(out, s.Outputs.ISO)
	}
	if s.Outputs.USB != nil {
		img.usb = filepath.Join(out, s.Outputs.USB.File)
	}
	if s.Outputs.Dir != "" {
		img.vmlinuz = filepath.Join(out, s.Outputs.Dir, "boot/vmlinuz")
		img.initrd = filepath.Join(out, s.Outputs.Dir, "boot/initrd.zst")
	}
	for _, rc := range s.Rootcopy {
		if b, err := os.ReadFile(filepath.Join(rc, "etc/hostname")); err == nil {
			img.node = strings.TrimSpace(string(b))
		}
	}
	if img.node == "" {
		return nil, fmt.Errorf("%s: no etc/hostname in its rootcopy: the test cannot tell the node's name", s.File)
	}
	return img, nil
}

// cloudImages builds examples/test.yaml (the cloud kernel): ISO, USB
// image and media folder.
func cloudImages(t testing.TB) *images {
	return buildSpec(t, &cloud, "cloud", "examples/test.yaml", nil)
}

// genericImages builds examples/byzantium.yaml (the generic kernel, the
// only one with usb-storage): the default node, as a 512 MiB USB image
// only (harnessGeneric), whose serial console gives a root shell without
// a password.
func genericImages(t testing.TB) *images {
	return buildSpec(t, &generic, "generic", "examples/byzantium.yaml", func(s *spec.Spec) {
		harnessGeneric(s)
		// The tests on this image type commands on the serial console
		// (mount, cat, byz …) as someone at the machine would once
		// logged in. The spec's own setting, a password prompt there,
		// is what genericStockImages keeps and TestBootUSBStickGeneric
		// checks.
		s.Console.Shell = spec.ShellRoot
	})
}

// genericStockImages is genericImages with the spec's own console
// setting: the serial console asks for the admin password, the initramfs
// has no rescue shell and the boot menus are locked. The build reuses
// genericImages' cache: only the console module, the initramfs and the
// media are made again.
func genericStockImages(t testing.TB) *images {
	return buildSpec(t, &genericStock, "generic-stock", "examples/byzantium.yaml", harnessGeneric)
}

// harnessGeneric makes the default spec one the harness can boot: its
// command line is the spec's (the screen's console and the serial port,
// the last of which the harness reads) plus no_timer_check, which TCG on a
// loaded host needs (see examples/test.yaml), and it writes a USB image
// only.
func harnessGeneric(s *spec.Spec) {
	s.Cmdline += " no_timer_check"
	// Size 0 ("as small as the contents allow", says builder/spec)
	// is refused by usbimg, so the size is explicit.
	s.Outputs = spec.Outputs{USB: &spec.USB{File: "byzantium-usb.img", Size: 512 << 20, Spare: 64 << 20}}
	// The Internet check goes to the VM host (QEMU's user network's
	// 10.0.2.2), whose port 9 refuses: a booted test node never reaches
	// past the host. TestMeshLine names a listener of its own.
	s.Mesh.Check = []string{"tcp:10.0.2.2:9"}
}
