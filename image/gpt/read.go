package gpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Read reads the GPT of a disk of size bytes: the primary header and
// entries, or the backup ones when the primary copy fails its checks. It
// accepts entry arrays of any count and entry size, as other tools write
// them, and returns the used entries in on-disk order (unused slots
// between them are dropped). The MBR boot code and active flag come back
// in BootCode (all 440 bytes) and MBRBootable.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < (2*FirstUsableLBA+1)*SectorSize {
		return nil, fmt.Errorf("%w: %d bytes is too small for a GPT disk", ErrBadTable, size)
	}
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("gpt: reading MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, fmt.Errorf("%w: no MBR signature at LBA 0", ErrBadTable)
	}
	t := &Table{BootCode: bytes.Clone(mbr[:BootCodeSize])}
	for i := range 4 {
		e := mbr[446+16*i:]
		if e[4] == 0xEE {
			t.MBRBootable = e[0] == 0x80
		}
	}

	lastLBA := uint64(size/SectorSize) - 1
	parts, guid, errPrimary := readHeader(r, 1, lastLBA)
	if errPrimary != nil {
		var errBackup error
		parts, guid, errBackup = readHeader(r, lastLBA, lastLBA)
		if errBackup != nil {
			return nil, fmt.Errorf("primary GPT: %w; backup GPT: %w", errPrimary, errBackup)
		}
	}
	t.DiskGUID = guid
	t.Partitions = parts
	return t, nil
}

// readHeader reads and checks the header at lba and the entries it names.
func readHeader(r io.ReaderAt, lba, lastLBA uint64) ([]Partition, GUID, error) {
	var guid GUID
	h := make([]byte, SectorSize)
	if _, err := r.ReadAt(h, int64(lba)*SectorSize); err != nil {
		return nil, guid, fmt.Errorf("gpt: reading header at LBA %d: %w", lba, err)
	}
	if string(h[:8]) != "EFI PART" {
		return nil, guid, fmt.Errorf("%w: no \"EFI PART\" signature at LBA %d", ErrBadTable, lba)
	}
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize < headerSize || hsize > SectorSize {
		return nil, guid, fmt.Errorf("%w: header at LBA %d has size %d", ErrBadTable, lba, hsize)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	c := bytes.Clone(h[:hsize])
	binary.LittleEndian.PutUint32(c[16:], 0)
	if got := crc32.ChecksumIEEE(c); got != want {
		return nil, guid, fmt.Errorf("%w: header at LBA %d: CRC %08x, stored %08x", ErrBadTable, lba, got, want)
	}
	if my := binary.LittleEndian.Uint64(h[24:]); my != lba {
		return nil, guid, fmt.Errorf("%w: header at LBA %d says it is at LBA %d", ErrBadTable, lba, my)
	}
	copy(guid[:], h[56:72])
	entriesLBA := binary.LittleEndian.Uint64(h[72:])
	n := binary.LittleEndian.Uint32(h[80:])
	esize := binary.LittleEndian.Uint32(h[84:])
	if esize < EntrySize || esize%8 != 0 || uint64(n)*uint64(esize) > 1<<20 ||
		entriesLBA > lastLBA || uint64(n)*uint64(esize)/SectorSize > lastLBA-entriesLBA+1 {
		return nil, guid, fmt.Errorf("%w: header at LBA %d: %d entries of %d bytes at LBA %d do not fit",
			ErrBadTable, lba, n, esize, entriesLBA)
	}
	entries := make([]byte, int(n)*int(esize))
	if _, err := r.ReadAt(entries, int64(entriesLBA)*SectorSize); err != nil {
		return nil, guid, fmt.Errorf("gpt: reading entries at LBA %d: %w", entriesLBA, err)
	}
	if got, want := crc32.ChecksumIEEE(entries), binary.LittleEndian.Uint32(h[88:]); got != want {
		return nil, guid, fmt.Errorf("%w: entries at LBA %d: CRC %08x, stored %08x", ErrBadTable, entriesLBA, got, want)
	}
	var parts []Partition
	for i := range int(n) {
		e := entries[i*int(esize):]
		var p Partition
		copy(p.Type[:], e[0:16])
		if p.Type.IsZero() {
			continue
		}
		copy(p.GUID[:], e[16:32])
		p.FirstLBA = binary.LittleEndian.Uint64(e[32:])
		p.LastLBA = binary.LittleEndian.Uint64(e[40:])
		p.Attributes = binary.LittleEndian.Uint64(e[48:])
		u := make([]uint16, 0, MaxNameLen)
		for j := range MaxNameLen {
			c := binary.LittleEndian.Uint16(e[56+2*j:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		p.Name = string(utf16.Decode(u))
		parts = append(parts, p)
	}
	return parts, guid, nil
}
