package squashfs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// lzoLit is a literal run of n bytes with the 0000LLLL instruction and the
// extended length (what a run longer than 18 bytes needs), as the first
// instruction of a stream or one after a copy with no trailing literals.
func lzoLit(lit []byte) []byte {
	n := len(lit)
	var b []byte
	if n <= 18 {
		b = []byte{byte(n - 3)}
	} else {
		b = []byte{0}
		n -= 18
		for n > 255 {
			b = append(b, 0)
			n -= 255
		}
		b = append(b, byte(n))
	}
	return append(b, lit...)
}

var lzoEnd = []byte{0x11, 0, 0}

func lzoCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestLZO1XInstructions decodes hand-made streams, one per instruction
// form of the format description (Documentation/staging/lzo.rst), and
// streams each broken in one way.
func TestLZO1XInstructions(t *testing.T) {
	seq := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i/251)
		}
		return b
	}
	lit2100, lit16400 := seq(2100), seq(16400)
	for _, tc := range []struct {
		name  string
		in    []byte
		want  []byte
		limit int
		err   error
	}{
		{name: "empty stream", in: lzoEnd, want: []byte{}},
		{name: "first byte literals", in: lzoCat([]byte{17 + 5}, []byte("hello"), lzoEnd), want: []byte("hello")},
		{name: "1 literal then 2-byte copy", in: lzoCat([]byte{18, 'a', 0x00, 0x00}, lzoEnd), want: []byte("aaa")},
		{name: "long literal run", in: lzoCat(lzoLit(seq(274)), lzoEnd), want: seq(274)},
		// After a literal run, 0000DDSS copies 3 bytes from 2049+ back
		// and then the SS=1 literal that follows.
		{name: "3-byte copy after a run", in: lzoCat(lzoLit(lit2100), []byte{0x01, 0x00, 'Z'}, lzoEnd),
			want: lzoCat(lit2100, lit2100[51:54], []byte("Z"))},
		{name: "1LLDDDSS copy", in: lzoCat([]byte{17 + 8}, []byte("abcdefgh"), []byte{0xFC, 0x00}, lzoEnd),
			want: []byte("abcdefghabcdefgh")},
		{name: "01LDDDSS copy with 2 literals", in: lzoCat([]byte{17 + 4}, []byte("wxyz"), []byte{0x6E, 0x00, '1', '2'}, lzoEnd),
			want: []byte("wxyzwxyz12")},
		// 001LLLLL with an extended length: 33 + 255 + 5 bytes repeating
		// the pattern 2 back.
		{name: "001LLLLL overlapping copy", in: lzoCat([]byte{17 + 2}, []byte("ab"), []byte{0x20, 0x00, 0x05, 0x04, 0x00}, lzoEnd),
			want: []byte("ab" + strings.Repeat("ab", 293/2) + "a")},
		{name: "0001HLLL far copy", in: lzoCat(lzoLit(lit16400), []byte{0x12, 0x04, 0x00}, lzoEnd),
			want: lzoCat(lit16400, lit16400[15:19])},

		{name: "truncated literals", in: []byte{17 + 4, 'a'}, err: errLZOInput},
		{name: "truncated operand", in: []byte{17 + 4, 'a', 'b', 'c', 'd', 0x40}, err: errLZOInput},
		{name: "no end marker", in: []byte{17 + 5, 'a', 'b', 'c', 'd', 'e'}, err: errLZONoEnd},
		{name: "end marker of the wrong length", in: lzoCat([]byte{17 + 4}, []byte("abcd"), []byte{0x13, 0, 0}), err: errLZONoEnd},
		{name: "bytes after the end", in: lzoCat([]byte{17 + 4}, []byte("abcd"), lzoEnd, []byte{0}), err: errLZOTrailing},
		{name: "copy before the start", in: []byte{18, 'a', 0x04, 0x00, 0x11, 0, 0}, err: errLZOBehind},
		{name: "far copy before the start", in: lzoCat([]byte{17 + 4}, []byte("abcd"), []byte{0x12, 0x04, 0x00}, lzoEnd), err: errLZOBehind},
		{name: "output past the limit", in: lzoCat([]byte{17 + 5}, []byte("hello"), lzoEnd), limit: 4, err: errLZOOutput},
		{name: "copy past the limit", in: lzoCat([]byte{17 + 8}, []byte("abcdefgh"), []byte{0xFC, 0x00}, lzoEnd), limit: 12, err: errLZOOutput},
		{name: "endless zero length bytes", in: append([]byte{0x00}, make([]byte, 100)...), limit: 1000, err: errLZOOutput},
		{name: "empty input", in: nil, err: errLZOInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = 1 << 20
			}
			got, err := lzo1xDecode(nil, tc.in, limit)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("lzo1xDecode = %d bytes, %v; want %v", len(got), err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("lzo1xDecode: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("lzo1xDecode = %q (%d bytes), want %q (%d bytes)", got[:min(len(got), 40)], len(got), tc.want[:min(len(tc.want), 40)], len(tc.want))
			}
		})
	}
}

// FuzzLZO1X decodes arbitrary bytes: no panic, and never more output than
// the limit.
func FuzzLZO1X(f *testing.F) {
	f.Add(lzoEnd, 100)
	f.Add(lzoCat([]byte{17 + 8}, []byte("abcdefgh"), []byte{0xFC, 0x00}, lzoEnd), 16)
	f.Add(lzoCat([]byte{17 + 2}, []byte("ab"), []byte{0x20, 0x00, 0x05, 0x04, 0x00}, lzoEnd), 4096)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		limit = max(0, limit%(1<<20))
		out, err := lzo1xDecode(nil, in, limit)
		if err == nil && len(out) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
	})
}
