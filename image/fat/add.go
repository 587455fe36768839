package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// ErrExists reports a file AddFile would have to replace.
var ErrExists = errors.New("fat: file exists")

// Volume is an existing FAT32 file system opened for adding files to it
// in place (Writer makes whole file systems; this edits one): a save.dat
// dropped onto a USB image, a module added to a stick.
type Volume struct {
	rw        ReadWriterAt
	off       int64 // of the file system in rw
	spc       uint32
	reserved  uint32
	numFATs   uint32
	fatSecs   uint32
	root      uint32
	clusters  uint32 // data clusters; valid numbers are 2..clusters+1
	fat       []uint32
	dirty     bool
	fsinfoSec uint32
	// Sparse leaves whole zero clusters of added files unwritten: right
	// for a freshly made image (its free clusters read as zeros), wrong
	// for a used stick.
	Sparse bool
}

// ReadWriterAt is what a Volume edits.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// OpenVolume reads the FAT32 file system at offset in rw.
func OpenVolume(rw ReadWriterAt, offset int64) (*Volume, error) {
	bs := make([]byte, sectorSize)
	if _, err := rw.ReadAt(bs, offset); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	le16 := func(o int) uint32 { return uint32(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) uint32 { return binary.LittleEndian.Uint32(bs[o:]) }
	if bs[510] != 0x55 || bs[511] != 0xaa || le16(11) != sectorSize || string(bs[82:87]) != "FAT32" {
		return nil, fmt.Errorf("fat: no FAT32 file system with 512-byte sectors at offset %d", offset)
	}
	v := &Volume{rw: rw, off: offset, spc: uint32(bs[13]), reserved: le16(14), numFATs: uint32(bs[16]),
		fatSecs: le32(36), root: le32(44), fsinfoSec: le16(48)}
	total := le32(32)
	if v.spc == 0 || v.numFATs == 0 || v.fatSecs == 0 || total <= v.reserved+v.numFATs*v.fatSecs {
		return nil, fmt.Errorf("fat: inconsistent boot sector at offset %d", offset)
	}
	v.clusters = (total - v.reserved - v.numFATs*v.fatSecs) / v.spc
	// The volume's last sector must be there: what a boot sector claims
	// bounds the FAT read below, and a made-up one must not have it
	// allocate gigabytes.
	if _, err := rw.ReadAt(bs[:1], offset+int64(total)*sectorSize-1); err != nil {
		return nil, fmt.Errorf("fat: the boot sector at offset %d claims %d sectors, past the end of the disk: %w", offset, total, err)
	}
	raw := make([]byte, min(int64(v.fatSecs)*sectorSize, (int64(v.clusters)+2)*4+sectorSize))
	if _, err := rw.ReadAt(raw, offset+int64(v.reserved)*sectorSize); err != nil {
		return nil, fmt.Errorf("fat: reading the FAT: %w", err)
	}
	n := min(uint32(len(raw)/4), v.clusters+2)
	v.fat = make([]uint32, n)
	// Entries keep their reserved top four bits; next() masks them.
	for i := range v.fat {
		v.fat[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return v, nil
}

func (v *Volume) clusterSize() int64 { return int64(v.spc) * sectorSize }

func (v *Volume) clusterOffset(c uint32) int64 {
	data := int64(v.reserved+v.numFATs*v.fatSecs) * sectorSize
	return v.off + data + int64(c-2)*v.clusterSize()
}

// chain returns the clusters of the chain starting at c.
func (v *Volume) chain(c uint32) ([]uint32, error) {
	var out []uint32
	for c >= 2 && c < eocMin {
		if int(c) >= len(v.fat) || len(out) > len(v.fat) {
			return nil, fmt.Errorf("fat: broken cluster chain at %d", c)
		}
		out = append(out, c)
		c = v.next(c)
	}
	return out, nil
}

// next is the FAT entry of c without its reserved bits.
func (v *Volume) next(c uint32) uint32 { return v.fat[c] & 0x0fffffff }

// set writes val into c's entry, keeping the reserved bits.
func (v *Volume) set(c, val uint32) {
	v.fat[c] = v.fat[c]&0xf0000000 | val
	v.dirty = true
}

const eocMin = 0x0ffffff8

// alloc takes n free clusters, as contiguous as it finds them, chained.
func (v *Volume) alloc(n uint32) ([]uint32, error) {
	var out []uint32
	for c := uint32(2); c < uint32(len(v.fat)) && uint32(len(out)) < n; c++ {
		if v.next(c) == 0 {
			out = append(out, c)
		}
	}
	if uint32(len(out)) < n {
		return nil, fmt.Errorf("fat: %d clusters needed, %d free: %w", n, len(out), ErrNoSpace)
	}
	for i, c := range out {
		if i+1 < len(out) {
			v.set(c, out[i+1])
		} else {
			v.set(c, 0x0fffffff)
		}
	}
	return out, nil
}

// dirEntry is one name found in a directory.
type dirEntry struct {
	long, short string
	attr        byte
	cluster     uint32
	size        uint32
	mtime       time.Time
	caseBits    byte // byte 12: 0x08 base, 0x10 extension in lower case (Windows NT)
}

// readDir returns a directory's entries and its raw bytes.
func (v *Volume) readDir(first uint32) ([]dirEntry, []byte, []uint32, error) {
	cl, err := v.chain(first)
	if err != nil {
		return nil, nil, nil, err
	}
	if int64(len(cl))*v.clusterSize() > (maxDirEntries+1)*dirEntrySize+v.clusterSize() {
		return nil, nil, nil, fmt.Errorf("fat: a directory of %d clusters, more than the %d entries FAT allows", len(cl), maxDirEntries)
	}
	raw := make([]byte, int64(len(cl))*v.clusterSize())
	for i, c := range cl {
		if _, err := v.rw.ReadAt(raw[int64(i)*v.clusterSize():int64(i+1)*v.clusterSize()], v.clusterOffset(c)); err != nil {
			return nil, nil, nil, fmt.Errorf("fat: reading a directory: %w", err)
		}
	}
	return parseDir(raw), raw, cl, nil
}

// parseDir decodes a directory's entries. A long name counts only when
// its parts carry the checksum of the short entry they precede: a driver
// that knows no long names (DOS) may have renamed or replaced the short
// entry since, and its parts are then orphans.
func parseDir(raw []byte) []dirEntry {
	var out []dirEntry
	var lfn []uint16
	var lfnSum byte
	for o := 0; o+dirEntrySize <= len(raw); o += dirEntrySize {
		e := raw[o : o+dirEntrySize]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xe5 {
			lfn = nil
			continue
		}
		if e[11]&0x3f == attrLFN { // a long-name part, last part first
			if e[0]&0x40 != 0 {
				lfn = nil // the first part of a new name
			}
			var part []uint16
			for _, off := range lfnOffsets {
				part = append(part, binary.LittleEndian.Uint16(e[off:]))
			}
			lfn, lfnSum = append(part, lfn...), e[13]
			continue
		}
		long := ""
		if lfn != nil && lfnSum == shortChecksum(string(e[:11])) {
			if i := indexU16(lfn, 0); i >= 0 {
				lfn = lfn[:i]
			}
			long = string(utf16.Decode(lfn))
		}
		lfn = nil
		c := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
		out = append(out, dirEntry{long: long, short: string(e[:11]), attr: e[11], cluster: c,
			size: binary.LittleEndian.Uint32(e[28:]), caseBits: e[12],
			mtime: fatDate(binary.LittleEndian.Uint16(e[24:]), binary.LittleEndian.Uint16(e[22:]))})
	}
	return out
}

func indexU16(s []uint16, x uint16) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

func (d dirEntry) matches(name string) bool {
	if d.long != "" && foldKey(d.long) == foldKey(name) {
		return true
	}
	return exactShort(name) != "" && exactShort(name) == d.short
}

// addEntry writes the entries of name (long-name parts and short entry)
// into directory dir, growing it by a cluster if it is full.
func (v *Volume) addEntry(dir uint32, name string, attr byte, t time.Time, cluster, size uint32) error {
	ents, raw, cl, err := v.readDir(dir)
	if err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, e := range ents {
		if e.matches(name) {
			return fmt.Errorf("%w: %s", ErrExists, name)
		}
		taken[e.short] = true
	}
	short := exactShort(name)
	if short == "" || taken[short] {
		base, ext := basis(name)
		for k := 1; ; k++ {
			tail := "~" + strconv.Itoa(k)
			if len(tail) > 7 {
				return fmt.Errorf("fat: %s: no free short name: %w", name, ErrNoSpace)
			}
			short = pad(base[:min(len(base), 8-len(tail))]+tail, 8) + pad(ext, 3)
			if !taken[short] {
				break
			}
		}
	}
	var b []byte
	if needsLFN(name, short) {
		b = lfnEntries(name, shortChecksum(short))
	}
	b = append(b, dirent(short, attr, t, cluster, size)...)
	// The first free slot: where the 0x00 end marker is.
	end := 0
	for end < len(raw) && raw[end] != 0 {
		end += dirEntrySize
	}
	for end+len(b) > len(raw) {
		more, err := v.alloc(1)
		if err != nil {
			return err
		}
		v.set(cl[len(cl)-1], more[0])
		cl = append(cl, more[0])
		raw = append(raw, make([]byte, v.clusterSize())...)
	}
	copy(raw[end:], b)
	for i, c := range cl {
		if _, err := v.rw.WriteAt(raw[int64(i)*v.clusterSize():int64(i+1)*v.clusterSize()], v.clusterOffset(c)); err != nil {
			return fmt.Errorf("fat: writing a directory: %w", err)
		}
	}
	return nil
}

// mkdirAll returns the first cluster of directory p (slash-separated,
// relative to the root), creating the missing ones.
func (v *Volume) mkdirAll(p string, t time.Time) (uint32, error) {
	cur := v.root
	for _, name := range strings.Split(p, "/") {
		if name == "" || name == "." {
			continue
		}
		if err := checkName(name, p); err != nil {
			return 0, err
		}
		ents, _, _, err := v.readDir(cur)
		if err != nil {
			return 0, err
		}
		found := false
		for _, e := range ents {
			if e.matches(name) {
				if e.attr&attrDir == 0 {
					return 0, fmt.Errorf("fat: %s: %s is a file, not a folder", p, name)
				}
				cur, found = e.cluster, true
				break
			}
		}
		if found {
			continue
		}
		c, err := v.alloc(1)
		if err != nil {
			return 0, err
		}
		blk := make([]byte, v.clusterSize())
		copy(blk, dirent(".          ", attrDir, t, c[0], 0))
		parent := cur
		if parent == v.root {
			parent = 0 // ".." of a root child points at cluster 0
		}
		copy(blk[dirEntrySize:], dirent("..         ", attrDir, t, parent, 0))
		if _, err := v.rw.WriteAt(blk, v.clusterOffset(c[0])); err != nil {
			return 0, fmt.Errorf("fat: %w", err)
		}
		if err := v.addEntry(cur, name, attrDir, t, c[0], 0); err != nil {
			return 0, err
		}
		cur = c[0]
	}
	return cur, nil
}

// AddFile writes a new file of size bytes, read from r, at p (parent
// folders are made as needed). An existing file is never replaced
// (ErrExists). The file's data is written before the directory entry and
// the FATs that make it visible; if anything fails after a folder was
// made, the FATs are still written so the folders are consistent, and
// the file's clusters are freed.
func (v *Volume) AddFile(p string, size int64, r io.Reader, t time.Time) (err error) {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" || size < 0 || size > 0xffffffff {
		return fmt.Errorf("fat: cannot add %q of %d bytes", p, size)
	}
	dir, name := path.Split(p)
	if err := checkName(name, p); err != nil {
		return err
	}
	// Check the space first, so a file that does not fit changes
	// nothing: its clusters, a cluster for each folder that may be
	// made, and one for each directory that may grow.
	n := uint32((size + v.clusterSize() - 1) / v.clusterSize())
	parts := uint32(strings.Count(dir, "/"))
	if free := v.free(); free < n+2*parts+1 {
		return fmt.Errorf("fat: %s needs %d clusters, %d are free: %w", p, n+2*parts+1, free, ErrNoSpace)
	}
	var cl []uint32
	defer func() {
		if err != nil && v.dirty {
			for _, c := range cl {
				v.set(c, 0)
			}
			err = errors.Join(err, v.Flush())
		}
	}()
	d, err := v.mkdirAll(strings.TrimSuffix(dir, "/"), t)
	if err != nil {
		return err
	}
	ents, _, _, err := v.readDir(d)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.matches(name) {
			return fmt.Errorf("%w: %s", ErrExists, p)
		}
	}
	if n > 0 {
		if cl, err = v.alloc(n); err != nil {
			return err
		}
	}
	buf := make([]byte, v.clusterSize())
	left := size
	for _, c := range cl {
		m := min(left, v.clusterSize())
		clear(buf)
		if _, err := io.ReadFull(r, buf[:m]); err != nil {
			return fmt.Errorf("fat: %s: reading its data: %w", p, err)
		}
		// Whole zero clusters stay unwritten: the image stays sparse, and
		// a fresh FAT partition reads as zeros there (a stick may not;
		// Sparse says which).
		if !v.Sparse || !bytes.Equal(buf, make([]byte, len(buf))) {
			if _, err := v.rw.WriteAt(buf, v.clusterOffset(c)); err != nil {
				return fmt.Errorf("fat: %s: %w", p, err)
			}
		}
		left -= m
	}
	first := uint32(0)
	if len(cl) > 0 {
		first = cl[0]
	}
	if err := v.addEntry(d, name, attrArchive, t, first, uint32(size)); err != nil {
		return err
	}
	return v.Flush()
}

// free counts the free clusters.
func (v *Volume) free() uint32 {
	n := uint32(0)
	for c := uint32(2); c < uint32(len(v.fat)); c++ {
		if v.next(c) == 0 {
			n++
		}
	}
	return n
}

// Flush writes the FATs and the FSInfo sector's free count.
func (v *Volume) Flush() error {
	if !v.dirty {
		return nil
	}
	raw := make([]byte, int64(v.fatSecs)*sectorSize)
	for i, e := range v.fat {
		binary.LittleEndian.PutUint32(raw[4*i:], e)
	}
	for k := uint32(0); k < v.numFATs; k++ {
		if _, err := v.rw.WriteAt(raw, v.off+int64(v.reserved+k*v.fatSecs)*sectorSize); err != nil {
			return fmt.Errorf("fat: writing FAT %d: %w", k, err)
		}
	}
	if v.fsinfoSec != 0 && v.fsinfoSec != 0xffff {
		next := uint32(0xffffffff)
		for c := uint32(2); c < uint32(len(v.fat)); c++ {
			if v.next(c) == 0 {
				next = c
				break
			}
		}
		var b [8]byte
		binary.LittleEndian.PutUint32(b[0:], v.free())
		binary.LittleEndian.PutUint32(b[4:], next)
		if _, err := v.rw.WriteAt(b[:], v.off+int64(v.fsinfoSec)*sectorSize+488); err != nil {
			return fmt.Errorf("fat: writing FSInfo: %w", err)
		}
	}
	v.dirty = false
	return nil
}
