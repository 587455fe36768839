package usbimg

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/image/gpt"
	"byzantium/image/grubpc"
	"byzantium/modules/entry"
)

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func seed() []byte {
	s := sha256.Sum256([]byte("byzantium test-1.0"))
	return s[:]
}

// tree returns a media-tree-like entry stream.
func tree(files map[string][]byte) *entry.Slice {
	s := &entry.Slice{Bodies: files}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		s.Headers = append(s.Headers, &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, Size: int64(len(files[p])), ModTime: testTime})
	}
	return s
}

func TestImage(t *testing.T) {
	files := map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI":        bytes.Repeat([]byte("efi"), 1000),
		"byzantium/base/000-core.xzm": bytes.Repeat([]byte{1, 2, 3}, 100000),
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "byz.img")
	opts := Options{Size: 128 << 20, Spare: 32 << 20, Seed: seed(), ModTime: testTime}
	if err := Write(img, tree(files), opts); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := Write(filepath.Join(dir, "again.img"), tree(files), opts); err != nil {
		t.Fatalf("Write: %v", err)
	}
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(filepath.Join(dir, "again.img"))
	if !bytes.Equal(a, b) {
		t.Error("two writes of the same stream differ")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("temporary files left behind: %v", ents)
	}

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, opts.Size)
	if err != nil {
		t.Fatalf("gpt.Read: %v", err)
	}
	if len(tab.Partitions) != 1 {
		t.Fatalf("%d partitions, want 1", len(tab.Partitions))
	}
	p := tab.Partitions[0]
	if p.Type != gpt.TypeESP || p.Name != DefaultLabel || p.FirstLBA != 2048 ||
		p.Attributes != gpt.AttrLegacyBIOSBootable || p.Offset()+p.Size() != opts.Size-opts.Spare {
		t.Errorf("partition = %+v", p)
	}

	out, err := exec.Command(testenv.RequireTool(t, "sgdisk"), "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	// fsck.fat takes no offset: check a copy of the partition.
	part := filepath.Join(dir, "part.img")
	if err := os.WriteFile(part, a[p.Offset():p.Offset()+p.Size()], 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(testenv.RequireTool(t, "fsck.fat"), "-n", "-v", part).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Invalid") {
		t.Errorf("fsck.fat: %v\n%s", err, out)
	}
	cmd := exec.Command(testenv.RequireTool(t, "mtype"), "-i", img+"@@1M", "::EFI/BOOT/BOOTX64.EFI")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	got, err := cmd.Output()
	if err != nil || !bytes.Equal(got, files["EFI/BOOT/BOOTX64.EFI"]) {
		t.Errorf("mtype BOOTX64.EFI: %v, %d bytes", err, len(got))
	}
}

func TestWriteFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "byz.img")
	s := &entry.Slice{Headers: []*entry.Header{{Path: "link", Type: entry.TypeSymlink, Linkname: "x"}}}
	err := Write(img, s, Options{Size: 64 << 20, Seed: seed()})
	if !errors.Is(err, entry.ErrUnsupported) {
		t.Errorf("Write = %v, want entry.ErrUnsupported", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed Write left %v", ents)
	}
	if err := Write(img, s, Options{Size: 64 << 20}); !errors.Is(err, ErrBadOption) {
		t.Errorf("Write without a seed = %v, want ErrBadOption", err)
	}
}

// TestUEFIBoot boots the image in QEMU with OVMF: the firmware must find
// the ESP through our GPT, read GRUB from our FAT and GRUB its grub.cfg,
// which prints a marker on the serial console.
func TestUEFIBoot(t *testing.T) {
	code := testenv.RequireFile(t, "/usr/share/OVMF/OVMF_CODE_4M.fd", "install ovmf")
	vars := testenv.RequireFile(t, "/usr/share/OVMF/OVMF_VARS_4M.fd", "install ovmf")
	grub := testenv.RequireFile(t, "/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi", "install grub-efi-amd64-bin")
	grubEFI, err := os.ReadFile(grub)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "hello-from-byzantium-fat"
	// The marker is assembled by GRUB, so only a GRUB that ran the
	// config can print it.
	cfg := []byte("serial --unit=0 --speed=115200\nterminal_output serial console\n" +
		"set part=from-byzantium-fat\necho hello-${part}\nhalt\n")
	// The monolithic GRUB reads $prefix/grub.cfg, falling back to the
	// directory it was loaded from; give it both.
	files := map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI": grubEFI,
		"EFI/BOOT/grub.cfg":    cfg,
		"EFI/debian/grub.cfg":  cfg,
		"boot/grub/grub.cfg":   cfg,
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "byz.img")
	if err := Write(img, tree(files), Options{Size: 64 << 20, Seed: seed()}); err != nil {
		t.Fatal(err)
	}
	varsCopy := filepath.Join(dir, "vars.fd")
	v, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(varsCopy, v, 0o644); err != nil {
		t.Fatal(err)
	}

	bootAndExpect(t, marker, "-machine", "q35", "-m", "256",
		"-drive", "if=pflash,format=raw,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,file="+varsCopy,
		"-drive", "file="+img+",format=raw,if=virtio")
}

