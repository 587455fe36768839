// Package iso9660 writes bootable ISO 9660 images with Rock Ridge from an
// entry stream: El Torito boot records for BIOS (isolinux, with a boot info
// table) and UEFI (a FAT image in the tree), and an isohybrid system area
// (MBR and GPT) so the same image boots from a USB stick.
//
// The Writer has archive/tar's shape. File data is written as it arrives,
// in sectors after a fixed reserved area; directories, path tables and Rock
// Ridge continuation areas follow at Close, which then seeks back to fill in
// the volume descriptors, the boot catalog, the boot info table and the
// system area. Memory grows with the number of entries, never with their
// size. Files of 4 GiB and more are split into several extents (ISO 9660
// level 3). Joliet is not written: Rock Ridge carries the real names.
package iso9660

import (
	"errors"
	"fmt"
	"io"
	"time"

	"byzantium/modules/entry"
)

// Errors callers branch on.
var (
	ErrBadOption       = errors.New("iso9660: bad writer option")
	ErrWriteAfterClose = errors.New("iso9660: write after close")
	ErrWriteTooLong    = errors.New("iso9660: write past the size in the header")
	// ErrBoot reports a boot file that is missing from the stream or unfit
	// for its role; the message names the path.
	ErrBoot = errors.New("iso9660: bad boot file")
)

// Options configures a Writer. The zero value writes a plain, non-bootable
// image with volume ID "CDROM" and every implied time at the Unix epoch.
type Options struct {
	// VolumeID is the volume identifier, at most 32 printable ASCII
	// characters; "" means "CDROM".
	VolumeID string
	// ModTime is the creation time in the volume descriptor and the mtime
	// of directories and boot catalog the stream implies but never names.
	// Take it from SOURCE_DATE_EPOCH: nothing in the image comes from the
	// clock. The zero Time means the Unix epoch.
	ModTime time.Time
	// BIOSBoot, when set, makes the image boot on BIOS through El Torito
	// ("no emulation", as isolinux wants).
	BIOSBoot *BIOSBoot
	// EFIBoot, when set, adds a UEFI El Torito entry.
	EFIBoot *EFIBoot
	// Hybrid writes an isohybrid system area (MBR with the boot code in
	// MBRTemplate, and a GPT) so the image also boots as a disk. The MBR
	// boot code loads BIOSBoot.Path; without BIOSBoot only UEFI can boot
	// the disk.
	Hybrid bool
	// MBRTemplate is the 432-byte isohybrid MBR boot code, isohdpfx.bin
	// from Debian's isolinux package. Required when Hybrid is set.
	MBRTemplate []byte
}

// BIOSBoot names the BIOS boot image.
type BIOSBoot struct {
	// Path is the boot image in the tree: "boot/isolinux/isolinux.bin".
	Path string
	// CatalogPath, if not empty, makes the boot catalog visible in the tree
	// under that path ("boot/isolinux/boot.cat"). The stream must not have
	// an entry there.
	CatalogPath string
	// LoadSize is the number of 512-byte sectors the BIOS loads; 0 means 4,
	// what isolinux expects.
	LoadSize uint16
	// BootInfoTable patches the 56-byte boot info table at offset 8 of the
	// boot image, which isolinux needs to find itself.
	BootInfoTable bool
}

// EFIBoot names the UEFI boot image.
type EFIBoot struct {
	// Path is a FAT image (an EFI system partition) in the tree:
	// "boot/efi.img".
	Path string
}

// Sector layout of the reserved area, in 2048-byte sectors. It is fixed so
// that file data can start streaming before anything else is known.
const (
	sectorSize   = 2048
	pvdLBA       = 16
	bootRecLBA   = 17
	catalogLBA   = 19
	dataStartLBA = 20
)

