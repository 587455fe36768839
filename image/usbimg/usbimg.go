// Package usbimg assembles the USB disk image: a GPT whose first
// partition, from 1 MiB to the end of the disk (or to FAT32's limit of
// 2 TiB), is a FAT32 EFI System Partition filled from the media tree's
// entry stream; its free space is where a save.dat goes. UEFI
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
	"io"
	"os"
	"path/filepath"
	"time"

	"byzantium/image/fat"
	"byzantium/image/gpt"
	"byzantium/internal/bytesize"
	"byzantium/modules/entry"
)

// Errors callers branch on.
var (
	// ErrBadOption reports Options that cannot make an image.
	ErrBadOption = errors.New("usbimg: bad option")
	// ErrNoRoom reports files that leave less free space in the FAT
	// partition than Options.Room asks for.
	ErrNoRoom = errors.New("usbimg: not enough room left")
)

// MaxFATSize is the largest FAT partition an image gets: FAT32 counts
// its sectors in 32 bits (2 TiB of 512-byte sectors), less what keeps
// the partition a whole number of MiB. The rest of a larger disk is left
// unpartitioned.
const MaxFATSize = (0xFFFFFFFF / gpt.AlignmentLBA) * gpt.AlignmentLBA * gpt.SectorSize

// MaxFileSize is the largest file FAT32 holds: 4 GiB − 1 byte.
const MaxFileSize = 1<<32 - 1

// DefaultLabel is the FAT volume label and the GPT partition name.
const DefaultLabel = "BYZANTIUM"

// Options configures an image. Size and Seed are required.
type Options struct {
	// Size is the length of the image in bytes: a multiple of 1 MiB for
	// Write, of 512 for WriteDisk (a block device's size).
	Size int64
	// Spare is how many bytes at the end of the disk stay outside the
	// partition, for a partition added later (a multiple of 1 MiB; 0
	// gives the FAT partition the whole disk). Persistence needs none:
	// a save.dat goes into the FAT partition's free space (Room).
	Spare int64
	// Room is how much free space the FAT partition must keep once the
	// files are written, for a save.dat to be added later (the builder's
	// outputs.usb.spare): less is an ErrNoRoom error, and Write leaves no
	// image behind.
	Room int64
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
	// Sparse leaves whole zero blocks of file data unwritten (fat.Options):
	// for a new image file, which reads as zeros where nothing was written.
	Sparse bool
	// Wipe has WriteDisk zero both ends of the disk before anything else:
	// for a disk that held something (a used stick), so that neither an
	// old partition table nor an old file system survives an interrupted
	// write. A fresh image file reads as zeros and needs none.
	Wipe bool
	// Verify, when set, runs once the FAT partition is written and synced,
	// before the partition table: an error from it stops WriteDisk and
	// leaves the disk without one.
	Verify func(*Layout) error
}

// BIOSBootLBA is the first sector of the BIOS boot partition: the first
// 4 KiB-aligned sector after the GPT's partition entries.
const BIOSBootLBA = 40

// BIOSBootMax is the room for Options.BIOSCore.
const BIOSBootMax = (gpt.AlignmentLBA - BIOSBootLBA) * gpt.SectorSize

// Disk is what WriteDisk writes to: an image file or a block device,
// open for writing.
type Disk interface {
	io.WriterAt
	Sync() error
}

// Layout is where an image's parts go: the partition table and the FAT
// partition, from Options alone.
type Layout struct {
	Table    gpt.Table
	FAT      gpt.Partition
	VolumeID uint32
	Label    string
	// Unpartitioned is the space after the FAT partition that no
	// partition holds: on a disk larger than FAT32's limit, what
	// MaxFATSize leaves (Spare not counted).
	Unpartitioned int64
}

// Plan checks opts and lays out the image. Size must be a multiple of
// 512 (a block device's size); the FAT partition starts at 1 MiB and ends
// where Spare starts, or at the backup GPT, or MaxFATSize after its start
// on a disk larger than FAT32 allows.
func Plan(opts Options) (*Layout, error) {
	const mib = 1 << 20
	if opts.Size%gpt.SectorSize != 0 || opts.Spare%mib != 0 || opts.Spare < 0 || opts.Size-opts.Spare < 34*mib {
		return nil, fmt.Errorf("%w: size %d (a multiple of 512) and spare %d (a multiple of 1 MiB) must leave at least 34 MiB for FAT32",
			ErrBadOption, opts.Size, opts.Spare)
	}
	if len(opts.Seed) == 0 {
		return nil, fmt.Errorf("%w: no seed for the disk GUIDs", ErrBadOption)
	}
	if len(opts.BIOSCore) > BIOSBootMax {
		return nil, fmt.Errorf("%w: BIOS boot code is %d bytes, more than the %d before the FAT partition", ErrBadOption, len(opts.BIOSCore), BIOSBootMax)
	}
	label := opts.Label
	if label == "" {
		label = DefaultLabel
	}
	if opts.Room < 0 {
		return nil, fmt.Errorf("%w: room %d", ErrBadOption, opts.Room)
	}
	end := uint64((opts.Size-opts.Spare)/gpt.SectorSize) - 1
	end = min(end, gpt.LastUsableLBA(opts.Size))
	last := min(end, gpt.AlignmentLBA+MaxFATSize/gpt.SectorSize-1)
	part := gpt.Partition{
		Type: gpt.TypeESP, GUID: gpt.DeriveGUID(opts.Seed, "partition 1"), Name: label,
		FirstLBA: gpt.AlignmentLBA, LastLBA: last, Attributes: gpt.AttrLegacyBIOSBootable,
	}
	l := &Layout{FAT: part, Label: label, Unpartitioned: int64(end-last) * gpt.SectorSize,
		Table: gpt.Table{DiskGUID: gpt.DeriveGUID(opts.Seed, "disk"), Partitions: []gpt.Partition{part}, BootCode: opts.BootCode}}
	if opts.BIOSCore != nil {
		l.Table.Partitions = append(l.Table.Partitions, gpt.Partition{
			Type: gpt.TypeBIOSBoot, GUID: gpt.DeriveGUID(opts.Seed, "partition 2"), Name: "BIOS boot",
			FirstLBA: BIOSBootLBA, LastLBA: gpt.AlignmentLBA - 1,
		})
	}
	volID := gpt.DeriveGUID(opts.Seed, "fat volume id")
	l.VolumeID = binary.LittleEndian.Uint32(volID[:])
	return l, nil
}

