package clone

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"byzantium/image/usbimg"
)

// Target is where a clone goes: a block device, written in place, or an
// image file, written under a temporary name and renamed into place when
// complete.
type Target struct {
	Path string
	Size int64
	// Device is the block device's description; nil for an image file.
	Device *Device
	f      *os.File
	tmp    string // image file: the temporary name
	used   bool   // may hold old data: WriteDisk wipes both ends first
	done   bool
}

// CreateImage makes a temporary file of size bytes (a whole number of
// MiB) beside path, renamed over path when the clone is complete. An
// existing path is refused unless force.
func CreateImage(path string, size int64, force bool) (*Target, error) {
	if size%(1<<20) != 0 {
		return nil, fmt.Errorf("%w: image size %d is not a whole number of MiB", ErrBadOption, size)
	}
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s exists and is not a regular file", ErrRefused, path)
		}
		if !force {
			return nil, fmt.Errorf("%w: %s exists: --force replaces it (once the clone is complete)", ErrRefused, path)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".clone-*")
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	if err = f.Chmod(0o644); err == nil {
		err = f.Truncate(size)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("clone: %s: %w", f.Name(), err)
	}
	return &Target{Path: path, Size: size, f: f, tmp: f.Name()}, nil
}

// OpenDevice opens the block device d exclusively (the kernel refuses
// while anything has it mounted or held) for writing. Run System.Check
// on d first.
func OpenDevice(d *Device) (*Target, error) {
	f, err := os.OpenFile(d.Path, os.O_RDWR|os.O_EXCL, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%w: %s is in use (the kernel refused to open it exclusively): unmount it first", ErrRefused, d.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil && size != d.Size {
		err = fmt.Errorf("%s is %d bytes, sysfs says %d", d.Path, size, d.Size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("clone: %w", err)
	}
	return &Target{Path: d.Path, Size: size, Device: d, f: f, used: true}, nil
}

// openDisk opens an existing file as a used disk, written in place as a
// device is: what the tests use for a stick that held something.
func openDisk(path string) (*Target, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Target{Path: path, Size: size, f: f, used: true}, nil
}

// disk is what usbimg writes to, with its dirty pages pushed out as it
// goes, so the sync at the end has little left to do; a device's
// writeback is also waited for, so the clone never holds more than a few
// MiB of the page cache hostage, whatever the stick's speed.
func (t *Target) disk() usbimg.Disk {
	return &writeBehind{f: t.f, wait: t.Device != nil}
}

// dropCache makes the next reads of a device come from the device: the
// pages just written are clean after the sync, and POSIX_FADV_DONTNEED
// and BLKFLSBUF drop them and the block device's buffers. An image file's
// read-back may come from the page cache: that checks what was written
// where (FAT chains, data placement), not the host's disk.
func (t *Target) dropCache() error {
	if t.Device == nil {
		return nil
	}
	fd := int(t.f.Fd())
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("clone: dropping the cached pages of %s: %w", t.Path, err)
	}
	if err := unix.IoctlSetInt(fd, unix.BLKFLSBUF, 0); err != nil {
		return fmt.Errorf("clone: flushing the buffers of %s: %w", t.Path, err)
	}
	return nil
}

// finish makes a complete clone visible: the kernel rereads a device's
// partition table (so its partition appears); an image file is renamed
// into place.
func (t *Target) finish() error {
	t.done = true
	if t.Device != nil {
		// Best effort: a device the kernel cannot reread now is still a
		// complete clone, and shows its partition when plugged in again.
		unix.IoctlSetInt(int(t.f.Fd()), unix.BLKRRPART, 0)
		return t.f.Close()
	}
	if err := t.f.Close(); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	if t.tmp != "" {
		if err := os.Rename(t.tmp, t.Path); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if d, err := os.Open(filepath.Dir(t.Path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

// Close releases the target. An unfinished image file is removed; an
// unfinished device keeps what was written, without a partition table.
func (t *Target) Close() error {
	if t.done {
		return nil
	}
	t.done = true
	err := t.f.Close()
	if t.tmp != "" {
		os.Remove(t.tmp)
	}
	return err
}

// writeBehind starts writeback every few MiB; with wait, it first waits
// for the previous round, keeping the dirty data of a slow stick bounded.
type writeBehind struct {
	f       *os.File
	wait    bool
	pending int64
}

const writeBehindSize = 8 << 20

func (w *writeBehind) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.f.WriteAt(p, off)
	w.pending += int64(n)
	if w.pending >= writeBehindSize {
		w.pending = 0
		flags := unix.SYNC_FILE_RANGE_WRITE
		if w.wait {
			flags |= unix.SYNC_FILE_RANGE_WAIT_BEFORE
		}
		unix.SyncFileRange(int(w.f.Fd()), 0, 0, flags)
	}
	return n, err
}

func (w *writeBehind) Sync() error { return w.f.Sync() }

// Idle lowers the I/O and CPU priority of every thread of the process to
// the idle I/O class and nice 10, so a clone on a node yields to the
// services. Linux keeps both per thread (ioprio_set with
// IOPRIO_WHO_PROCESS and setpriority name a thread), and a new thread
// takes its creator's, so each existing thread is set.
func Idle() error {
	const (
		whoProcess = 1
		classIdle  = 3
		classShift = 13
	)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	var errs []error
	for _, t := range tasks {
		var tid int
		if _, err := fmt.Sscan(t.Name(), &tid); err != nil {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, uintptr(tid), classIdle<<classShift); e != 0 && e != unix.ESRCH {
			errs = append(errs, fmt.Errorf("ioprio_set: %w", e))
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 10); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("setpriority: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("clone: lowering the priority: %w", errors.Join(errs...))
	}
	return nil
}
