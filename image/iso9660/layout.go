package iso9660

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"byzantium/modules/entry"
)

// recKind tells which directory record is being built.
type recKind int

const (
	recChild  recKind = iota
	recSelf           // "."
	recParent         // ".."
)

// maxSection is the largest extent of a multi-extent file: the biggest
// multiple of the sector size a 32-bit data length holds.
const maxSection = 0xFFFFF800

// tree is the image's directory structure, in path table order.
type tree struct {
	dirs []*node
}

// finish lays out and writes everything after the file data, then the
// front of the image.
func (w *Writer) finish() error {
	if err := w.addCatalog(); err != nil {
		return err
	}
	t, err := w.buildTree()
	if err != nil {
		return err
	}
	boot, err := w.bootFiles()
	if err != nil {
		return err
	}

	// Pass 1: directory sizes, which depend only on names and entries, not
	// on where continuation areas land.
	scratch := &ceWriter{}
	for _, d := range t.dirs {
		d.dirSize = uint32(len(w.dirBytes(d, scratch)))
	}
	lba := uint32(w.o.pos / sectorSize)
	for _, d := range t.dirs {
		d.dirLBA = lba
		lba += d.dirSize / sectorSize
	}
	ptSize := pathTableSize(t.dirs)
	ptSectors := (ptSize + sectorSize - 1) / sectorSize
	ptL, ptM := lba, lba+ptSectors
	ce := &ceWriter{lba: ptM + ptSectors}

	// Pass 2: the real bytes. Their hash (names, sizes, places, times of
	// everything) seeds the GPT GUIDs, so different trees get different
	// ones and the same tree the same.
	sum := sha256.New()
	for _, d := range t.dirs {
		b := w.dirBytes(d, ce)
		sum.Write(b)
		if err := w.o.write(b); err != nil {
			return err
		}
	}
	sum.Sum(w.treeSum[:0])
	for _, bigEndian := range []bool{false, true} {
		if err := w.o.write(pathTable(t.dirs, bigEndian)); err != nil {
			return err
		}
		if err := w.o.pad(); err != nil {
			return err
		}
	}
	if err := w.o.write(ce.buf); err != nil {
		return err
	}
	if err := w.o.pad(); err != nil {
		return err
	}

	size := w.o.pos
	if w.opts.Hybrid {
		size = hybridSize(size)
	}
	if err := w.o.finish(size); err != nil {
		return err
	}
	pvd := w.pvd(uint32(size/sectorSize), ptSize, ptL, ptM)
	if err := w.o.writeAt(pvd, pvdLBA*sectorSize); err != nil {
		return err
	}
	term := volDesc(255)
	termLBA := int64(pvdLBA + 1)
	if boot != nil {
		termLBA = bootRecLBA + 1
		if err := w.writeBoot(boot, size); err != nil {
			return err
		}
	}
	if err := w.o.writeAt(term, termLBA*sectorSize); err != nil {
		return err
	}
	if w.opts.Hybrid {
		if err := w.writeHybrid(boot, size); err != nil {
			return err
		}
	}
	return w.o.flush()
}

// addCatalog puts the boot catalog in the tree where BIOSBoot.CatalogPath
// asks; its sector is fixed, so it is just a directory record.
func (w *Writer) addCatalog() error {
	b := w.opts.BIOSBoot
	if b == nil || b.CatalogPath == "" {
		return nil
	}
	if w.tree.Lookup(b.CatalogPath) != nil {
		return fmt.Errorf("iso9660: %s: the boot catalog goes there, but the stream put a directory there: %w", b.CatalogPath, entry.ErrBadHeader)
	}
	n := &node{mode: 0o444, mtime: w.opts.ModTime.Unix(), lba: catalogLBA, size: sectorSize}
	n.Type = entry.TypeRegular
	_, err := w.tree.Add(b.CatalogPath, n)
	return err
}

// resolve follows hardlinks from n to the node holding the
// inode.
func (w *Writer) resolve(n *node) (*node, error) {
	p := n.Path
	for range 64 {
		if n.Type != entry.TypeHardlink {
			if n.Type == entry.TypeDir {
				return nil, fmt.Errorf("iso9660: %s: hardlink to directory %s: %w", p, n.Name, entry.ErrUnsupported)
			}
			return n, nil
		}
		t := w.tree.Lookup(n.link)
		if t == nil {
			return nil, fmt.Errorf("iso9660: %s: hardlink to %s, which is not in the stream: %w", p, n.link, entry.ErrBadHeader)
		}
		n = t
	}
	return nil, fmt.Errorf("iso9660: %s: hardlinks loop: %w", p, entry.ErrBadHeader)
}

