package e2e_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"byzantium/ci/qemu"
)

// BenchmarkBootBIOSDisk measures QEMU start to /healthz answering for the
// test spec's ISO booted as a BIOS hard disk (SeaBIOS, the isohybrid MBR,
// isolinux, the kernel, byz-init, busybox init, byzd with DHCP), beside
// the floor issue 3 names: the same kernel direct-booted with an
// initramfs that powers off at once. The floor used is the build's own
// initramfs booted with byz.test=poweroff: byz-init loads its drivers
// and powers off, which is a little more than a bare busybox poweroff.
// It reports, never asserts (make bench); the target is healthz ≤ floor
// + 2.5 s.
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

// bootFloor direct-boots the media's kernel and initramfs with
// byz.test=poweroff and returns QEMU's start to its exit.
func bootFloor(b *testing.B, img *images) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	start := time.Now()
	vm := qemu.StartT(b, qemu.Config{
		Options: qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd,
			Append: "console=ttyS0 panic=-1 quiet byz.test=poweroff"},
		SerialLog: filepath.Join(b.TempDir(), "serial.log"),
	})
	if err := vm.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
