package initsys

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"byzantium/overlays"
	"byzantium/runtime/loopdev"

	"golang.org/x/sys/unix"
)

// selectModules lists the modules to mount from the media tree at dir,
// bottom layer first, as the command line chooses them.
func selectModules(dir string, c Cmdline) ([]string, error) {
	return overlays.Select(os.DirFS(dir), overlays.Selection{BaseOnly: c.BaseOnly, Load: c.Load, Noload: c.Noload})
}

// layerDirName is the mount point name of the n-th layer: its position,
// so the names sort in stacking order, then the file name. Characters
// overlayfs's lowerdir= syntax treats specially (':', ',', '\') and
// anything else odd become '_'.
func layerDirName(n int, file string) string {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '+' {
			return r
		}
		return '_'
	}, base)
	return fmt.Sprintf("%03d-%s", n, safe)
}

// moduleName is the name in the module's manifest
// (usr/share/byzantium/modules/<name>.json inside it), or failing that
// its file name without the NNN- prefix and the extension.
func moduleName(layerDir, file string) string {
	found, _ := filepath.Glob(filepath.Join(layerDir, "usr/share/byzantium/modules/*.json"))
	if len(found) == 1 {
		return strings.TrimSuffix(filepath.Base(found[0]), ".json")
	}
	return overlays.NameFromFile(file)
}

// mountLayers mounts each module of src (a media tree or its RAM copy)
// read-only on a loop device at overlays.LayersDir/NNN-name, bottom first. A
// module that will not mount stops the boot: a system with a layer
// missing is not the system that was built.
func (s *stacker) mountLayers(src string, files []string) ([]overlays.Layer, error) {
	var layers []overlays.Layer
	for i, file := range files {
		dirName := layerDirName(i, file)
		dir := filepath.Join(s.root, overlays.LayersDir, dirName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("layer %s: %w", file, err)
		}
		if err := s.mountModule(filepath.Join(src, file), dir); err != nil {
			return nil, &FatalError{
				Err: fmt.Errorf("module %s: %w", file, err),
				Hint: fmt.Sprintf("the file is damaged or not a SquashFS module: rebuild or recopy it (byzantium/manifest.json has its sha256), "+
					"or boot with noload=%s to leave it out", strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))),
			}
		}
		l := overlays.Layer{Name: moduleName(dir, file), File: file, Layer: "/" + filepath.ToSlash(filepath.Join(overlays.LayersDir, dirName))}
		s.debugf("layer %d: %s on %s", i, file, l.Layer)
		layers = append(layers, l)
	}
	return layers, nil
}

// mountModule attaches file to a free loop device and mounts it.
func (s *stacker) mountModule(file, dir string) error {
	if s.attach == nil {
		return s.mount(file, dir, "squashfs", unix.MS_RDONLY, "")
	}
	loop, dev, err := s.attach(file)
	if err != nil {
		return err
	}
	// The loop device is autoclear: it must stay open until mounted, or
	// it detaches when closed.
	defer loop.Close()
	if err := s.mount(dev, dir, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount -t squashfs %s: %w", dev, err)
	}
	return nil
}

// attachLoop sets up a free loop device read-only on file and returns it
// open, with its path. The device clears itself when its last user (the
// mount) goes away, so unmounting a layer frees its loop device.
func attachLoop(root, file string) (io.Closer, string, error) {
	return attachLoopMode(root, file, false)
}

// attachLoopMode is attachLoop, writable when rw is set (a save.dat).
func attachLoopMode(root, file string, rw bool) (io.Closer, string, error) {
	return loopdev.Attach(root, file, rw)
}

// copyToRAM copies the chosen modules and the rootcopy folder of the
// media tree at src into a tmpfs at overlays.RAMDir and returns that folder, laid
// out like the media, so the media can be unmounted (and the stick
// pulled) once the system runs.
func (s *stacker) copyToRAM(src string, files []string) (string, error) {
	// The whole media tree but the persistence store, as Porteus copies
	// its whole folder: the optional modules stay at hand, and the node
	// can still clone itself (kernel, bootloaders and manifest included)
	// once the stick is gone.
	var all []string
	need := int64(1 << 20)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && rel == overlays.ChangesDir {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		all = append(all, rel)
		need += fi.Size() + 4096
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("copy2ram: %w", err)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(src, f)); err != nil {
			return "", fmt.Errorf("copy2ram: %w", err)
		}
	}
	size := fmt.Sprint(need + need/16) // tmpfs rounds to pages; leave slack
	if s.cmd.RAMSize != "" {
		size = s.cmd.RAMSize
	}
	ram := filepath.Join(s.root, overlays.RAMDir)
	if err := os.MkdirAll(ram, 0o755); err != nil {
		return "", fmt.Errorf("copy2ram: %w", err)
	}
	if err := s.mount("tmpfs", ram, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size="+size); err != nil {
		return "", fmt.Errorf("copy2ram: mount -t tmpfs -o size=%s %s: %w", size, ram, err)
	}
	for _, f := range all {
		s.debugf("copy2ram: %s", f)
		if err := copyFile(filepath.Join(src, f), filepath.Join(ram, f)); err != nil {
			return "", fmt.Errorf("copy2ram: %w (ramsize=%s; more RAM or no copy2ram?)", err, size)
		}
	}
	return ram, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}
