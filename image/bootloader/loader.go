package bootloader

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"byzantium/image/grubpc"
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
	// GrubPCDir holds GRUB's legacy-BIOS files (File.Name "i386-pc/NAME"),
	// what image/grubpc builds the USB image's BIOS boot code from.
	GrubPCDir = "i386-pc"
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

// wantedDirs maps a Debian package to a folder in it whose boot files
// (.img, .mod, .lst) are all kept, under a folder name in the Loader:
// GRUB's BIOS core embeds whichever modules it is asked for, with the
// dependencies moddep.lst gives, so the set is not known here.
var wantedDirs = map[string]struct{ src, name string }{
	"grub-pc-bin": {"usr/lib/grub/i386-pc/", GrubPCDir + "/"},
}

// wantedDirFiles must be in a wantedDirs folder for its package to count
// as complete.
var wantedDirFiles = map[string][]string{
	"grub-pc-bin": {"boot.img", "diskboot.img", "lzma_decompress.img", "kernel.img", "moddep.lst"},
}

// Packages returns the names of the Debian packages Extract reads, sorted:
// what a build must fetch and lock.
func Packages() []string {
	names := make([]string, 0, len(wanted)+len(wantedDirs))
	for p := range wanted {
		names = append(names, p)
	}
	for p := range wantedDirs {
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
	core  []byte // the BIOS core image, made once (grubPCCore)
}

// New returns a Loader holding files, by File.Name: bootloader files a
// caller has at hand, such as test doubles; a build uses Extract.
func New(files ...*File) *Loader {
	l := &Loader{files: map[string]*File{}}
	for _, f := range files {
		l.files[f.Name] = f
	}
	return l
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
	for pkg, d := range wantedDirs {
		if rest, ok := strings.CutPrefix(name, d.name); ok {
			return nil, fmt.Errorf("%w: %s (%s%s from package %s): pass that package's .deb", ErrMissingFile, name, d.src, rest, pkg)
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
		return fmt.Errorf("bootloader: bootloader package: %w", err)
	}
	defer f.Close()
	pkg, err := deb.Open(f, debPath)
	if err != nil {
		return fmt.Errorf("bootloader: %w", err)
	}
	defer pkg.Close()
	name := pkg.Control.Package
	want, ok := wanted[name]
	dir, isDir := wantedDirs[name]
	if !ok && !isDir {
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
			return fmt.Errorf("bootloader: reading %s: %w", debPath, err)
		}
		n, ok := bySource[h.Path]
		if rest, in := strings.CutPrefix(h.Path, dir.src); isDir && in && !strings.Contains(rest, "/") &&
			(strings.HasSuffix(rest, ".img") || strings.HasSuffix(rest, ".mod") || strings.HasSuffix(rest, ".lst")) {
			n, ok = dir.name+rest, true
		}
		if !ok || h.Type != entry.TypeRegular {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(pkg, h.Size))
		if err != nil {
			return fmt.Errorf("bootloader: reading %s from %s: %w", h.Path, debPath, err)
		}
		if int64(len(data)) != h.Size {
			return fmt.Errorf("bootloader: reading %s from %s: %d of %d bytes: %w", h.Path, debPath, len(data), h.Size, io.ErrUnexpectedEOF)
		}
		sum := sha256.Sum256(data)
		l.files[n] = &File{Name: n, Package: name, Version: pkg.Control.Version, Source: h.Path,
			SHA256: hex.EncodeToString(sum[:]), Data: data}
		delete(bySource, h.Path)
	}
	for _, f := range wantedDirFiles[name] {
		if _, ok := l.files[dir.name+f]; !ok {
			bySource[dir.src+f] = dir.name + f
		}
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

// FS returns the files held under folder dir (GrubPCDir) as a file system
// whose root is that folder.
func (l *Loader) FS(dir string) fs.FS {
	m := memFS{}
	for name, f := range l.files {
		if rest, ok := strings.CutPrefix(name, dir+"/"); ok {
			m[rest] = f.Data
		}
	}
	return m
}

// memFS is a flat, read-only fs.FS over files held in memory.
type memFS map[string][]byte

func (m memFS) Open(name string) (fs.File, error) {
	data, ok := m[name]
	if !ok || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{Reader: bytes.NewReader(data), name: name, size: int64(len(data))}, nil
}

type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Name() string               { return path.Base(f.name) }
func (f *memFile) Size() int64                { return f.size }
func (f *memFile) Mode() fs.FileMode          { return 0o444 }
func (f *memFile) ModTime() time.Time         { return time.Time{} }
func (f *memFile) IsDir() bool                { return false }
func (f *memFile) Sys() any                   { return nil }

// GrubPCModules are embedded in the BIOS core image: disk and file system
// access, and every command grub.cfg (Grub) uses, since the media carries
// no module folder for GRUB to load more from. ls, cat, halt and reboot
// are for a person at the GRUB prompt.
var GrubPCModules = []string{
	"biosdisk", "part_gpt", "part_msdos", "fat", "normal", "linux", "search", "search_fs_file",
	"configfile", "echo", "test", "serial", "terminal", "ls", "cat", "halt", "reboot",
}

// grubPCPrefix is where the BIOS GRUB looks for grub.cfg: GrubCfgCD on the
// first partition of the drive it booted from (the FAT partition of the
// USB image).
const grubPCPrefix = "(,gpt1)/" + GrubCfgDir

// GrubPC returns GRUB's BIOS boot code for a disk whose core image is
// written from sector lba: the protective MBR's 440 bytes of boot code and
// the core image (see image/grubpc).
func (l *Loader) GrubPC(lba uint64) (mbr, core []byte, err error) {
	fsys := l.FS(GrubPCDir)
	if core, err = l.grubPCCore(); err != nil {
		return nil, nil, err
	}
	if core, err = grubpc.Embed(core, lba); err != nil {
		return nil, nil, fmt.Errorf("bootloader: BIOS GRUB: %w", err)
	}
	if mbr, err = grubpc.MBR(fsys, lba); err != nil {
		return nil, nil, fmt.Errorf("bootloader: BIOS GRUB: %w", err)
	}
	return mbr, core, nil
}

// grubPCFiles returns the names (in GrubPCDir) of the files GrubPC reads:
// the images, moddep.lst and every module GrubPCModules pulls in. nil when
// the Loader has no i386-pc files.
func (l *Loader) grubPCFiles() ([]string, error) {
	dep, ok := l.files[GrubPCDir+"/"+grubpc.ModDep]
	if !ok {
		return nil, nil
	}
	mods, err := grubpc.Resolve(dep.Data, GrubPCModules)
	if err != nil {
		return nil, fmt.Errorf("bootloader: BIOS GRUB: %w", err)
	}
	out := []string{grubpc.BootImg, grubpc.DiskbootImg, grubpc.DecompressImg, grubpc.KernelImg, grubpc.ModDep}
	for _, m := range mods {
		out = append(out, m+".mod")
	}
	return out, nil
}

// GrubPCCore is the name, in GrubPCDir, of the BIOS core image before
// grubpc.Embed places it: USB media carry it at
// GrubPCMediaDir/core.img (where grub-install leaves its own), so a
// Loader taken from the media uses it as it is, checked against the
// manifest, rather than compressing a new one.
const GrubPCCore = "core.img"

// grubPCCore returns the BIOS core image not yet embedded: the Loader's
// core.img, or one made from its i386-pc files (once).
func (l *Loader) grubPCCore() ([]byte, error) {
	if l.core != nil {
		return l.core, nil
	}
	if f, ok := l.files[GrubPCDir+"/"+GrubPCCore]; ok {
		l.core = f.Data
		return l.core, nil
	}
	if _, err := l.File(GrubPCDir + "/" + grubpc.KernelImg); err != nil {
		return nil, err
	}
	core, err := grubpc.Core(l.FS(GrubPCDir), grubpc.CoreOptions{Modules: GrubPCModules, Prefix: grubPCPrefix})
	if err != nil {
		return nil, fmt.Errorf("bootloader: BIOS GRUB: %w", err)
	}
	l.core = core
	return core, nil
}
