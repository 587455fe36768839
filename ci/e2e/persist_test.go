package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
	"byzantium/runtime/savedat/mkfs"
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

// usbWithSaveDat returns a scratch copy of the USB image usb with a
// save.dat made with opts in byzantium/changes, put there with mtools
// (a tool of its own, not the image/fat code under test elsewhere).
func usbWithSaveDat(tb testing.TB, usb string, opts mkfs.Options) string {
	tb.Helper()
	mcopy, mmd := testenv.RequireTool(tb, "mcopy"), testenv.RequireTool(tb, "mmd")
	sd := filepath.Join(tb.TempDir(), "save.dat")
	if err := mkfs.Create(sd, opts); err != nil {
		tb.Fatal(err)
	}
	disk := scratchCopy(tb, usb)
	for _, c := range [][]string{{mmd, "-i", disk + "@@1M", "::byzantium/changes"},
		{mcopy, "-i", disk + "@@1M", sd, "::byzantium/changes/save.dat"}} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("%s: %v\n%s", c[0], err, out)
		}
	}
	return disk
}

// TestPersistencePartition: with changes=/dev/vda (an ext4 disk), a file
// written and synced before a power cut is there on the next boot.
func TestPersistencePartition(t *testing.T) {
	img := cloudImages(t)
	store := filepath.Join(t.TempDir(), "store.img")
	if err := mkfs.Create(store, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	opts := qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, ISO: img.iso, Disk: store,
		Append: "console=ttyS0 changes=/dev/vda debug"}
	for boot := 1; boot <= 2; boot++ {
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		vm := startWithStore(t, opts)
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

// persistenceOff is in the console line byz-init (and byzd after it)
// prints when a boot falls back to RAM although a store was asked for or
// found: a test that gave the node a store fails on it (startWithStore).
const persistenceOff = "persistence is OFF"

// startWithStore starts a VM for a node that has a persistence store: a
// boot that falls back to RAM fails the test, at the next Expect or at
// the end, instead of passing with a warning.
func startWithStore(t testing.TB, opts qemu.Options) *qemu.VM {
	t.Helper()
	return qemu.StartT(t, qemu.Config{Options: opts, SerialLog: filepath.Join(t.TempDir(), "serial.log"),
		FailOn: []string{persistenceOff}})
}

// usbWithPersistCreate returns a scratch copy of the USB image usb with a
// 64 MiB save.dat that `byz persist create --image` made, as a maintainer
// adds persistence to the image `make` built; pass, when set, encrypts it
// (argon2id at 64 MiB, which a test VM unlocks in seconds).
func usbWithPersistCreate(t *testing.T, usb, pass string) string {
	t.Helper()
	disk := scratchCopy(t, usb)
	args := []string{"persist", "create", "--image", disk, "--size", "64M"}
	if pass != "" {
		pf := filepath.Join(t.TempDir(), "pass")
		if err := os.WriteFile(pf, []byte(pass+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--encrypt", "--passphrase-file", pf, "--kdf-memory", "64M", "--kdf-time", "2")
	}
	out, err := exec.Command(filepath.Join(workDir, "bin", "byz"), args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "byz: wrote "+disk+":byzantium/changes/save.dat") {
		t.Fatalf("byz %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return disk
}

// TestPersistenceSaveDat boots the default node's USB image (the generic
// kernel, examples/byzantium.yaml) as a USB stick with a save.dat that
// `byz persist create --image` put there, plain and encrypted, which
// byz-init uses without being told; each boots once by UEFI and once by
// a BIOS. A file written before a power cut is there on the next boot.
// Encrypted: a wrong passphrase is refused and asked again, the right one
// unlocks, with the screen's console active too (the prompt reads both).
// Plain: the same boots carry a service, as a user runs one: the API
// activates the optional ngircd module and enables its service, an IRC
// client on the host reaches it, and after the power cut the module and
// the service come back by themselves and answer again. Falling back to
// RAM fails the test (issue 12: on this kernel no save.dat was ever
// mounted, for want of crc32c in the initramfs).
func TestPersistenceSaveDat(t *testing.T) {
	img := genericImages(t)
	const pass, password = "mesh-at-dawn", "provisioned-by-the-host"
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			disk := usbWithPersistCreate(t, img.usb, map[bool]string{true: pass}[encrypted])
			https, irc := freePort(t), freePort(t)
			ircAddr := fmt.Sprintf("127.0.0.1:%d", irc)
			waitIRC := func(vm *qemu.VM) {
				t.Helper()
				for end := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
					welcome, err := ircRegister(ircAddr, "meshuser")
					if err == nil {
						t.Logf("IRC: %s", welcome)
						return
					}
					if time.Now().After(end) {
						t.Fatalf("no IRC welcome: %v; the console said:\n%s", err, strings.Join(vm.Tail(30), "\n"))
					}
				}
			}
			for boot := 1; boot <= 2; boot++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
				// Plain: UEFI then BIOS; encrypted: BIOS then UEFI.
				o := qemu.Options{Disk: disk, DiskAs: qemu.USB, UEFI: (boot == 1) != encrypted,
					Forward:     []string{fmt.Sprintf("%d:443", https), fmt.Sprintf("%d:6667", irc)},
					Credentials: map[string]string{"byz.admin-password": password}}
				start := time.Now()
				vm := startWithStore(t, o)
				if encrypted {
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
				}
				if _, err := vm.Expect(ctx, "persistence: save.dat byzantium/changes/save.dat"); err != nil {
					t.Fatal(err)
				}
				t.Logf("boot %d (uefi %v): power-on to the save.dat mounted in %v", boot, o.UEFI, time.Since(start).Round(100*time.Millisecond))
				switch {
				case boot == 1 && !encrypted:
					line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
					if err != nil {
						t.Fatal(err)
					}
					n := &liveNode{vm: vm, base: "https://127.0.0.1:" + strconv.Itoa(https), fp: fingerprintLine.FindStringSubmatch(line)[1]}
					waitHealth(ctx, t, vm, n.base, n.fp)
					n.c = pinnedClient(ctx, t, n.base, n.fp)
					n.post(t, n.login(t, password), "/api/v1/modules/ngircd/activate", "/api/v1/services/ngircd/enable")
					waitIRC(vm)
					writeAndCrash(ctx, t, vm)
				case boot == 1:
					writeAndCrash(ctx, t, vm)
				case !encrypted:
					// Nobody asks for IRC this time: an answer means
					// the module and the service came back by
					// themselves ("service started" may come before or
					// after "serving").
					readBack(ctx, t, vm, "savedat")
					waitIRC(vm)
				default:
					if line := readBack(ctx, t, vm, "savedat"); !strings.Contains(line, `"encrypted":true`) {
						t.Errorf("persistence report %s, want encrypted", line)
					}
				}
				t.Logf("boot %d done in %v", boot, time.Since(start).Round(100*time.Millisecond))
				vm.Kill()
				cancel()
			}
		})
	}
}

// TestPersistenceKillLoop cuts the power at a random moment while the node
// writes and fsyncs, again and again: every boot must mount the store
// (the kernel replays ext4's journal) and find at least the last value
// the console said was synced. Counts go to the log for the closing note.
func TestPersistenceKillLoop(t *testing.T) {
	img := cloudImages(t)
	store := filepath.Join(t.TempDir(), "store.img")
	if err := mkfs.Create(store, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	opts := qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, ISO: img.iso, Disk: store,
		Append: "console=ttyS0 changes=/dev/vda"}
	const kills = 6
	synced, writes := 0, 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for boot := 0; boot <= kills; boot++ {
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		vm := startWithStore(t, opts)
		if _, err := vm.Expect(ctx, "persistence: /dev/vda"); err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		// What the previous boots synced must be there.
		if err := vm.Type("echo have-$(cat /root/counter 2>/dev/null || echo 0)-end\n"); err != nil {
			t.Fatal(err)
		}
		line, err := vm.Expect(ctx, "-end")
		for err == nil && !strings.HasPrefix(strings.TrimSpace(line), "have-") {
			line, err = vm.Expect(ctx, "-end")
		}
		if err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		var have int
		fmt.Sscanf(strings.TrimSpace(line), "have-%d-end", &have)
		if have < synced {
			t.Fatalf("boot %d: the counter reads %d, but %d was synced before the power cut", boot, have, synced)
		}
		if boot == kills {
			cancel()
			vm.Kill()
			break
		}
		// Write, fsync and rename a counter in a loop, with bulk writes
		// between, until the power goes.
		if err := vm.Type("mkdir -p /root; i=" + strconv.Itoa(have) + "; while true; do i=$((i+1)); dd if=/dev/urandom of=/root/bulk bs=64k count=16 2>/dev/null; echo $i > /root/c.tmp; sync /root/c.tmp; mv /root/c.tmp /root/counter; sync; echo synced-$i; done\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		vm.Kill()
		for _, l := range vm.Tail(qemu.TailLines) {
			var n int
			if _, err := fmt.Sscanf(strings.TrimSpace(l), "synced-%d", &n); err == nil && n > synced {
				synced = n
			}
		}
		writes = synced
		cancel()
	}
	t.Logf("%d power cuts while writing; %d synced counter updates, every one found after its cut", kills, writes)
	// A last check from the host: the journal replays and the file system
	// is consistent.
	cp := filepath.Join(t.TempDir(), "check.img")
	if err := copySparse(store, cp); err != nil {
		t.Fatal(err)
	}
	// The first run replays the journal; it may also back up the journal
	// inode's block list (go-diskfs's mkfs leaves it out) and correct
	// the superblock's free block and inode totals, which ext4 does not
	// journal and recomputes at mount. Anything else is damage. The
	// second run must find nothing at all.
	fsck := testenv.RequireTool(t, "e2fsck")
	out, err := exec.Command(fsck, "-fy", cp).CombinedOutput()
	benign := regexp.MustCompile(`(?m)^Free (blocks|inodes) count wrong \(\d+, counted=\d+\)\.\nFix\? yes\n`)
	if rest := benign.ReplaceAllString(string(out), ""); strings.Contains(rest, "Fix? yes") || strings.Contains(rest, "Create? yes") ||
		strings.Contains(rest, "Clear? yes") || strings.Contains(rest, "Salvage? yes") {
		t.Errorf("e2fsck -fy after the last cut repaired more than the journal and the free counts: %v\n%s", err, out)
	}
	if out, err := exec.Command(fsck, "-fn", cp).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn after the replay: %v\n%s", err, out)
	}
}

// TestPersistenceFull fills the store: the write fails with ENOSPC, the
// node keeps running and serving, and its status (GET /api/v1/status)
// shows the store full. A store that will not mount (not ext4 here) is
// left alone, and the status carries the warning.
func TestPersistenceFull(t *testing.T) {
	img := cloudImages(t)
	store := filepath.Join(t.TempDir(), "store.img")
	if err := mkfs.Create(store, mkfs.Options{Size: 40 << 20}); err != nil {
		t.Fatal(err)
	}
	httpsPort := freePort(t)
	opts := qemu.Options{Kernel: img.vmlinuz, Initrd: img.initrd, ISO: img.iso, Disk: store,
		Append: "console=ttyS0 changes=/dev/vda", Forward: []string{fmt.Sprintf("%d:443", httpsPort)}}
	opts = withCredential(opts)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	vm := startWithStore(t, opts)
	line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprintLine.FindStringSubmatch(line)[1]
	if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("mkdir -p /root; dd if=/dev/zero of=/root/fill bs=1M 2>&1 | grep -c 'No space'; echo alive-$((2+2))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "alive-4"); err != nil {
		t.Fatal(err)
	}
	base := "https://127.0.0.1:" + strconv.Itoa(httpsPort)
	h := waitHealth(ctx, t, vm, base, fp)
	p := nodeStatus(ctx, t, base, fp, e2ePassword).Persistence
	if h.Status != "ok" || p == nil || p.Mode != "device" || p.SizeBytes == 0 || p.FreeBytes > 1<<20 {
		t.Errorf("with the store full: /healthz status %q, persistence %+v", h.Status, p)
	}
	vm.Kill()

	// A store that is not ext4: the boot goes on in RAM, and says so.
	bad := filepath.Join(t.TempDir(), "bad.img")
	if err := os.WriteFile(bad, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.Disk = bad
	vm = qemu.StartT(t, qemu.Config{Options: opts, SerialLog: filepath.Join(t.TempDir(), "serial.log")})
	if _, err := vm.Expect(ctx, "WARNING: persistence is OFF: changes=/dev/vda"); err != nil {
		t.Fatal(err)
	}
	if line, err = vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint"); err != nil {
		t.Fatal(err)
	}
	fp = fingerprintLine.FindStringSubmatch(line)[1]
	if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
		t.Fatal(err)
	}
	waitHealth(ctx, t, vm, base, fp)
	if p := nodeStatus(ctx, t, base, fp, e2ePassword).Persistence; p == nil || p.Mode != "ram" || !strings.Contains(p.Warning, "holds no ext4") {
		t.Errorf("persistence without a store: %+v", p)
	}
	if b, err := os.ReadFile(bad); err != nil || !bytes.Equal(b, make([]byte, 8<<20)) {
		t.Errorf("the store that would not mount was written to (%v)", err)
	}
}
