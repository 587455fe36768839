package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"strings"
	"time"

	"byzantium/modules/entry"
)

// Limits the format does not state but Linux does; anything beyond them is
// corruption, and checking them keeps allocations small.
const (
	readMaxName       = 256      // SQUASHFS_NAME_LEN
	readMaxSymlink    = 64 << 10 // more than any page size Linux supports
	readMaxXattrName  = 255      // XATTR_NAME_MAX
	readMaxXattrValue = 64 << 10 // XATTR_SIZE_MAX
	// readMaxXattrTotal bounds the values of one inode together. Out-of-line
	// values let a few bytes of table name a 64 KiB value many times over;
	// real inodes carry a few labels and capabilities.
	readMaxXattrTotal = 256 << 10
)

// rinode is a decoded inode. Fields not used by its type are zero.
type rinode struct {
	ref    uint64 // where it was read from: block<<16 | offset
	typ    uint16 // on-disk type, 1..14
	perm   uint16
	uid    uint32
	gid    uint32
	mtime  uint32
	number uint32
	nlink  uint32
	xattr  uint32 // xattr id or noXattr

	// directories
	dirBlock  uint32
	dirOffset uint16
	dirSize   uint32

	// regular files
	blocksStart uint64
	size        uint64
	frag        uint32
	fragOffset  uint32
	blockList   metaReader // positioned at the block size list

	target string // symlinks
	rdev   uint32 // devices
}

// basicType maps an extended inode type to its basic form, the one a
// directory entry records.
func (in *rinode) basicType() uint16 {
	if in.typ > inodeExtDir-1 {
		return in.typ - (inodeExtDir - 1)
	}
	return in.typ
}

func (in *rinode) isDir() bool { return in.basicType() == inodeBasicDir }

// readInode decodes the inode at ref, a reference into the inode table.
func (r *Reader) readInode(ref uint64) (*rinode, error) {
	m, err := r.metaAt("inode table", int64(r.sb.InodeTableStart), r.inodeEnd, ref>>16, uint16(ref))
	if err != nil {
		return nil, err
	}
	in, err := r.decodeInode(m, ref)
	if err != nil {
		return nil, readWrap(fmt.Sprintf("inode %#x", ref), err)
	}
	return in, nil
}

