package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"byzantium/modules/deb"
	"byzantium/modules/entry"
)

// Names of the bootloader files a Loader holds (File.Name).
const (
	IsolinuxBin = "isolinux.bin"
	IsohdpfxBin = "isohdpfx.bin" // isohybrid MBR boot code for the ISO writer
	LdlinuxC32  = "ldlinux.c32"
	Libcom32C32 = "libcom32.c32"
	LibutilC32  = "libutil.c32"
	MenuC32     = "menu.c32"
	Shim        = "shimx64.efi"
	MokManager  = "mmx64.efi"
	GrubDisk    = "grubx64.efi" // signed GRUB, prefix /EFI/debian
	GrubCD      = "gcdx64.efi"  // signed GRUB for CDs, prefix /boot/grub
)

// wanted maps a Debian package name to the files taken from it: name in
// the Loader → path in the package's data.tar. The paths are bookworm's
// (checked with dpkg-deb -c). mmx64 lives in shim-helpers-amd64-signed,
// not shim-signed. fbx64.efi is left out on purpose: shim on removable
// media runs it when present, and it would write boot entries to NVRAM.
// grub-efi-amd64-bin is not here: the signed GRUB images are monolithic,
// and its unsigned ones would not pass Secure Boot.
var wanted = map[string]map[string]string{
	"isolinux": {
		IsolinuxBin: "usr/lib/ISOLINUX/isolinux.bin",
		IsohdpfxBin: "usr/lib/ISOLINUX/isohdpfx.bin",
	},
	"syslinux-common": {
		LdlinuxC32:  "usr/lib/syslinux/modules/bios/ldlinux.c32",
		Libcom32C32: "usr/lib/syslinux/modules/bios/libcom32.c32",
		LibutilC32:  "usr/lib/syslinux/modules/bios/libutil.c32",
		MenuC32:     "usr/lib/syslinux/modules/bios/menu.c32",
	},
	"shim-signed":               {Shim: "usr/lib/shim/shimx64.efi.signed"},
	"shim-helpers-amd64-signed": {MokManager: "usr/lib/shim/mmx64.efi.signed"},
	"grub-efi-amd64-signed": {
		GrubDisk: "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
		GrubCD:   "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
	},
}

// Packages returns the names of the Debian packages Extract reads, sorted:
// what a build must fetch and lock.
func Packages() []string {
	names := make([]string, 0, len(wanted))
	for p := range wanted {
		names = append(names, p)
	}
	slices.Sort(names)
	return names
}

// File is one bootloader file taken from a package. The files are small
// (the largest, GRUB, is 4 MB), and each goes into both the media tree and
// the EFI image, so they are held in memory rather than staged on disk.
type File struct {
	Name    string // one of the names above
	Package string // Debian package name
	Version string // its version
	Source  string // path in the package
	SHA256  string // hex digest of Data
	Data    []byte
}

// Loader holds the bootloader files taken from a set of packages.
type Loader struct {
	files map[string]*File
}

// File returns the file called name, or an ErrMissingFile error naming the
// package that provides it.
func (l *Loader) File(name string) (*File, error) {
	if f, ok := l.files[name]; ok {
		return f, nil
	}
	for pkg, files := range wanted {
		if src, ok := files[name]; ok {
			return nil, fmt.Errorf("%w: %s (%s from package %s): pass that package's .deb", ErrMissingFile, name, src, pkg)
		}
	}
	return nil, fmt.Errorf("%w: %s is not a bootloader file this package knows", ErrMissingFile, name)
}

// Files returns every file held, sorted by name.
func (l *Loader) Files() []*File {
	out := make([]*File, 0, len(l.files))
	for _, f := range l.files {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *File) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Extract reads each .deb once, front to back, and keeps the bootloader
// files its package provides. A .deb whose package provides none is an
// ErrUnknownPackage error; a package that lacks one of its files (a
// renamed path in a new Debian release) is an ErrMissingFile error naming
// the package, its .deb and the file. Packages may be given in any order
// and a subset is fine: what a flavour needs is checked when it is used.
func Extract(debs ...string) (*Loader, error) {
	l := &Loader{files: map[string]*File{}}
	for _, p := range debs {
		if err := l.extract(p); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Loader) extract(debPath string) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("boot: bootloader package: %w", err)
	}
	defer f.Close()
	pkg, err := deb.Open(f, debPath)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	defer pkg.Close()
	name := pkg.Control.Package
	want, ok := wanted[name]
	if !ok {
		return fmt.Errorf("%w: %s is package %q; bootloader files come from %v", ErrUnknownPackage, debPath, name, Packages())
	}
	// bySource inverts want for the walk.
	bySource := map[string]string{}
	for n, src := range want {
		bySource[src] = n
	}
	for {
		h, err := pkg.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("boot: reading %s: %w", debPath, err)
		}
		n, ok := bySource[h.Path]
		if !ok || h.Type != entry.TypeRegular {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(pkg, h.Size))
		if err != nil {
			return fmt.Errorf("boot: reading %s from %s: %w", h.Path, debPath, err)
		}
		if int64(len(data)) != h.Size {
			return fmt.Errorf("boot: reading %s from %s: %d of %d bytes: %w", h.Path, debPath, len(data), h.Size, io.ErrUnexpectedEOF)
		}
		sum := sha256.Sum256(data)
		l.files[n] = &File{Name: n, Package: name, Version: pkg.Control.Version, Source: h.Path,
			SHA256: hex.EncodeToString(sum[:]), Data: data}
		delete(bySource, h.Path)
	}
	if len(bySource) > 0 {
		var missing []string
		for src := range bySource {
			missing = append(missing, "/"+path.Clean(src))
		}
		slices.Sort(missing)
		return fmt.Errorf("%w: package %s (%s) has no %v", ErrMissingFile, name, debPath, missing)
	}
	return nil
}
