package iso9660

import (
	"encoding/binary"
	"strings"
	"time"

	"byzantium/modules/entry"
)

// System Use Sharing Protocol and Rock Ridge (RRIP 1.12, IEEE P1282)
// entries. Each entry is at most 255 bytes; what does not fit in a
// directory record moves to continuation areas reached by CE entries.

const (
	ceLen  = 28
	pxLen  = 44 // RRIP 1.12: with the file serial number, which readers use to find hardlinks
	maxSUE = 255
)

// The ER entry libisofs writes for RRIP 1.12; readers look only at the
// identifier, but the texts are the registered ones.
const (
	erID  = "IEEE_1282"
	erDes = "THE IEEE 1282 PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS."
	erSrc = "PLEASE CONTACT THE IEEE STANDARDS DEPARTMENT, PISCATAWAY, NJ, USA FOR THE 1282 SPECIFICATION."
)

func suHeader(sig string, n int) []byte {
	b := make([]byte, n)
	b[0], b[1], b[2], b[3] = sig[0], sig[1], byte(n), 1
	return b
}

// both32 stores v both-byte orders (ECMA-119 7.3.3) in b[0:8].
func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// both16 stores v in both byte orders (ECMA-119 7.2.3) in b[0:4].
func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func spEntry() []byte {
	b := suHeader("SP", 7)
	b[4], b[5] = 0xBE, 0xEF
	return b
}

func erEntry() []byte {
	b := suHeader("ER", 8+len(erID)+len(erDes)+len(erSrc))
	b[4], b[5], b[6], b[7] = byte(len(erID)), byte(len(erDes)), byte(len(erSrc)), 1
	copy(b[8:], erID+erDes+erSrc)
	return b
}

func ceEntry(lba, off, n uint32) []byte {
	b := suHeader("CE", ceLen)
	both32(b[4:], lba)
	both32(b[12:], off)
	both32(b[20:], n)
	return b
}

// Unix file type bits for PX.
var typeBits = map[entry.Type]uint32{
	entry.TypeRegular: 0o100000, entry.TypeDir: 0o040000, entry.TypeSymlink: 0o120000,
	entry.TypeCharDev: 0o020000, entry.TypeBlockDev: 0o060000, entry.TypeFIFO: 0o010000,
	entry.TypeSocket: 0o140000,
}

func pxEntry(n *node) []byte {
	b := suHeader("PX", pxLen)
	both32(b[4:], typeBits[n.Type]|n.mode)
	both32(b[12:], n.nlink)
	both32(b[20:], n.uid)
	both32(b[28:], n.gid)
	both32(b[36:], n.ino)
	return b
}

// tfEntry records the one time the stream has as modification, access and
// attribute-change time, in the 7-byte form.
func tfEntry(mtime int64) []byte {
	b := suHeader("TF", 5+3*7)
	b[4] = 0x02 | 0x04 | 0x08
	for i := range 3 {
		recTime(b[5+7*i:], mtime)
	}
	return b
}