// Write writes the image to path from the entries of r. It writes a
// temporary file next to path and renames it over path only when
// complete, so path is never a half-written image.
func Write(path string, r entry.Reader, opts Options) (err error) {
	const mib = 1 << 20
	if opts.Size%mib != 0 {
		return fmt.Errorf("%w: size %d is not a multiple of 1 MiB", ErrBadOption, opts.Size)
	}
	if _, err := Plan(opts); err != nil {
		return err
	}
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
	if err := WriteDisk(f, r, opts); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	return nil
}

// wipeSize is how much WriteDisk zeroes at each end of a disk with
// Options.Wipe: the protective MBR, both GPTs, the BIOS boot partition,
// an ISO 9660 volume descriptor (at 32 KiB) of an isohybrid stick, and
// the start of the FAT partition, where an old file system's boot sector
// and FATs would be.
const wipeSize = 2 << 20

// WriteDisk writes the image onto d, a disk of opts.Size bytes, in an
// order that leaves nothing bootable until the end: with Options.Wipe it
// first zeroes both ends of the disk (old partition tables, old boot
// code, an old file system's start); then it writes the BIOS core and the
// FAT partition (whose own boot sector comes last), syncs, runs
// Options.Verify, and only then writes the protective MBR with its boot
// code and the primary and backup GPTs, and syncs again. A failure or a
// kill at any point before the last step leaves a disk without a
// partition table, which no firmware boots and no OS mounts.
func WriteDisk(d Disk, r entry.Reader, opts Options) error {
	l, err := Plan(opts)
	if err != nil {
		return err
	}
	if opts.Wipe {
		zero := make([]byte, 1<<20)
		for off := int64(0); off < min(wipeSize, opts.Size); off += int64(len(zero)) {
			if _, err := d.WriteAt(zero[:min(int64(len(zero)), opts.Size-off)], off); err != nil {
				return fmt.Errorf("usbimg: wiping the start of the disk: %w", err)
			}
		}
		tail := opts.Size - min(wipeSize, opts.Size)
		for off := tail; off < opts.Size; off += int64(len(zero)) {
			if _, err := d.WriteAt(zero[:min(int64(len(zero)), opts.Size-off)], off); err != nil {
				return fmt.Errorf("usbimg: wiping the end of the disk: %w", err)
			}
		}
		if err := d.Sync(); err != nil {
			return fmt.Errorf("usbimg: %w", err)
		}
	}
	if _, err := d.WriteAt(opts.BIOSCore, BIOSBootLBA*gpt.SectorSize); err != nil {
		return fmt.Errorf("usbimg: writing the BIOS boot code: %w", err)
	}
	fw, err := fat.NewWriter(d, l.FAT.Offset(), l.FAT.Size(), fat.Options{
		Label: l.Label, VolumeID: l.VolumeID, ModTime: opts.ModTime, Sparse: opts.Sparse && !opts.Wipe,
	})
	if err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	rec := &headerLog{r: r}
	if _, err := entry.Copy(fw, rec); err != nil {
		fw.Close()
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if opts.Room > 0 {
		sp, err := fat.Need(l.FAT.Size(), rec.hs)
		if err != nil {
			return fmt.Errorf("usbimg: %w", err)
		}
		if free := sp.Have - sp.Need; free < opts.Room {
			return fmt.Errorf("%w: the files take %s of the %s FAT partition and leave %s free, less than the %s of room asked for (a save.dat's): make the image larger or ask for less room",
				ErrNoRoom, bytesize.Format(sp.Need), bytesize.Format(l.FAT.Size()), bytesize.Format(free), bytesize.Format(opts.Room))
		}
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if opts.Verify != nil {
		if err := opts.Verify(l); err != nil {
			return err
		}
	}
	if err := l.Table.Write(d, opts.Size); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("usbimg: %w", err)
	}
	return nil
}

// headerLog passes a stream through and keeps its headers, for the room
// check once the files are written.
type headerLog struct {
	r  entry.Reader
	hs []entry.Header
}

func (r *headerLog) Next() (*entry.Header, error) {
	h, err := r.r.Next()
	if err == nil {
		r.hs = append(r.hs, entry.Header{Path: h.Path, Type: h.Type, Size: h.Size})
	}
	return h, err
}

func (r *headerLog) Read(p []byte) (int, error) { return r.r.Read(p) }
