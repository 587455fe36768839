package bootloader

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

const debHint = "run ci/fetch-debs isolinux syslinux-common shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed grub-pc-bin from the repository root"

// realDebs returns the cached bootloader .debs, one per package.
func realDebs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pkg := range Packages() {
		matches, _ := filepath.Glob(filepath.Join("..", "..", ".cache", "debs", pkg+"_*.deb"))
		if len(matches) == 0 {
			testenv.RequireFile(t, filepath.Join("..", "..", ".cache", "debs", pkg+"_VERSION.deb"), debHint)
		}
		out = append(out, matches[len(matches)-1])
	}
	return out
}

// TestExtractReal extracts from the real packages and checks every file
// against dpkg-deb's own extraction.
func TestExtractReal(t *testing.T) {
	debs := realDebs(t)
	testenv.RequireTool(t, "dpkg-deb")
	l, err := Extract(debs...)
	if err != nil {
		t.Fatal(err)
	}
	// Ten named files, and GRUB's BIOS folder: its images, moddep.lst
	// and some 270 modules.
	var fixed, grub int
	for _, f := range l.Files() {
		if strings.HasPrefix(f.Name, GrubPCDir+"/") {
			grub++
		} else {
			fixed++
		}
	}
	if fixed != 10 || grub < 200 {
		t.Errorf("%d named files and %d GRUB BIOS files extracted, want 10 and a few hundred", fixed, grub)
	}
	if b, err := fs.ReadFile(l.FS(GrubPCDir), "kernel.img"); err != nil || len(b) < 1000 {
		t.Errorf("FS(%s): kernel.img: %d bytes, %v", GrubPCDir, len(b), err)
	}
	byPkg := map[string]string{}
	for _, d := range debs {
		out, err := exec.Command("dpkg-deb", "-f", d, "Package").Output()
		if err != nil {
			t.Fatal(err)
		}
		byPkg[strings.TrimSpace(string(out))] = d
	}
	for _, f := range l.Files() {
		// Of GRUB's folder, check a sample: one dpkg-deb run per file.
		if strings.HasPrefix(f.Name, GrubPCDir+"/") && !strings.HasSuffix(f.Name, ".img") && f.Name != GrubPCDir+"/normal.mod" {
			continue
		}
		cmd := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO "./$2" | sha256sum`, "sh", byPkg[f.Package], f.Source)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s from %s: %v", f.Source, f.Package, err)
		}
		want := strings.Fields(string(out))[0]
		sum := sha256.Sum256(f.Data)
		if f.SHA256 != want || hex.EncodeToString(sum[:]) != want {
			t.Errorf("%s (%s): sha256 %s, dpkg-deb says %s", f.Name, f.Source, f.SHA256, want)
		}
	}
}

// fakeDeb builds a .deb of package pkg holding files (path in the
// package → content) with dpkg-deb.
func fakeDeb(t *testing.T, pkg string, files map[string]string) string {
	t.Helper()
	testenv.RequireTool(t, "dpkg-deb")
	root := filepath.Join(t.TempDir(), "root")
	ctl := "Package: " + pkg + "\nVersion: 1.0\nArchitecture: all\nMaintainer: test <t@example.org>\nDescription: test\n"
	must(t, os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(ctl), 0o644))
	for p, body := range files {
		must(t, os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), []byte(body), 0o644))
	}
	out := filepath.Join(t.TempDir(), pkg+".deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, b)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestExtractMissingFile(t *testing.T) {
	d := fakeDeb(t, "isolinux", map[string]string{"usr/lib/ISOLINUX/isolinux.bin": "x"})
	_, err := Extract(d)
	if !errors.Is(err, ErrMissingFile) {
		t.Fatalf("err = %v, want ErrMissingFile", err)
	}
	for _, want := range []string{"package isolinux", d, "/usr/lib/ISOLINUX/isohdpfx.bin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestExtractUnknownPackage(t *testing.T) {
	d := fakeDeb(t, "grub-efi-amd64-bin", map[string]string{"usr/lib/grub/x86_64-efi/kernel.img": "x"})
	if _, err := Extract(d); !errors.Is(err, ErrUnknownPackage) || !strings.Contains(err.Error(), "grub-efi-amd64-bin") {
		t.Fatalf("err = %v, want ErrUnknownPackage naming the package", err)
	}
}

// TestFlavourNeedsPackage: a flavour whose files no package gave names
// the file and the package to pass.
func TestFlavourNeedsPackage(t *testing.T) {
	l := &Loader{files: map[string]*File{}}
	_, err := l.File(MokManager)
	if !errors.Is(err, ErrMissingFile) || !strings.Contains(err.Error(), "shim-helpers-amd64-signed") {
		t.Fatalf("err = %v, want ErrMissingFile naming shim-helpers-amd64-signed", err)
	}
}

func TestExtractIncompleteDir(t *testing.T) {
	d := fakeDeb(t, "grub-pc-bin", map[string]string{"usr/lib/grub/i386-pc/boot.img": "x", "usr/lib/grub/i386-pc/normal.mod": "y"})
	_, err := Extract(d)
	if !errors.Is(err, ErrMissingFile) || !strings.Contains(err.Error(), "/usr/lib/grub/i386-pc/kernel.img") {
		t.Fatalf("err = %v, want ErrMissingFile naming kernel.img", err)
	}
}
