package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"
)

// writeAndCrash has the node's shell write a file and sync it, then kills
// QEMU as a power cut would.
func writeAndCrash(ctx context.Context, t *testing.T, vm *qemu.VM) {
	t.Helper()
	if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("mkdir -p /root; echo persisted-$((6*7)) > /root/p; sync; echo wrote-$((1+1))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "wrote-2"); err != nil {
		t.Fatal(err)
	}
	vm.Kill()
}

// readBack has the node's shell print the file and the persistence
// report, and returns the report's line.
func readBack(ctx context.Context, t *testing.T, vm *qemu.VM, mode string) string {
	t.Helper()
	if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("cat /root/p; cat /run/byzantium/persistence.json\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "persisted-42"); err != nil {
		t.Fatal(err)
	}
	line, err := vm.Expect(ctx, `"mode":"`+mode+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(line, `"warning"`) {
		t.Errorf("persistence report with a warning: %s", line)
	}
	return line
}

// TestPersistencePartition: with changes=/dev/vda (an ext4 disk), a file
// written and synced before a power cut is there on the next boot.
func TestPersistencePartition(t *testing.T) {
	img := cloudImages(t)
	store := filepath.Join(t.TempDir(), "store.img")
	if err := savedat.Create(store, savedat.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	opts := qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, ISO: img.iso, Disk: store,
		Append: "console=ttyS0 changes=/dev/vda debug"}
	for boot := 1; boot <= 2; boot++ {
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		vm := qemu.StartT(t, qemu.Config{Options: opts, SerialLog: filepath.Join(t.TempDir(), "serial.log")})
		if _, err := vm.Expect(ctx, "persistence: /dev/vda"); err != nil {
			t.Fatal(err)
		}
		if boot == 1 {
			writeAndCrash(ctx, t, vm)
		} else {
			readBack(ctx, t, vm, "device")
		}
		cancel()
	}
}

// TestPersistenceEncryptedSaveDat boots the USB image (BIOS, GRUB) with an
// encrypted byzantium/changes/save.dat, which byz-init uses without being
// told: a wrong passphrase is refused and asked again, the right one
// unlocks, and a file written before a power cut is there on the next
// boot.
func TestPersistenceEncryptedSaveDat(t *testing.T) {
	img := cloudImages(t)
	mcopy, mmd := testenv.RequireTool(t, "mcopy"), testenv.RequireTool(t, "mmd")
	dir := t.TempDir()
	sd := filepath.Join(dir, "save.dat")
	const pass = "mesh-at-dawn"
	if err := savedat.Create(sd, savedat.Options{Size: 64 << 20, Passphrase: []byte(pass),
		KDF: luks2.KDFParams{Type: "argon2id", Time: 2, Memory: 64 << 10, Threads: 2}}); err != nil {
		t.Fatal(err)
	}
	disk := scratchCopy(t, img.usb)
	for _, c := range [][]string{{mmd, "-i", disk + "@@1M", "::byzantium/changes"},
		{mcopy, "-i", disk + "@@1M", sd, "::byzantium/changes/save.dat"}} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c[0], err, out)
		}
	}
	for boot := 1; boot <= 2; boot++ {
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		vm := qemu.StartT(t, qemu.Config{Options: qemu.Options{Disk: disk}, SerialLog: filepath.Join(t.TempDir(), "serial.log")})
		if _, err := vm.Expect(ctx, "byzantium/changes/save.dat is encrypted: asking for its passphrase"); err != nil {
			t.Fatal(err)
		}
		if boot == 1 {
			if err := vm.Type("not-it\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := vm.Expect(ctx, "wrong passphrase for byzantium/changes/save.dat"); err != nil {
				t.Fatal(err)
			}
		}
		if err := vm.Type(pass + "\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.Expect(ctx, "unlocked byzantium/changes/save.dat"); err != nil {
			t.Fatal(err)
		}
		if boot == 1 {
			writeAndCrash(ctx, t, vm)
		} else {
			if line := readBack(ctx, t, vm, "savedat"); !strings.Contains(line, `"encrypted":true`) {
				t.Errorf("persistence report %s, want encrypted", line)
			}
		}
		cancel()
	}
}
