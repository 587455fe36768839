// Package blockdev describes the node's whole disks from sysfs, the way a
// system without udev sees them: name, size, model, serial, the kernel's
// removable flag and whether the disk hangs off USB. The panel's list of
// clone targets and the clone's own safety checks both read disks here,
// so the disk a person confirms is the disk the checks judge.
package blockdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrPartition reports a partition where a whole disk was asked for.
var ErrPartition = errors.New("is a partition")

// Sys is the sysfs to read. Root prefixes every path (tests point it at
// a fake tree); "" means "/".
type Sys struct{ Root string }

func (s Sys) path(p string) string {
	if s.Root == "" {
		return filepath.Join("/", p)
	}
	return filepath.Join(s.Root, p)
}

// Disk is a whole-disk block device.
type Disk struct {
	Name   string // sdb
	Path   string // /dev/sdb
	Size   int64  // bytes
	Vendor string
	Model  string
	Serial string
	// Removable is the kernel's removable flag. Most USB sticks and card
	// readers say removable=0 when they are disks behind a bridge: see
	// USB and Detachable.
	Removable bool
	USB       bool // attached through USB
	ReadOnly  bool
	// SysDir is the disk's folder under /sys/devices, symlinks resolved
	// (its partitions and holders are below it).
	SysDir string
}

// Detachable reports a disk that can leave the machine: removable by the
// kernel's word or on USB. A disk that is neither may be a computer's own.
func (d *Disk) Detachable() bool { return d.Removable || d.USB }

// List describes the disks in /sys/block, by name: not loop, ram, zram,
// device-mapper or optical devices, nor empty drives (a card reader
// without a card).
func (s Sys) List() ([]Disk, error) {
	ents, err := os.ReadDir(s.path("sys/block"))
	if err != nil {
		return nil, fmt.Errorf("blockdev: %w", err)
	}
	out := []Disk{}
	for _, e := range ents {
		n := e.Name()
		if virtual(n) {
			continue
		}
		d, err := s.read(s.path("sys/block/" + n))
		if err != nil || d.Size == 0 {
			continue
		}
		out = append(out, *d)
	}
	return out, nil
}

func virtual(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "sr"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ByNumber describes the block device major:minor. A partition is
// refused with ErrPartition, the error naming its disk.
func (s Sys) ByNumber(major, minor uint32) (*Disk, error) {
	dir, err := filepath.EvalSymlinks(s.path(fmt.Sprintf("sys/dev/block/%d:%d", major, minor)))
	if err != nil {
		return nil, fmt.Errorf("blockdev: block device %d:%d is not in sysfs: %w", major, minor, err)
	}
	if exists(filepath.Join(dir, "partition")) {
		return nil, fmt.Errorf("/dev/%s %w: name the whole disk (/dev/%s)", filepath.Base(dir), ErrPartition, filepath.Base(filepath.Dir(dir)))
	}
	return s.read(dir)
}

// read describes the disk whose sysfs folder is dir.
func (s Sys) read(dir string) (*Disk, error) {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	name := filepath.Base(dir)
	d := &Disk{Name: name, Path: "/dev/" + name, SysDir: dir}
	sectors, err := strconv.ParseInt(readAttr(dir, "size"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("blockdev: /dev/%s: no size in sysfs: %w", name, err)
	}
	d.Size = sectors * 512 // sysfs counts 512-byte sectors whatever the device's
	d.ReadOnly = readAttr(dir, "ro") == "1"
	d.Removable = readAttr(dir, "removable") == "1"
	d.USB = strings.Contains(dir, "/usb")
	d.Vendor = readAttr(dir, "device/vendor")
	d.Model = readAttr(dir, "device/model")
	d.Serial = s.serial(dir)
	return d, nil
}

// serial finds a disk's serial number: SCSI's unit serial number VPD page
// (0x80, what USB mass storage and SATA disks behind libata report), the
// device's serial attribute (NVMe, MMC), the disk's own (virtio), or the
// USB device's it hangs off.
func (s Sys) serial(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "device/vpd_pg80")); err == nil && len(b) > 4 {
		// A 4-byte header whose last two bytes are the serial's length.
		n := min(int(b[2])<<8|int(b[3]), len(b)-4)
		if v := strings.TrimSpace(strings.Trim(string(b[4:4+n]), "\x00")); v != "" {
			return v
		}
	}
	for _, a := range []string{"device/serial", "serial"} {
		if v := readAttr(dir, a); v != "" {
			return v
		}
	}
	for d, devices := dir, s.path("sys/devices")+"/"; strings.HasPrefix(d, devices); d = filepath.Dir(d) {
		if exists(filepath.Join(d, "idVendor")) {
			return readAttr(d, "serial")
		}
	}
	return ""
}
