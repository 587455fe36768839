package squashfs

import (
	"encoding/binary"
	"errors"
)

// LZO1X decompression, for images made with mksquashfs -comp lzo. No Go
// LZO library is both maintained and pure Go, and the decoder is small, so
// it lives here. The stream format follows the description in the Linux
// kernel's Documentation/staging/lzo.rst (there is no other specification):
// a sequence of instructions, each either a run of literal bytes or a copy
// from earlier output, most of them followed by 0 to 3 literal bytes whose
// count (the "state") changes how the next instruction is read. Every
// variant of LZO1X that squashfs-tools writes (lzo1x_1, 1_11, 1_12, 1_15,
// 999) decodes the same way. The zram-only "lzo-rle" extension is not read.
//
// Everything is bounds-checked: input is never read past its end, no copy
// reaches before the start of the output, and the output never grows past
// limit.

var (
	errLZOInput    = errors.New("lzo: input ends inside an instruction")
	errLZOOutput   = errors.New("lzo: output larger than the block")
	errLZOBehind   = errors.New("lzo: copy from before the start of the block")
	errLZONoEnd    = errors.New("lzo: no end-of-stream marker")
	errLZOTrailing = errors.New("lzo: bytes after the end-of-stream marker")
)

// lzoDecoder holds one decompression in progress.
type lzoDecoder struct {
	in    []byte
	ip    int
	out   []byte
	limit int
}

// lzo1xDecode appends to dst[:0] the decompression of src, failing if the
// output would pass limit bytes.
func lzo1xDecode(dst, src []byte, limit int) ([]byte, error) {
	if cap(dst) < limit {
		dst = make([]byte, 0, limit)
	}
	d := &lzoDecoder{in: src, out: dst[:0], limit: limit}
	if err := d.run(); err != nil {
		return nil, err
	}
	return d.out, nil
}

func (d *lzoDecoder) byte() (int, error) {
	if d.ip >= len(d.in) {
		return 0, errLZOInput
	}
	d.ip++
	return int(d.in[d.ip-1]), nil
}

func (d *lzoDecoder) le16() (int, error) {
	if d.ip+2 > len(d.in) {
		return 0, errLZOInput
	}
	d.ip += 2
	return int(binary.LittleEndian.Uint16(d.in[d.ip-2:])), nil
}

// extLength reads the tail of a length that overflowed its bit field: each
// zero byte adds 255 and the first non-zero byte adds itself. The sum is
// capped at just over limit, which is already an error for the caller.
func (d *lzoDecoder) extLength(base int) (int, error) {
	n := base
	for {
		b, err := d.byte()
		if err != nil {
			return 0, err
		}
		if b != 0 {
			return n + b, nil
		}
		if n += 255; n > d.limit {
			return 0, errLZOOutput
		}
	}
}

// literals copies n bytes of input to the output.
func (d *lzoDecoder) literals(n int) error {
	if n > len(d.in)-d.ip {
		return errLZOInput
	}
	if n > d.limit-len(d.out) {
		return errLZOOutput
	}
	d.out = append(d.out, d.in[d.ip:d.ip+n]...)
	d.ip += n
	return nil
}

// match copies n bytes from dist bytes back in the output; the source may
// overlap what is being written, repeating a short pattern.
func (d *lzoDecoder) match(dist, n int) error {
	if dist > len(d.out) {
		return errLZOBehind
	}
	if n > d.limit-len(d.out) {
		return errLZOOutput
	}
	from := len(d.out) - dist
	if dist >= n {
		d.out = append(d.out, d.out[from:from+n]...)
		return nil
	}
	for i := range n {
		d.out = append(d.out, d.out[from+i])
	}
	return nil
}

// run decodes the whole stream. state is the number of literals the last
// instruction copied after itself: 0, 1..3, or 4 for a literal run.
func (d *lzoDecoder) run() error {
	if len(d.in) == 0 {
		return errLZOInput
	}
	state := 0
	// A first byte above 17 starts the stream with literals: 1..3 of them
	// act like the literals after a copy, more like a literal run.
	if first := int(d.in[0]); first > 17 {
		d.ip = 1
		n := first - 17
		if err := d.literals(n); err != nil {
			return err
		}
		state = min(n, 4)
	}
	for {
		op, err := d.byte()
		if err != nil {
			return errLZONoEnd
		}
		var dist, n, next int
		switch {
		case op < 16 && state == 0:
			// 0000LLLL: a run of 4 or more literals.
			n = op + 3
			if op == 0 {
				if n, err = d.extLength(15 + 3); err != nil {
					return err
				}
			}
			if err := d.literals(n); err != nil {
				return err
			}
			state = 4
			continue
		case op < 16:
			// 0000DDSS + one byte: a short copy, whose reach depends on
			// whether literals or a literal run came before.
			h, err := d.byte()
			if err != nil {
				return err
			}
			dist, n, next = h<<2+op>>2+1, 2, op&3
			if state == 4 {
				dist, n = dist+2048, 3
			}
		case op >= 64:
			// 01LDDDSS or 1LLDDDSS + one byte: 3 to 8 bytes within 2 KiB.
			h, err := d.byte()
			if err != nil {
				return err
			}
			dist, n, next = h<<3+(op>>2)&7+1, op>>5+1, op&3
		case op >= 32:
			// 001LLLLL + LE16: a copy within 16 KiB.
			n = op&31 + 2
			if op&31 == 0 {
				if n, err = d.extLength(31 + 2); err != nil {
					return err
				}
			}
			v, err := d.le16()
			if err != nil {
				return err
			}
			dist, next = v>>2+1, v&3
		default:
			// 0001HLLL + LE16: a copy from 16 to 48 KiB back, or with a
			// zero distance field the end of the stream.
			n = op&7 + 2
			if op&7 == 0 {
				if n, err = d.extLength(7 + 2); err != nil {
					return err
				}
			}
			v, err := d.le16()
			if err != nil {
				return err
			}
			far := (op&8)<<11 + v>>2
			if far == 0 {
				if n != 3 {
					return errLZONoEnd
				}
				if d.ip != len(d.in) {
					return errLZOTrailing
				}
				return nil
			}
			dist, next = far+0x4000, v&3
		}
		if err := d.match(dist, n); err != nil {
			return err
		}
		if err := d.literals(next); err != nil {
			return err
		}
		state = next
	}
}
