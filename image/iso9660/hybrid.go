package iso9660

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"
)

// The isohybrid system area, laid out as xorriso does with
// -isohybrid-mbr isohdpfx.bin -isohybrid-gpt-basdat: the isohdpfx boot code
// with the BIOS boot image's 512-byte LBA at 0x1B0; an MBR whose bootable
// partition 1 covers the whole image (so the disk and its first partition
// both read as the ISO) and whose partition 2, type 0xEF, is the EFI image
// (UEFI firmware uses the MBR when it is not a protective one); and a GPT
// with the same two partitions, the backup at the end of the image. The
// image is padded to a whole MiB so partition tools see a cylinder-aligned
// disk.

const (
	gptEntries    = 128
	gptEntrySize  = 128
	gptEntSectors = gptEntries * gptEntrySize / 512
	gptFirstUse   = 64 // the ISO's volume descriptors start at 32 KiB
)

// hybridSize pads an image of end bytes to a MiB multiple with room for the
// backup GPT after the ISO data.
func hybridSize(end int64) int64 {
	const mib = 1 << 20
	end += (1 + gptEntSectors) * 512
	return (end + mib - 1) / mib * mib
}

// bootInfoSum adds up the little-endian 32-bit words of a boot image sector
// that starts off bytes into the file, from byte 64 on (the boot info
// table's checksum).
func bootInfoSum(s []byte, off int64) uint32 {
	var sum uint32
	for i := 0; i+4 <= len(s); i += 4 {
		if off+int64(i) >= 64 {
			sum += binary.LittleEndian.Uint32(s[i:])
		}
	}
	return sum
}

// basicData is the GPT "Microsoft basic data" type in on-disk byte order.
var basicData = [16]byte{0xa2, 0xa0, 0xd0, 0xeb, 0xe5, 0xb9, 0x33, 0x44, 0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7}

// guid derives a GUID from the volume ID, the image size, the directory
// tree and a purpose, so that the same input gives the same image; it is
// shaped as a version-4 GUID.
func (w *Writer) guid(size int64, purpose string) [16]byte {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	h.Write([]byte("byzantium iso9660\x00" + w.opts.VolumeID + "\x00" + purpose + "\x00"))
	h.Write(b[:])
	h.Write(w.treeSum[:])
	var g [16]byte
	copy(g[:], h.Sum(nil))
	g[7] = g[7]&0x0f | 0x40 // version 4, in GUID mixed-endian order
	g[8] = g[8]&0x3f | 0x80
	return g
}

type gptPart struct {
	first, last uint64 // 512-byte LBAs, inclusive
	name        string
}

// writeHybrid writes the MBR and the primary and backup GPTs.
func (w *Writer) writeHybrid(b *bootInfo, size int64) error {
	total := uint64(size / 512)
	mbr := make([]byte, 512)
	copy(mbr, w.opts.MBRTemplate)
	if b != nil && b.bios != nil {
		binary.LittleEndian.PutUint64(mbr[0x1B0:], uint64(b.bios.lba)*4)
	}
	sig := w.guid(size, "mbr")
	copy(mbr[0x1B8:0x1BC], sig[:4])
	mbrPart(mbr[0x1BE:], 0x80, 0x00, 0, total, true)
	parts := []gptPart{{0, total - 2 - gptEntSectors, "ISOHybrid"}}
	if b != nil && b.efi != nil {
		start, n := uint64(b.efi.lba)*4, uint64(b.efi.size+511)/512
		mbrPart(mbr[0x1CE:], 0x00, 0xEF, start, n, false)
		parts = append(parts, gptPart{start, start + n - 1, "ISOHybrid1"})
	}
	mbr[510], mbr[511] = 0x55, 0xAA

	ents := make([]byte, gptEntries*gptEntrySize)
	for i, p := range parts {
		e := ents[i*gptEntrySize:]
		copy(e, basicData[:])
		g := w.guid(size, "partition "+p.name)
		copy(e[16:], g[:])
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		// Required by the platform, read-only: as xorriso marks them.
		binary.LittleEndian.PutUint64(e[48:], 1<<60|1)
		for j, c := range utf16.Encode([]rune(p.name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	last := total - 1
	primary := w.gptHeader(size, 1, last, 2, ents)
	backup := w.gptHeader(size, last, 1, last-gptEntSectors, ents)

	head := append(append(mbr, primary...), ents...)
	if err := w.o.writeAt(head, 0); err != nil {
		return err
	}
	if err := w.o.writeAt(ents, int64(last-gptEntSectors)*512); err != nil {
		return err
	}
	return w.o.writeAt(backup, int64(last)*512)
}

// gptHeader renders a 512-byte GPT header sector.
func (w *Writer) gptHeader(size int64, my, alt, entLBA uint64, ents []byte) []byte {
	total := uint64(size / 512)
	h := make([]byte, 512)
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], my)
	binary.LittleEndian.PutUint64(h[32:], alt)
	binary.LittleEndian.PutUint64(h[40:], gptFirstUse)
	binary.LittleEndian.PutUint64(h[48:], total-2-gptEntSectors)
	g := w.guid(size, "disk")
	copy(h[56:], g[:])
	binary.LittleEndian.PutUint64(h[72:], entLBA)
	binary.LittleEndian.PutUint32(h[80:], gptEntries)
	binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return h
}

// mbrPart fills a 16-byte MBR partition entry. Partition 1 gets real CHS
// values for a 64-head, 32-sector geometry (what isohybrid picks); others
// get the "beyond CHS" marker, as xorriso writes them.
func mbrPart(e []byte, status, typ byte, start, n uint64, chs bool) {
	e[0], e[4] = status, typ
	if chs {
		putCHS(e[1:], start)
		putCHS(e[5:], start+n-1)
	} else {
		copy(e[1:], []byte{0xFE, 0xFF, 0xFF})
		copy(e[5:], []byte{0xFE, 0xFF, 0xFF})
	}
	binary.LittleEndian.PutUint32(e[8:], uint32(start))
	binary.LittleEndian.PutUint32(e[12:], uint32(min(n, 0xFFFFFFFF)))
}

func putCHS(b []byte, lba uint64) {
	const heads, secs = 64, 32
	c, h, s := lba/(heads*secs), lba/secs%heads, lba%secs+1
	if c > 1023 {
		c, h, s = 1023, heads-1, secs
	}
	b[0], b[1], b[2] = byte(h), byte(s)|byte(c>>2&0xC0), byte(c)
}
