package clone

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"byzantium/image/bootloader"
	"byzantium/image/media"
	"byzantium/image/usbimg"
	"byzantium/overlays"
)

// Source is a media tree to clone, open for reading: a media folder, the
// FAT partition of a USB image or stick, or a running node's media.
type Source struct {
	FS fs.FS
	// Name says what it is, for messages.
	Name string
	// Sums is the source's manifest by path: every file taken from the
	// source is checked against it.
	Sums map[string]media.ManifestFile
	// ID is the source's media ID (its manifest's).
	ID string
	// Info is the boot menu the source was made with.
	Info *media.BootInfo
	// DiskSize is the size of the image file or device the source is on
	// (0 for a folder).
	DiskSize int64
	closer   io.Closer
	// path is where the source is on the host (a folder, an image file,
	// a device), for SameAsSource; node says it is the running node's.
	path string
	node bool
}

// Close releases an image or device source.
func (s *Source) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

// OpenSource opens a media folder (a builder's dir output, a mounted
// stick), or a USB image or block device holding one in a FAT partition,
// read without mounting it.
func OpenSource(p string) (*Source, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("clone: source: %w", err)
	}
	if fi.IsDir() {
		return newSource(os.DirFS(p), p, nil, p, false)
	}
	img, err := usbimg.Open(p, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, usbimg.ErrNoMedia) {
			return nil, fmt.Errorf("clone: source %s: %w: %w (an ISO cannot be cloned from; boot it, or use its media folder)", p, ErrNotMedia, err)
		}
		return nil, fmt.Errorf("clone: source: %w", err)
	}
	s, err := newSource(img.FS, p+" ("+where(&img.Media)+")", img.File, p, false)
	if err != nil {
		return nil, err
	}
	s.DiskSize = img.Size
	return s, nil
}

// where names the file system holding the media on a disk.
func where(m *usbimg.Media) string {
	if m.Partition == 0 {
		return "FAT file system"
	}
	return fmt.Sprintf("partition %d", m.Partition)
}

// OpenNode opens the media of the node running under root ("/"): the
// boot media byz-init mounted, or, after copy2ram, its copy in RAM (the
// whole tree but byzantium/changes).
func OpenNode(root string) (*Source, error) {
	mounted := filepath.Join(root, overlays.MediaDir)
	if _, err := os.Stat(filepath.Join(mounted, overlays.ManifestPath)); err == nil {
		return newSource(os.DirFS(mounted), "/"+overlays.MediaDir, nil, mounted, true)
	}
	ram := filepath.Join(root, overlays.RAMDir)
	if _, err := os.Stat(filepath.Join(ram, overlays.ManifestPath)); err == nil {
		return newSource(os.DirFS(ram), "/"+overlays.RAMDir, nil, ram, true)
	}
	if _, err := os.Stat(filepath.Join(ram, "byzantium")); err == nil {
		return nil, fmt.Errorf("%w: the node booted with copy2ram by an older byz-init, whose copy in %s holds only the modules it loaded; plug the boot stick in, mount it and give --from /mnt/stick (or its device)",
			ErrNotMedia, "/"+overlays.RAMDir)
	}
	return nil, fmt.Errorf("%w: no boot media at /%s: not a running node? give --from MEDIA_DIR|IMAGE", ErrNotMedia, overlays.MediaDir)
}

// newSource reads the media in fsys: name says what it is, c closes it,
// p is where it is on the host, node says it is the running node's.
func newSource(fsys fs.FS, name string, c io.Closer, p string, node bool) (*Source, error) {
	s := &Source{FS: fsys, Name: name, closer: c, path: p, node: node}
	b, err := fs.ReadFile(fsys, overlays.ManifestPath)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrNotMedia, name, err)
	}
	var m media.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: %s: %s: %w", ErrNotMedia, name, overlays.ManifestPath, err)
	}
	s.ID = m.ID
	s.Sums = make(map[string]media.ManifestFile, len(m.Files))
	for _, f := range m.Files {
		s.Sums[f.Path] = f
	}
	if s.Info, err = media.ReadBootInfo(fsys); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if s.Info.Flavour != bootloader.USB.String() {
		s.Close()
		return nil, fmt.Errorf("%w: %s is %s media: only USB media carry the disk bootloader a stick needs (GRUB for disks, its BIOS files)",
			ErrNotMedia, name, s.Info.Flavour)
	}
	return s, nil
}

// modules lists the module files of one layer folder ("base", "modules",
// "optional") the manifest names, sorted.
func (s *Source) modules(layer string) []string {
	var out []string
	for p := range s.Sums {
		if dir, file := path.Split(p); dir == overlays.FolderPath(layer)+"/" && strings.HasSuffix(file, overlays.ModuleExt) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// checkRootcopy makes sure every file under the source's rootcopy is in
// its manifest: a file added since cannot be checked, so it is refused
// rather than copied unchecked.
func (s *Source) checkRootcopy() (bool, error) {
	if _, err := fs.Stat(s.FS, overlays.RootcopyDir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	err := fs.WalkDir(s.FS, overlays.RootcopyDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if _, ok := s.Sums[p]; !ok {
				return fmt.Errorf("%w: %s is not in the source's manifest (added after the build?): move it away, or rebuild", ErrMismatch, p)
			}
		}
		return nil
	})
	return true, err
}
