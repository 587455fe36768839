package builder

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"byzantium/builder/spec"
	"byzantium/image/bootloader"
	"byzantium/image/fat"
	"byzantium/image/iso9660"
	"byzantium/image/media"
	"byzantium/image/usbimg"
	"byzantium/internal/bytesize"
	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/overlays"
)

// mediaStage lays out the media tree once per flavour, checks that the
// USB image holds it, writes the outputs the spec asks for into the
// staging folder and then moves them all into place.
func (b *builder) mediaStage(loader *bootloader.Loader, k *kernelParts, mods []built) ([]string, error) {
	// The planner keeps file names, and cache files are named by digest:
	// give each module its media name through a hard link (a copy across
	// file systems).
	named := filepath.Join(b.run.work.Path, "media")
	if err := mkdir(named); err != nil {
		return nil, err
	}
	link := func(layer, file, src string) (string, error) {
		dir := filepath.Join(named, layer)
		if err := mkdir(dir); err != nil {
			return "", err
		}
		dst := filepath.Join(dir, file)
		if err := os.Link(src, dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				return "", err
			}
		}
		return dst, nil
	}
	var base, mid, opt []string
	p, err := link(overlays.FolderBase, "000-kernel.xzm", k.module)
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
		case overlays.FolderBase:
			base = append(base, p)
		case overlays.FolderModules:
			mid = append(mid, p)
		default:
			opt = append(opt, p)
		}
	}
	// Only a console that gives a root shell anyway leaves the boot menu
	// editable: otherwise a kernel parameter (init=, byz.init=, a rescue)
	// typed at the menu would open one.
	menu := bootloader.Config{Title: b.spec.Name, Cmdline: b.spec.Cmdline, Locked: !b.spec.Console.Open()}
	for _, e := range b.spec.Menu {
		menu.Entries = append(menu.Entries, bootloader.Entry{Label: e.Label, Append: e.Append, Default: e.Default})
	}
	// The two flavours share their payload: hash each input once.
	sums := &media.Sums{}
	plan := func(f bootloader.Flavour) (*media.Tree, error) {
		t, err := media.Plan(media.Media{Flavour: f, Loader: loader, Kernel: k.vmlinuz, Initramfs: k.initrd,
			Base: base, Modules: mid, Optional: opt, Rootcopy: b.spec.Rootcopy, Menu: menu, ModTime: b.opts.Epoch,
			Sums: sums})
		if err != nil {
			return nil, fmt.Errorf("%s: media: %w", b.spec.File, err)
		}
		return t, nil
	}

	// Every tree is planned, and the USB image's size checked against
	// what its tree needs, before any output is written.
	o := b.spec.Outputs
	var isoTree, usbTree *media.Tree
	if o.ISO != "" {
		if isoTree, err = plan(bootloader.ISO); err != nil {
			return nil, err
		}
	}
	if o.USB != nil || o.Dir != "" {
		if usbTree, err = plan(bootloader.USB); err != nil {
			return nil, err
		}
	}
	var usbBytes int64
	if o.USB != nil {
		if usbBytes, err = b.usbImageSize(usbTree); err != nil {
			return nil, err
		}
	}

	type output struct {
		name, staged string
		dir          bool
	}
	var outs []output
	stage := func(name string, dir bool) (output, error) {
		// One folder per output, so that names with folders in them
		// need no MkdirAll (which would make the staging folder again
		// after a stop removed it).
		d := filepath.Join(b.run.stage.Path, fmt.Sprint(len(outs)))
		if err := mkdir(d); err != nil {
			return output{}, err
		}
		return output{name: name, staged: filepath.Join(d, filepath.Base(name)), dir: dir}, nil
	}
	if o.ISO != "" {
		out, err := stage(o.ISO, false)
		if err != nil {
			return nil, err
		}
		b.logf("writing %s (media %s)", filepath.Join(b.opts.Out, o.ISO), isoTree.ID)
		if err := b.writeISO(out.staged, b.run.reader(isoTree.Reader()), loader); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(b.opts.Out, o.ISO), err)
		}
		outs = append(outs, out)
	}
	if o.USB != nil {
		out, err := stage(o.USB.File, false)
		if err != nil {
			return nil, err
		}
		b.logf("writing %s (media %s)", filepath.Join(b.opts.Out, o.USB.File), usbTree.ID)
		seed := sha256.Sum256([]byte(b.spec.Name + "\x00" + b.spec.Version + "\x00" + usbTree.ID))
		// The spare is free space in the FAT partition, where a save.dat
		// goes (byz persist create --image, --media, or on the node):
		// byz-init uses byzantium/changes/save.dat there without being
		// told.
		err = usbimg.Write(out.staged, b.run.reader(usbTree.Reader()), usbimg.Options{Size: usbBytes, Room: o.USB.Spare,
			Seed: seed[:], ModTime: b.opts.Epoch, BootCode: b.biosMBR, BIOSCore: b.biosCore})
		if errors.Is(err, fat.ErrNoSpace) || errors.Is(err, usbimg.ErrNoRoom) {
			// usbImageSize's bound holds this never to happen; say where
			// to make room all the same.
			return nil, &spec.Error{Pos: b.spec.Position("outputs.usb.size"), Path: "outputs.usb.size",
				Err: fmt.Errorf("%s (spare %s) does not hold the media: %w", spec.FormatSize(usbBytes), spec.FormatSize(o.USB.Spare), err)}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(b.opts.Out, o.USB.File), err)
		}
		outs = append(outs, out)
	}
	if o.Dir != "" {
		out, err := stage(o.Dir, true)
		if err != nil {
			return nil, err
		}
		b.logf("writing %s/ (media %s)", filepath.Join(b.opts.Out, o.Dir), usbTree.ID)
		if err := b.writeDir(out.staged, usbTree); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(b.opts.Out, o.Dir), err)
		}
		outs = append(outs, out)
	}

	var paths []string
	err = b.run.commit(func() error {
		// A file added to an earlier build's folder during this build
		// is somebody's: check again before anything moves.
		for _, out := range outs {
			final := filepath.Join(b.opts.Out, out.name)
			if _, err := os.Lstat(final); out.dir && err == nil {
				if err := replaceable(final); err != nil {
					return &spec.Error{Pos: b.spec.Position("outputs.dir"), Path: "outputs.dir", Err: err}
				}
			}
		}
		for _, out := range outs {
			final := filepath.Join(b.opts.Out, out.name)
			if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
				return err
			}
			if out.dir {
				if err := replaceDir(final, out.staged, filepath.Join(b.run.stage.Path, "old")); err != nil {
					return err
				}
			} else if err := os.Rename(out.staged, final); err != nil {
				return err
			}
			paths = append(paths, final)
		}
		return nil
	})
	return paths, err
}