// buildTree assigns ISO identifiers, path table numbers, inode numbers and
// link counts, walking directories breadth first in identifier order, which
// is the order the path table needs.
func (w *Writer) buildTree() (*tree, error) {
	root := w.tree.Root()
	t := &tree{dirs: []*node{root}}
	root.parent, root.dirNum = root, 1
	ino := uint32(0)
	nextIno := func(n *node) {
		if n.ino == 0 {
			ino++
			n.ino = ino
		}
	}
	for i := 0; i < len(t.dirs); i++ {
		d := t.dirs[i]
		nextIno(d)
		assignIDs(d, w.tree.Sort(d))
		subdirs := uint32(0)
		for _, k := range d.sorted {
			if k.Type == entry.TypeDir {
				if len(t.dirs) >= 0xFFFF {
					return nil, fmt.Errorf("iso9660: %s: more than 65535 directories do not fit in the path table: %w", k.Path, entry.ErrUnsupported)
				}
				subdirs++
				k.parent = d
				t.dirs = append(t.dirs, k)
				k.dirNum = uint16(len(t.dirs))
				continue
			}
			r, err := w.resolve(k)
			if err != nil {
				return nil, err
			}
			k.target = r
			nextIno(r)
			r.nlink++
		}
		d.nlink = 2 + subdirs
	}
	return t, nil
}

// dirBytes renders a directory's extent: ".", "..", then every child, no
// record crossing a sector boundary, padded to whole sectors.
func (w *Writer) dirBytes(d *node, ce *ceWriter) []byte {
	var b []byte
	add := func(rec []byte) {
		if r := len(b) % sectorSize; r+len(rec) > sectorSize {
			b = append(b, make([]byte, sectorSize-r)...)
		}
		b = append(b, rec...)
	}
	isRoot := d == w.tree.Root()
	add(record([]byte{0}, d.dirLBA, d.dirSize, 0x02, d.mtime, rrEntries(d, "", recSelf, isRoot), ce))
	p := d.parent
	add(record([]byte{1}, p.dirLBA, p.dirSize, 0x02, p.mtime, rrEntries(p, "", recParent, false), ce))
	for _, k := range d.sorted {
		id := []byte(k.isoID)
		if k.Type == entry.TypeDir {
			add(record(id, k.dirLBA, k.dirSize, 0x02, k.mtime, rrEntries(k, k.Name, recChild, false), ce))
			continue
		}
		r := k.target
		es := rrEntries(r, k.Name, recChild, false)
		if r.Type != entry.TypeRegular {
			add(record(id, 0, 0, 0, r.mtime, es, ce))
			continue
		}
		// A file of 4 GiB or more is a run of sections, all but the last
		// flagged multi-extent; each carries the Rock Ridge entries, as
		// libisofs writes them.
		lba, left := r.lba, r.size
		for left > maxSection {
			add(record(id, lba, maxSection, 0x80, r.mtime, es, ce))
			lba += maxSection / sectorSize
			left -= maxSection
		}
		if r.size == 0 {
			lba = 0
		}
		add(record(id, lba, uint32(left), 0, r.mtime, es, ce))
	}
	if r := len(b) % sectorSize; r != 0 {
		b = append(b, make([]byte, sectorSize-r)...)
	}
	return b
}

// record builds one directory record (ECMA-119 9.1) with as many system use
// entries as fit in its 255 bytes.
func record(id []byte, lba, size uint32, flags byte, mtime int64, es [][]byte, ce *ceWriter) []byte {
	n := 33 + len(id)
	if n%2 == 1 {
		n++
	}
	su := fitSU(es, 255-n-1, ce) // -1 keeps room to pad to an even length
	b := make([]byte, n, n+len(su)+1)
	b = append(b, su...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	b[0] = byte(len(b))
	both32(b[2:], lba)
	both32(b[10:], size)
	recTime(b[18:], mtime)
	b[25] = flags
	both16(b[28:], 1)
	b[32] = byte(len(id))
	copy(b[33:], id)
	return b
}

func pathTableSize(dirs []*node) uint32 {
	n := uint32(0)
	for _, d := range dirs {
		l := uint32(len(d.isoID))
		if d.parent == d {
			l = 1
		}
		n += 8 + l + l%2
	}
	return n
}

// pathTable renders the L (little-endian) or M (big-endian) path table.
func pathTable(dirs []*node, bigEndian bool) []byte {
	var order binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	var b []byte
	for _, d := range dirs {
		id := []byte(d.isoID)
		if d.parent == d {
			id = []byte{0}
		}
		rec := make([]byte, 8+len(id)+len(id)%2)
		rec[0] = byte(len(id))
		order.PutUint32(rec[2:], d.dirLBA)
		order.PutUint16(rec[6:], d.parent.dirNum)
		copy(rec[8:], id)
		b = append(b, rec...)
	}
	return b
}
