package service

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// byzd writes into a service's root as root: the folders of the data
// mount point, /etc/passwd, the config files. A symlink on the way, left
// by a module or by the service itself in a folder it can write, would
// turn such a write into one on the node's own files (an absolute link
// resolves against byzd's root, not the service's). So every path in a
// root is walked one component at a time with openat2: no symlink is
// followed, the walk never leaves the folder it starts from, and never
// crosses onto another mount (the data folder is a bind mount the
// service can write; byzd writes nothing there).

// ErrUnsafePath reports a path in a service's root that byzd refuses to
// write through: a symlink, or another mount, on the way.
var ErrUnsafePath = errors.New("service: a symlink or another mount on the way")

const walkResolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openStep opens the folder name (one component) in the folder dirfd as
// an O_PATH descriptor, refusing a symlink or a mount point.
func openStep(dirfd int, name string) (int, error) {
	return unix.Openat2(dirfd, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: walkResolve})
}

// mkdirIn opens the folder rel (a clean path, relative to root or
// absolute inside it) under the folder root, creating the missing folders
// with mode 0755, and returns an O_PATH descriptor of it.
func mkdirIn(root, rel string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("service: %s: %w", root, err)
	}
	done := "/"
	for _, name := range strings.Split(strings.Trim(rel, "/"), "/") {
		if name == "" {
			continue
		}
		if name == "." || name == ".." {
			unix.Close(fd)
			return -1, fmt.Errorf("service: %s in a service's root: %w", rel, ErrUnsafePath)
		}
		next, err := openStep(fd, name)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openStep(fd, name)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, stepErr(done+name, err)
		}
		fd, done = next, done+name+"/"
	}
	return fd, nil
}

func stepErr(p string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w: %s in the service's root is a symlink, not a folder, or another mount (%v): byzd does not write through it", ErrUnsafePath, p, err)
	}
	return fmt.Errorf("service: %s in the service's root: %w", p, err)
}

// writeIn writes the file rel (a clean absolute path inside root) with
// data and mode perm: into a new file beside it, renamed over it, so a
// symlink already at rel is replaced, never followed, and a reader never
// sees half a file.
func writeIn(root, rel string, data []byte, perm os.FileMode) error {
	i := strings.LastIndexByte(rel, '/')
	dir, base := rel[:i+1], rel[i+1:]
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("service: %q is not a file path", rel)
	}
	dfd, err := mkdirIn(root, dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	tmp := ".byz-new-" + base
	unix.Unlinkat(dfd, tmp, 0) // a leftover of a byzd that died
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("service: writing %s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	_, err = f.Write(data)
	if err == nil {
		err = unix.Fchmod(fd, uint32(perm.Perm()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, base)
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("service: writing %s: %w", rel, err)
	}
	return nil
}

// fdPath names an open descriptor for the calls that take a path only
// (mount): the kernel resolves it to the very folder the descriptor holds.
func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
