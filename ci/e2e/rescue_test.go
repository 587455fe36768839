package e2e_test

import (
	"context"
	"path/filepath"
	"testing"

	"byzantium/ci/qemu"
)

// TestRescueShell: a boot that cannot find its media says why and what to
// try, then gives a shell on the console (busybox from the initramfs), and
// the shell runs commands typed on the serial port.
func TestRescueShell(t *testing.T) {
	img := cloudImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	vm := qemu.StartT(t, qemu.Config{
		Options: qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, ISO: scratchCopy(t, img.iso),
			Append: "console=ttyS0 byz.media=0000000000000000 delay=2"},
		SerialLog: filepath.Join(t.TempDir(), "serial.log"),
	})
	for _, want := range []string{"no boot media with byzantium/media-0000000000000000", "what to try:",
		"starting a rescue shell"} {
		if _, err := vm.Expect(ctx, want); err != nil {
			t.Fatal(err)
		}
	}
	if err := vm.Type("echo rescue-$((40+2))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "rescue-42"); err != nil {
		t.Fatal(err)
	}
}