// usbImageSize is the size of the USB image: the spec's, once checked
// against what the tree and the spare need (before any output is written,
// naming the spec line when it is too small), or else the smallest that
// holds them.
func (b *builder) usbImageSize(t *media.Tree) (int64, error) {
	u := b.spec.Outputs.USB
	hs, files, err := treeHeaders(t)
	if err != nil {
		return 0, err
	}
	// The smallest image whose FAT partition holds the tree and keeps
	// the spare free after it, no smaller than the spec accepts.
	need, err := usbimg.MinSize(hs, u.Spare, spec.MinUSBSize)
	if err != nil || need > spec.MaxUSBSize {
		return 0, &spec.Error{Pos: b.spec.Position("outputs.usb"), Path: "outputs.usb",
			Err: fmt.Errorf("the media (%s of files) and spare %s do not fit a USB image of at most %s", bytesize.Format(files), spec.FormatSize(u.Spare), spec.FormatSize(spec.MaxUSBSize))}
	}
	if u.Size == 0 {
		size, err := usbSize(t, u.Spare)
		if err != nil {
			return 0, err
		}
		return max(size, need), nil
	}
	if u.Size < need {
		return 0, &spec.Error{Pos: b.spec.Position("outputs.usb.size"), Path: "outputs.usb.size",
			Err: fmt.Errorf("%s is too small for these media (%s of files, spare %s): make it at least %s, or leave size out to fit the image to its contents: %w",
				spec.FormatSize(u.Size), bytesize.Format(files), spec.FormatSize(u.Spare), spec.FormatSize(need), usbimg.ErrNoRoom)}
	}
	return u.Size, nil
}

// treeHeaders lists the entries of a tree (reading no file) and adds up
// the sizes of its files.
func treeHeaders(t *media.Tree) ([]entry.Header, int64, error) {
	var hs []entry.Header
	var files int64
	r := t.Reader()
	for {
		h, err := r.Next()
		if err == io.EOF {
			return hs, files, nil
		}
		if err != nil {
			return nil, 0, err
		}
		hs = append(hs, *h)
		files += h.Size
	}
}

// bootLoader extracts the bootloader files from their Debian packages,
// found in the package folder by name.
func (b *builder) bootLoader() (*bootloader.Loader, error) {
	var debs []string
	for _, pkg := range bootloader.Packages() {
		m, _ := filepath.Glob(filepath.Join(b.opts.DebDir, pkg+"_*.deb"))
		if len(m) == 0 {
			where := "(given)"
			if b.debDirFound {
				where = "(the nearest .cache/debs above the spec, else the working directory's)"
			}
			return nil, fmt.Errorf("bootloader package %s not found in %s %s: run make fetch in the Byzantium repository to fill its .cache/debs, or name the folder that holds %s with --debs DIR",
				pkg, b.opts.DebDir, where, strings.Join(bootloader.Packages(), ", "))
		}
		debs = append(debs, m[len(m)-1])
	}
	l, err := bootloader.Extract(debs...)
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

// writeISO writes the hybrid ISO from the tree's entries r: El Torito
// BIOS (isolinux with a boot info table) and UEFI (the EFI image)
// entries, and an MBR+GPT system area so the same file boots from a stick.
func (b *builder) writeISO(path string, r entry.Reader, loader *bootloader.Loader) error {
	mbr, err := loader.File(bootloader.IsohdpfxBin)
	if err != nil {
		return err
	}
	return writeTemp(path, func(f *os.File) error {
		w, err := iso9660.NewWriter(f, iso9660.Options{
			VolumeID: volumeID(b.spec.Name), ModTime: b.opts.Epoch,
			BIOSBoot: &iso9660.BIOSBoot{Path: bootloader.IsolinuxDir + "/" + bootloader.IsolinuxBin,
				CatalogPath: bootloader.IsolinuxDir + "/boot.cat", BootInfoTable: true},
			EFIBoot:     &iso9660.EFIBoot{Path: bootloader.EFIImagePath},
			Hybrid:      true,
			MBRTemplate: mbr.Data,
		})
		if err != nil {
			return err
		}
		if _, err := entry.Copy(w, r); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
}

// writeDir writes the media tree as a folder at path, in the staging
// folder. Extracting makes folders: a section of the run.
func (b *builder) writeDir(path string, t *media.Tree) error {
	if err := mkdir(path); err != nil {
		return err
	}
	return b.run.section(func() error {
		return hostfs.Extract(b.run.reader(t.Reader()), path, hostfs.ExtractOptions{NoChown: os.Geteuid() != 0})
	})
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
		return err
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
func usbSize(t *media.Tree, spare int64) (int64, error) {
	const mib = 1 << 20
	var m media.Manifest
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
