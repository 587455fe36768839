package qemu_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/builder/initramfs"
	"byzantium/builder/kernel"
	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
)

// liveModules is what a live system wants from its kernel. The cloud
// flavour lacks the USB and SATA drivers; the closure reports them and
// the boot goes on without them.
var liveModules = []string{"virtio_pci", "virtio_blk", "squashfs", "overlay", "isofs", "vfat", "nls_cp437",
	"nls_iso8859-1", "loop", "sr_mod", "usb-storage", "uas", "xhci_pci", "ahci", "nvme", "ext4", "dm_crypt"}

type artifacts struct {
	vmlinuz, initrd string
	initrdSize      int64
}

func repoRoot(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

// build makes what a boot needs from the cloud kernel package and this
// tree's byz-init: the vmlinuz and a zstd initramfs with the module
// closure.
func build(t testing.TB) artifacts {
	t.Helper()
	testenv.RequireTool(t, "qemu-system-x86_64")
	root := repoRoot(t)
	pattern := filepath.Join(root, ".cache/debs/linux-image-*-cloud-amd64_*.deb")
	debs, _ := filepath.Glob(pattern)
	if len(debs) == 0 {
		testenv.RequireFile(t, pattern, "run ci/fetch-debs $(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/{print $2}')")
	}
	dir := t.TempDir()
	initBin := filepath.Join(dir, "byz-init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", initBin, "./cmd/byz-init")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building byz-init: %v\n%s", err, out)
	}

	f, err := os.Open(debs[len(debs)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := artifacts{vmlinuz: filepath.Join(dir, "vmlinuz"), initrd: filepath.Join(dir, "initrd.zst")}
	modDir := filepath.Join(dir, "modules")
	k, err := kernel.ExtractDeb(f, f.Name(), kernel.ExtractOptions{Vmlinuz: a.vmlinuz, ModulesDir: modDir})
	if err != nil {
		t.Fatal(err)
	}
	mods, err := k.Modules.Closure(liveModules...)
	if !errors.Is(err, kernel.ErrMissingModules) {
		t.Fatalf("Closure: %v, want the cloud kernel's missing USB and SATA drivers reported", err)
	}

	files := append([]initramfs.File{{Path: "init", Src: initBin, Mode: 0o755}}, initramfs.ModuleFiles(modDir, k.Version, mods)...)
	out, err := os.Create(a.initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := initramfs.Write(out, files, initramfs.Options{ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	st, err := out.Stat()
	if err != nil {
		t.Fatal(err)
	}
	a.initrdSize = st.Size()
	return a
}

// boot boots the artifacts with the given kernel command line and waits
// for byz-init's ready line, returning the time it took.
func boot(t testing.TB, a artifacts, cmdline string) (*qemu.VM, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	vm := qemu.StartT(t, qemu.Config{
		Options:   qemu.Options{Kernel: a.vmlinuz, Initrd: a.initrd, Append: cmdline},
		SerialLog: filepath.Join(t.TempDir(), "serial.log"),
	})
	if _, err := vm.Expect(ctx, "byz-init: ready"); err != nil {
		t.Fatal(err)
	}
	return vm, time.Since(start)
}

// TestBootCloudKernel boots the Debian cloud kernel with our initramfs:
// the kernel must unpack the zstd cpio, run byz-init, which loads the
// module closure, says ready and powers the VM off.
func TestBootCloudKernel(t *testing.T) {
	a := build(t)
	t.Logf("initramfs: %d bytes", a.initrdSize)
	if a.initrdSize > 6<<20 {
		t.Errorf("the initramfs is %d bytes, over the 6 MiB budget", a.initrdSize)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	vm := qemu.StartT(t, qemu.Config{
		Options: qemu.Options{Kernel: a.vmlinuz, Initrd: a.initrd,
			Append: "console=ttyS0 panic=-1 byz.test=poweroff debug"},
		SerialLog: filepath.Join(t.TempDir(), "serial.log"),
	})
	line, err := vm.Expect(ctx, "byz-init: modules loaded:")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"isofs", "squashfs", "overlay", "cdrom", "dm_crypt"} {
		if !strings.Contains(line+" ", " "+m+" ") {
			t.Errorf("%s is not loaded: %s", m, line)
		}
	}
	if _, err := vm.Expect(ctx, "byz-init: ready"); err != nil {
		t.Fatal(err)
	}
	t.Logf("ready after %v", time.Since(start))
	if err := vm.Wait(ctx); err != nil {
		t.Fatalf("the VM did not power off: %v", err)
	}
	t.Logf("powered off after %v", time.Since(start))
}

// BenchmarkBootToReady measures power-on to byz-init's ready line under
// TCG; it reports, never asserts (make bench).
func BenchmarkBootToReady(b *testing.B) {
	a := build(b)
	var total time.Duration
	for b.Loop() {
		vm, d := boot(b, a, "console=ttyS0 panic=-1 quiet byz.test=poweroff")
		total += d
		vm.Kill()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-ready/op")
}
