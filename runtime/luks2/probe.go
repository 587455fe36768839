package luks2

import (
	"bytes"
	"io"
)

// When one header copy is damaged, cryptsetup repairs it from the other,
// unless the device also carries another format's signature (blkid's
// probe): then the damaged copy may well be that other format's data,
// and it refuses the device as ambiguous ("cryptsetup repair" decides).
// Read refuses it too, so nothing here writes over, say, an LVM label.
// These are the signatures blkid finds at fixed places near the start of
// a device; the list is shorter than blkid's, and says so in the error.

type signature struct {
	name  string
	off   int64
	magic string
}

var signatures = []signature{
	{"LVM2 physical volume", 0x218, "LVM2 001"},
	{"LVM2 physical volume", 0x418, "LVM2 001"},
	{"LVM2 physical volume", 0x618, "LVM2 001"},
	{"LVM2 physical volume", 0x818, "LVM2 001"},
	{"GPT partition table", 0x200, "EFI PART"},
	{"ext2/3/4 file system", 0x438, "\x53\xef"},
	{"swap space", 0xff6, "SWAPSPACE2"},
	{"swap space", 0xff6, "SWAP-SPACE"},
	{"SquashFS", 0, "hsqs"},
	{"XFS", 0, "XFSB"},
	{"btrfs", 0x10040, "_BHRfS_M"},
	{"ISO 9660", 0x8001, "CD001"},
}

// foreignSignature names another format found on the device, or "".
func foreignSignature(r io.ReaderAt) string {
	for _, s := range signatures {
		b := make([]byte, len(s.magic))
		if _, err := r.ReadAt(b, s.off); err == nil && bytes.Equal(b, []byte(s.magic)) {
			return s.name
		}
	}
	return ""
}
