package initsys

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

const (
	// NewRootDir is where the overlay root is assembled. It is outside
	// /run because /run moves into it.
	NewRootDir = "newroot"
	// DefaultInit is the base's init; byz.init= overrides it.
	DefaultInit = "/sbin/init"
)

// NewRoot is the assembled root, ready for SwitchRoot.
type NewRoot struct {
	Dir    string // the overlay's mount point, under the init's root
	Init   string // the program to exec in it
	Media  *Media
	Layers []overlays.Layer
}

// stacker carries what the steps after Boot share.
type stacker struct {
	root    string
	cmd     Cmdline
	mount   MountFunc
	unmount func(target string, flags int) error
	attach  func(file string) (io.Closer, string, error)
	logf    Logf
	debugf  Logf
}

// Stack finds the media, mounts its modules, builds the overlay root and
// applies rootcopy. Failures that leave no usable root are a
// *FatalError with what to try; rootcopy and modules.json problems are
// logged.
func Stack(cfg Config, st *State) (*NewRoot, error) {
	cfg = cfg.withDefaults()
	s := &stacker{root: rootDir(cfg.RootDir), cmd: st.Cmdline, mount: cfg.Mount, unmount: cfg.Unmount, logf: cfg.Logf, debugf: func(string, ...any) {}}
	if s.cmd.Debug {
		s.debugf = s.logf
	}
	if cfg.AttachLoop != nil {
		s.attach = cfg.AttachLoop
	} else {
		s.attach = func(file string) (io.Closer, string, error) { return attachLoop(s.root, file) }
	}

	media, err := s.findMedia()
	if err != nil {
		return nil, err
	}
	files, err := selectModules(media.Dir, s.cmd)
	if err != nil {
		return nil, &FatalError{Err: fmt.Errorf("media %s: %w", media.Dev, err), Hint: "check the media with fsck, or rewrite it"}
	}
	if len(files) == 0 {
		return nil, &FatalError{Err: fmt.Errorf("media %s: no modules to mount in byzantium/base or byzantium/modules", media.Dev),
			Hint: "the media is incomplete: rewrite it, or check noload= and base_only"}
	}
	src := media.Dir
	if s.cmd.Copy2RAM {
		if src, err = s.copyToRAM(media.Dir, files); err != nil {
			return nil, &FatalError{Err: err, Hint: "boot without copy2ram, or with a larger ramsize="}
		}
		// The layers and rootcopy come from RAM now; the stick can go.
		if err := s.unmount(media.Dir, 0); err != nil {
			s.logf("warning: unmounting the media after copy2ram: %v", err)
		}
		s.logf("copy2ram: %d modules copied; the media is unmounted", len(files))
	}
	layers, err := s.mountLayers(src, files)
	if err != nil {
		return nil, err
	}
	s.logf("mounted %d modules", len(layers))

	nr := &NewRoot{Dir: filepath.Join(s.root, NewRootDir), Init: DefaultInit, Media: media, Layers: layers}
	if p, ok := s.cmd.Byz["init"]; ok && p != "" {
		nr.Init = p
	}
	// With copy2ram the media is gone: only changes= on another device
	// can give persistence.
	pm := media
	if s.cmd.Copy2RAM {
		pm = nil
	}
	if err := s.mountOverlay(nr.Dir, layers, pm); err != nil {
		return nil, err
	}
	if !s.cmd.NoRootCopy {
		rc := filepath.Join(src, overlays.RootcopyDir)
		if _, err := os.Stat(rc); err == nil {
			if err := copyTree(rc, nr.Dir); err != nil {
				s.logf("warning: rootcopy: %v (carrying on with what was copied)", err)
			} else {
				s.debugf("rootcopy: copied %s", overlays.RootcopyDir)
			}
		}
	}
	if err := writeModulesJSON(filepath.Join(s.root, overlays.ModulesJSON), layers); err != nil {
		s.logf("warning: %v (byzd will not know the modules)", err)
	}
	return nr, nil
}

// mountOverlay mounts the tmpfs upper layer and the overlay root over
// the layers, the last one on top.
func (s *stacker) mountOverlay(dir string, layers []overlays.Layer, media *Media) error {
	rw := filepath.Join(s.root, overlays.RWDir)
	if err := os.MkdirAll(rw, 0o755); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	// The upper layer: the persistence store, or a tmpfs.
	p, err := s.upperStore(rw, media)
	if err != nil {
		return err
	}
	if err := writePersistence(s.root, p); err != nil {
		s.logf("warning: %v (byzd will not know about persistence)", err)
	}
	upper, work := filepath.Join(rw, "upper"), filepath.Join(rw, "work")
	for _, d := range []string{upper, work, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
	}
	var lower []string
	for i := len(layers) - 1; i >= 0; i-- {
		lower = append(lower, filepath.Join(s.root, strings.TrimPrefix(layers[i].Layer, "/")))
	}
	opts := overlayOptions(lower, upper, work)
	s.debugf("mount -t overlay overlay -o %s %s", opts, dir)
	if err := s.mount("overlay", dir, "overlay", 0, opts); err != nil {
		hint := "the overlay module may be missing from the initramfs"
		if len(opts) >= 4096 {
			hint = "too many modules for one mount's options (4 KiB): merge some, or use base_only"
		}
		return &FatalError{Err: fmt.Errorf("the root: mount -t overlay over %d layers: %w", len(layers), err), Hint: hint}
	}
	s.logf("root: overlay of %d layers on %s", len(layers), dir)
	return nil
}

// overlayOptions is overlayfs's mount data; lower is top layer first.
func overlayOptions(lower []string, upper, work string) string {
	return "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
}

