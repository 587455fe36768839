//go:build linux

package luks2

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device-mapper's ioctl interface (include/uapi/linux/dm-ioctl.h): every
// call passes a struct dm_ioctl, followed for a table load by target
// specs and their parameter strings.
const (
	dmControl      = "/dev/mapper/control"
	dmIoctlSize    = 312 // sizeof(struct dm_ioctl)
	dmSpecSize     = 40  // sizeof(struct dm_target_spec)
	dmNameLen      = 128
	dmUUIDLen      = 129
	dmVersionMajor = 4

	dmDevCreate  = 0xc138fd03 // _IOWR(0xfd, 3, struct dm_ioctl)
	dmDevRemove  = 0xc138fd04
	dmDevSuspend = 0xc138fd06
	dmTableLoad  = 0xc138fd09

	dmSecureDataFlag = 1 << 15 // wipe the kernel's copies of the buffer (the key)
)

// dmHeader is struct dm_ioctl's fixed part, in the order of the C struct.
type dmHeader struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Padding     uint32
	Dev         uint64
	Name        [dmNameLen]byte
	UUID        [dmUUIDLen]byte
	Data        [7]byte
}

// dmCall issues one ioctl with buf (a dm_ioctl header, then the payload)
// and returns the header the kernel wrote back.
func dmCall(req uintptr, buf []byte) (dmHeader, error) {
	var out dmHeader
	f, err := os.OpenFile(dmControl, os.O_RDWR, 0)
	if err != nil {
		return out, fmt.Errorf("device-mapper: %w (is dm-mod loaded?)", err)
	}
	defer f.Close()
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return out, e
	}
	_, err = binary.Decode(buf[:dmIoctlSize], binary.LittleEndian, &out)
	return out, err
}

func dmBuffer(name string, payload int, flags uint32) ([]byte, error) {
	if name == "" || len(name) >= dmNameLen || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("luks2: device-mapper name %q: 1-127 characters, no slash", name)
	}
	h := dmHeader{Version: [3]uint32{dmVersionMajor, 0, 0}, DataSize: uint32(dmIoctlSize + payload),
		DataStart: dmIoctlSize, Flags: flags}
	copy(h.Name[:], name)
	buf := make([]byte, dmIoctlSize+payload)
	if _, err := binary.Encode(buf, binary.LittleEndian, &h); err != nil {
		return nil, err
	}
	return buf, nil
}

// CryptTable returns the dm-crypt target line for segment 0 of h on the
// block device dev ("MAJ:MIN"), whose size is devSize bytes: what
// cryptsetup loads for the same volume, key written as hex. The volume
// must pass CheckActivate and key fit its cipher. The caller wipes
// params.
func CryptTable(h *Header, key []byte, dev string, devSize int64) (start, length uint64, params []byte, err error) {
	if err := h.CheckActivate(); err != nil {
		return 0, 0, nil, err
	}
	seg := h.Metadata.Segments["0"]
	sizes, _ := segmentKeySizes(seg.Encryption)
	if !slices.Contains(sizes, len(key)) {
		return 0, 0, nil, fmt.Errorf("luks2: a %d-byte key for %s", len(key), seg.Encryption)
	}
	off, err := Uint64(seg.Offset)
	if err != nil {
		return 0, 0, nil, err
	}
	size := uint64(0)
	if seg.Size == "dynamic" {
		if devSize <= 0 || uint64(devSize) <= off {
			return 0, 0, nil, fmt.Errorf("luks2: the device (%d bytes) ends before the data offset %d", devSize, off)
		}
		size = uint64(devSize) - off
	} else if size, err = Uint64(seg.Size); err != nil {
		return 0, 0, nil, err
	} else if devSize <= 0 || off > uint64(devSize) || size > uint64(devSize)-off {
		return 0, 0, nil, fmt.Errorf("luks2: the data segment (%d bytes at %d) runs past the device's end (%d bytes)", size, off, devSize)
	}
	ss := uint64(seg.SectorSize)
	size -= size % ss
	if size == 0 {
		return 0, 0, nil, errors.New("luks2: the data segment is empty")
	}
	opt := ""
	if ss != 512 {
		// LUKS2 counts IVs in its own sectors, not 512-byte ones.
		opt = fmt.Sprintf(" 2 sector_size:%d iv_large_sectors", ss)
	}
	tweak := seg.IVTweak
	if tweak == "" {
		tweak = "0"
	}
	params = append([]byte(seg.Encryption+" "), hex.AppendEncode(nil, key)...)
	params = fmt.Appendf(params, " %s %s %d%s", tweak, dev, off/512, opt)
	return 0, size / 512, params, nil
}

// Open maps the volume on the block device devPath through dm-crypt as
// device-mapper device name, with the volume key from Unlock, and
// returns the new block device's path (/dev/dm-N, which devtmpfs makes).
// The key is passed with the secure-data flag, so the kernel wipes its
// copies of the ioctl buffer; the caller wipes key.
func Open(devPath string, h *Header, key []byte, name string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(devPath, &st); err != nil {
		return "", fmt.Errorf("luks2: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("luks2: %s is not a block device (attach a file to a loop device first)", devPath)
	}
	f, err := os.Open(devPath)
	if err != nil {
		return "", fmt.Errorf("luks2: %w", err)
	}
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("luks2: size of %s: %w", devPath, err)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	start, length, params, err := CryptTable(h, key, dev, int64(size))
	if err != nil {
		return "", err
	}
	defer clear(params)

	buf, err := dmBuffer(name, 0, 0)
	if err != nil {
		return "", err
	}
	out, err := dmCall(dmDevCreate, buf)
	if err != nil {
		return "", fmt.Errorf("luks2: creating device-mapper device %s: %w", name, err)
	}
	remove := func() { removeDevice(name) }

	// The table: one target spec and its NUL-terminated parameters,
	// padded to 8 bytes.
	plen := (len(params) + 1 + 7) &^ 7
	buf, err = dmBuffer(name, dmSpecSize+plen, dmSecureDataFlag)
	if err != nil {
		remove()
		return "", err
	}
	defer clear(buf)
	binary.LittleEndian.PutUint32(buf[20:], 1) // target_count, after version[3], data_size, data_start
	spec := buf[dmIoctlSize:]
	binary.LittleEndian.PutUint64(spec[0:], start)
	binary.LittleEndian.PutUint64(spec[8:], length)
	copy(spec[24:40], "crypt")
	copy(spec[dmSpecSize:], params)
	if _, err := dmCall(dmTableLoad, buf); err != nil {
		remove()
		return "", fmt.Errorf("luks2: loading the dm-crypt table for %s: %w (is dm-crypt loaded?)", name, err)
	}
	// A device starts suspended; resuming it makes the table live.
	if buf, err = dmBuffer(name, 0, 0); err == nil {
		_, err = dmCall(dmDevSuspend, buf)
	}
	if err != nil {
		remove()
		return "", fmt.Errorf("luks2: activating %s: %w", name, err)
	}
	return fmt.Sprintf("/dev/dm-%d", unix.Minor(out.Dev)), nil
}

// Close removes the device-mapper device name (its file systems must be
// unmounted first).
func Close(name string) error {
	if err := removeDevice(name); err != nil {
		return fmt.Errorf("luks2: removing %s: %w", name, err)
	}
	return nil
}

func removeDevice(name string) error {
	buf, err := dmBuffer(name, 0, 0)
	if err != nil {
		return err
	}
	_, err = dmCall(dmDevRemove, buf)
	return err
}
