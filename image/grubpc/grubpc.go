// Package grubpc makes GRUB's legacy-BIOS (i386-pc) boot code from the
// files Debian's grub-pc-bin ships, in Go: what grub-mkimage and
// grub-bios-setup do for a disk whose core image sits in contiguous
// sectors (a GPT BIOS boot partition), and nothing else.
//
// The result has two parts. MBR returns the first 440 bytes of the
// protective MBR: GRUB's boot.img, told the sector where the core image
// starts. Core returns the core image: diskboot.img (which reads the rest
// of the core with the BIOS), lzma_decompress.img (which switches to
// protected mode and unpacks), and the LZMA-compressed kernel.img with the
// chosen modules, a prefix and an optional early config appended. Embed
// then tells the core image which sectors hold it.
//
// No Reed-Solomon redundancy is added (grub-bios-setup adds some to
// survive a partly overwritten embedding area); the redundancy field stays
// 0, which the decompressor reads as "none".
package grubpc

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/ulikunitz/xz/lzma"
)

// Files of usr/lib/grub/i386-pc/ that Core and MBR read.
const (
	BootImg       = "boot.img"
	DiskbootImg   = "diskboot.img"
	DecompressImg = "lzma_decompress.img"
	KernelImg     = "kernel.img"
	ModDep        = "moddep.lst"
)

// Layout constants of GRUB 2 for i386-pc (include/grub/offsets.h,
// include/grub/i386/pc/boot.h, include/grub/kernel.h).
const (
	sectorSize = 512
	linkAddr   = 0x9000 // where kernel.img is linked and runs

	decompCompressedSize   = 0x08 // in lzma_decompress.img
	decompUncompressedSize = 0x0c
	decompNoRSLength       = 0x14

	mbrKernelSector = 0x5c // boot.img: u64 LBA of the core's first sector
	mbrBootDrive    = 0x64 // boot.img: 0xff = the drive the BIOS booted
	mbrDriveCheck   = 0x66 // boot.img: a jmp that skips the drive check
	mbrBPBStart     = 0x03
	mbrBPBEnd       = 0x5a
	mbrCodeSize     = 440 // boot code before the disk signature

	listSize    = 12         // diskboot.img blocklist entry: u64 start, u16 len, u16 segment
	kernelSeg   = 0x800      // segment diskboot loads the core to
	moduleMagic = 0x676d696d // "mimg"

	objELF    = 0
	objConfig = 2
	objPrefix = 3

	// Limits grub-mkimage enforces for i386-pc: the compressed core must
	// fit below 0x78000 and the unpacked kernel with its bss below 0x68000.
	maxCoreEnd   = 0x78000
	maxKernelEnd = 0x68000
)

// ErrBadInput reports GRUB files or options that cannot make a core image.
var ErrBadInput = errors.New("grubpc: bad input")

// CoreOptions configures Core.
type CoreOptions struct {
	// Modules are embedded with their dependencies (from moddep.lst),
	// dependencies first, the way grub-mkimage orders them. Names are
	// without ".mod".
	Modules []string
	// Prefix is GRUB's $prefix: where normal mode looks for grub.cfg.
	// "(,gpt1)/boot/grub" means the first GPT partition of the drive the
	// BIOS booted from.
	Prefix string
	// Config, if set, is an early config run before normal mode.
	Config []byte
}

