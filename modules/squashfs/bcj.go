package squashfs

import (
	"encoding/binary"
	"fmt"
)

// The branch/call/jump (BCJ) filters of the xz format (its section 5.3.2),
// decode side only. An encoder rewrites the relative target of each call
// or branch instruction it recognises into an absolute address, so that
// repeated calls to one function become repeated bytes that LZMA2
// compresses better; decoding subtracts the instruction's position again.
// mksquashfs -Xbcj tries the filters it is given on every block and keeps
// whichever compresses best (Porteus builds its modules with -Xbcj x86),
// so a block carries at most one of them, ahead of LZMA2.
//
// Each squashfs block is its own xz stream, so a filter always starts at
// the block's first byte with fresh state, and runs over the whole
// decompressed block at once: the streaming decoders of liblzma hold back
// the last few bytes until more input comes, which gives the same result.
// Bytes too close to the end to hold a whole instruction are left as they
// are, as the encoder left them.

// xz filter ids (xz file format, sections 5.3.1 and 5.3.2).
const (
	xzFilterX86      = 0x04
	xzFilterPowerPC  = 0x05
	xzFilterIA64     = 0x06
	xzFilterARM      = 0x07
	xzFilterARMThumb = 0x08
	xzFilterSPARC    = 0x09
	xzFilterLZMA2    = 0x21
)

// bcjFilter undoes one BCJ filter in place; start is the stream offset
// the encoder took the block's first byte to be at.
type bcjFilter struct {
	name  string
	start uint32
	undo  func(b []byte, start uint32)
}

// bcjFilters maps the filter ids squashfs-tools can write to their
// decoders.
var bcjFilters = map[uint64]struct {
	name string
	undo func(b []byte, start uint32)
}{
	xzFilterX86:      {"x86", bcjUndoX86},
	xzFilterPowerPC:  {"powerpc", bcjUndoPowerPC},
	xzFilterIA64:     {"ia64", bcjUndoIA64},
	xzFilterARM:      {"arm", bcjUndoARM},
	xzFilterARMThumb: {"armthumb", bcjUndoARMThumb},
	xzFilterSPARC:    {"sparc", bcjUndoSPARC},
}

// newBCJFilter returns the decoder of filter id with its properties: none,
// or a 32-bit little-endian start offset.
func newBCJFilter(id uint64, props []byte) (bcjFilter, error) {
	f, ok := bcjFilters[id]
	if !ok {
		return bcjFilter{}, fmt.Errorf("%w: xz filter %#x ahead of LZMA2: this reader undoes the BCJ filters mksquashfs -Xbcj writes "+
			"(x86, powerpc, ia64, arm, armthumb, sparc) and no others; unpack the image with a tool that reads it and rebuild it with byz module create",
			ErrUnsupportedCompression, id)
	}
	var start uint32
	switch len(props) {
	case 0:
	case 4:
		start = binary.LittleEndian.Uint32(props)
	default:
		return bcjFilter{}, fmt.Errorf("xz: %s filter with %d bytes of properties, want 0 or 4", f.name, len(props))
	}
	return bcjFilter{name: f.name, start: start, undo: f.undo}, nil
}

// bcjX86IsAddressTop reports whether b can be the top byte of a 32-bit
// displacement the x86 filter converts: only near targets, whose
// displacement is a small positive or negative number, are worth it.
func bcjX86IsAddressTop(b byte) bool { return b == 0x00 || b == 0xFF }

// bcjUndoX86 decodes the x86 filter. It looks at CALL (E8) and JMP (E9)
// opcodes followed by a 32-bit displacement. Because x86 instructions have
// no alignment, an E8 byte may well be inside another instruction; the
// filter guesses from the last few E8/E9 bytes it saw (mask, one bit per
// byte back) whether this one is a real opcode, and the decoder must make
// exactly the same guesses the encoder made, so it tracks the same state
// over the bytes it has already restored.
func bcjUndoX86(b []byte, start uint32) {
	// Indexed by (mask >> 1): whether an E8/E9 with that pattern of recent
	// E8/E9 bytes behind it is converted, and which byte of the
	// displacement to test again after undoing the conversion.
	allowed := [8]bool{true, true, true, false, true, false, false, false}
	recheck := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}

	var mask uint32
	last := start - 5 // stream position of the last E8/E9 seen
	for i := 0; i+5 <= len(b); {
		if b[i] != 0xE8 && b[i] != 0xE9 {
			i++
			continue
		}
		pos := start + uint32(i)
		if gap := pos - last; gap > 5 {
			mask = 0
		} else {
			for range gap {
				// Bits 3 and 7 drop out before the shift, so after it
				// bit 4 is never set and mask>>1 < 0x10 means < 8.
				mask = (mask & 0x77) << 1
			}
		}
		last = pos
		top := b[i+4]
		if m := mask >> 1; m < 8 && allowed[m] && bcjX86IsAddressTop(top) {
			v := binary.LittleEndian.Uint32(b[i+1:])
			var d uint32
			for {
				d = v - (pos + 5)
				if mask == 0 {
					break
				}
				shift := 24 - recheck[mask>>1]*8
				if !bcjX86IsAddressTop(byte(d >> shift)) {
					break
				}
				v = d ^ (1<<(shift+8) - 1)
			}
			// Bits 0..24 of the displacement; the top byte repeats bit 24.
			d = d&0x01FFFFFF | -(d>>24&1)<<25
			binary.LittleEndian.PutUint32(b[i+1:], d)
			i += 5
			mask = 0
			continue
		}
		i++
		mask |= 1
		if bcjX86IsAddressTop(top) {
			mask |= 0x10
		}
	}
}