// recTime writes the 7-byte directory record time (ECMA-119 9.1.5) in UTC,
// clamped to the years it can hold.
func recTime(b []byte, sec int64) {
	t := time.Unix(sec, 0).UTC()
	switch {
	case t.Year() < 1900:
		t = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	case t.Year() > 2155:
		t = time.Date(2155, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	b[0], b[1], b[2] = byte(t.Year()-1900), byte(t.Month()), byte(t.Day())
	b[3], b[4], b[5], b[6] = byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0
}

// nmEntries carries a name of up to 255 bytes, split across NM entries
// flagged CONTINUE when it does not fit in one.
func nmEntries(name string) [][]byte {
	var out [][]byte
	for {
		part := name[:min(len(name), maxSUE-5)]
		name = name[len(part):]
		b := suHeader("NM", 5+len(part))
		copy(b[5:], part)
		if name != "" {
			b[4] = 1
		}
		out = append(out, b)
		if name == "" {
			return out
		}
	}
}

// slEntries encodes a symlink target as SL component records: "/" leading
// becomes ROOT, "." CURRENT, ".." PARENT, a long component is split with
// CONTINUE, and records are packed into SL entries that chain with
// CONTINUE.
func slEntries(target string) [][]byte {
	var recs [][]byte
	if strings.HasPrefix(target, "/") {
		recs = append(recs, []byte{8, 0})
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "":
			continue
		case ".":
			recs = append(recs, []byte{2, 0})
			continue
		case "..":
			recs = append(recs, []byte{4, 0})
			continue
		}
		for len(c) > 0 {
			part := c[:min(len(c), maxSUE-5-2)]
			c = c[len(part):]
			var flags byte
			if c != "" {
				flags = 1
			}
			recs = append(recs, append([]byte{flags, byte(len(part))}, part...))
		}
	}
	var out [][]byte
	body := []byte{}
	flush := func(more bool) {
		b := suHeader("SL", 5+len(body))
		copy(b[5:], body)
		if more {
			b[4] = 1
		}
		out = append(out, b)
		body = body[:0]
	}
	for _, r := range recs {
		if 5+len(body)+len(r) > maxSUE {
			flush(true)
		}
		body = append(body, r...)
	}
	flush(false)
	return out
}

// pnEntry records a device number as libisofs does: glibc's 64-bit dev_t
// split into high and low words. For majors below 4096 and minors below 256
// the high word is 0 and the low word is major<<8|minor, which is also how
// Linux reads it.
func pnEntry(major, minor uint32) []byte {
	maj, mnr := uint64(major), uint64(minor)
	dev := mnr&0xff | (maj&0xfff)<<8 | (mnr&^0xff)<<12 | (maj&^0xfff)<<32
	b := suHeader("PN", 20)
	both32(b[4:], uint32(dev>>32))
	both32(b[12:], uint32(dev))
	return b
}

// rrEntries lists the SUSP entries of a directory record for the inode n
// (for a hardlink, the node it names) under name. kind is the record: a
// named child, or the "." or ".." of a directory.
func rrEntries(n *node, name string, kind recKind, isRoot bool) [][]byte {
	var es [][]byte
	if kind == recSelf && isRoot {
		es = append(es, spEntry())
	}
	es = append(es, pxEntry(n), tfEntry(n.mtime))
	if kind == recChild {
		es = append(es, nmEntries(name)...)
		switch n.Type {
		case entry.TypeSymlink:
			es = append(es, slEntries(n.link)...)
		case entry.TypeCharDev, entry.TypeBlockDev:
			es = append(es, pnEntry(n.major, n.minor))
		}
	}
	if kind == recSelf && isRoot {
		es = append(es, erEntry())
	}
	return es
}

// ceWriter collects continuation areas, packed into sectors that start at
// lba: an area never crosses a sector boundary.
type ceWriter struct {
	lba uint32
	buf []byte
}

func (c *ceWriter) place(area []byte) (lba, off uint32) {
	if r := len(c.buf) % sectorSize; r != 0 && r+len(area) > sectorSize {
		c.buf = append(c.buf, make([]byte, sectorSize-r)...)
	}
	at := len(c.buf)
	c.buf = append(c.buf, area...)
	return c.lba + uint32(at/sectorSize), uint32(at % sectorSize)
}

// fitSU returns the system use bytes for a record with room bytes free:
// as many entries as fit, then a CE chaining to areas for the rest.
func fitSU(es [][]byte, room int, ce *ceWriter) []byte {
	chunks := splitChunks(es, room)
	// Place the last area first so each earlier one knows where its CE
	// points.
	var next []byte
	for i := len(chunks) - 1; i >= 1; i-- {
		area := join(chunks[i], next)
		lba, off := ce.place(area)
		next = ceEntry(lba, off, uint32(len(area)))
	}
	return join(chunks[0], next)
}

// splitChunks cuts es into a first chunk of at most room bytes and further
// chunks of at most a sector, each but the last leaving space for a CE.
func splitChunks(es [][]byte, room int) [][][]byte {
	var chunks [][][]byte
	capacity := room
	for len(es) > 0 {
		total := 0
		for _, e := range es {
			total += len(e)
		}
		if total <= capacity {
			chunks = append(chunks, es)
			break
		}
		used, i := 0, 0
		for i < len(es) && used+len(es[i])+ceLen <= capacity {
			used += len(es[i])
			i++
		}
		chunks = append(chunks, es[:i])
		es = es[i:]
		capacity = sectorSize
	}
	if len(chunks) == 0 {
		chunks = append(chunks, nil)
	}
	return chunks
}

func join(es [][]byte, tail []byte) []byte {
	var b []byte
	for _, e := range es {
		b = append(b, e...)
	}
	return append(b, tail...)
}
