package hostfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrReplaced reports a path that no longer names the file an earlier
// Lstat saw: another file, a symlink or a FIFO was put in its place
// between the two calls.
var ErrReplaced = errors.New("replaced by another file while being read")

// OpenAt opens name, in the folder dirfd (unix.AT_FDCWD: name is a path),
// for reading, if it is still the regular file or folder want describes
// (an Lstat or Fstatat of it): same device, inode and type. Whoever can
// write the folder can swap the entry between that stat and this open, so
// it never follows a symlink at name (O_NOFOLLOW), never waits on a FIFO
// swapped in (O_NONBLOCK, turned off once the file is checked), and
// returns ErrReplaced for anything but the file that was seen. A name
// that is gone wraps fs.ErrNotExist.
func OpenAt(dirfd int, name string, want *unix.Stat_t) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	switch want.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		flags |= unix.O_DIRECTORY
	default:
		return nil, fmt.Errorf("hostfs: %s: OpenAt opens files and folders, not mode %#o", name, want.Mode&unix.S_IFMT)
	}
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return nil, fmt.Errorf("hostfs: %s: %w (%v)", name, ErrReplaced, err)
	}
	if err != nil {
		return nil, pathErr(name, "open", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathErr(name, "fstat", err)
	}
	if st.Dev != want.Dev || st.Ino != want.Ino || st.Mode&unix.S_IFMT != want.Mode&unix.S_IFMT {
		unix.Close(fd)
		return nil, fmt.Errorf("hostfs: %s: %w", name, ErrReplaced)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, pathErr(name, "fcntl", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