func (r *Reader) decodeInode(m *metaReader, ref uint64) (*rinode, error) {
	le := binary.LittleEndian
	h, err := m.bytes(16)
	if err != nil {
		return nil, err
	}
	in := &rinode{
		ref:    ref,
		typ:    le.Uint16(h),
		perm:   le.Uint16(h[2:]) & entry.ModePerm,
		mtime:  le.Uint32(h[8:]),
		number: le.Uint32(h[12:]),
		nlink:  1,
		xattr:  noXattr,
		frag:   noFragment,
	}
	uidx, gidx := le.Uint16(h[4:]), le.Uint16(h[6:])
	if in.uid, err = r.readID(uidx); err != nil {
		return nil, err
	}
	if in.gid, err = r.readID(gidx); err != nil {
		return nil, err
	}
	switch in.typ {
	case inodeBasicDir:
		b, err := m.bytes(16)
		if err != nil {
			return nil, err
		}
		in.dirBlock = le.Uint32(b)
		in.nlink = le.Uint32(b[4:])
		in.dirSize = uint32(le.Uint16(b[8:]))
		in.dirOffset = le.Uint16(b[10:])
	case inodeExtDir:
		// The directory index that follows helps lookups in large
		// directories; a full listing does not need it.
		b, err := m.bytes(16)
		if err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b)
		in.dirSize = le.Uint32(b[4:])
		in.dirBlock = le.Uint32(b[8:])
		b, err = m.bytes(8)
		if err != nil {
			return nil, err
		}
		in.dirOffset = le.Uint16(b[2:])
		in.xattr = le.Uint32(b[4:])
	case inodeBasicFile:
		b, err := m.bytes(16)
		if err != nil {
			return nil, err
		}
		in.blocksStart = uint64(le.Uint32(b))
		in.frag = le.Uint32(b[4:])
		in.fragOffset = le.Uint32(b[8:])
		in.size = uint64(le.Uint32(b[12:]))
		in.blockList = *m
	case inodeExtFile:
		b, err := m.bytes(16)
		if err != nil {
			return nil, err
		}
		in.blocksStart = le.Uint64(b)
		in.size = le.Uint64(b[8:])
		b, err = m.bytes(16) // sparse byte count (unused here), nlink, fragment, offset
		if err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b[8:])
		in.frag = le.Uint32(b[12:])
		b, err = m.bytes(8)
		if err != nil {
			return nil, err
		}
		in.fragOffset = le.Uint32(b)
		in.xattr = le.Uint32(b[4:])
		in.blockList = *m
	case inodeBasicSymlink, inodeExtSymlink:
		b, err := m.bytes(8)
		if err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b)
		n := le.Uint32(b[4:])
		if n == 0 || n > readMaxSymlink {
			return nil, readCorruptf("symlink target of %d bytes", n)
		}
		t := make([]byte, n)
		if err := m.read(t); err != nil {
			return nil, err
		}
		in.target = string(t)
		if in.typ == inodeExtSymlink {
			if in.xattr, err = m.u32(); err != nil {
				return nil, err
			}
		}
	case inodeBasicBlock, inodeBasicChar, inodeExtBlock, inodeExtChar:
		n := 8
		if in.typ >= inodeExtDir {
			n = 12
		}
		b, err := m.bytes(n)
		if err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b)
		in.rdev = le.Uint32(b[4:])
		if n == 12 {
			in.xattr = le.Uint32(b[8:])
		}
	case inodeBasicFIFO, inodeBasicSocket, inodeExtFIFO, inodeExtSocket:
		n := 4
		if in.typ >= inodeExtDir {
			n = 8
		}
		b, err := m.bytes(n)
		if err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b)
		if n == 8 {
			in.xattr = le.Uint32(b[4:])
		}
	default:
		return nil, readCorruptf("unknown inode type %d", in.typ)
	}
	if in.size > math.MaxInt64 {
		return nil, readCorruptf("file size %d", in.size)
	}
	return in, nil
}

// rdirent is one directory entry.
type rdirent struct {
	name string
	ref  uint64 // inode reference
	typ  uint16 // basic inode type
}

// readDir decodes the listing of directory in, sorted by name. budget, when
// not nil, is decremented per entry so one walk cannot be made to decode
// more entries than the image can honestly hold.
func (r *Reader) readDir(in *rinode, budget *int64) ([]rdirent, error) {
	if in.dirSize < 3 {
		return nil, readCorruptf("directory of size %d, less than 3", in.dirSize)
	}
	// The size counts 3 bytes for the implicit "." and ".." entries.
	left := int64(in.dirSize) - 3
	if left == 0 {
		return nil, nil
	}
	m, err := r.metaAt("directory table", int64(r.sb.DirTableStart), r.dirEnd, uint64(in.dirBlock), in.dirOffset)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	var ents []rdirent
	var name [readMaxName]byte
	for left > 0 {
		if left < 12 {
			return nil, readCorruptf("directory at %d/%d: %d bytes left, too few for a header", in.dirBlock, in.dirOffset, left)
		}
		h, err := m.bytes(12)
		if err != nil {
			return nil, err
		}
		left -= 12
		count := uint64(le.Uint32(h)) + 1
		start := uint64(le.Uint32(h[4:]))
		if count > dirMaxEntries {
			return nil, readCorruptf("directory header with %d entries, at most %d", count, dirMaxEntries)
		}
		for range count {
			if left < 8 {
				return nil, readCorruptf("directory entry past the directory's size")
			}
			b, err := m.bytes(8)
			if err != nil {
				return nil, err
			}
			off := le.Uint16(b)
			typ := le.Uint16(b[4:])
			n := int64(le.Uint16(b[6:])) + 1
			left -= 8 + n
			if n > readMaxName || left < 0 {
				return nil, readCorruptf("directory entry name of %d bytes", n)
			}
			if typ < inodeBasicDir || typ > inodeBasicSocket {
				return nil, readCorruptf("directory entry of type %d", typ)
			}
			if err := m.read(name[:n]); err != nil {
				return nil, err
			}
			s := string(name[:n])
			if s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
				return nil, readCorruptf("directory entry named %q", s)
			}
			if budget != nil {
				if *budget--; *budget < 0 {
					return nil, readCorruptf("more directory entries than the image can hold")
				}
			}
			ents = append(ents, rdirent{name: s, ref: start<<16 | uint64(off), typ: typ})
		}
	}
	// mksquashfs sorts already; sorting again makes the order a property
	// of this reader rather than of the writer.
	slices.SortFunc(ents, func(a, b rdirent) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(ents); i++ {
		if ents[i].name == ents[i-1].name {
			return nil, readCorruptf("directory lists %q twice", ents[i].name)
		}
	}
	return ents, nil
}

