package clone

import (
	"byzantium/blockdev"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ident is one identity a path can share with another: a file (the
// device of its file system and its inode) or a block device (its
// number). Two paths with an identity in common are the same thing, or
// one holds the other: a symlink, a hard link, /dev/disk/by-id/…, a loop
// device over a file, a partition of a disk.
type ident struct {
	block    bool
	dev, ino uint64 // block: dev is the device number, ino 0
}

// identities are the identities of a path, each with how it was
// reached (for the message), in the order found: the most direct first.
type identities struct {
	how   map[ident]string
	order []ident
}

func newIdentities() *identities { return &identities{how: map[ident]string{}} }

func (ids *identities) add(id ident, how string) {
	if _, ok := ids.how[id]; !ok {
		ids.how[id] = how
		ids.order = append(ids.order, id)
	}
}

// SameAsSource refuses a target that is the source or holds it, by what
// the kernel says they are rather than by their names: the same file
// (through symlinks and hard links), the same block device (through
// /dev/disk/by-* links), a loop device over the source image (or the
// image a source loop device reads), the disk of a source partition or a
// partition of a source disk, the disk or the image file a source folder
// or image lives on. Writing any of them destroys the source while it is
// read. No option overrides it. target need not exist (a new image
// file).
func (s System) SameAsSource(src *Source, target string) error {
	if src == nil || src.path == "" {
		return nil
	}
	fi, err := os.Stat(target)
	if err != nil {
		return nil // a new image file is nothing yet
	}
	srcIDs, tgtIDs := newIdentities(), newIdentities()
	s.sourceIDs(src.path, srcIDs)
	s.targetIDs(target, fi, tgtIDs)
	for _, id := range tgtIDs.order {
		how := tgtIDs.how[id]
		if what, ok := srcIDs.how[id]; ok {
			who := "the source " + src.Name
			if src.node {
				who = "the media this node booted from (" + src.Name + ")"
			}
			return fmt.Errorf("%w: %s and %s are one: %s is %s; a clone cannot be written over its own source (no option changes this)",
				ErrSameAsSource, target, who, how, what)
		}
	}
	return nil
}

// sourceIDs collects what the source at p is and what it lives on.
func (s System) sourceIDs(p string, ids *identities) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		ids.add(ident{dev: st.Dev, ino: st.Ino}, "the source file "+p)
		s.blockIDs(st.Dev, fmt.Sprintf("the file system %s lives on", p), true, ids)
	case unix.S_IFDIR:
		s.blockIDs(st.Dev, fmt.Sprintf("the file system %s lives on", p), true, ids)
	case unix.S_IFBLK:
		s.blockIDs(st.Rdev, "the source device", true, ids)
	}
}

// targetIDs collects what writing the target at p writes to.
func (s System) targetIDs(p string, fi fs.FileInfo, ids *identities) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return
	}
	switch {
	case fi.Mode().IsRegular():
		ids.add(ident{dev: st.Dev, ino: st.Ino}, "this file")
	case st.Mode&unix.S_IFMT == unix.S_IFBLK:
		s.blockIDs(st.Rdev, "this device", false, ids)
	}
}

// blockIDs adds the block device dev and what it stands for: its disk
// when it is a partition, its partitions when it is a disk, the devices
// under it (device-mapper and md slaves), and for a loop device the file
// behind it. With lives, the file's own file system is followed too (a
// source loop device's image is destroyed with the disk it lives on; a
// target loop device writes only its file).
func (s System) blockIDs(dev uint64, how string, lives bool, ids *identities) {
	s.blockIDsDepth(dev, how, lives, ids, 0)
}

func (s System) blockIDsDepth(dev uint64, how string, lives bool, ids *identities, depth int) {
	if depth > 8 { // loop over a file on a loop over a file…: enough
		return
	}
	major, minor := unix.Major(dev), unix.Minor(dev)
	dir, err := filepath.EvalSymlinks(s.path(fmt.Sprintf("sys/dev/block/%d:%d", major, minor)))
	if err != nil {
		return // no block device: tmpfs, overlayfs, a network file system
	}
	id := ident{block: true, dev: dev}
	if _, seen := ids.how[id]; seen {
		return
	}
	name := filepath.Base(dir)
	ids.add(id, fmt.Sprintf("/dev/%s (%s)", name, how))
	disk := dir
	if blockdev.IsPartition(dir) {
		disk = filepath.Dir(dir)
		if d, ok := devNumber(disk); ok {
			s.blockIDsDepth(d, fmt.Sprintf("the disk of /dev/%s, %s", name, how), lives, ids, depth+1)
		}
	} else {
		for _, part := range blockdev.Partitions(dir) {
			if d, ok := devNumber(part); ok {
				ids.add(ident{block: true, dev: d}, fmt.Sprintf("/dev/%s, a partition of /dev/%s (%s)", filepath.Base(part), name, how))
			}
		}
	}
	if slaves, err := os.ReadDir(filepath.Join(dir, "slaves")); err == nil {
		for _, sl := range slaves {
			if d, ok := devNumber(filepath.Join(dir, "slaves", sl.Name())); ok {
				s.blockIDsDepth(d, fmt.Sprintf("under /dev/%s, %s", name, how), lives, ids, depth+1)
			}
		}
	}
	for _, f := range s.loopFiles(disk) {
		ids.add(ident{dev: f.dev, ino: f.ino}, fmt.Sprintf("%s, the file behind /dev/%s (%s)", f.name, filepath.Base(disk), how))
		if lives {
			s.blockIDsDepth(f.dev, fmt.Sprintf("the file system %s lives on, behind /dev/%s (%s)", f.name, filepath.Base(disk), how), lives, ids, depth+1)
		}
	}
}

// devNumber reads a sysfs block folder's dev attribute ("8:16").
func devNumber(dir string) (uint64, bool) {
	major, minor, ok := blockdev.Number(dir)
	if !ok {
		return 0, false
	}
	return unix.Mkdev(major, minor), true
}

// loopFile is the file behind a loop device.
type loopFile struct {
	name     string
	dev, ino uint64
}

// loopFiles names the file behind the loop device whose sysfs folder is
// dir, both ways the kernel tells: sysfs's backing_file (a path, which
// may since have been renamed or be in another mount namespace) and
// LOOP_GET_STATUS64's device and inode (which cannot).
func (s System) loopFiles(dir string) []loopFile {
	backing := blockdev.LoopBacking(dir)
	if backing == "" {
		return nil
	}
	var out []loopFile
	var st unix.Stat_t
	if err := unix.Stat(strings.TrimSuffix(backing, " (deleted)"), &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		out = append(out, loopFile{backing, st.Dev, st.Ino})
	}
	if f, err := os.Open(s.path("dev/" + filepath.Base(dir))); err == nil {
		info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
		f.Close()
		if err == nil && info.Inode != 0 {
			out = append(out, loopFile{backing, info.Device, info.Inode})
		}
	}
	return out
}
