package fat

import (
	"encoding/binary"
	"fmt"
	"time"
)

// maxDirEntries is the most 32-byte entries a FAT directory may have.
const maxDirEntries = 65536

// dirPlan is a directory's sorted children with their short names, kept
// between allocating directories and writing them.
type dirPlan struct {
	d      *node
	parent *node
	kids   []*node
	shorts []string
	size   int64 // bytes of entries
}

// Close lays out and writes the directories, the two FATs, FSInfo and the
// boot sectors (last, so an interrupted write leaves no valid volume).
// Closing again returns nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.endFile(); err != nil {
		return w.fail(err)
	}
	var plans []*dirPlan
	if err := w.plan(w.tree.Root(), nil, &plans); err != nil {
		return w.fail(err)
	}
	for _, p := range plans {
		if err := w.allocDir(p); err != nil {
			return w.fail(err)
		}
	}
	for _, p := range plans {
		if err := w.writeDir(p); err != nil {
			return w.fail(err)
		}
	}
	if err := w.writeFATs(plans); err != nil {
		return w.fail(err)
	}
	return w.fail(w.writeReserved())
}

// plan sorts d's children, names them and sizes d, then recurses into the
// subdirectories, appending in pre-order so the layout is a function of
// the tree alone.
func (w *Writer) plan(d, parent *node, plans *[]*dirPlan) error {
	p := &dirPlan{d: d, parent: parent, kids: w.tree.Sort(d)}
	names := make([]string, len(p.kids))
	for i, k := range p.kids {
		names[i] = k.Name
	}
	var err error
	if p.shorts, err = assignShortNames(names); err != nil {
		return err
	}
	n := 2 // "." and ".."
	if d == w.tree.Root() {
		n = 0
		if w.label != "" {
			n = 1
		}
	}
	for i, k := range p.kids {
		n++
		if needsLFN(k.Name, p.shorts[i]) {
			n += len(lfnEntries(k.Name, 0)) / dirEntrySize
		}
	}
	if n > maxDirEntries {
		return fmt.Errorf("fat: %s: %d directory entries, FAT allows %d: %w", d.Path, n, maxDirEntries, ErrNoSpace)
	}
	p.size = int64(n) * dirEntrySize
	*plans = append(*plans, p)
	for _, k := range p.kids {
		if k.IsDir() {
			if err := w.plan(k, d, plans); err != nil {
				return err
			}
		}
	}
	return nil
}

// allocDir gives a directory its clusters; the root already has cluster 2.
func (w *Writer) allocDir(p *dirPlan) error {
	n := uint32(max(1, (p.size+w.g.clusterSize()-1)/w.g.clusterSize()))
	if p.d == w.tree.Root() {
		n--
		if n == 0 {
			return nil
		}
	}
	r, err := w.alloc(n, p.d.Path)
	if err != nil {
		return err
	}
	p.d.runs = append(p.d.runs, r)
	return nil
}

// writeDir encodes a directory and writes it over its runs, zero-padded.
func (w *Writer) writeDir(p *dirPlan) error {
	var clusters int64
	for _, r := range p.d.runs {
		clusters += int64(r.n)
	}
	b := make([]byte, 0, clusters*w.g.clusterSize())
	if p.d == w.tree.Root() {
		if w.label != "" {
			b = append(b, dirent(w.label, attrVolumeID, p.d.mtime, 0, 0)...)
		}
	} else {
		b = append(b, dirent(".          ", attrDir, p.d.mtime, firstCluster(p.d), 0)...)
		// ".." of a directory in the root names cluster 0, not 2.
		var up uint32
		if p.parent != w.tree.Root() {
			up = firstCluster(p.parent)
		}
		b = append(b, dirent("..         ", attrDir, p.d.mtime, up, 0)...)
	}
	for i, k := range p.kids {
		if needsLFN(k.Name, p.shorts[i]) {
			b = append(b, lfnEntries(k.Name, shortChecksum(p.shorts[i]))...)
		}
		b = append(b, dirent(p.shorts[i], k.attr, k.mtime, firstCluster(k), k.size)...)
	}
	b = b[:cap(b)]
	for _, r := range p.d.runs {
		n := int64(r.n) * w.g.clusterSize()
		if _, err := w.w.WriteAt(b[:n], w.off+w.g.clusterOffset(r.start)); err != nil {
			return fmt.Errorf("fat: writing directory %s: %w", p.d.Path, err)
		}
		b = b[n:]
	}
	return nil
}

func firstCluster(n *node) uint32 {
	if len(n.runs) == 0 {
		return 0
	}
	return n.runs[0].start
}

// dirent encodes a short directory entry. Creation, access and
// modification times are all t.
func dirent(short string, attr byte, t time.Time, cluster, size uint32) []byte {
	e := make([]byte, dirEntrySize)
	copy(e, short)
	e[11] = attr
	date, tm, tenth := fatTime(t)
	e[13] = tenth
	binary.LittleEndian.PutUint16(e[14:], tm)
	binary.LittleEndian.PutUint16(e[16:], date)
	binary.LittleEndian.PutUint16(e[18:], date)
	binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
	binary.LittleEndian.PutUint16(e[22:], tm)
	binary.LittleEndian.PutUint16(e[24:], date)
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}

// fatEpoch and fatEnd bound what a FAT date can say.
var (
	fatEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	fatEnd   = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
)

// fatTime encodes t (taken as UTC: FAT stores local time, and a build has
// no local zone) as a FAT date, a time with 2-second resolution, and the
// creation time's extra hundredths (the odd second).
func fatTime(t time.Time) (date, tm uint16, tenth byte) {
	t = t.UTC()
	if t.Before(fatEpoch) {
		t = fatEpoch
	}
	if t.After(fatEnd) {
		t = fatEnd
	}
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	tm = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, tm, byte(t.Second() % 2 * 100)
}
