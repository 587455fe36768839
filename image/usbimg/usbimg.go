// Package usbimg assembles the USB disk image: a GPT whose first
// partition, from 1 MiB to the space kept for persistence, is a FAT32 EFI
// System Partition filled from the media tree's entry stream. UEFI
// firmware boots EFI/BOOT/BOOTX64.EFI from it. For BIOS boot, the
// protective MBR holds boot code (Options.BootCode) and a second
// partition, a BIOS boot partition in the gap before 1 MiB, holds the
// code it loads (Options.BIOSCore): GRUB's boot.img and core.img, made by
// image/grubpc.
package usbimg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"byzantium/image/fat"
	"byzantium/image/gpt"
	"byzantium/modules/entry"
)

// ErrBadOption reports Options that cannot make an image.
var ErrBadOption = errors.New("usbimg: bad option")

// DefaultLabel is the FAT volume label and the GPT partition name.
const DefaultLabel = "BYZANTIUM"

// Options configures an image. Size and Seed are required.
type Options struct {
	// Size is the length of the image file in bytes, a multiple of 1 MiB.
	Size int64
	// Spare is how many bytes at the end of the disk stay outside the
	// partition, for a persistence partition added later (a multiple of
	// 1 MiB; 0 gives the FAT partition the whole disk).
	Spare int64
	// Seed makes the disk and partition GUIDs and the FAT volume ID; pass
	// e.g. sha256 of the image name and version. Required, so nobody gets
	// identical IDs on different images by accident.
	Seed []byte
	// Label is the FAT label and partition name; empty means DefaultLabel.
	Label string
	// ModTime is the time of implied directories and of entries without
	// one; take it from SOURCE_DATE_EPOCH.
	ModTime time.Time
	// BootCode is BIOS boot code for the protective MBR (≤ 440 bytes).
	BootCode []byte
	// BIOSCore, when set, is written from sector BIOSBootLBA, in a BIOS
	// boot partition (partition 2) that ends where the FAT partition
	// starts: at most BIOSBootMax bytes.
	BIOSCore []byte
}

// BIOSBootLBA is the first sector of the BIOS boot partition: the first
// 4 KiB-aligned sector after the GPT's partition entries.
const BIOSBootLBA = 40

// BIOSBootMax is the room for Options.BIOSCore.
const BIOSBootMax = (gpt.AlignmentLBA - BIOSBootLBA) * gpt.SectorSize

// Write writes the image to path from the entries of r. It writes a
// temporary file next to path and renames it over path only when
// complete, so path is never a half-written image.
func Write(path string, r entry.Reader, opts Options) (err error) {
	const mib = 1 << 20
	if opts.Size%mib != 0 || opts.Spare%mib != 0 || opts.Spare < 0 || opts.Size-opts.Spare < 34*mib {
		return fmt.Errorf("%w: size %d and spare %d must be multiples of 1 MiB leaving at least 34 MiB for FAT32",
			ErrBadOption, opts.Size, opts.Spare)
	}
	if len(opts.Seed) == 0 {
		return fmt.Errorf("%w: no seed for the disk GUIDs", ErrBadOption)
	}
	label := opts.Label
	if label == "" {
		label = DefaultLabel
	}
	last := uint64((opts.Size-opts.Spare)/gpt.SectorSize) - 1
	last = min(last, gpt.LastUsableLBA(opts.Size))
	part := gpt.Partition{
		Type: gpt.TypeESP, GUID: gpt.DeriveGUID(opts.Seed, "partition 1"), Name: label,
		FirstLBA: gpt.AlignmentLBA, LastLBA: last, Attributes: gpt.AttrLegacyBIOSBootable,
	}
	table := gpt.Table{DiskGUID: gpt.DeriveGUID(opts.Seed, "disk"), Partitions: []gpt.Partition{part}, BootCode: opts.BootCode}
	if len(opts.BIOSCore) > BIOSBootMax {
		return fmt.Errorf("%w: BIOS boot code is %d bytes, more than the %d before the FAT partition", ErrBadOption, len(opts.BIOSCore), BIOSBootMax)
	}
	if opts.BIOSCore != nil {
		table.Partitions = append(table.Partitions, gpt.Partition{
			Type: gpt.TypeBIOSBoot, GUID: gpt.DeriveGUID(opts.Seed, "partition 2"), Name: "BIOS boot",
			FirstLBA: BIOSBootLBA, LastLBA: gpt.AlignmentLBA - 1,
		})
	}
	volID := gpt.DeriveGUID(opts.Seed, "fat volume id")

	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes the file 0600; an image is meant to be shared.
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := f.Truncate(opts.Size); err != nil {
		return fmt.Errorf("usbimg: sizing %s: %w", f.Name(), err)
	}
	if err := table.Write(f, opts.Size); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if _, err := f.WriteAt(opts.BIOSCore, BIOSBootLBA*gpt.SectorSize); err != nil {
		return fmt.Errorf("usbimg: writing the BIOS boot code: %w", err)
	}
	fw, err := fat.NewWriter(f, part.Offset(), part.Size(), fat.Options{
		Label: label, VolumeID: binary.LittleEndian.Uint32(volID[:]), ModTime: opts.ModTime,
	})
	if err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if _, err := entry.Copy(fw, r); err != nil {
		fw.Close()
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	return nil
}
