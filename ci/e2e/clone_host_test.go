package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
	"byzantium/image/fat"
	"byzantium/image/gpt"
	"byzantium/image/media"
	"byzantium/overlays"
)

// imageIDs reads the media ID from the manifest in a USB image's FAT
// partition, with the disk GUID.
func imageIDs(t *testing.T, img string) (string, gpt.GUID) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	tab, err := gpt.Read(f, fi.Size())
	if err != nil {
		t.Fatalf("%s: %v", img, err)
	}
	fsys, err := fat.OpenFS(f, tab.Partitions[0].Offset())
	if err != nil {
		t.Fatal(err)
	}
	b, err := fsys.Open(overlays.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var m media.Manifest
	if err := json.NewDecoder(b).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m.ID, tab.DiskGUID
}

// TestCloneHost clones the test spec's USB image on the host, as a
// maintainer does, with `byz clone --from IMAGE TARGET.img --save-size
// 64M`: --plan first writes nothing; the clone has a media ID and disk
// GUID of its own and passes sgdisk -v; booted alone, under a BIOS
// (GRUB's core made from the media's own i386-pc files) and under UEFI
// (shim and GRUB copied from the media), with Secure Boot too, it finds
// itself by its new ID and takes its new save.dat. Then the refusals a
// stick gets from the command line, on a loop device.
func TestCloneHost(t *testing.T) {
	img := cloudImages(t)
	byz := filepath.Join(workDir, "bin", "byz")
	dir := t.TempDir()
	target := filepath.Join(dir, "clone.img")

	out, err := exec.Command(byz, "clone", "--from", img.usb, target, "--save-size", "64M", "--plan").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing written (--plan)") || !strings.Contains(string(out), "needs a disk of at least") {
		t.Fatalf("byz clone --plan: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("--plan wrote %v", ents)
	}

	start := time.Now()
	cmd := exec.Command(byz, "clone", "--from", img.usb, target, "--save-size", "64M", "--progress=json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("byz clone: %v\n%s%s", err, stdout, stderr.Bytes())
	}
	t.Logf("byz clone --from %s: %v", filepath.Base(img.usb), time.Since(start).Round(time.Millisecond))
	var last map[string]any
	phases := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		last = nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("--progress=json printed %q: %v", sc.Text(), err)
		}
		phases[last["phase"].(string)] = true
	}
	if last == nil || last["phase"] != "done" || !phases["write"] || !phases["verify"] {
		t.Fatalf("progress: phases %v, last line %v", phases, last)
	}
	srcID, srcDisk := imageIDs(t, img.usb)
	newID, newDisk := imageIDs(t, target)
	if newID == srcID || last["media_id"] != newID || newDisk == srcDisk || last["source_id"] != srcID {
		t.Errorf("media %s (disk %s) cloned as media %s (disk %s); done line %v", srcID, srcDisk, newID, newDisk, last)
	}
	if out, err := exec.Command(testenv.RequireTool(t, "sgdisk"), "-v", target).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	t.Run("refusals", func(t *testing.T) { cloneRefusals(t, byz, img.usb, scratchCopy(t, target)) })

	for _, fw := range []struct {
		name   string
		opts   qemu.Options
		expect []string
	}{
		{"bios", qemu.Options{}, nil},
		{"uefi", qemu.Options{UEFI: true}, nil},
		// shim and the signed GRUB copied from the media still check out.
		{"uefi-secureboot", qemu.Options{SecureBoot: true}, []string{"Secure boot enabled"}},
	} {
		t.Run(fw.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			o := fw.opts
			o.Disk = scratchCopy(t, target)
			vm := startWithStore(t, o)
			start := time.Now()
			for _, want := range append(fw.expect, "byz-init: media: /dev/vda1", "persistence: save.dat byzantium/changes/save.dat", "byzd: serving") {
				if _, err := vm.Expect(ctx, want); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s: power-on to byzd serving in %v", fw.name, time.Since(start).Round(100*time.Millisecond))
			if err := vm.Type("cat /proc/cmdline\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := vm.Expect(ctx, "byz.media="+newID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// cloneRefusals runs byz clone against a loop device over a copy of the
// clone: a loop device is no removable disk, and without a terminal the
// command wants --yes; --plan names the device and writes nothing; a
// save.dat too big for the device, or for FAT32, is refused; and so is
// the device as the target of a clone of its own image, --force or not.
func cloneRefusals(t *testing.T, byz, usb, disk string) {
	testenv.RequireRoot(t)
	losetup := testenv.RequireTool(t, "losetup")
	out, err := exec.Command(losetup, "--find", "--show", disk).CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "losetup: "+err.Error()+": "+string(out))
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command(losetup, "--detach", dev).Run()
	before, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--plan", "--force"}, "target device " + dev + ": "},
		{[]string{"--yes"}, "not a removable disk"},
		{[]string{"--force"}, "no terminal to confirm on: pass --yes"},
		{[]string{"--force", "--yes", "--save-size", "4000M"}, "clone needs"},
		{[]string{"--force", "--yes", "--save-size", "4G"}, "at most 4095 MiB"},
		// The stick's own image as the source: the loop device is it.
		{[]string{"--from", disk, "--force", "--yes"}, "it is the source"},
	} {
		cmd := exec.Command(byz, append([]string{"clone", "--from", usb, dev}, tc.args...)...)
		cmd.Stdin = strings.NewReader("yes\n")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("byz clone %s %v: want %q in:\n%s", dev, tc.args, tc.want, out)
		}
	}
	if after, _ := os.ReadFile(disk); !bytes.Equal(before, after) {
		t.Error("a refused clone changed the device")
	}
}
