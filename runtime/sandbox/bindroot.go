package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Bind is one folder of the node put into a root made by BindRoot.
type Bind struct {
	// Src is the node's folder (absolute); Dst where it appears in the
	// root ("" means the same path).
	Src, Dst string
	// Writable leaves the bind writable; otherwise it is read-only.
	Writable bool
}

// BindRoot makes a root at dir for a program that runs from the node's
// own files rather than from a module of its own (byzd's routing engine,
// which a boot module carries): a small tmpfs holding binds of the
// node's folders, read-only unless Writable, none with devices or
// set-user-ID programs. Nothing else of the node is in it: not its
// state folder, not its media. Run Spec{Root: dir} over it; cleanup
// unmounts it all. A root left at dir by an earlier run is unmounted
// first.
func BindRoot(dir string, binds []Bind) (cleanup func(), err error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("sandbox: root %q must be absolute", dir)
	}
	for _, b := range binds {
		dst := b.Dst
		if dst == "" {
			dst = b.Src
		}
		if !filepath.IsAbs(b.Src) || !filepath.IsAbs(dst) || filepath.Clean(dst) == "/" || strings.Contains(dst, "..") {
			return nil, fmt.Errorf("sandbox: bind %q on %q: absolute paths, not the root, without \"..\"", b.Src, dst)
		}
	}
	UnmountUnder(dir)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
		return nil, fmt.Errorf("sandbox: mount tmpfs on %s: %w", dir, err)
	}
	cleanup = func() { UnmountUnder(dir) }
	// The mount points the second stage mounts on, made now while the
	// root is writable.
	for _, d := range []string{"proc", "dev", "tmp", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			cleanup()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	for _, b := range binds {
		dst := b.Dst
		if dst == "" {
			dst = b.Src
		}
		target := filepath.Join(dir, dst)
		if err := os.MkdirAll(target, 0o755); err != nil {
			cleanup()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if err := unix.Mount(b.Src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			cleanup()
			return nil, fmt.Errorf("sandbox: bind %s on %s: %w", b.Src, target, err)
		}
		// A bind takes its flags only from a remount.
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV)
		if !b.Writable {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount("", target, "", flags, ""); err != nil {
			cleanup()
			return nil, fmt.Errorf("sandbox: remount %s: %w", target, err)
		}
	}
	// Read-only from here: the program cannot add to its own root.
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
		cleanup()
		return nil, fmt.Errorf("sandbox: remount %s read-only: %w", dir, err)
	}
	return cleanup, nil
}

// UnmountUnder unmounts everything at or under dir, deepest first.
func UnmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	dir = filepath.Clean(dir)
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
}