// copyTree copies the tree at src onto dst, merging into directories
// that exist and replacing files and symlinks, keeping permission bits
// (setuid and friends included) and modification times. It goes on past
// a failed entry and returns every failure.
func copyTree(src, dst string) error {
	var errs []error
	walkErr := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if err := copyEntry(p, target, fi); err != nil {
			errs = append(errs, fmt.Errorf("rootcopy %s: %w", rel, err))
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	// Directory times last: writing into a directory changes its mtime.
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := d.Info(); err == nil {
				rel, _ := filepath.Rel(src, p)
				if rel != "." {
					os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
				}
			}
		}
		return nil
	})
	return errors.Join(append(errs, walkErr)...)
}

func copyEntry(src, dst string, fi fs.FileInfo) error {
	mode := fi.Mode()
	perm := mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch {
	case mode.IsDir():
		if st, err := os.Lstat(dst); err == nil && st.IsDir() {
			return nil // merge; the root's own mode stays
		}
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		return os.Chmod(dst, perm)
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := removeNonDir(dst); err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case mode.IsRegular():
		if err := removeNonDir(dst); err != nil {
			return err
		}
		if err := copyFile(src, dst); err != nil {
			return err
		}
		if err := os.Chmod(dst, perm); err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	default:
		return fmt.Errorf("%s is a %v: rootcopy copies files, folders and symlinks only", src, mode.Type())
	}
}

// removeNonDir clears the way for a file: a symlink must not be written
// through (it could point anywhere), and a directory is not replaced.
func removeNonDir(p string) error {
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory in the root", p)
	}
	return os.Remove(p)
}

// writeModulesJSON records the layers for byzd.
func writeModulesJSON(path string, layers []overlays.Layer) error {
	if layers == nil {
		layers = []overlays.Layer{}
	}
	b, err := json.MarshalIndent(layers, "", "  ")
	if err != nil {
		return fmt.Errorf("modules.json: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("modules.json: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("modules.json: %w", err)
	}
	return nil
}

// checkInit makes sure init exists and is executable inside the new
// root, resolving symlinks there (merged /usr: /sbin -> usr/sbin), not
// on the initramfs.
func checkInit(dir, init string) error {
	rootFd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(rootFd)
	fd, err := unix.Openat2(rootFd, strings.TrimPrefix(init, "/"), &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return fmt.Errorf("the init %s is not in the root: %w", init, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("the init %s: %w", init, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return fmt.Errorf("the init %s is not an executable file (mode %#o)", init, st.Mode)
	}
	return nil
}

// kernelMounts move into the new root so the system keeps /dev, /proc,
// /sys and the /run that holds the layers and modules.json.
var kernelMounts = []string{"dev", "proc", "sys", "run"}

// SwitchRoot makes nr the root and execs its init, as switch_root(8)
// does. It only returns on failure. It must run as PID 1 on the
// initramfs (rootfs cannot be pivot_root'ed away: it is moved over).
func SwitchRoot(nr *NewRoot, logf Logf) error {
	if err := checkInit(nr.Dir, nr.Init); err != nil {
		return &FatalError{Err: err, Hint: "the base module has no init: add one (busybox init, systemd), or boot with byz.init=/path/to/init"}
	}
	for _, m := range kernelMounts {
		target := filepath.Join(nr.Dir, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return &FatalError{Err: fmt.Errorf("switch_root: %w", err), Hint: "the root is read-only or full"}
		}
		if err := unix.Mount("/"+m, target, "", unix.MS_MOVE, ""); err != nil {
			return &FatalError{Err: fmt.Errorf("switch_root: mount --move /%s %s: %w", m, target, err), Hint: "boot with debug and report the log"}
		}
	}
	if err := os.Chdir(nr.Dir); err != nil {
		return &FatalError{Err: fmt.Errorf("switch_root: %w", err), Hint: "boot with debug and report the log"}
	}
	// Free the initramfs's memory: nothing can reach it once the root is
	// moved over it, yet its files would stay in RAM.
	if n, err := deleteRootfs("/"); err != nil {
		logf("warning: freeing the initramfs: %v", err)
	} else {
		logf("freed the initramfs (%d files)", n)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return &FatalError{Err: fmt.Errorf("switch_root: mount --move %s /: %w", nr.Dir, err), Hint: "boot with debug and report the log"}
	}
	if err := unix.Chroot("."); err != nil {
		return &FatalError{Err: fmt.Errorf("switch_root: chroot: %w", err), Hint: "boot with debug and report the log"}
	}
	if err := os.Chdir("/"); err != nil {
		return &FatalError{Err: fmt.Errorf("switch_root: %w", err), Hint: "boot with debug and report the log"}
	}
	logf("%s: switching root to %s", ReadyLine, nr.Init)
	err := unix.Exec(nr.Init, []string{nr.Init}, os.Environ())
	return &FatalError{Err: fmt.Errorf("exec %s: %w", nr.Init, err), Hint: "boot with byz.init=/path/to/init"}
}

// deleteRootfs removes the initramfs's files, staying on its filesystem
// (the new root, and anything else mounted, is another device). It
// refuses to run on anything but a ramfs or tmpfs root, so a mistake can
// never wipe a disk.
func deleteRootfs(dir string) (int, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return 0, err
	}
	if sfs.Type != unix.RAMFS_MAGIC && sfs.Type != unix.TMPFS_MAGIC {
		return 0, fmt.Errorf("%s is not an initramfs (filesystem %#x): not deleting it", dir, sfs.Type)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return 0, err
	}
	return deleteOnDev(dir, st.Dev), nil
}

func deleteOnDev(dir string, dev uint64) int {
	n := 0
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Dev != dev {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			n += deleteOnDev(p, dev)
		}
		if os.Remove(p) == nil {
			n++
		}
	}
	return n
}
