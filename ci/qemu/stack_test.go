package qemu_test

import (
	"context"
	"crypto/sha256"
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
	"byzantium/image/usbimg"
	"byzantium/modules"
	"byzantium/modules/hostfs"
)

// stackModules is what byz-init needs to reach a USB image on a virtio
// disk and stack its modules: the media's FAT (with the code page and
// the iocharset the init asks for), squashfs on loop devices, overlayfs.
var stackModules = []string{"virtio_pci", "virtio_blk", "vfat", "nls_cp437", "nls_iso8859-1",
	"squashfs", "loop", "overlay", "isofs"}

// testInittab is busybox init's table for the test module: each sysinit
// line runs in turn on the console; poweroff -f ends the VM without
// going through the (absent) shutdown scripts.
const testInittab = `::sysinit:/bin/busybox echo byz-root-ok
::sysinit:/bin/busybox cat /etc/motd
::sysinit:/bin/busybox cat /proc/mounts
::sysinit:/bin/busybox cat /run/byzantium/modules.json
::sysinit:/bin/busybox poweroff -f
`

const (
	testMediaID = "e2e0test"
	testMotd    = "motd-from-rootcopy-ok"
)

// stackArtifacts builds the cloud kernel, an initramfs with byz-init and
// stackModules, and a USB image holding a media tree: busybox as the
// base module, a module with an inittab that reports and powers off,
// a rootcopy motd, and the media marker.
func stackArtifacts(t *testing.T) (vmlinuz, initrd, disk string) {
	t.Helper()
	testenv.RequireTool(t, "qemu-system-x86_64")
	root := repoRoot(t)
	kpattern := filepath.Join(root, ".cache/debs/linux-image-*-cloud-amd64_*.deb")
	bpattern := filepath.Join(root, ".cache/debs/busybox-static_*.deb")
	kdebs, _ := filepath.Glob(kpattern)
	if len(kdebs) == 0 {
		testenv.RequireFile(t, kpattern, "make fetch")
	}
	bdebs, _ := filepath.Glob(bpattern)
	if len(bdebs) == 0 {
		testenv.RequireFile(t, bpattern, "make fetch")
	}
	dir := t.TempDir()
	epoch := time.Unix(1700000000, 0).UTC()

	initBin := filepath.Join(dir, "byz-init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", initBin, "./cmd/byz-init")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building byz-init: %v\n%s", err, out)
	}
	f, err := os.Open(kdebs[len(kdebs)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vmlinuz = filepath.Join(dir, "vmlinuz")
	modDir := filepath.Join(dir, "kmods")
	k, err := kernel.ExtractDeb(f, f.Name(), kernel.ExtractOptions{Vmlinuz: vmlinuz, ModulesDir: modDir})
	if err != nil {
		t.Fatal(err)
	}
	mods, err := k.Modules.Closure(stackModules...)
	if err != nil {
		t.Fatalf("Closure: %v", err)
	}
	initrd = filepath.Join(dir, "initrd.zst")
	out, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	files := append([]initramfs.File{{Path: "init", Src: initBin, Mode: 0o755}}, initramfs.ModuleFiles(modDir, k.Version, mods)...)
	if err := initramfs.Write(out, files, initramfs.Options{ModTime: epoch}); err != nil {
		t.Fatal(err)
	}

	// The media tree, as the builder lays it out.
	media := filepath.Join(dir, "media")
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(media, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("byzantium/media-"+testMediaID, "")
	write("byzantium/rootcopy/etc/motd", testMotd+"\n")
	// Not a SquashFS image: load=broken must stop the boot, naming it.
	write("byzantium/optional/050-broken.xzm", "this is not a squashfs image\n")
	if err := os.MkdirAll(filepath.Join(media, "byzantium/base"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := modules.Create([]string{bdebs[len(bdebs)-1]}, filepath.Join(media, "byzantium/base/000-busybox.xzm"),
		modules.CreateOptions{Epoch: &epoch}); err != nil {
		t.Fatalf("the busybox module: %v", err)
	}
	testTree := filepath.Join(dir, "test-module")
	for _, d := range []string{"etc", "sbin"} {
		if err := os.MkdirAll(filepath.Join(testTree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(testTree, "etc/inittab"), []byte(testInittab), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/busybox", filepath.Join(testTree, "sbin/init")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(media, "byzantium/modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := modules.Create([]string{testTree}, filepath.Join(media, "byzantium/modules/010-test.xzm"),
		modules.CreateOptions{Name: "test", Epoch: &epoch}); err != nil {
		t.Fatalf("the test module: %v", err)
	}
	r, err := hostfs.NewReader(media)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	disk = filepath.Join(dir, "usb.img")
	seed := sha256.Sum256([]byte("byz-init stack test"))
	if err := usbimg.Write(disk, r, usbimg.Options{Size: 256 << 20, Spare: 32 << 20, Seed: seed[:], ModTime: epoch}); err != nil {
		t.Fatalf("usbimg.Write: %v", err)
	}
	return vmlinuz, initrd, disk
}

// TestStackBoot boots byz-init against a real USB image: it must find the
// media by its ID, mount both modules on loop devices, stack them under
// an overlay with rootcopy on top and switch_root into busybox init from
// the base module, whose inittab (from the second module) proves it runs
// on the overlay and powers off. A wrong byz.media= must end in a clear
// console message instead.
func TestStackBoot(t *testing.T) {
	vmlinuz, initrd, disk := stackArtifacts(t)

	t.Run("boots", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		start := time.Now()
		vm := qemu.StartT(t, qemu.Config{
			Options: qemu.Options{Kernel: vmlinuz, Initrd: initrd, Disk: disk,
				Append: "console=ttyS0 panic=-1 byz.media=" + testMediaID},
			SerialLog: filepath.Join(t.TempDir(), "serial.log"),
		})
		for _, want := range []string{"byz-init: media: /dev/vda1 (vfat", "byz-init: mounted 2 modules",
			"byz-init: ready: switching root to /sbin/init", "byz-root-ok"} {
			if _, err := vm.Expect(ctx, want); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("byz-root-ok after %v", time.Since(start))
		if _, err := vm.Expect(ctx, testMotd); err != nil {
			t.Fatalf("rootcopy's /etc/motd did not arrive: %v", err)
		}
		line, err := vm.Expect(ctx, " / overlay ")
		if err != nil {
			t.Fatalf("/ is not the overlay: %v", err)
		}
		if !strings.Contains(line, "lowerdir=/run/byz/layers/001-010-test:/run/byz/layers/000-000-busybox") {
			t.Errorf("the overlay's layers are not test over busybox: %s", line)
		}
		if _, err := vm.Expect(ctx, `"layer": "/run/byz/layers/001-010-test"`); err != nil {
			t.Errorf("modules.json does not list the test module: %v", err)
		}
		if err := vm.Wait(ctx); err != nil {
			t.Fatalf("the VM did not power off: %v", err)
		}
		t.Logf("powered off after %v", time.Since(start))
	})

	t.Run("copy2ram", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		vm := qemu.StartT(t, qemu.Config{
			Options: qemu.Options{Kernel: vmlinuz, Initrd: initrd, Disk: disk,
				Append: "console=ttyS0 panic=-1 copy2ram byz.media=" + testMediaID},
			SerialLog: filepath.Join(t.TempDir(), "serial.log"),
		})
		for _, want := range []string{"byz-init: copy2ram: 2 modules copied; the media is unmounted", "byz-root-ok", testMotd,
			"/dev/loop0 /run/byz/layers/000-000-busybox squashfs"} {
			if _, err := vm.Expect(ctx, want); err != nil {
				t.Fatal(err)
			}
		}
		if err := vm.Wait(ctx); err != nil {
			t.Fatalf("the VM did not power off: %v", err)
		}
		for _, l := range vm.Tail(qemu.TailLines) {
			if strings.Contains(l, "/run/byz/media") {
				t.Errorf("the media is still mounted after copy2ram: %s", l)
			}
		}
	})

	// Bad input: each ends on the console with the cause and what to
	// type, then the init waits there (no shell in this initramfs).
	for _, tc := range []struct {
		name, append string
		fatal, hint  []string
	}{
		{"wrong media id", "byz.media=bad delay=2",
			[]string{"no boot media with byzantium/media-bad after 2s", "/dev/vda1 (vfat, a different media: " + testMediaID + ")"},
			[]string{"from=/dev/vda1", "byz.media="}},
		{"broken module", "byz.media=" + testMediaID + " load=broken",
			[]string{"module byzantium/optional/050-broken.xzm: mount -t squashfs /dev/loop2"},
			[]string{"noload=050-broken"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			vm := qemu.StartT(t, qemu.Config{
				Options:   qemu.Options{Kernel: vmlinuz, Initrd: initrd, Disk: disk, Append: "console=ttyS0 panic=-1 " + tc.append},
				SerialLog: filepath.Join(t.TempDir(), "serial.log"),
			})
			line, err := vm.Expect(ctx, "byz-init: FATAL: ")
			if err != nil {
				t.Fatal(err)
			}
			hint, err := vm.Expect(ctx, "byz-init: what to try:")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.fatal {
				if !strings.Contains(line, w) {
					t.Errorf("the error lacks %q: %s", w, line)
				}
			}
			for _, w := range tc.hint {
				if !strings.Contains(hint, w) {
					t.Errorf("the hint lacks %q: %s", w, hint)
				}
			}
			t.Logf("console: %s\n%s", line, hint)
			vm.Kill() // it waits on the console for ever, as it should
		})
	}
}
