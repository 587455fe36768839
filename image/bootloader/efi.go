package bootloader

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"byzantium/image/fat"
	"byzantium/modules/entry"
)

// EFIOptions configures EFIImage.
type EFIOptions struct {
	// ModTime is the time of every entry (SOURCE_DATE_EPOCH).
	ModTime time.Time
	// Seed derives the FAT volume ID (pass the media ID), so images are
	// reproducible and differ between media.
	Seed []byte
}

// sortKey makes a bytewise sort a depth-first walk, as image/media
// orders its tree: "/" sorts below every other byte, so "a/b" comes
// before "a-b" and a directory's contents follow it directly.
func sortKey(p string) string {
	return strings.ReplaceAll(p, "/", "\x00")
}

// EFILabel is the volume label of the El Torito EFI image.
const EFILabel = "BYZ_EFI"

// EFIImage writes a FAT image holding files to w from offset 0 and returns
// its size in bytes. The size is the smallest whole MiB image/fat accepts
// that holds the files with a margin: image/fat only writes FAT32, whose
// floor of 65525 clusters makes it at least about 33 MiB even though the
// files are about 6 MiB. That is more than an El Torito entry's 16-bit
// count of 512-byte sectors can describe (32 MiB); FAT12/16 would give an
// image of a few MiB.
func EFIImage(w io.WriterAt, opts EFIOptions, files ...Blob) (int64, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b Blob) int { return strings.Compare(sortKey(a.Path), sortKey(b.Path)) })
	var need int64
	for i, f := range files {
		if f.Path != entry.Clean(f.Path) || f.Path == "." {
			return 0, fmt.Errorf("%w: EFI image file %q is not a clean relative path", ErrBadInput, f.Path)
		}
		if i > 0 && files[i-1].Path == f.Path {
			return 0, fmt.Errorf("%w: EFI image file %s given twice", ErrBadInput, f.Path)
		}
		need += (int64(len(f.Data)) + 511) &^ 511
	}
	const mib = 1 << 20
	// A MiB of margin covers the directories and rounding.
	size := (need + 2*mib - 1) &^ (mib - 1)
	sum := sha256.Sum256(opts.Seed)
	fo := fat.Options{Label: EFILabel, VolumeID: binary.LittleEndian.Uint32(sum[:4]), ModTime: opts.ModTime}
	var fw *fat.Writer
	for {
		var err error
		fw, err = fat.NewWriter(w, 0, size, fo)
		if err == nil {
			break
		}
		// Too small for FAT32: grow to its floor. ErrBadSize for a size
		// that is too large cannot happen here (hundreds of MiB of EFI
		// files would be needed first).
		if !errors.Is(err, fat.ErrBadSize) || size > 1<<30 {
			return 0, fmt.Errorf("bootloader: EFI image of %d bytes: %w", size, err)
		}
		size += mib
	}
	for _, f := range files {
		h := &entry.Header{Path: f.Path, Type: entry.TypeRegular, Mode: 0o644, ModTime: opts.ModTime, Size: int64(len(f.Data))}
		if err := fw.WriteHeader(h); err != nil {
			return 0, fmt.Errorf("bootloader: EFI image: %w", err)
		}
		if _, err := fw.Write(f.Data); err != nil {
			return 0, fmt.Errorf("bootloader: EFI image: %s: %w", f.Path, err)
		}
	}
	if err := fw.Close(); err != nil {
		return 0, fmt.Errorf("bootloader: EFI image: %w", err)
	}
	// The FAT writer leaves free clusters as w held them, so a file or
	// buffer that started empty may be short; writing the last byte fixes
	// its length. That byte is free: clusters are handed out from the
	// front, and the size keeps at least a MiB spare.
	if _, err := w.WriteAt([]byte{0}, size-1); err != nil {
		return 0, fmt.Errorf("bootloader: EFI image: sizing to %d bytes: %w", size, err)
	}
	return size, nil
}
