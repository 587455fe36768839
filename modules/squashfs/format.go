// Package squashfs writes and reads SquashFS 4.0 filesystems, the format of
// Byzantium (and Porteus) modules.
//
// The on-disk layout, in the order the Writer emits it:
//
//	superblock (96 bytes) · compressor options (one metadata block, when set)
//	· data blocks and fragment blocks · inode table · directory table
//	· fragment table · export table · id table · xattr table · padding to 4 KiB
//
// All integers are little-endian. Tables other than the data are made of
// metadata blocks: a 16-bit header (size, bit 15 set when stored
// uncompressed) followed by at most 8 KiB of data.
package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic is the first four bytes of every SquashFS image ("hsqs").
const Magic = 0x73717368

// Sizes fixed by the format.
const (
	SuperblockSize    = 96
	MetadataBlockSize = 8192
	// metaUncompressed flags a metadata block header whose data is stored.
	metaUncompressed = 0x8000
	// dataUncompressed flags a data or fragment block size stored as is.
	dataUncompressed = 1 << 24
	// noFragment marks a file without a tail in a fragment block.
	noFragment = 0xFFFFFFFF
	// noXattr marks an inode without extended attributes.
	noXattr = 0xFFFFFFFF
	// noTable marks an absent table (xattr, fragment, export) in the superblock.
	noTable = 0xFFFFFFFFFFFFFFFF
	// dirMaxEntries is the most entries one directory header may cover.
	dirMaxEntries = 256
	// Padding is the multiple the image is padded to so loop devices take it.
	Padding = 4096
	// MinBlockSize and MaxBlockSize bound the data block size.
	MinBlockSize = 4096
	MaxBlockSize = 1 << 20
	// DefaultBlockSize is what mksquashfs uses too.
	DefaultBlockSize = 128 << 10
)

// Compressor identifies a compression algorithm in the superblock.
type Compressor uint16

const (
	Gzip Compressor = 1 // zlib stream (RFC 1950), named gzip by squashfs-tools
	LZMA Compressor = 2
	LZO  Compressor = 3
	XZ   Compressor = 4
	LZ4  Compressor = 5
	Zstd Compressor = 6
)

var compressorNames = map[Compressor]string{Gzip: "gzip", LZMA: "lzma", LZO: "lzo", XZ: "xz", LZ4: "lz4", Zstd: "zstd"}

func (c Compressor) String() string {
	if s, ok := compressorNames[c]; ok {
		return s
	}
	return fmt.Sprintf("compressor(%d)", uint16(c))
}

// ParseCompressor maps a name ("zstd", "gzip", "xz") to a Compressor this
// package can write.
func ParseCompressor(name string) (Compressor, error) {
	switch name {
	case "zstd", "":
		return Zstd, nil
	case "gzip", "zlib":
		return Gzip, nil
	case "xz":
		return XZ, nil
	}
	return 0, fmt.Errorf("%w %q: choose zstd, gzip or xz", ErrUnknownCompressor, name)
}

// Superblock flags.
const (
	FlagUncompressedInodes    = 0x0001
	FlagUncompressedData      = 0x0002
	FlagCheck                 = 0x0004
	FlagUncompressedFragments = 0x0008
	FlagNoFragments           = 0x0010
	FlagAlwaysFragments       = 0x0020
	FlagDuplicates            = 0x0040
	FlagExportable            = 0x0080
	FlagUncompressedXattrs    = 0x0100
	FlagNoXattrs              = 0x0200
	FlagCompressorOptions     = 0x0400
	FlagUncompressedIDs       = 0x0800
)

// Inode types. The extended forms carry xattrs, link counts, 64-bit sizes and
// directory indexes; directory entries always record the basic type.
const (
	inodeBasicDir     = 1
	inodeBasicFile    = 2
	inodeBasicSymlink = 3
	inodeBasicBlock   = 4
	inodeBasicChar    = 5
	inodeBasicFIFO    = 6
	inodeBasicSocket  = 7
	inodeExtDir       = 8
	inodeExtFile      = 9
	inodeExtSymlink   = 10
	inodeExtBlock     = 11
	inodeExtChar      = 12
	inodeExtFIFO      = 13
	inodeExtSocket    = 14
)

// Xattr name prefixes by type id; xattrOOL flags a value stored out of line.
const (
	xattrUser     = 0
	xattrTrusted  = 1
	xattrSecurity = 2
	xattrOOL      = 0x100
)

var xattrPrefixes = [...]string{xattrUser: "user.", xattrTrusted: "trusted.", xattrSecurity: "security."}

// Errors callers branch on.
var (
	ErrNotSquashfs = errors.New("squashfs: not a SquashFS 4.0 image")
	// ErrUnknownCompressor is a compressor the Writer cannot write (it
	// writes zstd, gzip and xz).
	ErrUnknownCompressor = errors.New("squashfs: unknown compressor")
	// ErrUnsupportedCompression is an image the Reader cannot decompress
	// although nothing says it is damaged: a compressor id or an xz filter
	// that squashfs-tools does not write. The message names it.
	ErrUnsupportedCompression = errors.New("squashfs: unsupported compression")
	ErrCorrupt                = errors.New("squashfs: corrupt image")
	ErrWriteAfterClose        = errors.New("squashfs: write after close")
	ErrWriteTooLong           = errors.New("squashfs: write past the size in the header")
)

