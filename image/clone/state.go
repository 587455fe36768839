package clone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/runtime/loopdev"
)

// fillState is the savedat Fill that puts the node's changes into the
// upper layer of a new save.dat, where byz-init finds them: upper/ at the
// root of its ext4, beside the work/ folder overlayfs wants, as in any
// save.dat a node has used. The ext4 is written by the kernel (a loop
// device over the plain scratch file system, and a mount), so owners,
// modes, xattrs (overlayfs's own: opaque folders) and whiteouts (the 0:0
// character devices that record deletions) arrive as on the node.
//
// The mount lives in a mount namespace of its own, on a thread of its
// own that is never given back to Go: no other process sees it, and it
// ends with the thread, or with the process if the clone is killed, so a
// clone never leaves a mount behind.
func (p *Plan) fillState(scratch string) func(*os.File) error {
	return func(f *os.File) error {
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: Go ends the thread with this goroutine
			done <- p.fillInNamespace(f, filepath.Join(scratch, "save.dat-fs"))
		}()
		return <-done
	}
}

func (p *Plan) fillInNamespace(f *os.File, mnt string) (err error) {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("clone: a mount namespace for the new save.dat: %w", err)
	}
	// Nothing mounted here reaches the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("clone: making the mount namespace private: %w", err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	// The scratch file is unlinked: reopen it through the descriptor.
	loop, dev, err := loopdev.Attach("/", fmt.Sprintf("/proc/self/fd/%d", f.Fd()), true)
	if err != nil {
		return fmt.Errorf("clone: the new save.dat: %w", err)
	}
	defer loop.Close() // autoclear: detached once unmounted and closed
	if err := unix.Mount(dev, mnt, "ext4", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("clone: mounting the new save.dat's ext4 (%s): %w (does the kernel have ext4?)", dev, err)
	}
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || st.Type != unix.EXT4_SUPER_MAGIC {
		return fmt.Errorf("clone: %s is not the new save.dat's ext4 (statfs: %v)", mnt, err)
	}
	r, err := hostfs.NewReader(p.opts.State)
	if err != nil {
		return fmt.Errorf("clone: the node's changes: %w", err)
	}
	defer r.Close()
	err = hostfs.Extract(entry.Exclude(r, p.exclude()), filepath.Join(mnt, "upper"), hostfs.ExtractOptions{})
	if errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w: the node's changes do not fit in the save.dat of %s: give a larger --save-size (%w)", ErrBadOption, mib(p.opts.SaveSize), err)
	}
	if err != nil {
		return fmt.Errorf("clone: the node's changes into the save.dat: %w", err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "work"), 0o755); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	mounted = false
	if err := unix.Unmount(mnt, 0); err != nil {
		return fmt.Errorf("clone: unmounting the new save.dat: %w", err)
	}
	return nil
}
