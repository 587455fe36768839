// Package loopdev attaches files to loop devices, as losetup does, for
// byz-init (modules, save.dat) and byzd (modules activated at runtime).
package loopdev

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Attach attaches file to a free loop device found through root's
// /dev/loop-control ("/" on a running system) and returns the open
// device and its path. The device is read-only unless rw, and autoclear:
// it detaches itself once unmounted and closed.
func Attach(root, file string, rw bool) (io.Closer, string, error) {
	ctl, err := os.OpenFile(filepath.Join(root, "dev/loop-control"), os.O_RDWR, 0)
	if err != nil {
		return nil, "", fmt.Errorf("loop: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	mode, flags := os.O_RDONLY, uint32(unix.LO_FLAGS_READ_ONLY|unix.LO_FLAGS_AUTOCLEAR)
	if rw {
		mode, flags = os.O_RDWR, unix.LO_FLAGS_AUTOCLEAR
	}
	back, err := os.OpenFile(file, mode, 0) // the loop device has the file's mode
	if err != nil {
		return nil, "", fmt.Errorf("loop: %w", err)
	}
	defer back.Close()
	info := unix.LoopInfo64{Flags: flags}
	copy(info.File_name[:len(info.File_name)-1], filepath.Base(file))
	// Another process may take the free device between GET_FREE and
	// CONFIGURE (EBUSY): ask again.
	for attempt := 0; attempt < 16; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, "", fmt.Errorf("loop: LOOP_CTL_GET_FREE: %w", err)
		}
		dev := filepath.Join(root, "dev", fmt.Sprintf("loop%d", n))
		loop, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return nil, "", fmt.Errorf("loop: %w", err)
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd()), Info: info}
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			// Before Linux 5.8 there is no LOOP_CONFIGURE.
			if err = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_FD, int(back.Fd())); err == nil {
				if err = unix.IoctlLoopSetStatus64(int(loop.Fd()), &info); err != nil {
					unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
				}
			}
		}
		if errors.Is(err, unix.EBUSY) {
			loop.Close()
			continue
		}
		if err != nil {
			loop.Close()
			return nil, "", fmt.Errorf("loop: configuring %s on %s: %w", dev, file, err)
		}
		return loop, dev, nil
	}
	return nil, "", fmt.Errorf("loop: no free loop device for %s", file)
}
