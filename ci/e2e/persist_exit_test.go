package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
	"byzantium/runtime/savedat/mkfs"
)

// TestPersistenceExit: with changes=EXIT:/dev/vda the changes live in RAM
// and reach the store only when saved: on demand (byz persist save, through
// byzd's local socket) or at a clean shutdown (busybox init's shutdown
// action). Three boots of the same store:
//  1. write A, save, write B, power cut: B was never saved;
//  2. A is there and B is not; delete A and a file of the busybox module
//     (a whiteout), write C, power off cleanly;
//  3. C is there, A and the module's file are gone, and the last save
//     finished.
func TestPersistenceExit(t *testing.T) {
	img := cloudImages(t)
	store := filepath.Join(t.TempDir(), "store.img")
	if err := mkfs.Create(store, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	opts := qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, ISO: img.iso, Disk: store,
		Append: "console=ttyS0 changes=EXIT:/dev/vda"}
	const lowerFile = "/usr/share/doc/busybox-static/copyright"
	boot := func(t *testing.T, ctx context.Context) *qemu.VM {
		vm := startWithStore(t, opts)
		if _, err := vm.Expect(ctx, "persistence: changes are kept in RAM and saved to /dev/vda at shutdown"); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
			t.Fatal(err)
		}
		return vm
	}
	run := func(t *testing.T, ctx context.Context, vm *qemu.VM, cmd, want string) string {
		t.Helper()
		if err := vm.Type(cmd + "\n"); err != nil {
			t.Fatal(err)
		}
		line, err := vm.Expect(ctx, want)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return line
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*bootTimeout)
	defer cancel()

	vm := boot(t, ctx)
	run(t, ctx, vm, "mkdir -p /root; echo saved-$((40+2)) > /root/a; byz persist save", "byz: saved the changes")
	run(t, ctx, vm, "echo unsaved > /root/b; sync; echo wrote-$((1+2))", "wrote-3")
	vm.Kill()

	vm = boot(t, ctx)
	run(t, ctx, vm, "cat /root/a; cat /root/b 2>/dev/null || echo no-b-$((5+5))", "saved-42")
	run(t, ctx, vm, "", "no-b-10") // written after the save: lost in the power cut
	report := run(t, ctx, vm, "cat /run/byzantium/persistence.json", `"mode":"exit"`)
	if !strings.Contains(report, `"backing":"device"`) || strings.Contains(report, "warning") {
		t.Errorf("persistence report: %s", report)
	}
	run(t, ctx, vm, "rm /root/a "+lowerFile+"; echo shut-$((3+3)) > /root/c; poweroff", "byz: saving the changes to /dev/vda before shutdown")
	if _, err := vm.Expect(ctx, "byz: saved the changes"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(ctx); err != nil {
		t.Fatalf("the node did not power off: %v", err)
	}

	vm = boot(t, ctx)
	run(t, ctx, vm, "cat /root/c; for f in /root/a "+lowerFile+"; do test -e $f || echo gone-$f; done", "shut-6")
	for _, f := range []string{"/root/a", lowerFile} {
		if _, err := vm.Expect(ctx, "gone-"+f); err != nil {
			t.Fatalf("%s, deleted before the clean shutdown, is back: %v", f, err)
		}
	}
	for _, l := range vm.Tail(200) {
		if strings.Contains(l, "did not finish") {
			t.Errorf("the clean shutdown's save is reported unfinished: %s", l)
		}
	}
	vm.Kill()
}

