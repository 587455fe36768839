package squashfs

import (
	"fmt"
	"math"

	"byzantium/modules/entry"
)

// writeMaxLinkDepth bounds chains of hardlinks naming hardlinks.
const writeMaxLinkDepth = 64

// writeTypes maps an entry type to its basic and extended inode types.
var writeTypes = map[entry.Type]struct{ basic, ext uint16 }{
	entry.TypeDir:      {inodeBasicDir, inodeExtDir},
	entry.TypeRegular:  {inodeBasicFile, inodeExtFile},
	entry.TypeSymlink:  {inodeBasicSymlink, inodeExtSymlink},
	entry.TypeBlockDev: {inodeBasicBlock, inodeExtBlock},
	entry.TypeCharDev:  {inodeBasicChar, inodeExtChar},
	entry.TypeFIFO:     {inodeBasicFIFO, inodeExtFIFO},
	entry.TypeSocket:   {inodeBasicSocket, inodeExtSocket},
}

// inode returns the node that holds n's inode: n itself, or the target of
// the hardlink n.
func (n *wnode) inode() *wnode {
	if n.target != nil {
		return n.target
	}
	return n
}

// writeLayout is the state of laying out the metadata at Close.
type writeLayout struct {
	inodes, dirs *metaWriter
	ids          map[uint32]uint16
	idList       []uint32
	xattrIDs     map[string]uint32
	xattrList    []string
	refs         []uint64 // inode reference by inode number - 1
}

func (w *Writer) writeTables() error {
	if err := w.resolveLinks(w.tree.Root()); err != nil {
		return err
	}
	count := w.number(w.tree.Root(), 0)
	comp := w.pipe.comps[0]
	l := &writeLayout{
		inodes:   newMetaWriter(comp),
		dirs:     newMetaWriter(comp),
		ids:      map[uint32]uint16{},
		xattrIDs: map[string]uint32{},
		refs:     make([]uint64, count),
	}
	if err := w.layoutDir(l, w.tree.Root(), count+1); err != nil {
		return err
	}

	sb := Superblock{
		Magic:             Magic,
		InodeCount:        count,
		ModTime:           writeTime(w.opts.ModTime),
		BlockSize:         uint32(w.bs),
		FragmentCount:     uint32(w.pipe.frags),
		Compressor:        w.codec.id,
		Flags:             FlagDuplicates | FlagAlwaysFragments | FlagCompressorOptions,
		VersionMajor:      4,
		RootInode:         w.tree.Root().ref,
		XattrIDTableStart: noTable,
		FragTableStart:    noTable,
		ExportTableStart:  noTable,
	}
	for 1<<sb.BlockLog < w.bs {
		sb.BlockLog++
	}
	var err error
	inodes, err := l.inodes.bytes()
	if err != nil {
		return err
	}
	dirs, err := l.dirs.bytes()
	if err != nil {
		return err
	}
	sb.InodeTableStart = uint64(w.out.pos())
	w.out.write(inodes)
	sb.DirTableStart = uint64(w.out.pos())
	w.out.write(dirs)
	if w.pipe.frags > 0 {
		if sb.FragTableStart, err = w.writeIndexed(comp, w.pipe.fragTable, nil); err != nil {
			return err
		}
	}
	if w.opts.Export {
		sb.Flags |= FlagExportable
		var b []byte
		for _, r := range l.refs {
			b = le64(b, r)
		}
		if sb.ExportTableStart, err = w.writeIndexed(comp, b, nil); err != nil {
			return err
		}
	}
	var ids []byte
	for _, id := range l.idList {
		ids = le32(ids, id)
	}
	sb.IDCount = uint16(len(l.idList))
	if sb.IDTableStart, err = w.writeIndexed(comp, ids, nil); err != nil {
		return err
	}
	if len(l.xattrList) > 0 {
		if sb.XattrIDTableStart, err = w.writeXattrs(comp, l.xattrList); err != nil {
			return err
		}
	}
	sb.BytesUsed = uint64(w.out.pos())
	if err := w.out.finish(); err != nil {
		return err
	}
	b, _ := sb.MarshalBinary()
	w.out.writeAt(b, 0)
	w.out.flush()
	return w.out.err
}

// resolveLinks sorts every directory's children and points each hardlink
// at the node holding its inode, walking in sorted order so that the first
// error reported does not depend on map order.
func (w *Writer) resolveLinks(d *wnode) error {
	for _, c := range w.tree.Sort(d) {
		switch c.Type {
		case entry.TypeDir:
			if err := w.resolveLinks(c); err != nil {
				return err
			}
		case entry.TypeHardlink:
			t, err := w.linkTarget(c)
			if err != nil {
				return err
			}
			c.target = t
		}
	}
	return nil
}

