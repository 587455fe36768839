package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"byzantium/image/bootloader"
	"byzantium/image/iso9660"
	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
)

// isoMBR is the isohybrid MBR template both writers get.
const isoMBR = "/usr/lib/ISOLINUX/isohdpfx.bin"

// isoPair compares ISO assembly of one media tree: our writer against
// xorriso -as mkisofs, both with Rock Ridge, the BIOS (isolinux, boot info
// table) and UEFI El Torito entries and an isohybrid MBR. The tree is the
// one inside an ISO byz built, extracted once.
func isoPair(iso, tmp string) *pair {
	if _, err := os.Stat(iso); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s not found (run make); skipping the ISO case\n", iso)
		return nil
	}
	tree := filepath.Join(tmp, "iso-tree")
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", tree).CombinedOutput(); err != nil {
		fatalf("extracting %s: %v\n%s", iso, err, out)
	}
	// xorriso extracts read-only; the writers only read, but cleanup must not fail.
	exec.Command("chmod", "-R", "u+w", tree).Run()
	self, err := os.Executable()
	if err != nil {
		fatalf("%v", err)
	}
	bios := bootloader.IsolinuxDir + "/" + bootloader.IsolinuxBin
	return &pair{name: "ISO assembly", target: "wall ≤ 1.0×", maxWall: 1.0,
		byz: func(out string) [][]string { return [][]string{{self, "-write-iso", tree, out}} },
		peer: func(out string) [][]string {
			return [][]string{{"xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "BYZANTIUM", "-o", out,
				"-isohybrid-mbr", isoMBR, "-b", bios, "-c", bootloader.IsolinuxDir + "/boot.cat", "-no-emul-boot",
				"-boot-load-size", "4", "-boot-info-table", "-eltorito-alt-boot", "-e", bootloader.EFIImagePath,
				"-no-emul-boot", "-isohybrid-gpt-basdat", tree}}
		}}
}

// writeISO writes the tree at dir as a hybrid ISO at out with our writer.
func writeISO(dir, out string) error {
	mbr, err := os.ReadFile(isoMBR)
	if err != nil {
		return err
	}
	r, err := hostfs.NewReader(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := iso9660.NewWriter(f, iso9660.Options{VolumeID: "BYZANTIUM", ModTime: time.Unix(1700000000, 0),
		BIOSBoot: &iso9660.BIOSBoot{Path: bootloader.IsolinuxDir + "/" + bootloader.IsolinuxBin,
			CatalogPath: bootloader.IsolinuxDir + "/boot.cat", BootInfoTable: true},
		EFIBoot: &iso9660.EFIBoot{Path: bootloader.EFIImagePath}, Hybrid: true, MBRTemplate: mbr})
	if err != nil {
		return err
	}
	// The extracted tree carries the old boot catalog; the writer makes
	// its own.
	if _, err := entry.Copy(w, &skip{Reader: r, path: bootloader.IsolinuxDir + "/boot.cat"}); err != nil {
		return err
	}
	return w.Close()
}

type skip struct {
	entry.Reader
	path string
}

func (s *skip) Next() (*entry.Header, error) {
	for {
		h, err := s.Reader.Next()
		if err != nil || h.Path != s.path {
			return h, err
		}
	}
}
