package iso9660

import (
	"encoding/binary"
	"fmt"
	"time"

	"byzantium/modules/entry"
)

// bootInfo holds the resolved El Torito images.
type bootInfo struct {
	bios, efi *node
}

// bootFiles finds the boot images in the tree. A missing or unfit one is an
// ErrBoot naming its path: Close is the first moment this can be known.
func (w *Writer) bootFiles() (*bootInfo, error) {
	if w.opts.BIOSBoot == nil && w.opts.EFIBoot == nil {
		return nil, nil
	}
	b := &bootInfo{}
	if o := w.opts.BIOSBoot; o != nil {
		n, err := w.bootFile(o.Path, "BIOS")
		if err != nil {
			return nil, err
		}
		if o.BootInfoTable {
			if n.Type != entry.TypeRegular || !n.hasSum {
				return nil, fmt.Errorf("%w: BIOS boot image %s: a boot info table needs a regular file written at that path, not a hardlink", ErrBoot, o.Path)
			}
			if n.size < 64 {
				return nil, fmt.Errorf("%w: BIOS boot image %s: %d bytes, too short for a boot info table", ErrBoot, o.Path, n.size)
			}
		}
		b.bios = n
	}
	if o := w.opts.EFIBoot; o != nil {
		n, err := w.bootFile(o.Path, "EFI")
		if err != nil {
			return nil, err
		}
		b.efi = n
	}
	return b, nil
}

func (w *Writer) bootFile(p, what string) (*node, error) {
	n := w.tree.Lookup(p)
	if n == nil {
		return nil, fmt.Errorf("%w: %s boot image %s is not in the stream", ErrBoot, what, p)
	}
	if n.Type == entry.TypeHardlink {
		n = n.target
	}
	if n.Type != entry.TypeRegular || n.size == 0 {
		return nil, fmt.Errorf("%w: %s boot image %s is not a non-empty regular file", ErrBoot, what, p)
	}
	if n.size > 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: %s boot image %s is larger than 4 GiB", ErrBoot, what, p)
	}
	return n, nil
}

// writeBoot writes the El Torito boot record and catalog, the boot info
// table, and the isohybrid system area.
func (w *Writer) writeBoot(b *bootInfo, size int64) error {
	rec := volDesc(0)
	copy(rec[7:], "EL TORITO SPECIFICATION")
	binary.LittleEndian.PutUint32(rec[0x47:], catalogLBA)
	if err := w.o.writeAt(rec, bootRecLBA*sectorSize); err != nil {
		return err
	}
	if err := w.o.writeAt(w.catalog(b), catalogLBA*sectorSize); err != nil {
		return err
	}
	if o := w.opts.BIOSBoot; o != nil && o.BootInfoTable {
		t := make([]byte, 56)
		binary.LittleEndian.PutUint32(t[0:], pvdLBA)
		binary.LittleEndian.PutUint32(t[4:], b.bios.lba)
		binary.LittleEndian.PutUint32(t[8:], uint32(b.bios.size))
		binary.LittleEndian.PutUint32(t[12:], b.bios.bootSum)
		if err := w.o.writeAt(t, int64(b.bios.lba)*sectorSize+8); err != nil {
			return fmt.Errorf("boot info table of %s: %w", o.Path, err)
		}
	}
	return nil
}

// catalog renders the boot catalog: a validation entry, the default entry
// (BIOS if there is one), and the UEFI image in a final section.
func (w *Writer) catalog(b *bootInfo) []byte {
	c := make([]byte, sectorSize)
	const platX86, platEFI = 0x00, 0xEF
	c[0] = 1
	if b.bios == nil {
		c[1] = platEFI
	}
	c[30], c[31] = 0x55, 0xAA
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += binary.LittleEndian.Uint16(c[i:])
	}
	binary.LittleEndian.PutUint16(c[28:], -sum)

	entryAt := func(off int, n *node, count uint16) {
		c[off] = 0x88 // bootable, no emulation
		binary.LittleEndian.PutUint16(c[off+6:], count)
		binary.LittleEndian.PutUint32(c[off+8:], n.lba)
	}
	if b.bios != nil {
		entryAt(32, b.bios, w.opts.BIOSBoot.LoadSize)
	}
	if b.efi != nil {
		off := 32
		if b.bios != nil {
			c[64], c[65] = 0x91, platEFI // final section header, one entry
			binary.LittleEndian.PutUint16(c[66:], 1)
			off = 96
		}
		entryAt(off, b.efi, efiLoadSize(b.efi.size))
	}
	return c
}

// efiLoadSize is the whole FAT image in 512-byte sectors, as xorriso
// writes it. An image too large for the 16-bit field gets 1: EDK2 then
// takes the partition to run to the end of the medium.
func efiLoadSize(size int64) uint16 {
	n := (size + 511) / 512
	if n > 0xFFFF {
		return 1
	}
	return uint16(n)
}

// volDesc returns a volume descriptor sector of the given type with the
// standard identifier.
func volDesc(typ byte) []byte {
	b := make([]byte, sectorSize)
	b[0] = typ
	copy(b[1:], "CD001")
	b[6] = 1
	return b
}

// pvd renders the primary volume descriptor (ECMA-119 8.4).
func (w *Writer) pvd(sectors, ptSize, ptL, ptM uint32) []byte {
	b := volDesc(1)
	fill := func(off, n int, s string) {
		for i := range n {
			b[off+i] = ' '
		}
		copy(b[off:], s)
	}
	fill(8, 32, "")
	fill(40, 32, w.opts.VolumeID)
	both32(b[80:], sectors)
	both16(b[120:], 1)
	both16(b[124:], 1)
	both16(b[128:], sectorSize)
	both32(b[132:], ptSize)
	binary.LittleEndian.PutUint32(b[140:], ptL)
	binary.BigEndian.PutUint32(b[148:], ptM)
	root := record([]byte{0}, w.tree.Root().dirLBA, w.tree.Root().dirSize, 0x02, w.tree.Root().mtime, nil, &ceWriter{})
	copy(b[156:], root)
	fill(190, 128, "")                // volume set
	fill(318, 128, "")                // publisher
	fill(446, 128, "")                // data preparer
	fill(574, 128, "BYZANTIUM")       // application
	fill(702, 37*3, "")               // copyright, abstract, bibliographic files
	volTime(b[813:], w.opts.ModTime)  // creation
	volTime(b[830:], w.opts.ModTime)  // modification
	copy(b[847:], "0000000000000000") // expiration: none
	copy(b[864:], "0000000000000000") // effective: at once
	b[881] = 1
	return b
}

// volTime writes the 17-byte volume descriptor time (ECMA-119 8.4.26.1) in
// UTC.
func volTime(b []byte, t time.Time) {
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		copy(b, "0000000000000000")
		return
	}
	copy(b, fmt.Sprintf("%04d%02d%02d%02d%02d%02d%02d", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e7))
	b[16] = 0
}
