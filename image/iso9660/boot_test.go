package iso9660

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
)

const (
	isolinuxBin = "/usr/lib/ISOLINUX/isolinux.bin"
	isohdpfxBin = "/usr/lib/ISOLINUX/isohdpfx.bin"
	ldlinuxC32  = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
	debHint     = "install Debian's isolinux and syslinux-common (ci/packages.txt)"
)

// bootStream is a minimal isolinux CD: isolinux.bin, ldlinux.c32, a config
// that prints a marker on the serial port, and a FAT EFI image made by
// mkfs.fat.
func bootStream(t *testing.T) (*stream, Options) {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(testenv.RequireFile(t, p, debHint))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	efi := filepath.Join(t.TempDir(), "efi.img")
	if err := os.WriteFile(efi, make([]byte, 1440<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.fat", "-i", "12345678", efi)
	s := newStream()
	s.file("boot/isolinux/isolinux.bin", 0o644, read(isolinuxBin))
	s.file("boot/isolinux/ldlinux.c32", 0o644, read(ldlinuxC32))
	s.file("boot/isolinux/isolinux.cfg", 0o644, []byte("SERIAL 0 115200\nSAY hello-from-isolinux\nPROMPT 0\nDEFAULT none\nLABEL none\n  KERNEL /hello-from-isolinux\n"))
	s.file("boot/efi.img", 0o644, read(efi))
	s.file("README.txt", 0o644, []byte("byzantium\n"))
	return s, Options{
		VolumeID:    "BYZ_BOOT",
		ModTime:     epoch,
		BIOSBoot:    &BIOSBoot{Path: "boot/isolinux/isolinux.bin", CatalogPath: "boot/isolinux/boot.cat", BootInfoTable: true},
		EFIBoot:     &EFIBoot{Path: "boot/efi.img"},
		Hybrid:      true,
		MBRTemplate: read(isohdpfxBin),
	}
}

// report runs one xorriso report and returns its lines with runs of spaces
// collapsed, so they compare as words.
func report(t *testing.T, img, what string) string {
	out := run(t, "xorriso", "-indev", img, what, "plain")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

// lbaOf finds the first sector of a file with isoinfo.
func lbaOf(t *testing.T, img, name string) uint32 {
	out := run(t, "isoinfo", "-R", "-l", "-i", img)
	for _, l := range strings.Split(out, "\n") {
		if m := regexp.MustCompile(`\[\s*(\d+) 00\]\s+` + regexp.QuoteMeta(name) + `\s*$`).FindStringSubmatch(l); m != nil {
			var lba uint32
			fmt.Sscan(m[1], &lba)
			return lba
		}
	}
	t.Fatalf("isoinfo does not list %s:\n%s", name, out)
	return 0
}

// TestBootStructure checks the El Torito entries, the boot info table and
// the isohybrid MBR and GPT against xorriso's reports and the raw bytes.
func TestBootStructure(t *testing.T) {
	s, opts := bootStream(t)
	img := build(t, s, opts)
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)%(1<<20) != 0 {
		t.Errorf("hybrid image is %d bytes, not a MiB multiple", len(raw))
	}
	bios, efi := lbaOf(t, img, "isolinux.bin"), lbaOf(t, img, "efi.img")
	efiSize := len(s.bodies["boot/efi.img"])

	el := report(t, img, "-report_el_torito")
	sa := report(t, img, "-report_system_area")
	for _, want := range []string{
		"El Torito cat path : /boot/isolinux/boot.cat",
		fmt.Sprintf("El Torito boot img : 1 BIOS y none 0x0000 0x00 4 %d", bios),
		fmt.Sprintf("El Torito boot img : 2 UEFI y none 0x0000 0x00 %d %d", efiSize/512, efi),
		"El Torito img path : 1 /boot/isolinux/isolinux.bin",
		"El Torito img opts : 1 boot-info-table isohybrid-suitable",
		"El Torito img path : 2 /boot/efi.img",
		"System area summary: MBR isohybrid cyl-align-on GPT",
		fmt.Sprintf("MBR partition : 1 0x80 0x00 0 %d", len(raw)/512),
		fmt.Sprintf("MBR partition : 2 0x00 0xef %d %d", efi*4, efiSize/512),
		"MBR partition path : 2 /boot/efi.img",
		fmt.Sprintf("GPT start and size : 1 0 %d", len(raw)/512-33),
		fmt.Sprintf("GPT start and size : 2 %d %d", efi*4, efiSize/512),
		"GPT partition path : 2 /boot/efi.img",
	} {
		if !strings.Contains(el+"\n"+sa, want+"\n") {
			t.Errorf("xorriso reports lack %q:\n%s\n%s", want, el, sa)
		}
	}
	if got := binary.LittleEndian.Uint32(raw[0x1B0:]); got != bios*4 {
		t.Errorf("MBR boot image address %d, want %d", got, bios*4)
	}

	// The boot info table, computed here from the original isolinux.bin.
	orig := s.bodies["boot/isolinux/isolinux.bin"]
	padded := append(bytes.Clone(orig), make([]byte, 3)...)
	var sum uint32
	for i := 64; i+4 <= len(padded); i += 4 {
		sum += binary.LittleEndian.Uint32(padded[i:])
	}
	want := make([]byte, 56)
	binary.LittleEndian.PutUint32(want[0:], 16)
	binary.LittleEndian.PutUint32(want[4:], bios)
	binary.LittleEndian.PutUint32(want[8:], uint32(len(orig)))
	binary.LittleEndian.PutUint32(want[12:], sum)
	at := int(bios) * 2048
	if got := raw[at+8 : at+64]; !bytes.Equal(got, want) {
		t.Errorf("boot info table\n got %x\nwant %x", got, want)
	}
	if !bytes.Equal(raw[at:at+8], orig[:8]) || !bytes.Equal(raw[at+64:at+len(orig)], orig[64:]) {
		t.Errorf("isolinux.bin changed outside the boot info table")
	}
	checkGPT(t, raw)
}

// checkGPT verifies both GPT headers and their entry arrays by CRC and that
// they agree, which no installed tool can do on an isohybrid image (see
// TestSgdiskLikeXorriso).
func checkGPT(t *testing.T, raw []byte) {
	last := uint64(len(raw)/512 - 1)
	for _, lba := range []uint64{1, last} {
		h := bytes.Clone(raw[lba*512 : lba*512+92])
		if string(h[:8]) != "EFI PART" {
			t.Fatalf("no GPT header at LBA %d", lba)
		}
		crc := binary.LittleEndian.Uint32(h[16:])
		binary.LittleEndian.PutUint32(h[16:], 0)
		if crc32.ChecksumIEEE(h) != crc {
			t.Errorf("GPT header at LBA %d: bad CRC", lba)
		}
		if my := binary.LittleEndian.Uint64(h[24:]); my != lba {
			t.Errorf("GPT header at LBA %d says it is at %d", lba, my)
		}
		ent := binary.LittleEndian.Uint64(h[72:])
		n, size := binary.LittleEndian.Uint32(h[80:]), binary.LittleEndian.Uint32(h[84:])
		arr := raw[ent*512 : ent*512+uint64(n*size)]
		if crc32.ChecksumIEEE(arr) != binary.LittleEndian.Uint32(h[88:]) {
			t.Errorf("GPT entries of the header at LBA %d: bad CRC", lba)
		}
		if !bytes.Equal(arr, raw[2*512:2*512+len(arr)]) {
			t.Errorf("backup GPT entries differ from the primary ones")
		}
	}
}

// TestEFIOnly checks that an image with only a UEFI entry makes it the
// default entry, with the validation entry's platform set to EFI.
func TestEFIOnly(t *testing.T) {
	s := newStream()
	s.file("efi.img", 0o644, randBytes(5, 3*512))
	img := build(t, s, Options{ModTime: epoch, EFIBoot: &EFIBoot{Path: "efi.img"}})
	el := report(t, img, "-report_el_torito")
	want := fmt.Sprintf("El Torito boot img : 1 UEFI y none 0x0000 0x00 3 %d\n", lbaOf(t, img, "efi.img"))
	if !strings.Contains(el, want) || strings.Contains(el, "BIOS") {
		t.Errorf("xorriso's El Torito report lacks %q or has a BIOS entry:\n%s", want, el)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if p := raw[catalogLBA*sectorSize+1]; p != 0xEF {
		t.Errorf("validation entry platform 0x%02x, want 0xEF", p)
	}
}

// TestSgdiskLikeXorriso runs sgdisk -v on our image and on xorriso's
// isohybrid image of the same tree. sgdisk rejects both for the same
// reasons, which are the isohybrid design (MBR partition 1 spans the whole
// image, partition 2 the EFI image inside it): the test requires that we
// add no complaint of our own.
func TestSgdiskLikeXorriso(t *testing.T) {
	s, opts := bootStream(t)
	img := build(t, s, opts)
	tree := filepath.Join(t.TempDir(), "tree")
	for p, b := range s.bodies {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := filepath.Join(t.TempDir(), "ref.iso")
	run(t, "xorriso", "-as", "mkisofs", "-R", "-V", "BYZ_BOOT", "-o", ref,
		"-b", "boot/isolinux/isolinux.bin", "-c", "boot/isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"-eltorito-alt-boot", "-e", "boot/efi.img", "-no-emul-boot",
		"-isohybrid-mbr", isohdpfxBin, "-isohybrid-gpt-basdat", tree)
	problems := func(img string) []string {
		sg := testenv.RequireTool(t, "sgdisk")
		out, _ := exec.Command(sg, "-v", img).CombinedOutput() // exits non-zero on problems
		var ps []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Problem:") || strings.HasPrefix(l, "Warning! Main") || strings.HasPrefix(l, "Identified") || strings.Contains(l, "CRC") {
				ps = append(ps, l)
			}
		}
		return ps
	}
	ours, theirs := problems(img), problems(ref)
	if strings.Join(ours, "\n") != strings.Join(theirs, "\n") {
		t.Errorf("sgdisk -v on our image:\n%s\non xorriso's:\n%s", strings.Join(ours, "\n"), strings.Join(theirs, "\n"))
	}
}

// TestQEMUBoot boots the image on SeaBIOS, as a CD (El Torito) and as a
// hard disk (the isohybrid MBR), and waits for isolinux's SAY line on the
// serial console (or its failing attempt to load the kernel of that name:
// either proves isolinux read its config from our ISO 9660 tree).
func TestQEMUBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	qemu := testenv.RequireTool(t, "qemu-system-x86_64")
	s, opts := bootStream(t)
	img := build(t, s, opts)
	for _, tc := range []struct{ name, drive string }{
		{"cdrom", "media=cdrom"},
		{"disk", "if=ide,media=disk,snapshot=on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// TCG only: KVM hangs on these hosts (FIELD-NOTES).
			cmd := exec.CommandContext(ctx, qemu, "-display", "none", "-serial", "stdio", "-monitor", "none",
				"-m", "128", "-no-reboot", "-drive", "file="+img+",format=raw,"+tc.drive)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Kill()
			var seen strings.Builder
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				seen.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "hello-from-isolinux") {
					t.Logf("serial console:\n%s", seen.String())
					return
				}
			}
			t.Fatalf("no isolinux marker within 60 s; serial console:\n%s\nstderr:\n%s", seen.String(), stderr.String())
		})
	}
}
