package e2e_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/builder/initramfs"
	"byzantium/ci/qemu"
	"byzantium/modules/deb"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat/mkfs"
)

// BenchmarkBootBIOSDisk measures QEMU start to /healthz answering for the
// test spec's ISO booted as a BIOS hard disk (SeaBIOS, the isohybrid MBR,
// isolinux, the kernel, byz-init, busybox init, byzd with DHCP), beside
// the floor issue 3 names: the same kernel direct-booted with a busybox
// initramfs that powers off at once. It reports, never asserts (make
// bench); the target is healthz ≤ floor + 2.5 s.
func BenchmarkBootBIOSDisk(b *testing.B) {
	img := cloudImages(b)
	var healthz, floor time.Duration
	for b.Loop() {
		healthz += bootToHealthz(b, qemu.Options{Disk: scratchCopy(b, img.iso)}, img.node)
		floor += bootFloor(b, img)
	}
	n := float64(b.N)
	b.ReportMetric(healthz.Seconds()/n, "s-to-healthz/op")
	b.ReportMetric(floor.Seconds()/n, "s-floor/op")
	b.ReportMetric(healthz.Seconds()/floor.Seconds(), "healthz/floor")
	b.ReportMetric((healthz-floor).Seconds()/n, "s-over-floor/op")
}

// bootFloor direct-boots the media's kernel with an initramfs of busybox
// whose /init powers off at once, and returns QEMU's start to its exit.
func bootFloor(b *testing.B, img *images) time.Duration {
	b.Helper()
	initrd := floorInitramfs(b)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	start := time.Now()
	vm := qemu.StartT(b, qemu.Config{
		Options: qemu.Options{Kernel: img.vmlinuz, Initrd: initrd,
			Append: "console=ttyS0 panic=-1 quiet"},
		SerialLog: filepath.Join(b.TempDir(), "serial.log"),
	})
	if err := vm.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// floorInitramfs writes a zstd initramfs holding busybox, from the cached
// busybox-static package, and an /init script that powers off.
func floorInitramfs(b *testing.B) string {
	b.Helper()
	debs, _ := filepath.Glob("../../.cache/debs/busybox-static_*.deb")
	if len(debs) == 0 {
		b.Fatal("no busybox-static .deb in .cache/debs: run make fetch")
	}
	f, err := os.Open(debs[len(debs)-1])
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	pkg, err := deb.Open(f, debs[len(debs)-1])
	if err != nil {
		b.Fatal(err)
	}
	defer pkg.Close()
	var busybox []byte
	for {
		h, err := pkg.Next()
		if err != nil {
			b.Fatalf("bin/busybox not found in %s: %v", debs[len(debs)-1], err)
		}
		if h.Path == "bin/busybox" {
			if busybox, err = io.ReadAll(pkg); err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	path := filepath.Join(b.TempDir(), "floor.zst")
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	files := []initramfs.File{
		{Path: "bin/busybox", Mode: 0o755, Data: busybox},
		{Path: "init", Mode: 0o755, Data: []byte("#!/bin/busybox sh\n/bin/busybox poweroff -f\n")},
	}
	if err := initramfs.Write(out, files, initramfs.Options{}); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkPersistWrite measures, in the guest, a 48 MiB write with fsync
// into the persistence store: a plain save.dat and an encrypted one
// (dm-crypt aes-xts-plain64 under ext4), side by side (make bench).
func BenchmarkPersistWrite(b *testing.B) {
	img := cloudImages(b)
	rates := map[bool]float64{}
	for b.Loop() {
		for _, encrypted := range []bool{false, true} {
			opts := mkfs.Options{Size: 128 << 20}
			if encrypted {
				opts.Passphrase = []byte("bench")
				opts.KDF = luks2.KDFParams{Type: "argon2id", Time: 1, Memory: 32 << 10, Threads: 2}
			}
			disk := usbWithSaveDat(b, img.usb, opts)
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			vm := startWithStore(b, qemu.Options{Disk: disk})
			if encrypted {
				if _, err := vm.Expect(ctx, "asking for its passphrase"); err != nil {
					b.Fatal(err)
				}
				vm.Type("bench\n")
			}
			if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
				b.Fatal(err)
			}
			// busybox dd reports no rate and busybox date no fraction
			// of a second: time it with /proc/uptime's centiseconds.
			vm.Type("mkdir -p /root; up() { cut -d' ' -f1 /proc/uptime | tr -d .; }; s=$(up); " +
				"dd if=/dev/zero of=/root/big bs=1M count=48 conv=fsync 2>/dev/null; e=$(up); echo took-$((e-s))-cs\n")
			line, err := vm.Expect(ctx, "-cs")
			for err == nil && !strings.HasPrefix(strings.TrimSpace(line), "took-") {
				line, err = vm.Expect(ctx, "-cs")
			}
			if err != nil {
				b.Fatal(err)
			}
			var cs int
			if _, err := fmt.Sscanf(strings.TrimSpace(line), "took-%d-cs", &cs); err != nil || cs <= 0 {
				b.Fatalf("cannot read the time in %q", line)
			}
			rates[encrypted] += 48 / (float64(cs) / 100)
			vm.Kill()
			cancel()
		}
	}
	n := float64(b.N)
	b.ReportMetric(rates[false]/n, "MiB/s-plain")
	b.ReportMetric(rates[true]/n, "MiB/s-encrypted")
	b.ReportMetric(rates[true]/rates[false], "encrypted/plain")
}
