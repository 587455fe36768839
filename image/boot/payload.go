package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
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

// EFIFiles returns the files of the El Torito EFI image for flavour f
// (only ISO has one): shim, GRUB and MokManager under EFI/BOOT, and grub.cfg
// at both places the signed GRUB images look, since GRUB's prefix there is
// relative to the image it was loaded from.
func (l *Loader) EFIFiles(f Flavour, grubCfg []byte) ([]Blob, error) {
	if f != ISO {
		return nil, fmt.Errorf("%w: only the iso flavour has an El Torito EFI image, not %s", ErrBadMedia, f)
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

// payload adds every file that does not embed the media ID.
func (p *planner) payload(m *Media) error {
	if _, ok := placement[m.Flavour]; !ok {
		return fmt.Errorf("%w: unknown flavour %s", ErrBadMedia, m.Flavour)
	}
	if m.Loader == nil {
		return fmt.Errorf("%w: no bootloader files (Loader is nil)", ErrBadMedia)
	}
	if m.Kernel == "" || m.Initramfs == "" {
		return fmt.Errorf("%w: a kernel and an initramfs are required", ErrBadMedia)
	}
	for mp, name := range placement[m.Flavour] {
		f, err := m.Loader.File(name)
		if err != nil {
			return err
		}
		p.files[mp] = &node{
			hdr:  entry.Header{Path: mp, Type: entry.TypeRegular, Mode: 0o644, ModTime: p.mtime, Size: int64(len(f.Data))},
			data: f.Data, sum: f.SHA256,
		}
	}
	if err := p.addHost(KernelPath, m.Kernel); err != nil {
		return err
	}
	if err := p.addHost(InitramfsPath, m.Initramfs); err != nil {
		return err
	}
	for dir, files := range map[string][]string{"base": m.Base, "modules": m.Modules, "optional": m.Optional} {
		paths, err := xzmPaths(dir, files)
		if err != nil {
			return err
		}
		for mp, src := range paths {
			if err := p.addHost(mp, src); err != nil {
				return err
			}
		}
	}
	for _, dir := range m.Rootcopy {
		if err := p.rootcopy(dir); err != nil {
			return err
		}
	}
	return nil
}

// addHost adds the regular file src as mediaPath, hashing it. Its mode and
// owner are not kept: they say nothing about the media.
func (p *planner) addHost(mediaPath, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("boot: %s: %w", mediaPath, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s: %s is not a regular file", ErrBadMedia, mediaPath, src)
	}
	key := sumKey{path: src, size: fi.Size(), mtime: fi.ModTime()}
	sum, ok := p.sums.get(key)
	n := fi.Size()
	if !ok {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("boot: %s: %w", mediaPath, err)
		}
		defer f.Close()
		h := sha256.New()
		if n, err = io.Copy(h, f); err != nil {
			return fmt.Errorf("boot: %s: reading %s: %w", mediaPath, src, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
		if n == fi.Size() {
			p.sums.put(key, sum)
		}
	}
	p.files[mediaPath] = &node{
		hdr: entry.Header{Path: mediaPath, Type: entry.TypeRegular, Mode: 0o644, ModTime: clamp(fi.ModTime(), p.mtime), Size: n},
		src: src, sum: sum,
	}
	return nil
}

func clamp(t, limit time.Time) time.Time {
	if t.After(limit) {
		return limit
	}
	return t
}

// rootcopy walks dir and adds its entries under RootcopyDir, keeping their
// modes and owners (rootcopy is copied over / at boot, where they matter)
// with times clamped. A hardlink becomes a second copy of its target, since
// the FAT side of the media cannot share data between names.
func (p *planner) rootcopy(dir string) error {
	r, err := hostfs.NewReader(dir)
	if err != nil {
		return fmt.Errorf("boot: rootcopy: %w", err)
	}
	defer r.Close()
	for {
		h, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("boot: rootcopy: %w", err)
		}
		mp := RootcopyDir
		if h.Path != "." {
			mp += "/" + h.Path
		}
		n := &node{hdr: *h, src: filepath.Join(dir, filepath.FromSlash(h.Path))}
		// Xattrs are dropped: neither FAT nor the ISO writer can hold them.
		n.hdr.Path, n.hdr.ModTime, n.hdr.Xattrs = mp, clamp(h.ModTime, p.mtime), nil
		switch h.Type {
		case entry.TypeRegular:
			s := sha256.New()
			if _, err := io.Copy(s, io.LimitReader(r, h.Size)); err != nil {
				return fmt.Errorf("boot: rootcopy: %s: %w", n.src, err)
			}
			n.sum = hex.EncodeToString(s.Sum(nil))
		case entry.TypeHardlink:
			target, ok := p.files[RootcopyDir+"/"+h.Linkname]
			if !ok || target.hdr.Type != entry.TypeRegular {
				return fmt.Errorf("%w: rootcopy: %s is a hardlink to %s, which is not a file seen before it", ErrBadMedia, n.src, h.Linkname)
			}
			n.hdr.Type, n.hdr.Linkname, n.hdr.Size = entry.TypeRegular, "", target.hdr.Size
			n.src, n.sum = target.src, target.sum
		default:
			n.src = ""
		}
		p.files[mp] = n
	}
}
