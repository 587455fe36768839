package gpt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a GUID in its on-disk byte order: the first three fields are
// little-endian, the last two are bytes in order, as UEFI stores them.
type GUID [16]byte

// Partition type GUIDs the image code needs.
var (
	// TypeESP is the EFI System Partition: UEFI firmware looks for
	// EFI/BOOT/BOOTX64.EFI on a FAT filesystem in a partition of this type.
	TypeESP = MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	// TypeBasicData is Microsoft basic data, what removable FAT and exFAT
	// sticks carry so every OS mounts them.
	TypeBasicData = MustParseGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
	// TypeLinuxFS is a Linux filesystem (persistence partitions).
	TypeLinuxFS = MustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	// TypeBIOSBoot holds GRUB's core.img on a GPT disk booted by a BIOS.
	TypeBIOSBoot = MustParseGUID("21686148-6449-6E6F-744E-656564454649")
)

// ParseGUID parses the canonical text form
// "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" (either case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(s) != 36 || len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 ||
		len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("gpt: GUID %q is not in the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("gpt: GUID %q: %w", s, err)
	}
	// Text order is big-endian; the first three fields go to disk swapped.
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants; it panics on a malformed s.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the canonical upper-case text form, as sgdisk prints it.
func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// IsZero reports whether g is the all-zero GUID, which marks an unused
// partition entry.
func (g GUID) IsZero() bool { return g == GUID{} }

// DeriveGUID returns a GUID that is a pure function of seed and label:
// sha256(seed || 0 || label), cut to 16 bytes and marked as an RFC 9562
// version 8 ("custom") GUID. Images must be reproducible, so disk and
// partition GUIDs come from here (seed: e.g. a hash of the image name and
// version; label: "disk", "part1", …), never from a random source.
func DeriveGUID(seed []byte, label string) GUID {
	h := sha256.New()
	h.Write(seed)
	h.Write([]byte{0})
	h.Write([]byte(label))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	// Build the GUID in text (big-endian) order, then store it the way
	// ParseGUID would, so String shows the version nibble in its place.
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0F | 0x80 // version 8
	b[8] = b[8]&0x3F | 0x80 // RFC 9562 variant
	var g GUID
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g
}
