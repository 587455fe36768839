package build

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"byzantium/builder/spec"
	"byzantium/image/boot"
	"byzantium/image/iso9660"
	"byzantium/image/usbimg"
	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
)

// mediaStage lays out the media tree once per flavour and writes the
// outputs the spec asks for, each to a temporary name renamed into place
// only when complete.
func (b *builder) mediaStage(loader *boot.Loader, k *kernelParts, mods []built) ([]string, error) {
	// The planner keeps file names, and cache files are named by digest:
	// give each module its media name through a hard link (a copy across
	// file systems).
	named := filepath.Join(b.opts.WorkDir, "media")
	link := func(layer, file, src string) (string, error) {
		dst := filepath.Join(named, layer, file)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := os.Link(src, dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				return "", err
			}
		}
		return dst, nil
	}
	var base, mid, opt []string
	p, err := link("base", "000-kernel.xzm", k.module)
	if err != nil {
		return nil, err
	}
	base = append(base, p)
	for _, m := range mods {
		p, err := link(m.layer, m.file, m.path)
		if err != nil {
			return nil, err
		}
		switch m.layer {
		case "base":
			base = append(base, p)
		case "modules":
			mid = append(mid, p)
		default:
			opt = append(opt, p)
		}
	}
	// Only a console that gives a root shell anyway leaves the boot menu
	// editable: otherwise a kernel parameter (init=, byz.init=, a rescue)
	// typed at the menu would open one.
	menu := boot.Config{Title: b.spec.Name, Cmdline: b.spec.Cmdline, Locked: !b.spec.Console.Open()}
	for _, e := range b.spec.Menu {
		menu.Entries = append(menu.Entries, boot.Entry{Label: e.Label, Append: e.Append, Default: e.Default})
	}
	// The two flavours share their payload: hash each input once.
	sums := &boot.Sums{}
	plan := func(f boot.Flavour) (*boot.Tree, error) {
		t, err := boot.Plan(boot.Media{Flavour: f, Loader: loader, Kernel: k.vmlinuz, Initramfs: k.initrd,
			Base: base, Modules: mid, Optional: opt, Rootcopy: b.spec.Rootcopy, Menu: menu, ModTime: b.opts.Epoch,
			Sums: sums})
		if err != nil {
			return nil, fmt.Errorf("%s: media: %w", b.spec.File, err)
		}
		return t, nil
	}

	var outs []string
	o := b.spec.Outputs
	if o.ISO != "" {
		t, err := plan(boot.ISO)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(b.opts.Out, o.ISO)
		b.logf("writing %s (media %s)", path, t.ID)
		if err := b.writeISO(path, t, loader); err != nil {
			return nil, err
		}
		outs = append(outs, path)
	}
	if o.USB != nil || o.Dir != "" {
		t, err := plan(boot.USB)
		if err != nil {
			return nil, err
		}
		if o.USB != nil {
			path := filepath.Join(b.opts.Out, o.USB.File)
			b.logf("writing %s (media %s)", path, t.ID)
			seed := sha256.Sum256([]byte(b.spec.Name + "\x00" + b.spec.Version + "\x00" + t.ID))
			size := o.USB.Size
			if size == 0 {
				if size, err = usbSize(t, o.USB.Spare); err != nil {
					return nil, err
				}
			}
			// The spare is free space in the FAT partition, where a
			// save.dat goes (byz persist create --image, --media, or on
			// the node): byz-init uses byzantium/changes/save.dat there
			// without being told.
			err := usbimg.Write(path, t.Reader(), usbimg.Options{Size: size, Room: o.USB.Spare,
				Seed: seed[:], ModTime: b.opts.Epoch, BootCode: b.biosMBR, BIOSCore: b.biosCore})
			if errors.Is(err, usbimg.ErrNoRoom) {
				return nil, fmt.Errorf("%s: outputs.usb: %w (size %s, spare %s)", path, err, spec.FormatSize(size), spec.FormatSize(o.USB.Spare))
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			outs = append(outs, path)
		}
		if o.Dir != "" {
			path := filepath.Join(b.opts.Out, o.Dir)
			b.logf("writing %s/ (media %s)", path, t.ID)
			if err := writeDir(path, t); err != nil {
				return nil, err
			}
			outs = append(outs, path)
		}
	}
	return outs, nil
}