// TestBIOSBoot boots the image in QEMU with SeaBIOS: the BIOS runs GRUB's
// boot.img from our protective MBR, which loads the core image image/grubpc
// made from our BIOS boot partition; GRUB finds its prefix on our FAT
// partition and runs grub.cfg, which prints a marker on the serial console.
func TestBIOSBoot(t *testing.T) {
	testenv.RequireTool(t, "qemu-system-x86_64")
	debs, _ := filepath.Glob("../../.cache/debs/grub-pc-bin_*.deb")
	if len(debs) == 0 {
		testenv.RequireFile(t, "../../.cache/debs/grub-pc-bin_VERSION.deb", "run make fetch from the repository root")
	}
	grubDir := t.TempDir()
	if out, err := exec.Command(testenv.RequireTool(t, "dpkg-deb"), "-x", debs[len(debs)-1], grubDir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	gfs := os.DirFS(filepath.Join(grubDir, "usr/lib/grub/i386-pc"))
	core, err := grubpc.Core(gfs, grubpc.CoreOptions{
		Modules: []string{"biosdisk", "part_gpt", "fat", "normal", "echo", "serial", "terminal", "halt"},
		Prefix:  "(,gpt1)/boot/grub",
	})
	if err != nil {
		t.Fatal(err)
	}
	if core, err = grubpc.Embed(core, BIOSBootLBA); err != nil {
		t.Fatal(err)
	}
	mbr, err := grubpc.MBR(gfs, BIOSBootLBA)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "hello-from-byzantium-bios"
	cfg := []byte("serial --unit=0 --speed=115200\nterminal_output serial console\n" +
		"set part=from-byzantium-bios\necho hello-${part}\nhalt\n")
	dir := t.TempDir()
	img := filepath.Join(dir, "byz.img")
	opts := Options{Size: 64 << 20, Seed: seed(), BootCode: mbr, BIOSCore: core}
	if err := Write(img, tree(map[string][]byte{"boot/grub/grub.cfg": cfg}), opts); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, opts.Size)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 2 || tab.Partitions[1].Type != gpt.TypeBIOSBoot || tab.Partitions[1].FirstLBA != BIOSBootLBA ||
		tab.Partitions[1].LastLBA != tab.Partitions[0].FirstLBA-1 || !bytes.Equal(tab.BootCode, mbr) {
		t.Errorf("table: %+v", tab.Partitions)
	}
	out, err := exec.Command(testenv.RequireTool(t, "sgdisk"), "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	bootAndExpect(t, marker, "-machine", "pc", "-m", "256", "-drive", "file="+img+",format=raw,if=ide")
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?=]*[A-Za-z]`)

// bootAndExpect runs QEMU (TCG only: -enable-kvm hangs on these machines)
// with args and waits up to 90 s for marker on the serial console.
func bootAndExpect(t *testing.T, marker string, args ...string) {
	t.Helper()
	qemu := testenv.RequireTool(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append(args, "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none", "-display", "none", "-net", "none")
	cmd := exec.CommandContext(ctx, qemu, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()
	var console strings.Builder
	sc := bufio.NewScanner(io.TeeReader(stdout, &console))
	sc.Split(bufio.ScanBytes)
	found := false
	var tail []byte
	for sc.Scan() {
		tail = append(tail, sc.Bytes()...)
		// GRUB draws with terminal escapes (colours, cursor moves) around
		// and even inside what it prints: match without them. The config
		// never holds the marker whole (GRUB assembles it), so finding it
		// means GRUB ran the config.
		if bytes.Contains(ansiEscape.ReplaceAll(tail, nil), []byte(marker)) {
			found = true
			break
		}
		if len(tail) > 4096 {
			tail = tail[2048:]
		}
	}
	t.Logf("serial console:\n%s", console.String())
	if !found {
		c := console.String()
		t.Fatalf("no %q on the serial console within 90 s (ctx: %v); last output:\n%s", marker, ctx.Err(), c[max(0, len(c)-3000):])
	}
}
