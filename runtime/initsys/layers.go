package initsys

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"byzantium/runtime/loopdev"

	"golang.org/x/sys/unix"
)

const (
	// LayersDir holds one read-only mount per module, NNN-name.
	LayersDir = "run/byz/layers"
	// RAMDir is the tmpfs copy2ram copies the media's byzantium/ into.
	RAMDir = "run/byz/copy2ram"
)

// Layer is one mounted module.
type Layer struct {
	// Name is the module's name from its manifest, or from its file name.
	Name string `json:"name"`
	// File is the module's path in the media tree
	// ("byzantium/base/000-busybox.xzm").
	File string `json:"file"`
	// Layer is where it is mounted, as the booted system sees it
	// ("/run/byz/layers/000-000-busybox").
	Layer string `json:"layer"`
}

// moduleFolders are stacked in this order, each sorted by file name.
var moduleFolders = []string{"base", "modules", "optional"}

// selectModules lists the modules to mount from the media tree at dir,
// as media-relative paths, bottom layer first: every base/*.xzm, then
// modules/*.xzm (unless base_only), then the optional/*.xzm that load=
// names, leaving out anything noload= names.
func selectModules(dir string, c Cmdline) ([]string, error) {
	var out []string
	// byzantium/load names optional modules to stack, one per line: what
	// byzd's "load at next boot" writes.
	nextBoot := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "byzantium/load")); err == nil && !c.BaseOnly {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				nextBoot[l] = true
			}
		}
	}
	for _, folder := range moduleFolders {
		if folder == "modules" && c.BaseOnly {
			continue
		}
		if folder == "optional" && len(c.Load) == 0 && len(nextBoot) == 0 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, "byzantium", folder))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing byzantium/%s: %w", folder, err)
		}
		for _, e := range entries { // ReadDir sorts by name
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(strings.ToLower(name), ".xzm") {
				continue
			}
			if folder == "optional" && !matchAny(name, c.Load) && !nextBoot[moduleName("", name)] {
				continue
			}
			if matchAny(name, c.Noload) {
				continue
			}
			out = append(out, "byzantium/"+folder+"/"+name)
		}
	}
	return out, nil
}

// matchAny reports whether a module file name matches one of the load=
// or noload= patterns. Porteus feeds them to `egrep -i`, so a pattern is
// a case-insensitive substring ("kde" matches 003-kde.xzm) and may use
// extended regexp syntax; a pattern that is not a valid regexp is taken
// literally.
func matchAny(name string, patterns []string) bool {
	for _, p := range patterns {
		if p == "" {
			continue
		}
		re, err := regexp.Compile("(?i)" + p)
		if err != nil {
			re = regexp.MustCompile("(?i)" + regexp.QuoteMeta(p))
		}
		if re.MatchString(name) {
			return true
		}
	}
	return false
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
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	if i := strings.IndexByte(base, '-'); i > 0 && strings.Trim(base[:i], "0123456789") == "" {
		base = base[i+1:]
	}
	return base
}

// mountLayers mounts each module of src (a media tree or its RAM copy)
// read-only on a loop device at LayersDir/NNN-name, bottom first. A
// module that will not mount stops the boot: a system with a layer
// missing is not the system that was built.
func (s *stacker) mountLayers(src string, files []string) ([]Layer, error) {
	var layers []Layer
	for i, file := range files {
		dirName := layerDirName(i, file)
		dir := filepath.Join(s.root, LayersDir, dirName)
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
		l := Layer{Name: moduleName(dir, file), File: file, Layer: "/" + filepath.ToSlash(filepath.Join(LayersDir, dirName))}
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
// media tree at src into a tmpfs at RAMDir and returns that folder, laid
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
		if d.IsDir() && rel == "byzantium/changes" {
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
	ram := filepath.Join(s.root, RAMDir)
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
