package savedat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"byzantium/runtime/luks2"

	"golang.org/x/sys/unix"
)

// Growing a save.dat takes two steps. Grow extends the file, offline or
// on a node for its next boot; that is its only write, so whatever
// happens the store still opens (an ext4 in a larger container is
// fine). GrowFS then grows the mounted ext4 to fill its block device,
// which byz-init does each time it mounts the store. An encrypted
// save.dat needs nothing more: its LUKS2 data segment is "dynamic", so
// the dm-crypt mapping made at unlock (luks2.CryptTable) spans the file
// to its end.

var (
	// ErrNotSaveDat reports a file that holds neither a LUKS2 header nor
	// an ext4 file system; Grow leaves it untouched.
	ErrNotSaveDat = errors.New("savedat: not a save.dat")
	// ErrNoSpace reports a file system without room for the larger
	// save.dat.
	ErrNoSpace = errors.New("savedat: not enough free space")
)

// Grow extends the save.dat at path to newSize bytes, a multiple of 1 MiB
// larger than it is now. The file must hold a LUKS2 header or an ext4
// file system, and the file system holding it must have room for the
// growth (the extension is sparse where it can be, but the store will
// fill it). The file system inside grows when it is next mounted
// (GrowFS).
func Grow(path string, newSize int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrNotSaveDat, path)
	}
	if err := identify(f, path); err != nil {
		return err
	}
	cur := fi.Size()
	if newSize%(1<<20) != 0 {
		return fmt.Errorf("%w: size %d: a save.dat grows to a multiple of 1 MiB", ErrBadOption, newSize)
	}
	if newSize <= cur {
		return fmt.Errorf("%w: %s is %s; %s would not grow it (a save.dat never shrinks)",
			ErrBadOption, path, SizeString(cur), SizeString(newSize))
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("savedat: statfs %s: %w", path, err)
	}
	if int64(st.Type) == unix.MSDOS_SUPER_MAGIC {
		if err := CheckFATSize(newSize); err != nil {
			return fmt.Errorf("%s is on FAT: %w", path, err)
		}
	}
	if free := int64(st.Bavail) * int64(st.Bsize); newSize-cur > free {
		return fmt.Errorf("%w: growing %s from %s to %s needs %s, and its file system has %s free",
			ErrNoSpace, path, SizeString(cur), SizeString(newSize), SizeString(newSize-cur), SizeString(free&^(1<<20-1)))
	}
	// FAT has no sparse files: the kernel zero-fills the new clusters,
	// and may stop part way. Cutting back to the old length removes only
	// what was appended.
	if err := f.Truncate(newSize); err != nil {
		f.Truncate(cur)
		return fmt.Errorf("savedat: growing %s to %s: %w", path, SizeString(newSize), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	return f.Close()
}

// identify checks that f holds a save.dat: a LUKS2 volume whose one data
// segment runs to the end of the file, or an ext4 file system.
func identify(f *os.File, path string) error {
	h, lerr := luks2.Read(f)
	if lerr == nil {
		seg, ok := h.Metadata.Segments["0"]
		if len(h.Metadata.Segments) != 1 || !ok || seg.Size != "dynamic" {
			return fmt.Errorf("%w: %s is a LUKS2 volume whose data segment does not run to the end of the file "+
				"(a fixed size, or a reencryption under way): growing the file would not grow it", ErrNotSaveDat, path)
		}
		return nil
	}
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+sbMagic); err == nil && binary.LittleEndian.Uint16(magic[:]) == unix.EXT4_SUPER_MAGIC {
		return nil
	}
	return fmt.Errorf("%w: %s holds neither a LUKS2 header nor an ext4 file system", ErrNotSaveDat, path)
}

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64), which
// golang.org/x/sys/unix does not define. The direction and size bits of
// an _IOW of a __u64 differ between architectures (mips, ppc and sparc
// put them elsewhere), so they are taken from PERF_EVENT_IOC_PERIOD,
// _IOW('$', 4, __u64), which unix defines for each.
const ext4IocResizeFS = unix.PERF_EVENT_IOC_PERIOD&^0xffff | 'f'<<8 | 16

// Superblock fields GrowFS reads (offsets into the superblock, which
// starts 1024 bytes into the device).
const (
	sbBlocksLo        = 0x04
	sbFirstDataBlock  = 0x14
	sbLogBlockSize    = 0x18
	sbBlocksPerGroup  = 0x20
	sbInodesPerGroup  = 0x28
	sbMagic           = 0x38
	sbRevLevel        = 0x4c
	sbInodeSize       = 0x58
	sbFeatureIncompat = 0x60
	sbBlocksHi        = 0x150
	incompat64Bit     = 0x80
)

// superblock is what GrowFS needs of an ext4 superblock.
type superblock struct {
	blocks, firstDataBlock, blocksPerGroup uint64
	blockSize                              int64
	// itbPerGroup is a group's inode table, in blocks.
	itbPerGroup uint64
}