// Core builds the core image from the files of grub-pc-bin's
// usr/lib/grub/i386-pc in fsys. Its blocklist is unset: pass the result to
// Embed with the sector it will be written at.
func Core(fsys fs.FS, opts CoreOptions) ([]byte, error) {
	if opts.Prefix == "" {
		return nil, fmt.Errorf("%w: no prefix", ErrBadInput)
	}
	if bytes.IndexByte(opts.Config, 0) >= 0 || strings.IndexByte(opts.Prefix, 0) >= 0 {
		return nil, fmt.Errorf("%w: the prefix and config are C strings and may not hold a NUL byte", ErrBadInput)
	}
	read := func(name string) ([]byte, error) {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("grubpc: %w (is grub-pc-bin's usr/lib/grub/i386-pc complete?)", err)
		}
		return b, nil
	}
	deps, err := read(ModDep)
	if err != nil {
		return nil, err
	}
	mods, err := Resolve(deps, opts.Modules)
	if err != nil {
		return nil, err
	}
	kernelELF, err := read(KernelImg)
	if err != nil {
		return nil, err
	}
	kernel, bss, err := loadKernel(kernelELF)
	if err != nil {
		return nil, err
	}

	// The module area follows the kernel's data: a grub_module_info32
	// header, then each object as a grub_module_header and its body,
	// padded to 4 bytes.
	var area bytes.Buffer
	object := func(typ uint32, body []byte, padded int) {
		binary.Write(&area, binary.LittleEndian, [2]uint32{typ, uint32(8 + padded)})
		area.Write(body)
		area.Write(make([]byte, padded-len(body)))
	}
	for _, m := range mods {
		b, err := read(m + ".mod")
		if err != nil {
			return nil, err
		}
		object(objELF, b, align4(len(b)))
	}
	if opts.Config != nil {
		// A NUL ends the config; grub-mkimage counts it in the size.
		object(objConfig, opts.Config, align4(len(opts.Config)+1))
	}
	object(objPrefix, []byte(opts.Prefix), align4(len(opts.Prefix)+1))
	info := make([]byte, 12)
	binary.LittleEndian.PutUint32(info[0:], moduleMagic)
	binary.LittleEndian.PutUint32(info[4:], 12)
	binary.LittleEndian.PutUint32(info[8:], uint32(12+area.Len()))
	raw := make([]byte, 0, len(kernel)+12+area.Len())
	raw = append(append(append(raw, kernel...), info...), area.Bytes()...)

	if linkAddr+len(kernel)+bss > maxKernelEnd {
		return nil, fmt.Errorf("%w: kernel.img with its bss ends at %#x, above %#x", ErrBadInput, linkAddr+len(kernel)+bss, maxKernelEnd)
	}
	packed, err := compress(raw)
	if err != nil {
		return nil, err
	}

	decomp, err := read(DecompressImg)
	if err != nil {
		return nil, err
	}
	if len(decomp) < decompNoRSLength+2 || len(decomp) > linkAddr-0x8200 {
		return nil, fmt.Errorf("%w: %s is %d bytes, not a GRUB 2 i386-pc decompressor", ErrBadInput, DecompressImg, len(decomp))
	}
	decomp = bytes.Clone(decomp)
	binary.LittleEndian.PutUint32(decomp[decompCompressedSize:], uint32(len(packed)))
	binary.LittleEndian.PutUint32(decomp[decompUncompressedSize:], uint32(len(raw)))
	body := append(decomp, packed...)
	if linkAddr+len(body) > maxCoreEnd {
		return nil, fmt.Errorf("%w: the core image is %d bytes, more than the %d that fit below %#x: embed fewer modules",
			ErrBadInput, len(body), maxCoreEnd-linkAddr, maxCoreEnd)
	}

	disk, err := read(DiskbootImg)
	if err != nil {
		return nil, err
	}
	if len(disk) != sectorSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrBadInput, DiskbootImg, len(disk), sectorSize)
	}
	first := disk[sectorSize-listSize:]
	if seg := binary.LittleEndian.Uint16(first[10:]); seg != kernelSeg+sectorSize>>4 {
		return nil, fmt.Errorf("%w: %s loads to segment %#x, want %#x", ErrBadInput, DiskbootImg, seg, kernelSeg+sectorSize>>4)
	}
	core := append(bytes.Clone(disk), body...)
	// Whole sectors: the BIOS reads sectors, and the padding is zero.
	core = append(core, make([]byte, pad(len(core)))...)
	binary.LittleEndian.PutUint16(core[sectorSize-listSize+8:], uint16(len(core)/sectorSize-1))
	return core, nil
}

// Embed returns core with its blocklist pointing at the sectors after lba,
// for a core written contiguously from sector lba (as grub-bios-setup does
// for a BIOS boot partition).
func Embed(core []byte, lba uint64) ([]byte, error) {
	if len(core) < 2*sectorSize || len(core)%sectorSize != 0 {
		return nil, fmt.Errorf("%w: a core image of %d bytes is not whole sectors", ErrBadInput, len(core))
	}
	n := len(core)/sectorSize - 1
	if n > 0xffff {
		return nil, fmt.Errorf("%w: a core image of %d sectors is too long for one blocklist entry", ErrBadInput, n+1)
	}
	out := bytes.Clone(core)
	first := out[sectorSize-listSize : sectorSize]
	binary.LittleEndian.PutUint64(first[0:], lba+1)
	binary.LittleEndian.PutUint16(first[8:], uint16(n))
	binary.LittleEndian.PutUint16(first[10:], kernelSeg+sectorSize>>4)
	// The entry below is the terminator.
	clear(out[sectorSize-2*listSize : sectorSize-listSize])
	return out, nil
}

// MBR returns the 440 bytes of boot code for the protective MBR: boot.img
// from fsys, set to load the core image at lba from the drive the BIOS
// booted, with the drive-number check off (some BIOSes pass a wrong drive
// for hard disks; grub-bios-setup turns the check off for them too).
func MBR(fsys fs.FS, lba uint64) ([]byte, error) {
	img, err := fs.ReadFile(fsys, BootImg)
	if err != nil {
		return nil, fmt.Errorf("grubpc: %w", err)
	}
	if len(img) != sectorSize || img[510] != 0x55 || img[511] != 0xaa {
		return nil, fmt.Errorf("%w: %s is not a 512-byte boot sector", ErrBadInput, BootImg)
	}
	code := bytes.Clone(img[:mbrCodeSize])
	// A fresh disk has no BIOS parameter block; grub-bios-setup copies
	// whatever the disk had there.
	clear(code[mbrBPBStart:mbrBPBEnd])
	binary.LittleEndian.PutUint64(code[mbrKernelSector:], lba)
	code[mbrBootDrive] = 0xff
	code[mbrDriveCheck], code[mbrDriveCheck+1] = 0x90, 0x90
	return code, nil
}

