package fat

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// FS is a FAT32 file system opened read-only, as an fs.FS: the USB
// image's partition read without mounting it (and so without root). It
// reads what any FAT32 driver writes: long names (checked against their
// short entry's checksum), 8.3 names in either case (the Windows NT
// lower-case flags), fragmented cluster chains. Names are looked up as
// FAT compares them, without regard to case; ReadDir returns them as
// stored. Files are read straight from the device, a run of contiguous
// clusters at a time; only directories and the FAT are held in memory.
type FS struct {
	v     *Volume
	label string
	id    uint32
}

// OpenFS reads the FAT32 file system at offset in r.
func OpenFS(r io.ReaderAt, offset int64) (*FS, error) {
	v, err := OpenVolume(readOnly{r}, offset)
	if err != nil {
		return nil, err
	}
	bs := make([]byte, sectorSize)
	if _, err := r.ReadAt(bs, offset); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	f := &FS{v: v, label: strings.TrimRight(string(bs[71:82]), " "), id: uint32(bs[67]) | uint32(bs[68])<<8 | uint32(bs[69])<<16 | uint32(bs[70])<<24}
	if f.label == "NO NAME" {
		f.label = ""
	}
	return f, nil
}

// readOnly makes an io.ReaderAt a ReadWriterAt that refuses writes.
type readOnly struct{ io.ReaderAt }

func (readOnly) WriteAt([]byte, int64) (int, error) { return 0, errors.New("fat: read-only") }

// Label returns the volume label in the boot sector ("" for NO NAME).
func (f *FS) Label() string { return f.label }

// VolumeID returns the volume serial number.
func (f *FS) VolumeID() uint32 { return f.id }

// ClusterSize returns the size of the volume's clusters in bytes.
func (f *FS) ClusterSize() int64 { return f.v.clusterSize() }

// Open opens the named file or directory.
func (f *FS) Open(name string) (fs.File, error) {
	e, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e.attr&attrDir != 0 {
		return &dirR{fs: f, e: e}, nil
	}
	return &fileR{fs: f, e: e}, nil
}

// Stat returns a FileInfo for the named file or directory.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return info{e}, nil
}

// ReadDir reads the named directory, sorted by name as fs.ReadDir wants.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if e.attr&attrDir == 0 {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	ents, err := f.list(e)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = fs.FileInfoToDirEntry(info{e})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// entryInfo is a named directory entry; the root is "." at the root
// cluster.
type entryInfo struct {
	name    string
	attr    byte
	cluster uint32
	size    uint32
	mtime   time.Time
}

func (f *FS) rootEntry() entryInfo {
	return entryInfo{name: ".", attr: attrDir, cluster: f.v.root}
}

// list returns the names in directory d, without ".", ".." and the
// volume label.
func (f *FS) list(d entryInfo) ([]entryInfo, error) {
	raw, _, _, err := f.v.readDir(d.cluster)
	if err != nil {
		return nil, err
	}
	var out []entryInfo
	for _, e := range raw {
		if e.attr&attrVolumeID != 0 || e.short == ".          " || e.short == "..         " {
			continue
		}
		name := e.long
		if name == "" {
			name = shortName(e.short, e.caseBits)
		}
		out = append(out, entryInfo{name: name, attr: e.attr, cluster: e.cluster, size: e.size, mtime: e.mtime})
	}
	return out, nil
}