// Writer writes an ISO 9660 image from an entry stream. Entries may come in
// any order; a later entry for a path replaces an earlier one (the data of
// the earlier file stays in the image, unreferenced).
//
// Errors other than a refused header or an over-long Write are sticky; after
// Close every call returns ErrWriteAfterClose.
type Writer struct {
	o    *out
	opts Options
	tree *entry.Tree[*node]

	// The body being written.
	cur     *node
	curPath string
	remain  int64
	sec     []byte  // the partial sector of cur's body
	sum     *uint32 // boot info table checksum of cur, if cur is the BIOS boot file
	off     int64   // bytes of cur emitted, in whole sectors

	treeSum [32]byte // hash of the directory extents, set at Close

	err    error
	closed bool
}

// node is one name in the tree. The ISO layout fields are filled in at
// Close.
type node struct {
	entry.Node[*node]
	mode         uint32
	uid, gid     uint32
	mtime        int64 // Unix seconds
	link         string
	major, minor uint32
	lba          uint32 // first sector of a regular file's data
	size         int64
	bootSum      uint32 // boot info table checksum, for the BIOS boot file
	hasSum       bool

	// Filled in at Close.
	target  *node // the node holding the data, for hardlinks
	isoID   string
	sorted  []*node // children in ISO identifier order
	ino     uint32
	nlink   uint32
	dirNum  uint16 // path table number of a directory
	parent  *node
	dirLBA  uint32
	dirSize uint32
}

// NewWriter returns a Writer that writes an image to w, starting at w's
// current offset. If w can be truncated (an *os.File), everything after
// that offset is discarded first and runs of zero sectors become holes.
func NewWriter(w io.WriteSeeker, opts Options) (*Writer, error) {
	if err := checkOptions(&opts); err != nil {
		return nil, err
	}
	o, err := newOut(w)
	if err != nil {
		return nil, err
	}
	// The reserved area is written as zeros now and filled in at Close.
	if err := o.write(make([]byte, dataStartLBA*sectorSize)); err != nil {
		return nil, err
	}
	newDir := func() *node { return &node{mode: 0o755, mtime: opts.ModTime.Unix()} }
	iw := &Writer{o: o, opts: opts, tree: entry.NewTree("iso9660", newDir(), newDir), sec: make([]byte, 0, sectorSize)}
	iw.tree.MaxName = maxNameLen
	return iw, nil
}

// checkOptions resolves defaults and refuses what cannot be written.
func checkOptions(opts *Options) error {
	if opts.ModTime.IsZero() {
		opts.ModTime = time.Unix(0, 0)
	}
	if opts.VolumeID == "" {
		opts.VolumeID = "CDROM"
	}
	if len(opts.VolumeID) > 32 {
		return fmt.Errorf("%w: volume ID %q is longer than 32 bytes", ErrBadOption, opts.VolumeID)
	}
	for _, c := range []byte(opts.VolumeID) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: volume ID %q has a byte outside printable ASCII", ErrBadOption, opts.VolumeID)
		}
	}
	if b := opts.BIOSBoot; b != nil {
		if b.Path == "" || entry.Clean(b.Path) != b.Path || b.Path == "." {
			return fmt.Errorf("%w: BIOS boot path %q is not a clean relative path", ErrBadOption, b.Path)
		}
		if b.CatalogPath != "" && (entry.Clean(b.CatalogPath) != b.CatalogPath || b.CatalogPath == "." || b.CatalogPath == b.Path) {
			return fmt.Errorf("%w: boot catalog path %q is not a clean relative path of its own", ErrBadOption, b.CatalogPath)
		}
		if b.LoadSize == 0 {
			b.LoadSize = 4
		}
	}
	if e := opts.EFIBoot; e != nil && (e.Path == "" || entry.Clean(e.Path) != e.Path || e.Path == ".") {
		return fmt.Errorf("%w: EFI boot path %q is not a clean relative path", ErrBadOption, e.Path)
	}
	if opts.Hybrid && len(opts.MBRTemplate) != 432 {
		return fmt.Errorf("%w: hybrid needs the 432-byte isohdpfx.bin as MBRTemplate, got %d bytes", ErrBadOption, len(opts.MBRTemplate))
	}
	return nil
}