// readXattrs decodes the xattrs with id idx, or returns nil for noXattr.
func (r *Reader) readXattrs(idx uint32) (map[string][]byte, error) {
	if idx == noXattr {
		return nil, nil
	}
	if idx >= r.xattrCount {
		return nil, readCorruptf("xattr id %d, table has %d", idx, r.xattrCount)
	}
	le := binary.LittleEndian
	b, err := r.readTableEntry("xattr id table", r.xattrIndex, int64(r.sb.XattrIDTableStart), uint64(idx), 16)
	if err != nil {
		return nil, err
	}
	ref, count := le.Uint64(b), le.Uint32(b[8:])
	const what = "xattr table"
	kvEnd := int64(r.sb.XattrIDTableStart)
	m, err := r.metaAt(what, r.xattrKV, kvEnd, ref>>16, uint16(ref))
	if err != nil {
		return nil, err
	}
	xs := make(map[string][]byte)
	total := 0
	for range count {
		h, err := m.bytes(4)
		if err != nil {
			return nil, err
		}
		typ, n := le.Uint16(h), le.Uint16(h[2:])
		if typ&^(xattrOOL|0xff) != 0 || typ&0xff >= uint16(len(xattrPrefixes)) || n == 0 || n > readMaxXattrName {
			return nil, readCorruptf("xattr of type %#x with a %d-byte name", typ, n)
		}
		name := make([]byte, n)
		if err := m.read(name); err != nil {
			return nil, err
		}
		full := xattrPrefixes[typ&0xff] + string(name)
		vm := m
		if typ&xattrOOL != 0 {
			// The value lives elsewhere; here is its reference.
			vs, err := m.u32()
			if err != nil {
				return nil, err
			}
			if vs != 8 {
				return nil, readCorruptf("xattr %s: out-of-line reference of %d bytes", full, vs)
			}
			vref, err := m.u64()
			if err != nil {
				return nil, err
			}
			if vm, err = r.metaAt(what, r.xattrKV, kvEnd, vref>>16, uint16(vref)); err != nil {
				return nil, err
			}
		}
		vs, err := vm.u32()
		if err != nil {
			return nil, err
		}
		total += int(vs)
		if vs > readMaxXattrValue || total > readMaxXattrTotal {
			return nil, readCorruptf("xattr %s: value of %d bytes (%d in all)", full, vs, total)
		}
		v := make([]byte, vs)
		if err := vm.read(v); err != nil {
			return nil, err
		}
		if _, dup := xs[full]; dup {
			return nil, readCorruptf("xattr %s listed twice", full)
		}
		xs[full] = v
	}
	return xs, nil
}

// loadXattrIndex reads the xattr id table header and its index.
func (r *Reader) loadXattrIndex() error {
	start := int64(r.sb.XattrIDTableStart)
	b, err := r.readAt("xattr id table", start, 16)
	if err != nil {
		return err
	}
	kv := binary.LittleEndian.Uint64(b)
	if kv < SuperblockSize || kv >= uint64(start) {
		return readCorruptf("xattr table at %d, outside %d..%d", kv, SuperblockSize, start)
	}
	r.xattrKV = int64(kv)
	r.xattrCount = binary.LittleEndian.Uint32(b[8:])
	r.xattrIndex, err = r.readTableIndex("xattr id table", start+16, uint64(r.xattrCount), 16)
	return err
}