// linkTarget follows hardlink n to a node that is not a hardlink.
func (w *Writer) linkTarget(n *wnode) (*wnode, error) {
	p := n.Path
	for range writeMaxLinkDepth {
		t := w.tree.Lookup(n.link)
		if t == nil {
			return nil, fmt.Errorf("squashfs: %s: hardlink to %s, which is not in the stream: %w", p, n.link, entry.ErrBadHeader)
		}
		switch t.Type {
		case entry.TypeDir:
			return nil, fmt.Errorf("squashfs: %s: hardlink to directory %s: %w", p, n.link, entry.ErrBadHeader)
		case entry.TypeHardlink:
			n = t
			continue
		}
		return t, nil
	}
	return nil, fmt.Errorf("squashfs: %s: hardlinks to %s loop: %w", p, n.link, entry.ErrBadHeader)
}

// number gives out inode numbers in the order layoutDir writes the inodes:
// depth first, children in name order before their directory, so the root
// gets the last number. It counts links as it goes and returns the last
// number used.
func (w *Writer) number(d *wnode, last uint32) uint32 {
	d.nlink = 2
	for _, c := range d.Sorted {
		if c.Type == entry.TypeDir {
			d.nlink++
			last = w.number(c, last)
			continue
		}
		ino := c.inode()
		ino.nlink++
		if ino.num == 0 {
			last++
			ino.num = last
		}
	}
	last++
	d.num = last
	return last
}

// layoutDir writes the inodes of d's subtree, d's listing and d's inode.
func (w *Writer) layoutDir(l *writeLayout, d *wnode, parent uint32) error {
	for _, c := range d.Sorted {
		if c.Type == entry.TypeDir {
			if err := w.layoutDir(l, c, d.num); err != nil {
				return err
			}
			continue
		}
		if ino := c.inode(); !ino.done {
			if err := w.writeInode(l, ino); err != nil {
				return err
			}
		}
	}
	block, offset := l.dirs.pos()
	size := w.writeListing(l, d) + 3 // the kernel counts "." and ".." as 3 bytes
	if block > math.MaxUint32 {
		return fmt.Errorf("squashfs: directory table larger than 4 GiB: %w", entry.ErrUnsupported)
	}
	ext := size > math.MaxUint16 || d.xattrs != ""
	b, err := w.inodeHeader(l, d, ext)
	if err != nil {
		return err
	}
	if ext {
		b = le32(b, d.nlink)
		b = le32(b, uint32(size))
		b = le32(b, uint32(block))
		b = le32(b, parent)
		b = le16(b, 0) // no directory index
		b = le16(b, offset)
		b = le32(b, l.xattrID(d.xattrs))
	} else {
		b = le32(b, uint32(block))
		b = le32(b, d.nlink)
		b = le16(b, uint16(size))
		b = le16(b, offset)
		b = le32(b, parent)
	}
	l.inodes.write(b)
	return nil
}

// writeListing writes d's directory entries and returns their size. A
// header covers at most 256 entries whose inodes share one metadata block
// and whose numbers are within an int16 of the header's.
func (w *Writer) writeListing(l *writeLayout, d *wnode) int {
	kids := d.Sorted
	size := 0
	var b []byte
	for i := 0; i < len(kids); {
		first := kids[i].inode()
		block, base := first.ref>>16, first.num
		j := i
		for j < len(kids) && j-i < dirMaxEntries {
			ino := kids[j].inode()
			if delta := int64(ino.num) - int64(base); ino.ref>>16 != block || delta < math.MinInt16 || delta > math.MaxInt16 {
				break
			}
			j++
		}
		b = le32(b[:0], uint32(j-i-1))
		b = le32(b, uint32(block))
		b = le32(b, base)
		for _, c := range kids[i:j] {
			ino := c.inode()
			b = le16(b, uint16(ino.ref&0xFFFF))
			b = le16(b, uint16(int16(int64(ino.num)-int64(base))))
			b = le16(b, writeTypes[ino.Type].basic)
			b = le16(b, uint16(len(c.Name)-1))
			b = append(b, c.Name...)
		}
		l.dirs.write(b)
		size += len(b)
		i = j
	}
	return size
}

// inodeHeader records n's position and starts its inode with the fields
// every type shares.
func (w *Writer) inodeHeader(l *writeLayout, n *wnode, ext bool) ([]byte, error) {
	uid, err := l.id(n.uid)
	if err != nil {
		return nil, err
	}
	gid, err := l.id(n.gid)
	if err != nil {
		return nil, err
	}
	n.ref = l.inodes.ref()
	n.done = true
	l.refs[n.num-1] = n.ref
	t := writeTypes[n.Type]
	typ := t.basic
	if ext {
		typ = t.ext
	}
	b := make([]byte, 0, 64)
	b = le16(b, typ)
	// Only the permission bits: squashfs-tools stores no S_IFMT here and
	// the kernel rejects an inode whose mode carries type bits of its own.
	b = le16(b, uint16(n.mode&entry.ModePerm))
	b = le16(b, uid)
	b = le16(b, gid)
	b = le32(b, n.mtime)
	b = le32(b, n.num)
	return b, nil
}