// bootLoader extracts the bootloader files from their Debian packages,
// found in the package folder by name.
func (b *builder) bootLoader() (*boot.Loader, error) {
	var debs []string
	for _, pkg := range boot.Packages() {
		m, _ := filepath.Glob(filepath.Join(b.opts.DebDir, pkg+"_*.deb"))
		if len(m) == 0 {
			return nil, fmt.Errorf("bootloader package %s not found in %s: fetch it with ci/fetch-debs %s",
				pkg, b.opts.DebDir, strings.Join(boot.Packages(), " "))
		}
		debs = append(debs, m[len(m)-1])
	}
	l, err := boot.Extract(debs...)
	if err != nil {
		return nil, fmt.Errorf("bootloader: %w", err)
	}
	if b.spec.Outputs.USB != nil {
		if b.biosMBR, b.biosCore, err = l.GrubPC(usbimg.BIOSBootLBA); err != nil {
			return nil, fmt.Errorf("bootloader: %w", err)
		}
	}
	return l, nil
}

// writeISO writes the hybrid ISO: El Torito BIOS (isolinux with a boot
// info table) and UEFI (the EFI image) entries, and an MBR+GPT system area
// so the same file boots from a stick.
func (b *builder) writeISO(path string, t *boot.Tree, loader *boot.Loader) error {
	mbr, err := loader.File(boot.IsohdpfxBin)
	if err != nil {
		return err
	}
	return writeTemp(path, func(f *os.File) error {
		w, err := iso9660.NewWriter(f, iso9660.Options{
			VolumeID: volumeID(b.spec.Name), ModTime: b.opts.Epoch,
			BIOSBoot: &iso9660.BIOSBoot{Path: boot.IsolinuxDir + "/" + boot.IsolinuxBin,
				CatalogPath: boot.IsolinuxDir + "/boot.cat", BootInfoTable: true},
			EFIBoot:     &iso9660.EFIBoot{Path: boot.EFIImagePath},
			Hybrid:      true,
			MBRTemplate: mbr.Data,
		})
		if err != nil {
			return err
		}
		if _, err := entry.Copy(w, t.Reader()); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
}

// writeDir writes the media tree as a folder, replacing an older one only
// once the new one is complete.
func writeDir(path string, t *boot.Tree) error {
	tmp := path + ".tmp"
	os.RemoveAll(tmp)
	if err := hostfs.Extract(t.Reader(), tmp, hostfs.ExtractOptions{NoChown: os.Geteuid() != 0}); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// volumeID makes an ISO 9660 volume identifier: d-characters, 32 at most.
func volumeID(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 32 {
		s = s[:32]
	}
	return s
}

// writeTemp runs write on a temporary file beside path and renames it into
// place only when write succeeds and the data is on disk.
func writeTemp(path string, write func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// usbSize is the smallest USB image that holds the media tree, plus spare:
// the files, a cluster of slack each and room for directories, the FAT
// tables and the GPT, rounded to whole MiB, and never below the 34 MiB a
// FAT32 volume needs. The spare stays free in the FAT partition, so it
// counts with its FAT entries (8 bytes per 4 KiB cluster at worst).
func usbSize(t *boot.Tree, spare int64) (int64, error) {
	const mib = 1 << 20
	var m boot.Manifest
	if err := json.Unmarshal(t.Manifest, &m); err != nil {
		return 0, fmt.Errorf("media manifest: %w", err)
	}
	var data int64
	for _, f := range m.Files {
		data += f.Size + 64<<10
	}
	fat := data + data/64 + 4*mib // FAT tables (4 bytes per 4 KiB cluster at worst), directories
	fat = max(fat, 40*mib)
	fat = (fat + mib - 1) / mib * mib
	spare = (spare + spare/256 + mib - 1) / mib * mib
	return mib + fat + mib + spare, nil // GPT and alignment before, backup GPT after
}
