// Package gpt writes and reads GUID Partition Tables (UEFI 2.10 §5.3) for
// 512-byte-sector disk images: a protective MBR at LBA 0, the primary header
// and 128 entries at LBA 1–33, and their backup copies at the end of the
// disk.
package gpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Geometry of the tables this package writes.
const (
	SectorSize = 512
	// NumEntries and EntrySize give the 16 KiB entry array UEFI requires
	// at minimum, so the first usable LBA is 34.
	NumEntries = 128
	EntrySize  = 128
	// entrySectors is the size of the entry array in sectors.
	entrySectors = NumEntries * EntrySize / SectorSize
	// FirstUsableLBA follows the MBR, the primary header and its entries.
	FirstUsableLBA = 2 + entrySectors
	// AlignmentLBA is 1 MiB in sectors: partitions that start on it sit on
	// erase-block and 4K-sector boundaries of any flash stick.
	AlignmentLBA = 1 << 20 / SectorSize
	// MaxNameLen is the length of a partition name in UTF-16 code units.
	MaxNameLen = 36
	// BootCodeSize is the room for BIOS boot code at the start of the MBR,
	// before the disk signature.
	BootCodeSize = 440
)

// Partition attribute bits.
const (
	AttrRequired           = 1 << 0
	AttrNoBlockIO          = 1 << 1
	AttrLegacyBIOSBootable = 1 << 2
)

// ErrBadTable reports a Table that cannot be written as given, or on-disk
// data Read does not accept as a GPT.
var ErrBadTable = errors.New("gpt: bad partition table")

// Table is a GPT disk layout.
type Table struct {
	DiskGUID   GUID
	Partitions []Partition

	// BootCode fills the start of the protective MBR (at most BootCodeSize
	// bytes), for BIOS boot code such as GRUB's boot.img or isohybrid's
	// gptmbr.bin; nil leaves it zero.
	BootCode []byte
	// MBRBootable sets the active flag on the protective MBR's 0xEE entry.
	// UEFI says it must be clear, but some BIOSes refuse to boot a disk
	// without an active partition, so BIOS boot code may want it.
	MBRBootable bool
}

// Partition is one entry of the table. LBAs are inclusive sector numbers.
type Partition struct {
	Type       GUID
	GUID       GUID
	Name       string
	FirstLBA   uint64
	LastLBA    uint64
	Attributes uint64
}

// Size returns the partition's length in bytes.
func (p *Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// Offset returns the byte offset of the partition's first sector.
func (p *Partition) Offset() int64 { return int64(p.FirstLBA) * SectorSize }

// LastUsableLBA returns the last sector a partition may use on a disk of
// diskSize bytes: the backup entries and header take the last 33 sectors.
func LastUsableLBA(diskSize int64) uint64 {
	return uint64(diskSize/SectorSize) - 1 - entrySectors - 1
}

// AlignUp rounds lba up to the next multiple of AlignmentLBA.
func AlignUp(lba uint64) uint64 {
	return (lba + AlignmentLBA - 1) / AlignmentLBA * AlignmentLBA
}

// Write writes the protective MBR, the primary and the backup GPT of t to
// a disk of diskSize bytes (a multiple of SectorSize). It writes only those
// 67 sectors; the space between is left to the caller.
func (t *Table) Write(w io.WriterAt, diskSize int64) error {
	if err := t.check(diskSize); err != nil {
		return err
	}
	lastLBA := uint64(diskSize/SectorSize) - 1

	entries := make([]byte, NumEntries*EntrySize)
	for i, p := range t.Partitions {
		e := entries[i*EntrySize : (i+1)*EntrySize]
		copy(e[0:], p.Type[:])
		copy(e[16:], p.GUID[:])
		binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
		binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		for j, u := range utf16.Encode([]rune(p.Name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], u)
		}
	}
	entriesCRC := crc32.ChecksumIEEE(entries)

	backupEntriesLBA := lastLBA - entrySectors
	primary := t.header(1, lastLBA, 2, lastLBA, entriesCRC)
	backup := t.header(lastLBA, 1, backupEntriesLBA, lastLBA, entriesCRC)

	writes := []struct {
		lba  uint64
		data []byte
		what string
	}{
		{0, t.mbr(lastLBA), "protective MBR"},
		{1, primary, "primary header"},
		{2, entries, "primary entries"},
		{backupEntriesLBA, entries, "backup entries"},
		{lastLBA, backup, "backup header"},
	}
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.data, int64(wr.lba)*SectorSize); err != nil {
			return fmt.Errorf("gpt: writing %s at LBA %d: %w", wr.what, wr.lba, err)
		}
	}
	return nil
}