func readSuperblock(dev *os.File) (superblock, error) {
	b := make([]byte, 1024)
	if _, err := dev.ReadAt(b, 1024); err != nil {
		return superblock{}, fmt.Errorf("savedat: reading the superblock on %s: %w", dev.Name(), err)
	}
	le := binary.LittleEndian
	if le.Uint16(b[sbMagic:]) != unix.EXT4_SUPER_MAGIC {
		return superblock{}, fmt.Errorf("savedat: %s has no ext4 superblock", dev.Name())
	}
	sb := superblock{
		blocks:         uint64(le.Uint32(b[sbBlocksLo:])),
		firstDataBlock: uint64(le.Uint32(b[sbFirstDataBlock:])),
		blocksPerGroup: uint64(le.Uint32(b[sbBlocksPerGroup:])),
	}
	if le.Uint32(b[sbFeatureIncompat:])&incompat64Bit != 0 {
		sb.blocks |= uint64(le.Uint32(b[sbBlocksHi:])) << 32
	}
	logBS := le.Uint32(b[sbLogBlockSize:])
	inodeSize := uint64(128)
	if le.Uint32(b[sbRevLevel:]) > 0 {
		inodeSize = uint64(le.Uint16(b[sbInodeSize:]))
	}
	if logBS > 6 || sb.blocksPerGroup == 0 || sb.blocks == 0 {
		return superblock{}, fmt.Errorf("savedat: the superblock on %s is not one GrowFS understands", dev.Name())
	}
	sb.blockSize = 1024 << logBS
	sb.itbPerGroup = (uint64(le.Uint32(b[sbInodesPerGroup:]))*inodeSize + uint64(sb.blockSize) - 1) / uint64(sb.blockSize)
	return sb, nil
}

// target is the block count to grow sb's file system to on a device of
// devSize bytes. The kernel does not add a last group too small for its
// metadata (its inode table, bitmaps and any superblock backup); such a
// tail is left out here too, so that GrowFS stays a no-op at the next
// mount rather than asking for it again.
func (sb superblock) target(devSize int64) uint64 {
	n := uint64(devSize / sb.blockSize)
	if n <= sb.blocks {
		return sb.blocks
	}
	last := (n-1-sb.firstDataBlock)/sb.blocksPerGroup*sb.blocksPerGroup + sb.firstDataBlock
	// 1 MiB of 4 KiB blocks is room for the bitmaps and backups.
	if last >= sb.blocks && n-last < sb.itbPerGroup+256 {
		n = last
	}
	return max(n, sb.blocks)
}

// GrowFS grows the ext4 file system mounted at mountpoint to fill its
// block device, online, with the EXT4_IOC_RESIZE_FS ioctl (what
// resize2fs uses on a mounted file system), and returns its size before
// and after. When the device has no room to add, it does nothing. The
// kernel converts a file system without a resize inode (go-diskfs makes
// none) to meta_bg when its group descriptors outgrow their blocks.
//
// The device is the one the mount's st_dev names: its /dev node is found
// through /sys/dev/block/MAJ:MIN/uevent (DEVNAME) and checked to be that
// device. It gives the device's size (BLKGETSIZE64) and the file system's
// exact block count (the superblock, which the kernel keeps current in
// the device's page cache; statfs leaves out the metadata). A loop
// device or a dm-crypt mapping has the size of its file at attach or
// unlock, so a save.dat grown by Grow grows here at the next boot.
//
// GrowFS needs /sys, /dev (devtmpfs) and CAP_SYS_RESOURCE.
func GrowFS(mountpoint string) (oldBytes, newBytes int64, err error) {
	dir, err := os.Open(mountpoint)
	if err != nil {
		return 0, 0, fmt.Errorf("savedat: %w", err)
	}
	defer dir.Close()
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(dir.Fd()), &sfs); err != nil {
		return 0, 0, fmt.Errorf("savedat: statfs %s: %w", mountpoint, err)
	}
	if sfs.Type != unix.EXT4_SUPER_MAGIC {
		return 0, 0, fmt.Errorf("savedat: %s is not on an ext4 file system (statfs type %#x)", mountpoint, sfs.Type)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		return 0, 0, fmt.Errorf("savedat: %w", err)
	}
	dev, err := openBlockDevice(uint64(st.Dev))
	if err != nil {
		return 0, 0, fmt.Errorf("savedat: the device of %s: %w", mountpoint, err)
	}
	defer dev.Close()
	devSize, err := unix.IoctlGetUint64(int(dev.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return 0, 0, fmt.Errorf("savedat: BLKGETSIZE64 %s: %w", dev.Name(), err)
	}
	sb, err := readSuperblock(dev)
	if err != nil {
		return 0, 0, err
	}
	oldBytes = int64(sb.blocks) * sb.blockSize
	n := sb.target(int64(devSize))
	if n == sb.blocks {
		return oldBytes, oldBytes, nil
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, dir.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&n))); e != 0 {
		return oldBytes, oldBytes, fmt.Errorf("savedat: growing the ext4 on %s (%s) from %d to %d blocks: EXT4_IOC_RESIZE_FS: %w",
			dev.Name(), mountpoint, sb.blocks, n, e)
	}
	after, err := readSuperblock(dev)
	if err != nil {
		return oldBytes, 0, err
	}
	return oldBytes, int64(after.blocks) * after.blockSize, nil
}

// openBlockDevice opens the /dev node of block device dev read-only.
func openBlockDevice(dev uint64) (*os.File, error) {
	majMin := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	ue, err := os.ReadFile("/sys/dev/block/" + majMin + "/uevent")
	if err != nil {
		return nil, fmt.Errorf("block device %s: %w (is sysfs mounted?)", majMin, err)
	}
	name := ""
	for sc := bufio.NewScanner(bytes.NewReader(ue)); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "DEVNAME="); ok {
			name = v
		}
	}
	if name == "" || strings.Contains(name, "..") {
		return nil, fmt.Errorf("block device %s: no usable DEVNAME in its uevent", majMin)
	}
	f, err := os.Open("/dev/" + name)
	if err != nil {
		return nil, fmt.Errorf("block device %s: %w (is devtmpfs mounted on /dev?)", majMin, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || uint64(st.Rdev) != dev {
		f.Close()
		return nil, fmt.Errorf("block device %s: %s is not that device", majMin, f.Name())
	}
	return f, nil
}