// WriteHeader starts a new entry. A regular file's body follows through
// Write. A header for a path already written replaces it; when both are
// directories the children stay and only the metadata changes.
func (w *Writer) WriteHeader(h *entry.Header) error {
	if w.closed {
		return ErrWriteAfterClose
	}
	if w.err != nil {
		return w.err
	}
	if err := w.endFile(); err != nil {
		return w.fail(err)
	}
	if err := h.Validate(); err != nil {
		return fmt.Errorf("iso9660: %w", err)
	}
	n := &node{mode: h.Mode, uid: h.UID, gid: h.GID, mtime: h.ModTime.Unix()}
	n.Type = h.Type
	if h.ModTime.IsZero() {
		n.mtime = 0
	}
	switch h.Type {
	case entry.TypeSymlink, entry.TypeHardlink:
		n.link = h.Linkname
	case entry.TypeCharDev, entry.TypeBlockDev:
		n.major, n.minor = h.Devmajor, h.Devminor
	}
	if b := w.opts.BIOSBoot; b != nil && h.Path == b.CatalogPath {
		return fmt.Errorf("iso9660: %s: the boot catalog goes there: %w", h.Path, entry.ErrBadHeader)
	}
	got, err := w.tree.Add(h.Path, n)
	if err != nil {
		return err
	}
	if got != n {
		// A directory written again (the root too) keeps its children;
		// only its metadata changes.
		got.mode, got.uid, got.gid, got.mtime = n.mode, n.uid, n.gid, n.mtime
		return nil
	}
	if n.Type == entry.TypeRegular {
		n.size = h.Size
		if h.Size > 0 {
			n.lba = uint32(w.o.pos / sectorSize)
			w.cur, w.curPath, w.remain, w.off = n, h.Path, h.Size, 0
			if b := w.opts.BIOSBoot; b != nil && h.Path == b.Path {
				n.hasSum = true
				w.sum = &n.bootSum
			}
		}
	}
	return nil
}

// maxNameLen is the longest name Rock Ridge readers (Linux, libisofs)
// accept.
const maxNameLen = 255

// Write writes the body of the current regular file. It refuses bytes past
// the size in the header with ErrWriteTooLong.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrWriteAfterClose
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.cur == nil {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("%w: no regular file body expected", ErrWriteTooLong)
	}
	path := w.curPath
	over := false
	if int64(len(p)) > w.remain {
		p, over = p[:w.remain], true
	}
	n := len(p)
	for len(p) > 0 {
		c := copy(w.sec[len(w.sec):sectorSize], p)
		w.sec = w.sec[:len(w.sec)+c]
		p = p[c:]
		w.remain -= int64(c)
		if len(w.sec) == sectorSize {
			if err := w.emitSector(); err != nil {
				return n - len(p), w.fail(err)
			}
		}
	}
	if over {
		return n, fmt.Errorf("%w: %s", ErrWriteTooLong, path)
	}
	return n, nil
}

// emitSector writes the current body sector, zero-padded, adding it to the
// boot info table checksum if this is the BIOS boot file.
func (w *Writer) emitSector() error {
	s := w.sec[:sectorSize]
	clear(s[len(w.sec):])
	if w.sum != nil {
		*w.sum += bootInfoSum(s, w.off)
	}
	w.off += sectorSize
	w.sec = w.sec[:0]
	return w.o.sector(s)
}

// endFile finishes the current body, failing if it was short.
func (w *Writer) endFile() error {
	if w.cur == nil {
		return nil
	}
	if w.remain > 0 {
		return fmt.Errorf("iso9660: %s: body ended %d bytes short of its size: %w", w.curPath, w.remain, io.ErrUnexpectedEOF)
	}
	var err error
	if len(w.sec) > 0 {
		err = w.emitSector()
	}
	w.cur, w.curPath, w.sum = nil, "", nil
	return err
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// Close finishes the image: it writes the directories, path tables and
// continuation areas after the file data, then the volume descriptors, boot
// catalog and system area at the front. The Writer is unusable afterwards.
func (w *Writer) Close() error {
	if w.closed {
		return ErrWriteAfterClose
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	err := w.endFile()
	if err == nil {
		err = w.finish()
	}
	w.err = err
	return err
}
