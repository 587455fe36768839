package bootloader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// Where the bootloaders look for their files in the media tree.
const (
	KernelPath    = "boot/vmlinuz"
	InitramfsPath = "boot/initrd.zst"
	EFIImagePath  = "boot/efi.img" // ISO only: the El Torito EFI image
	IsolinuxDir   = "boot/isolinux"
	IsolinuxCfg   = IsolinuxDir + "/isolinux.cfg"
	GrubCfgDisk   = "EFI/debian/grub.cfg" // grubx64's prefix is /EFI/debian
	GrubCfgDir    = "boot/grub"
	GrubCfgCD     = GrubCfgDir + "/grub.cfg" // gcdx64's prefix is /boot/grub, and the BIOS GRUB's
	// GrubPCMediaDir holds, on USB media, the files of GRUB's i386-pc
	// folder that the BIOS core image is made of (FromMedia reads them
	// back). It is also where the BIOS GRUB would look for more modules
	// ($prefix is /boot/grub), though it never needs to.
	GrubPCMediaDir = GrubCfgDir + "/" + GrubPCDir
	shimPath       = "EFI/BOOT/BOOTX64.EFI"
	grubPath       = "EFI/BOOT/grubx64.efi" // the name shim loads
	mokPath        = "EFI/BOOT/mmx64.efi"   // the name shim loads MokManager by
)

// Blob is a small file held in memory and its path in an image.
type Blob struct {
	Path string
	Data []byte
}

// placement maps media paths to Loader file names, per flavour. On the ISO
// the CD GRUB goes by the name shim loads (grubx64.efi); the tree carries
// the EFI files as well as the EFI image, so a copy of the ISO's files onto
// a FAT stick also boots.
var placement = map[Flavour]map[string]string{
	ISO: {
		shimPath: Shim, grubPath: GrubCD, mokPath: MokManager,
		IsolinuxDir + "/isolinux.bin": IsolinuxBin,
		IsolinuxDir + "/ldlinux.c32":  LdlinuxC32,
		IsolinuxDir + "/libcom32.c32": Libcom32C32,
		IsolinuxDir + "/libutil.c32":  LibutilC32,
		IsolinuxDir + "/menu.c32":     MenuC32,
	},
	USB: {shimPath: Shim, grubPath: GrubDisk, mokPath: MokManager},
}

// Placed is a bootloader file and its path in the media tree.
type Placed struct {
	Path string
	*File
}

// MediaFiles returns the bootloader files flavour f puts in the media
// tree, sorted by path: shim, GRUB and MokManager under EFI/BOOT, isolinux
// on the ISO, and on USB media GRUB's BIOS files (the ones GrubPC reads)
// with the core image made of them, when the Loader has them.
func (l *Loader) MediaFiles(f Flavour) ([]Placed, error) {
	pl, ok := placement[f]
	if !ok {
		return nil, fmt.Errorf("%w: unknown flavour %s", ErrBadInput, f)
	}
	var out []Placed
	for mp, name := range pl {
		file, err := l.File(name)
		if err != nil {
			return nil, err
		}
		out = append(out, Placed{mp, file})
	}
	if f == USB {
		names, err := l.grubPCFiles()
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			file, err := l.File(GrubPCDir + "/" + n)
			if err != nil {
				return nil, err
			}
			out = append(out, Placed{path.Join(GrubPCMediaDir, n), file})
		}
		if names != nil {
			core, err := l.grubPCCore()
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256(core)
			out = append(out, Placed{path.Join(GrubPCMediaDir, GrubPCCore),
				&File{Name: GrubPCDir + "/" + GrubPCCore, SHA256: hex.EncodeToString(sum[:]), Data: core}})
		}
	}
	slices.SortFunc(out, func(a, b Placed) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// Configs returns the generated files flavour f puts in the media tree
// for the menu c: grub.cfg at both places the signed GRUB images look
// and, on the ISO, isolinux.cfg and the El Torito EFI image (its entries
// dated mtime).
func (l *Loader) Configs(f Flavour, c Config, mtime time.Time) ([]Blob, error) {
	grub, err := Grub(c)
	if err != nil {
		return nil, err
	}
	out := []Blob{{GrubCfgDisk, grub}, {GrubCfgCD, grub}}
	if f != ISO {
		return out, nil
	}
	iso, err := Isolinux(c)
	if err != nil {
		return nil, err
	}
	out = append(out, Blob{IsolinuxCfg, iso})
	files, err := l.EFIFiles(ISO, grub)
	if err != nil {
		return nil, err
	}
	var img memImage
	if _, err := EFIImage(&img, EFIOptions{ModTime: mtime, Seed: []byte(c.MediaID)}, files...); err != nil {
		return nil, err
	}
	return append(out, Blob{EFIImagePath, img.b}), nil
}

// memImage is an io.WriterAt over a growing byte slice.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

// EFIFiles returns the files of the El Torito EFI image for flavour f
// (only ISO has one): shim, GRUB and MokManager under EFI/BOOT, and grub.cfg
// at both places the signed GRUB images look, since GRUB's prefix there is
// relative to the image it was loaded from.
func (l *Loader) EFIFiles(f Flavour, grubCfg []byte) ([]Blob, error) {
	if f != ISO {
		return nil, fmt.Errorf("%w: only the iso flavour has an El Torito EFI image, not %s", ErrBadInput, f)
	}
	out := []Blob{{GrubCfgDisk, grubCfg}, {GrubCfgCD, grubCfg}}
	for _, mp := range []string{shimPath, grubPath, mokPath} {
		file, err := l.File(placement[f][mp])
		if err != nil {
			return nil, err
		}
		out = append(out, Blob{mp, file.Data})
	}
	return out, nil
}

// FromMedia takes the bootloader files of a USB media tree from the tree
// itself (fsys): shim, the signed disk GRUB and MokManager under
// EFI/BOOT, and GRUB's i386-pc files under GrubPCMediaDir, from which
// GrubPC makes the BIOS boot code again (taking the core image the media
// carries, GrubPCCore). Signed files stay byte for byte what Debian
// signed, so a media made from them boots with Secure Boot as the
// original does. check, when set, sees each file as it is read (its
// Source is its media path) and may refuse it.
func FromMedia(fsys fs.FS, check func(*File) error) (*Loader, error) {
	l := &Loader{files: map[string]*File{}}
	read := func(mediaPath, name string) error {
		f, err := fsys.Open(mediaPath)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMissingFile, mediaPath, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("bootloader: %s: %w", mediaPath, err)
		}
		if fi.Size() > 64<<20 {
			return fmt.Errorf("%w: %s is %d bytes, no bootloader file is that big", ErrBadInput, mediaPath, fi.Size())
		}
		data := make([]byte, fi.Size())
		if _, err := io.ReadFull(f, data); err != nil {
			return fmt.Errorf("bootloader: %s: %w", mediaPath, err)
		}
		sum := sha256.Sum256(data)
		file := &File{Name: name, Package: "media", Source: mediaPath, SHA256: hex.EncodeToString(sum[:]), Data: data}
		if check != nil {
			if err := check(file); err != nil {
				return err
			}
		}
		l.files[name] = file
		return nil
	}
	for mp, name := range placement[USB] {
		if err := read(mp, name); err != nil {
			return nil, err
		}
	}
	ents, err := fs.ReadDir(fsys, GrubPCMediaDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (GRUB's BIOS files, which media made before clones existed lack): %w", ErrMissingFile, GrubPCMediaDir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := read(GrubPCMediaDir+"/"+e.Name(), GrubPCDir+"/"+e.Name()); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}
