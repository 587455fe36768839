package fat

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// FAT entry values.
const (
	fatEOC   = 0x0FFFFFFF // end of chain
	fatMedia = 0x0FFFFFF8 // entry 0: media byte 0xF8, fixed disk
	// entry 1 is fatEOC too: its top bits say "clean shutdown, no
	// I/O errors", so drivers do not ask for a check.
)

// segment is a run with the value its last cluster points to.
type segment struct {
	run
	link uint32
}

// writeFATs writes both FATs, chaining every run of every file and
// directory; clusters in no run are free (0).
func (w *Writer) writeFATs(plans []*dirPlan) error {
	var segs []segment
	add := func(n *node) {
		for i, r := range n.runs {
			link := uint32(fatEOC)
			if i+1 < len(n.runs) {
				link = n.runs[i+1].start
			}
			segs = append(segs, segment{r, link})
		}
	}
	var used uint32
	for _, p := range plans {
		add(p.d)
		for _, k := range p.kids {
			if !k.IsDir() {
				add(k)
			}
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].start < segs[j].start })
	for _, s := range segs {
		used += s.n
	}
	w.used = used

	// Stream the table in chunks: a 32 GiB volume's FAT is 8 MiB.
	const chunk = 64 << 10
	fatBytes := int64(w.g.fatSectors) * sectorSize
	buf := make([]byte, chunk)
	si := 0
	for pos := int64(0); pos < fatBytes; pos += chunk {
		b := buf[:min(chunk, fatBytes-pos)]
		clear(b)
		first := uint32(pos / 4)
		for i := range uint32(len(b) / 4) {
			c := first + i
			var v uint32
			switch {
			case c == 0:
				v = fatMedia
			case c == 1:
				v = fatEOC
			default:
				for si < len(segs) && segs[si].start+segs[si].n <= c {
					si++
				}
				if si < len(segs) && c >= segs[si].start {
					v = c + 1
					if c == segs[si].start+segs[si].n-1 {
						v = segs[si].link
					}
				}
			}
			binary.LittleEndian.PutUint32(b[4*i:], v)
		}
		for f := range int64(numFATs) {
			at := w.off + int64(w.g.reserved)*sectorSize + f*fatBytes + pos
			if _, err := w.w.WriteAt(b, at); err != nil {
				return fmt.Errorf("fat: writing FAT %d: %w", f+1, err)
			}
		}
	}
	return nil
}

// writeReserved writes the reserved area: the boot sector at 0 and its
// backup at 6, FSInfo at 1 and its backup at 7 (where mkfs.fat puts it),
// zeros elsewhere.
func (w *Writer) writeReserved() error {
	b := make([]byte, int64(w.g.reserved)*sectorSize)
	boot := w.bootSector()
	info := w.fsInfo()
	copy(b[0:], boot)
	copy(b[fsInfoSector*sectorSize:], info)
	copy(b[backupBoot*sectorSize:], boot)
	copy(b[(backupBoot+1)*sectorSize:], info)
	if _, err := w.w.WriteAt(b, w.off); err != nil {
		return fmt.Errorf("fat: writing boot sectors: %w", err)
	}
	return nil
}

// bootSector encodes the boot sector with the FAT32 BPB.
func (w *Writer) bootSector() []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	copy(b[0:], []byte{0xEB, 0x58, 0x90}) // jump over the BPB to the code
	copy(b[3:], "MSWIN4.1")               // the OEM name fatgen103 recommends
	le.PutUint16(b[11:], sectorSize)
	b[13] = byte(w.g.secPerCluster)
	le.PutUint16(b[14:], uint16(w.g.reserved))
	b[16] = numFATs
	b[21] = 0xF8              // media: fixed disk
	le.PutUint16(b[24:], 63)  // sectors per track: the usual LBA fiction
	le.PutUint16(b[26:], 255) // heads
	le.PutUint32(b[28:], uint32(w.off/sectorSize))
	le.PutUint32(b[32:], w.g.totalSectors)
	le.PutUint32(b[36:], w.g.fatSectors)
	le.PutUint32(b[44:], rootCluster)
	le.PutUint16(b[48:], fsInfoSector)
	le.PutUint16(b[50:], backupBoot)
	b[64] = 0x80 // drive number: first hard disk
	b[66] = 0x29 // extended boot signature: ID, label and type follow
	le.PutUint32(b[67:], w.opts.VolumeID)
	label := w.label
	if label == "" {
		label = "NO NAME    "
	}
	copy(b[71:], label)
	copy(b[82:], "FAT32   ")
	// Boot code: int 18h tells the BIOS this disk does not boot, so it
	// tries the next device; then halt in a loop.
	copy(b[90:], []byte{0xCD, 0x18, 0xF4, 0xEB, 0xFD})
	b[510], b[511] = 0x55, 0xAA
	return b
}

// fsInfo encodes the FSInfo sector with the true free count and the first
// cluster never allocated as the search hint.
func (w *Writer) fsInfo() []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x41615252)
	le.PutUint32(b[484:], 0x61417272)
	le.PutUint32(b[488:], w.g.clusters-w.used)
	next := w.next
	if next > w.g.clusters+1 {
		next = 0xFFFFFFFF // unknown: the volume is full
	}
	le.PutUint32(b[492:], next)
	le.PutUint32(b[508:], 0xAA550000)
	return b
}