// Superblock is the 96-byte header at offset 0.
type Superblock struct {
	Magic             uint32
	InodeCount        uint32
	ModTime           uint32
	BlockSize         uint32
	FragmentCount     uint32
	Compressor        Compressor
	BlockLog          uint16
	Flags             uint16
	IDCount           uint16
	VersionMajor      uint16
	VersionMinor      uint16
	RootInode         uint64 // inode reference: metadata block start << 16 | offset
	BytesUsed         uint64
	IDTableStart      uint64
	XattrIDTableStart uint64
	InodeTableStart   uint64
	DirTableStart     uint64
	FragTableStart    uint64
	ExportTableStart  uint64
}

// MarshalBinary encodes sb in its 96-byte on-disk form.
func (sb *Superblock) MarshalBinary() ([]byte, error) {
	b := make([]byte, SuperblockSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], sb.Magic)
	le.PutUint32(b[4:], sb.InodeCount)
	le.PutUint32(b[8:], sb.ModTime)
	le.PutUint32(b[12:], sb.BlockSize)
	le.PutUint32(b[16:], sb.FragmentCount)
	le.PutUint16(b[20:], uint16(sb.Compressor))
	le.PutUint16(b[22:], sb.BlockLog)
	le.PutUint16(b[24:], sb.Flags)
	le.PutUint16(b[26:], sb.IDCount)
	le.PutUint16(b[28:], sb.VersionMajor)
	le.PutUint16(b[30:], sb.VersionMinor)
	le.PutUint64(b[32:], sb.RootInode)
	le.PutUint64(b[40:], sb.BytesUsed)
	le.PutUint64(b[48:], sb.IDTableStart)
	le.PutUint64(b[56:], sb.XattrIDTableStart)
	le.PutUint64(b[64:], sb.InodeTableStart)
	le.PutUint64(b[72:], sb.DirTableStart)
	le.PutUint64(b[80:], sb.FragTableStart)
	le.PutUint64(b[88:], sb.ExportTableStart)
	return b, nil
}

// UnmarshalBinary decodes and sanity-checks a superblock.
func (sb *Superblock) UnmarshalBinary(b []byte) error {
	if len(b) < SuperblockSize {
		return fmt.Errorf("%w: %d bytes, a superblock needs %d", ErrNotSquashfs, len(b), SuperblockSize)
	}
	le := binary.LittleEndian
	*sb = Superblock{
		Magic:             le.Uint32(b[0:]),
		InodeCount:        le.Uint32(b[4:]),
		ModTime:           le.Uint32(b[8:]),
		BlockSize:         le.Uint32(b[12:]),
		FragmentCount:     le.Uint32(b[16:]),
		Compressor:        Compressor(le.Uint16(b[20:])),
		BlockLog:          le.Uint16(b[22:]),
		Flags:             le.Uint16(b[24:]),
		IDCount:           le.Uint16(b[26:]),
		VersionMajor:      le.Uint16(b[28:]),
		VersionMinor:      le.Uint16(b[30:]),
		RootInode:         le.Uint64(b[32:]),
		BytesUsed:         le.Uint64(b[40:]),
		IDTableStart:      le.Uint64(b[48:]),
		XattrIDTableStart: le.Uint64(b[56:]),
		InodeTableStart:   le.Uint64(b[64:]),
		DirTableStart:     le.Uint64(b[72:]),
		FragTableStart:    le.Uint64(b[80:]),
		ExportTableStart:  le.Uint64(b[88:]),
	}
	if sb.Magic != Magic {
		return fmt.Errorf("%w: bad magic %#x", ErrNotSquashfs, sb.Magic)
	}
	if sb.VersionMajor != 4 || sb.VersionMinor != 0 {
		return fmt.Errorf("%w: version %d.%d", ErrNotSquashfs, sb.VersionMajor, sb.VersionMinor)
	}
	if sb.BlockSize < MinBlockSize || sb.BlockSize > MaxBlockSize || sb.BlockSize&(sb.BlockSize-1) != 0 ||
		uint32(1)<<sb.BlockLog != sb.BlockSize {
		return fmt.Errorf("%w: block size %d (log %d)", ErrCorrupt, sb.BlockSize, sb.BlockLog)
	}
	return nil
}

// inodeRef packs a metadata block start (relative to its table) and an
// offset inside the uncompressed block into an inode reference.
func inodeRef(block uint64, offset uint16) uint64 { return block<<16 | uint64(offset) }

// encodeDev packs a device number the way Linux's new_encode_dev does, which
// is what squashfs stores.
func encodeDev(major, minor uint32) uint32 {
	return (minor & 0xff) | (major&0xfff)<<8 | (minor&^0xff)<<12
}

// decodeDev is the inverse of encodeDev.
func decodeDev(d uint32) (major, minor uint32) {
	return (d >> 8) & 0xfff, (d & 0xff) | ((d >> 12) & 0xfff00)
}