// needsExt reports whether the non-directory n needs an extended inode: it
// has xattrs, or it is a file that is hardlinked, sparse, or too large or
// too far into the image for 32-bit fields. (Other types carry a link count
// in their basic form.)
func needsExt(n *wnode) bool {
	if n.xattrs != "" {
		return true
	}
	if n.Type == entry.TypeRegular {
		d := n.data
		return n.nlink > 1 || d.sparse > 0 || d.size > math.MaxUint32 || d.start > math.MaxUint32
	}
	return false
}

func (w *Writer) writeInode(l *writeLayout, n *wnode) error {
	ext := needsExt(n)
	b, err := w.inodeHeader(l, n, ext)
	if err != nil {
		return err
	}
	switch n.Type {
	case entry.TypeRegular:
		d := n.data
		frag, foff := d.fragIndex, d.fragOffset
		if frag == noFragment {
			foff = 0
		}
		if ext {
			b = le64(b, d.start)
			b = le64(b, d.size)
			b = le64(b, d.sparse)
			b = le32(b, n.nlink)
			b = le32(b, frag)
			b = le32(b, foff)
			b = le32(b, l.xattrID(n.xattrs))
		} else {
			b = le32(b, uint32(d.start))
			b = le32(b, frag)
			b = le32(b, foff)
			b = le32(b, uint32(d.size))
		}
		l.inodes.write(b)
		b = b[:0]
		for _, s := range d.blocks {
			b = le32(b, s)
		}
	case entry.TypeSymlink:
		b = le32(b, n.nlink)
		b = le32(b, uint32(len(n.link)))
		b = append(b, n.link...)
		if ext {
			b = le32(b, l.xattrID(n.xattrs))
		}
	case entry.TypeCharDev, entry.TypeBlockDev:
		b = le32(b, n.nlink)
		b = le32(b, n.rdev)
		if ext {
			b = le32(b, l.xattrID(n.xattrs))
		}
	case entry.TypeFIFO, entry.TypeSocket:
		b = le32(b, n.nlink)
		if ext {
			b = le32(b, l.xattrID(n.xattrs))
		}
	}
	l.inodes.write(b)
	return nil
}

// id returns the index of a uid or gid in the id table, adding it in
// first-use order (which the sorted walk makes deterministic).
func (l *writeLayout) id(v uint32) (uint16, error) {
	if i, ok := l.ids[v]; ok {
		return i, nil
	}
	if len(l.idList) > math.MaxUint16 {
		return 0, fmt.Errorf("squashfs: more than 65536 distinct uids and gids: %w", entry.ErrUnsupported)
	}
	i := uint16(len(l.idList))
	l.ids[v] = i
	l.idList = append(l.idList, v)
	return i, nil
}

// xattrID returns the index of an xattr set, numbering sets by first use.
func (l *writeLayout) xattrID(set string) uint32 {
	if set == "" {
		return noXattr
	}
	if i, ok := l.xattrIDs[set]; ok {
		return i
	}
	i := uint32(len(l.xattrList))
	l.xattrIDs[set] = i
	l.xattrList = append(l.xattrList, set)
	return i
}

// writeXattrs writes the key/value metadata blocks, the xattr id table and
// its header, and returns the header's offset. The canonical form of a set
// is already its on-disk key/value layout.
func (w *Writer) writeXattrs(c writeCompressor, sets []string) (uint64, error) {
	kvStart := uint64(w.out.pos())
	kv := newMetaWriter(c)
	var ids []byte
	for _, s := range sets {
		ids = le64(ids, kv.ref())
		ids = le32(ids, uint32(writeXattrCount(s)))
		ids = le32(ids, uint32(len(s)))
		kv.write([]byte(s))
	}
	b, err := kv.bytes()
	if err != nil {
		return 0, err
	}
	w.out.write(b)
	hdr := le64(nil, kvStart)
	hdr = le32(hdr, uint32(len(sets)))
	hdr = le32(hdr, 0)
	return w.writeIndexed(c, ids, hdr)
}

// writeXattrCount counts the entries of a canonical xattr set.
func writeXattrCount(s string) int {
	n := 0
	for len(s) > 0 {
		nameLen := int(s[2]) | int(s[3])<<8
		s = s[4+nameLen:]
		valLen := int(s[0]) | int(s[1])<<8 | int(s[2])<<16 | int(s[3])<<24
		s = s[4+valLen:]
		n++
	}
	return n
}