// Resolve returns mods and everything they depend on according to the
// moddep.lst text deps, dependencies first: grub-mkimage's order, a
// post-order walk that takes each module's dependencies in reverse of the
// order the file lists them (it builds each list by prepending).
func Resolve(deps []byte, mods []string) ([]string, error) {
	table := map[string][]string{}
	for i, line := range strings.Split(string(deps), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, list, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: %s:%d: no colon in %q", ErrBadInput, ModDep, i+1, line)
		}
		table[strings.TrimSpace(name)] = strings.Fields(list)
	}
	var out []string
	seen := map[string]bool{}
	var add func(m string, path []string) error
	add = func(m string, path []string) error {
		if seen[m] {
			return nil
		}
		if _, ok := table[m]; !ok {
			if len(path) > 0 {
				return fmt.Errorf("%w: module %s (needed by %s) is not in %s", ErrBadInput, m, strings.Join(path, " ← "), ModDep)
			}
			return fmt.Errorf("%w: module %s is not in %s", ErrBadInput, m, ModDep)
		}
		// Marked before its dependencies, like grub-mkimage, so a cycle
		// ends instead of recursing forever.
		seen[m] = true
		for _, d := range slices.Backward(table[m]) {
			if err := add(d, append([]string{m}, path...)); err != nil {
				return err
			}
		}
		out = append(out, m)
		return nil
	}
	for _, m := range mods {
		if err := add(strings.TrimSuffix(m, ".mod"), nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loadKernel lays kernel.img out the way grub-mkimage does for a
// non-relocatable target: each allocated PROGBITS section at its link
// address minus linkAddr, code sections first, then data; the image ends
// where the last one placed ends. It returns the image and the size of
// the bss after it.
func loadKernel(b []byte) ([]byte, int, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrBadInput, KernelImg, err)
	}
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 || f.Type != elf.ET_EXEC {
		return nil, 0, fmt.Errorf("%w: %s is %v %v %v, want an i386 ELF32 executable", ErrBadInput, KernelImg, f.Class, f.Machine, f.Type)
	}
	const allocExec = elf.SHF_ALLOC | elf.SHF_EXECINSTR
	isText := func(s *elf.Section) bool { return s.Type == elf.SHT_PROGBITS && s.Flags&allocExec == allocExec }
	isData := func(s *elf.Section) bool { return s.Type == elf.SHT_PROGBITS && s.Flags&allocExec == elf.SHF_ALLOC }
	var placed []*elf.Section
	end := uint64(0)
	for _, pass := range []func(*elf.Section) bool{isText, isData} {
		for _, s := range f.Sections {
			if !pass(s) {
				continue
			}
			if s.Addr < linkAddr {
				return nil, 0, fmt.Errorf("%w: %s: section %s at %#x is below the link address %#x", ErrBadInput, KernelImg, s.Name, s.Addr, linkAddr)
			}
			if len(placed) == 0 && s.Addr != linkAddr {
				return nil, 0, fmt.Errorf("%w: %s: code starts at %#x, not %#x", ErrBadInput, KernelImg, s.Addr, linkAddr)
			}
			placed = append(placed, s)
			end = s.Addr - linkAddr + s.Size
		}
	}
	if len(placed) == 0 {
		return nil, 0, fmt.Errorf("%w: %s has no code", ErrBadInput, KernelImg)
	}
	if end > maxKernelEnd {
		return nil, 0, fmt.Errorf("%w: %s is too large (%d bytes)", ErrBadInput, KernelImg, end)
	}
	img := make([]byte, end)
	for _, s := range placed {
		data, err := s.Data()
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s: section %s: %w", ErrBadInput, KernelImg, s.Name, err)
		}
		off := s.Addr - linkAddr
		if off+uint64(len(data)) > end {
			return nil, 0, fmt.Errorf("%w: %s: section %s overlaps the end of the image", ErrBadInput, KernelImg, s.Name)
		}
		copy(img[off:], data)
	}
	// The bss follows the image; grub-mkimage only checks its size.
	bssEnd := end
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS && s.Flags&elf.SHF_ALLOC != 0 && s.Addr >= linkAddr {
			bssEnd = max(bssEnd, s.Addr-linkAddr+s.Size)
		}
	}
	return img, int(bssEnd - end), nil
}

// compress packs raw as lzma_decompress.img unpacks it: a raw LZMA stream
// (no header, no end marker) with lc=3, lp=0, pb=2, which the decoder has
// built in. The dictionary matches grub-mkimage's 64 KiB.
func compress(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{
		Properties: &lzma.Properties{LC: 3, LP: 0, PB: 2},
		DictCap:    1 << 16,
		Size:       int64(len(raw)),
	}.NewWriter(&buf)
	if err != nil {
		return nil, fmt.Errorf("grubpc: lzma: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return nil, fmt.Errorf("grubpc: lzma: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("grubpc: lzma: %w", err)
	}
	// The classic .lzma header: properties (1), dictionary (4), size (8).
	const header = 13
	return buf.Bytes()[header:], nil
}

func align4(n int) int { return (n + 3) &^ 3 }

func pad(n int) int { return (sectorSize - n%sectorSize) % sectorSize }
