package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"

	"byzantium/modules/internal/testtree"
)

// TestLZMABlockHeader feeds the lzma decoder .lzma streams from xz, whose
// header (like a hostile one) asks for a dictionary far larger than a
// block: the dictionary is cut to the block, so decoding still works and
// allocates about the block, not the 4 GiB asked for. A size larger than
// the block is refused before decoding.
func TestLZMABlockHeader(t *testing.T) {
	xz := testtree.RequireTool(t, "xz")
	var data bytes.Buffer
	for i := 0; data.Len() < 100<<10; i++ {
		fmt.Fprintf(&data, "%d bottles of beer on the wall\n", i)
	}
	orig := data.Bytes()
	stream := bcjRun(t, orig, xz, "--format=lzma", "-c") // size unknown, end marker
	le := binary.LittleEndian
	withSize := func(b []byte, size uint64) []byte {
		c := bytes.Clone(b)
		le.PutUint64(c[5:], size)
		return c
	}
	huge := bytes.Clone(stream)
	le.PutUint32(huge[1:], 0xFFFFFFFF)
	for _, tc := range []struct {
		name   string
		in     []byte
		limit  int
		errHas string
	}{
		{"as xz writes it", stream, len(orig), ""},
		{"size filled in, as mksquashfs does", withSize(stream, uint64(len(orig))), len(orig), ""},
		{"4 GiB dictionary", huge, len(orig), ""},
		{"size past the block", withSize(stream, 1<<40), len(orig), "more than the"},
		{"wrong size", withSize(stream, uint64(len(orig)-1)), len(orig), "size"},
		{"block smaller than the data", stream, len(orig) - 1, "past"},
		{"short", stream[:10], len(orig), "shorter than its header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := readLZMA{}.decode(nil, tc.in, tc.limit)
			runtime.ReadMemStats(&after)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("decode = %d bytes, %v; want an error saying %q", len(got), err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(got, orig) {
				t.Fatalf("decoded %d bytes, not the original %d", len(got), len(orig))
			}
			// The output and a dictionary of the block, some tables: far
			// from the gigabytes the header asks for.
			if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
				t.Errorf("decoding a %d-byte block allocated %d bytes", len(orig), n)
			}
		})
	}
}

// TestLZ4BlockLimit checks that an lz4 block cannot inflate past the
// limit it is decoded under.
func TestLZ4BlockLimit(t *testing.T) {
	orig := bytes.Repeat([]byte("squashfs "), 10000)
	buf := make([]byte, lz4.CompressBlockBound(len(orig)))
	var c lz4.Compressor
	n, err := c.CompressBlock(orig, buf)
	if err != nil || n == 0 {
		t.Fatalf("CompressBlock = %d, %v", n, err)
	}
	got, err := readLZ4{}.decode(nil, buf[:n], len(orig))
	if err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("decode = %d bytes, %v; want the original %d", len(got), err, len(orig))
	}
	if got, err := (readLZ4{}).decode(nil, buf[:n], len(orig)-1); err == nil {
		t.Fatalf("decode under a limit one byte short = %d bytes, no error", len(got))
	}
}