// lookup walks to name.
func (f *FS) lookup(op, name string) (entryInfo, error) {
	if !fs.ValidPath(name) {
		return entryInfo{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	cur := f.rootEntry()
	if name == "." {
		return cur, nil
	}
	// A directory that is its own ancestor (a made-up or damaged volume)
	// would make a walk endless: the path stops there.
	seen := map[uint32]bool{cur.cluster: true}
	for _, part := range strings.Split(name, "/") {
		if cur.attr&attrDir == 0 {
			return entryInfo{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		ents, err := f.list(cur)
		if err != nil {
			return entryInfo{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		found := false
		key := foldKey(part)
		for _, e := range ents {
			if foldKey(e.name) == key {
				cur, found = e, true
				break
			}
		}
		if !found {
			return entryInfo{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if cur.attr&attrDir != 0 {
			if seen[cur.cluster] {
				return entryInfo{}, &fs.PathError{Op: op, Path: name, Err: errors.New("fat: a directory inside itself")}
			}
			seen[cur.cluster] = true
		}
	}
	return cur, nil
}

// shortName turns an 11-byte 8.3 entry name into "NAME.EXT", lower-cased
// where the NT case flags say so.
func shortName(short string, caseBits byte) string {
	b := []byte(short)
	if b[0] == 0x05 { // 0xE5 as the first byte, escaped
		b[0] = 0xe5
	}
	base := strings.TrimRight(string(b[:8]), " ")
	ext := strings.TrimRight(string(b[8:]), " ")
	if caseBits&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if caseBits&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// fatDate decodes a FAT date and time (2-second resolution), taken as UTC
// as the Writer writes them.
func fatDate(date, tm uint16) time.Time {
	if date == 0 {
		return fatEpoch
	}
	return time.Date(1980+int(date>>9), time.Month(date>>5&0xf), int(date&0x1f),
		int(tm>>11), int(tm>>5&0x3f), int(tm&0x1f)*2, 0, time.UTC)
}

// info is an fs.FileInfo of an entry.
type info struct{ e entryInfo }

func (i info) Name() string       { return i.e.name }
func (i info) Size() int64        { return int64(i.e.size) }
func (i info) ModTime() time.Time { return i.e.mtime }
func (i info) IsDir() bool        { return i.e.attr&attrDir != 0 }
func (i info) Sys() any           { return nil }
func (i info) Mode() fs.FileMode {
	if i.IsDir() {
		return fs.ModeDir | 0o755
	}
	if i.e.attr&attrReadOnly != 0 {
		return 0o444
	}
	return 0o644
}

// fileR is an open regular file. Its cluster chain is read on the first
// Read and checked against its size.
type fileR struct {
	fs       *FS
	e        entryInfo
	clusters []uint32
	loaded   bool
	off      int64
	closed   bool
}

func (fl *fileR) Stat() (fs.FileInfo, error) { return info{fl.e}, nil }

func (fl *fileR) Close() error {
	if fl.closed {
		return fs.ErrClosed
	}
	fl.closed = true
	return nil
}

func (fl *fileR) load() error {
	if fl.loaded {
		return nil
	}
	need := (int64(fl.e.size) + fl.fs.v.clusterSize() - 1) / fl.fs.v.clusterSize()
	if need > 0 {
		cl, err := fl.fs.v.chain(fl.e.cluster)
		if err != nil {
			return err
		}
		if int64(len(cl)) < need {
			return fmt.Errorf("fat: %s: %d bytes need %d clusters, the chain has %d", fl.e.name, fl.e.size, need, len(cl))
		}
		fl.clusters = cl[:need]
	}
	fl.loaded = true
	return nil
}

// run returns where the byte at file offset off is on the device and how
// many bytes from there, up to max, are contiguous.
func (fl *fileR) run(off, max int64) (int64, int64) {
	cs := fl.fs.v.clusterSize()
	i := off / cs
	at := fl.fs.v.clusterOffset(fl.clusters[i]) + off%cs
	n := cs - off%cs
	for j := i + 1; n < max && j < int64(len(fl.clusters)) && fl.clusters[j] == fl.clusters[j-1]+1; j++ {
		n += cs
	}
	return at, min(n, max)
}

func (fl *fileR) Read(p []byte) (int, error) {
	n, err := fl.ReadAt(p, fl.off)
	fl.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads from the file at off; it makes file an io.ReaderAt, so an
// io.SectionReader can read it from several places.
func (fl *fileR) ReadAt(p []byte, off int64) (int, error) {
	if fl.closed {
		return 0, fs.ErrClosed
	}
	if err := fl.load(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	size := int64(fl.e.size)
	n := 0
	for len(p) > 0 && off < size {
		at, m := fl.run(off, min(int64(len(p)), size-off))
		k, err := fl.fs.v.rw.ReadAt(p[:m], at)
		n += k
		if err != nil {
			return n, fmt.Errorf("fat: reading %s: %w", fl.e.name, err)
		}
		p, off = p[m:], off+m
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

func (fl *fileR) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += fl.off
	case io.SeekEnd:
		offset += int64(fl.e.size)
	default:
		return 0, fs.ErrInvalid
	}
	if offset < 0 {
		return 0, fs.ErrInvalid
	}
	fl.off = offset
	return offset, nil
}

// dirR is an open directory.
type dirR struct {
	fs     *FS
	e      entryInfo
	ents   []fs.DirEntry
	read   bool
	closed bool
}

func (d *dirR) Stat() (fs.FileInfo, error) { return info{d.e}, nil }
func (d *dirR) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.e.name, Err: errors.New("is a directory")}
}

func (d *dirR) Close() error {
	if d.closed {
		return fs.ErrClosed
	}
	d.closed = true
	return nil
}

func (d *dirR) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.fs.list(d.e)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			d.ents = append(d.ents, fs.FileInfoToDirEntry(info{e}))
		}
		d.read = true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(d.ents))
	out := d.ents[:k]
	d.ents = d.ents[k:]
	return out, nil
}