// readHeader builds the entry header of in, found at path.
func (r *Reader) readHeader(path string, in *rinode) (*entry.Header, error) {
	h := &entry.Header{
		Path:    path,
		Mode:    uint32(in.perm),
		UID:     in.uid,
		GID:     in.gid,
		ModTime: time.Unix(int64(in.mtime), 0).UTC(),
	}
	switch in.basicType() {
	case inodeBasicDir:
		h.Type = entry.TypeDir
	case inodeBasicFile:
		h.Type = entry.TypeRegular
		h.Size = int64(in.size)
	case inodeBasicSymlink:
		h.Type = entry.TypeSymlink
		h.Linkname = in.target
	case inodeBasicBlock, inodeBasicChar:
		h.Type = entry.TypeCharDev
		if in.basicType() == inodeBasicBlock {
			h.Type = entry.TypeBlockDev
		}
		h.Devmajor, h.Devminor = decodeDev(in.rdev)
	case inodeBasicFIFO:
		h.Type = entry.TypeFIFO
	case inodeBasicSocket:
		h.Type = entry.TypeSocket
	}
	xs, err := r.readXattrs(in.xattr)
	if err != nil {
		return nil, readWrap(path, err)
	}
	h.Xattrs = xs
	return h, nil
}

// lookup finds the inode at a clean path without following symlinks.
func (r *Reader) lookup(op, name string) (string, *rinode, error) {
	p := entry.Clean(name)
	in, err := r.readInode(r.sb.RootInode)
	if err != nil {
		return p, nil, err
	}
	if p == "." {
		return p, in, nil
	}
	for _, c := range strings.Split(p, "/") {
		if !in.isDir() {
			return p, nil, &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
		}
		ents, err := r.readDir(in, nil)
		if err != nil {
			return p, nil, readWrap(op+" "+p, err)
		}
		i, ok := slices.BinarySearchFunc(ents, c, func(e rdirent, c string) int { return strings.Compare(e.name, c) })
		if !ok {
			return p, nil, &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
		}
		if in, err = r.readInode(ents[i].ref); err != nil {
			return p, nil, readWrap(op+" "+p, err)
		}
		if in.basicType() != ents[i].typ {
			return p, nil, readCorruptf("%s: directory says type %d, inode is type %d", p, ents[i].typ, in.typ)
		}
	}
	return p, in, nil
}

// Stat returns the header of the entry at path, like os.Lstat: a symlink is
// not followed, and a file with several names is reported as a regular
// file under each. Absent paths give an error wrapping fs.ErrNotExist.
func (r *Reader) Stat(path string) (*entry.Header, error) {
	p, in, err := r.lookup("stat", path)
	if err != nil {
		return nil, err
	}
	return r.readHeader(p, in)
}

// ReadFile returns the contents of the regular file at path (symlinks are
// not followed). Absent paths give an error wrapping fs.ErrNotExist.
func (r *Reader) ReadFile(path string) ([]byte, error) {
	p, in, err := r.lookup("open", path)
	if err != nil {
		return nil, err
	}
	if in.basicType() != inodeBasicFile {
		return nil, fmt.Errorf("squashfs: open %s: not a regular file (inode type %d)", p, in.typ)
	}
	// Grow with the data actually read rather than trusting the size.
	var buf bytes.Buffer
	buf.Grow(int(min(in.size, 1<<20)))
	if _, err := io.Copy(&buf, r.newFileReader(in)); err != nil {
		return nil, fmt.Errorf("squashfs: read %s: %w", p, err)
	}
	return buf.Bytes(), nil
}

// ReadDirNames returns the names in the directory at path, sorted, without
// reading their inodes. Absent paths give an error wrapping fs.ErrNotExist.
func (r *Reader) ReadDirNames(path string) ([]string, error) {
	p, in, err := r.lookup("readdir", path)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, fmt.Errorf("squashfs: readdir %s: not a directory (inode type %d)", p, in.typ)
	}
	ents, err := r.readDir(in, nil)
	if err != nil {
		return nil, readWrap("readdir "+p, err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.name
	}
	return names, nil
}