// bcjUndoARM decodes the ARM filter: BL instructions (a 24-bit word
// offset, relative to the instruction plus 8, in a little-endian word
// whose top byte is EB).
func bcjUndoARM(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 4 {
		if b[i+3] != 0xEB {
			continue
		}
		v := (uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16) << 2
		d := (v - (start + uint32(i) + 8)) >> 2
		b[i], b[i+1], b[i+2] = byte(d), byte(d>>8), byte(d>>16)
	}
}

// bcjUndoARMThumb decodes the ARM-Thumb filter: the two halfwords of a
// Thumb BL (F000 + F800 patterns, 22-bit halfword offset relative to the
// instruction plus 4), on 2-byte alignment.
func bcjUndoARMThumb(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 2 {
		if b[i+1]&0xF8 != 0xF0 || b[i+3]&0xF8 != 0xF8 {
			continue
		}
		v := (uint32(b[i+1]&7)<<19 | uint32(b[i])<<11 | uint32(b[i+3]&7)<<8 | uint32(b[i+2])) << 1
		d := (v - (start + uint32(i) + 4)) >> 1
		b[i+1] = 0xF0 | byte(d>>19)&7
		b[i] = byte(d >> 11)
		b[i+3] = 0xF8 | byte(d>>8)&7
		b[i+2] = byte(d)
		i += 2 // the whole 4-byte pair is consumed
	}
}

// bcjUndoPowerPC decodes the PowerPC filter: big-endian "bl" (opcode 18
// with AA=0, LK=1) and its 24-bit word offset.
func bcjUndoPowerPC(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 4 {
		if b[i]>>2 != 0x12 || b[i+3]&3 != 1 {
			continue
		}
		w := binary.BigEndian.Uint32(b[i:])
		d := (w & 0x03FFFFFC) - (start + uint32(i))
		binary.BigEndian.PutUint32(b[i:], 0x48000000|d&0x03FFFFFF|w&3)
	}
}

// bcjUndoSPARC decodes the SPARC filter: big-endian "call" instructions
// whose 30-bit word displacement is small (its top bits all equal).
func bcjUndoSPARC(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 4 {
		if !(b[i] == 0x40 && b[i+1]&0xC0 == 0) && !(b[i] == 0x7F && b[i+1]&0xC0 == 0xC0) {
			continue
		}
		v := binary.BigEndian.Uint32(b[i:]) << 2
		d := (v - (start + uint32(i))) >> 2
		// Sign-extend bit 22 through bit 29, then the call opcode (01).
		d = (-(d>>22&1)<<22)&0x3FFFFFFF | d&0x3FFFFF | 0x40000000
		binary.BigEndian.PutUint32(b[i:], d)
	}
}

// bcjUndoIA64 decodes the IA-64 filter. Itanium code comes in 16-byte
// bundles: a 5-bit template, then three 41-bit instruction slots. The
// template says which slots may hold a branch; in those, an IP-relative
// branch (major opcode 5, btype 0) has its 21-bit bundle displacement
// (imm20b plus the sign bit) made absolute by the encoder.
func bcjUndoIA64(b []byte, start uint32) {
	// Bit s set: slot s of a bundle with this template may hold a branch.
	branchSlots := [32]uint32{
		16: 4, 17: 4, 18: 6, 19: 6, 22: 7, 23: 7,
		24: 4, 25: 4, 28: 4, 29: 4,
	}
	for i := 0; i+16 <= len(b); i += 16 {
		slots := branchSlots[b[i]&0x1F]
		for s := range 3 {
			if slots>>s&1 == 0 {
				continue
			}
			bit := 5 + 41*s
			at, shift := i+bit/8, uint(bit%8)
			var raw uint64 // six bytes hold the 41-bit slot
			for j := range 6 {
				raw |= uint64(b[at+j]) << (8 * j)
			}
			ins := raw >> shift
			if ins>>37&0xF != 5 || ins>>9&7 != 0 {
				continue
			}
			v := (uint32(ins>>13&0xFFFFF) | uint32(ins>>36&1)<<20) << 4
			d := (v - (start + uint32(i))) >> 4
			ins &^= 0x8FFFFF << 13
			ins |= uint64(d&0xFFFFF)<<13 | uint64(d&0x100000)<<(36-20)
			raw = raw&(1<<shift-1) | ins<<shift
			for j := range 6 {
				b[at+j] = byte(raw >> (8 * j))
			}
		}
	}
}