// check validates t against a disk of diskSize bytes.
func (t *Table) check(diskSize int64) error {
	if diskSize%SectorSize != 0 || diskSize/SectorSize < 2*FirstUsableLBA+1 {
		return fmt.Errorf("%w: disk size %d is not a multiple of %d of at least %d sectors",
			ErrBadTable, diskSize, SectorSize, 2*FirstUsableLBA+1)
	}
	if len(t.Partitions) > NumEntries {
		return fmt.Errorf("%w: %d partitions, at most %d fit", ErrBadTable, len(t.Partitions), NumEntries)
	}
	if len(t.BootCode) > BootCodeSize {
		return fmt.Errorf("%w: boot code is %d bytes, at most %d fit", ErrBadTable, len(t.BootCode), BootCodeSize)
	}
	last := LastUsableLBA(diskSize)
	for i, p := range t.Partitions {
		switch {
		case p.Type.IsZero():
			return fmt.Errorf("%w: partition %d (%q) has a zero type GUID, which marks an unused entry", ErrBadTable, i+1, p.Name)
		case p.FirstLBA < FirstUsableLBA || p.LastLBA > last || p.FirstLBA > p.LastLBA:
			return fmt.Errorf("%w: partition %d (%q) spans LBA %d–%d, outside the usable %d–%d",
				ErrBadTable, i+1, p.Name, p.FirstLBA, p.LastLBA, FirstUsableLBA, last)
		case len(utf16.Encode([]rune(p.Name))) > MaxNameLen:
			return fmt.Errorf("%w: partition %d name %q is longer than %d UTF-16 units", ErrBadTable, i+1, p.Name, MaxNameLen)
		}
		for j, q := range t.Partitions[:i] {
			if p.FirstLBA <= q.LastLBA && q.FirstLBA <= p.LastLBA {
				return fmt.Errorf("%w: partitions %d (%q) and %d (%q) overlap", ErrBadTable, j+1, q.Name, i+1, p.Name)
			}
			if !p.GUID.IsZero() && p.GUID == q.GUID {
				return fmt.Errorf("%w: partitions %d and %d share the GUID %s", ErrBadTable, j+1, i+1, p.GUID)
			}
		}
	}
	return nil
}

// header encodes a GPT header sector.
func (t *Table) header(my, alternate, entriesLBA, lastLBA uint64, entriesCRC uint32) []byte {
	h := make([]byte, SectorSize)
	copy(h[0:], "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000) // revision 1.0
	binary.LittleEndian.PutUint32(h[12:], headerSize)
	binary.LittleEndian.PutUint64(h[24:], my)
	binary.LittleEndian.PutUint64(h[32:], alternate)
	binary.LittleEndian.PutUint64(h[40:], FirstUsableLBA)
	binary.LittleEndian.PutUint64(h[48:], lastLBA-entrySectors-1)
	copy(h[56:], t.DiskGUID[:])
	binary.LittleEndian.PutUint64(h[72:], entriesLBA)
	binary.LittleEndian.PutUint32(h[80:], NumEntries)
	binary.LittleEndian.PutUint32(h[84:], EntrySize)
	binary.LittleEndian.PutUint32(h[88:], entriesCRC)
	// The header CRC covers headerSize bytes with its own field zero.
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:headerSize]))
	return h
}

// headerSize is the length of the GPT header the CRC covers.
const headerSize = 92

// mbr encodes the protective MBR: one 0xEE partition from LBA 1 to the end
// of the disk (or 2 TiB, the most an MBR can say), so MBR-only tools see
// the disk as in use.
func (t *Table) mbr(lastLBA uint64) []byte {
	m := make([]byte, SectorSize)
	copy(m, t.BootCode)
	e := m[446:462]
	if t.MBRBootable {
		e[0] = 0x80
	}
	copy(e[1:4], []byte{0x00, 0x02, 0x00}) // CHS of LBA 1
	e[4] = 0xEE
	copy(e[5:8], []byte{0xFF, 0xFF, 0xFF}) // CHS beyond what CHS can say
	binary.LittleEndian.PutUint32(e[8:], 1)
	n := lastLBA
	if n > 0xFFFFFFFF {
		n = 0xFFFFFFFF
	}
	binary.LittleEndian.PutUint32(e[12:], uint32(n))
	m[510], m[511] = 0x55, 0xAA
	return m
}