// TestPersistenceOnNode: on a running node booted from its USB image
// without persistence, byz persist create (through byzd's local socket)
// makes an encrypted save.dat on the boot media, which the next boot
// unlocks and uses; byz persist snapshot writes the live changes as a
// module that the node's kernel mounts, a deleted file as a whiteout.
func TestPersistenceOnNode(t *testing.T) {
	img := cloudImages(t)
	disk := scratchCopy(t, img.usb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()
	run := func(vm *qemu.VM, cmd string, want ...string) {
		t.Helper()
		if err := vm.Type(cmd + "\n"); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if _, err := vm.Expect(ctx, w); err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
		}
	}

	vm := startWithStore(t, qemu.Options{Disk: disk})
	if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
		t.Fatal(err)
	}
	run(vm, "printf 'node-pass\\n' > /tmp/p; byz persist create --size 48M --encrypt --passphrase-file /tmp/p --kdf-memory 64M --kdf-time 1",
		"byz: wrote byzantium/changes/save.dat on the boot media (48M, encrypted, argon2id 64M)")
	run(vm, "byz persist create --size 48M", "never overwritten")
	run(vm, "mkdir -p /root; echo snap-$((1+1)) > /root/s; rm /usr/share/doc/busybox-static/copyright; byz persist snapshot -o /tmp/050-snap.xzm",
		"byz: wrote /tmp/050-snap.xzm")
	run(vm, "mkdir -p /mnt/s; mount -o loop,ro /tmp/050-snap.xzm /mnt/s && cat /mnt/s/root/s && stat -c '%F %t:%T' /mnt/s/usr/share/doc/busybox-static/copyright",
		"snap-2", "character special file 0:0")
	run(vm, "umount /mnt/s; sync; echo synced-$((3+4))", "synced-7")
	vm.Kill()

	vm = startWithStore(t, qemu.Options{Disk: disk})
	if _, err := vm.Expect(ctx, "byzantium/changes/save.dat is encrypted: asking for its passphrase"); err != nil {
		t.Fatal(err)
	}
	run(vm, "node-pass", "unlocked byzantium/changes/save.dat", "byzd: serving")
	run(vm, "cat /run/byzantium/persistence.json", `"mode":"savedat"`)
	vm.Kill()
}

// TestPersistenceGrow: on a node running from its save.dat (on the USB
// image's FAT partition), byz persist resize grows the file in place; at
// the next boot byz-init grows the ext4 online to fill it, the node's
// data is all there, the node's status reports the larger store, and e2fsck finds
// the grown file system clean.
func TestPersistenceGrow(t *testing.T) {
	img := cloudImages(t)
	disk := usbWithSaveDat(t, img.usb, mkfs.Options{Size: 32 << 20})
	httpsPort := freePort(t)
	opts := withCredential(qemu.Options{Disk: disk, Forward: []string{fmt.Sprintf("%d:443", httpsPort)}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()
	const onMedia = "/run/byz/media/byzantium/changes/save.dat"

	vm := startWithStore(t, opts)
	if _, err := vm.Expect(ctx, "persistence: save.dat byzantium/changes/save.dat"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("mkdir -p /root; echo persisted-$((6*7)) > /root/p; byz persist resize " + onMedia + " --size 56M\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "byz: grew "+onMedia+" from 32M to 56M"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("sync; echo synced-$((2+5))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "synced-7"); err != nil {
		t.Fatal(err)
	}
	vm.Kill()

	vm = startWithStore(t, opts)
	if _, err := vm.Expect(ctx, "persistence: grew the store's file system from 32 MiB to 56 MiB"); err != nil {
		t.Fatal(err)
	}
	line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	readBack(ctx, t, vm, "savedat")
	base, fp := "https://127.0.0.1:"+strconv.Itoa(httpsPort), fingerprintLine.FindStringSubmatch(line)[1]
	waitHealth(ctx, t, vm, base, fp)
	if p := nodeStatus(ctx, t, base, fp, e2ePassword).Persistence; p == nil || p.SizeBytes < 50<<20 || p.SizeBytes > 56<<20 {
		t.Errorf("persistence after the growth: %+v", p)
	}
	if err := vm.Type("sync; poweroff\n"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// The grown file system, out of the image: clean once its journal is
	// replayed (the store is never unmounted at poweroff).
	sd := filepath.Join(t.TempDir(), "save.dat")
	cmd := exec.Command(testenv.RequireTool(t, "mcopy"), "-i", disk+"@@1M", "::byzantium/changes/save.dat", sd)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	if fi, err := os.Stat(sd); err != nil || fi.Size() != 56<<20 {
		t.Fatalf("the save.dat on the media: %v", err)
	}
	fsck := testenv.RequireTool(t, "e2fsck")
	exec.Command(fsck, "-E", "journal_only", "-y", sd).Run()
	if out, err := exec.Command(fsck, "-fn", sd).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn of the grown save.dat: %v\n%s", err, out)
	}
}
