package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"byzantium/modules/internal/testtree"
)

// bcjSample returns about n bytes on which filter really converts
// something: machine code for x86 (this test's own binary), and for the
// other architectures random bytes salted with the branch instructions
// their filters look for, at the alignment each expects.
func bcjSample(t *testing.T, filter string, n int) []byte {
	t.Helper()
	if filter == "x86" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < n+4096 {
			t.Fatalf("%s is %d bytes, want %d", exe, len(b), n+4096)
		}
		return b[4096 : 4096+n]
	}
	rng := rand.New(rand.NewPCG(7, uint64(len(filter))))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for i := 0; i+16 <= n; i += 16 {
		if rng.IntN(3) != 0 {
			continue // leave some random stretches as they are
		}
		w := b[i : i+16]
		switch filter {
		case "arm":
			w[3], w[7] = 0xEB, 0xEB // BL
		case "armthumb":
			w[1], w[3] = 0xF0|w[1]&7, 0xF8|w[3]&7 // BL pair
			w[9], w[11] = 0xF0|w[9]&7, 0xF8|w[11]&7
		case "powerpc":
			w[0], w[3] = 0x48|w[0]&3, w[3]&^3|1 // bl
		case "sparc":
			w[0], w[1] = 0x40, w[1]&0x3F // call, small forward
			w[4], w[5] = 0x7F, w[5]|0xC0 // call, small backward
		case "ia64":
			w[0] = 0x10 | w[0]&0xE0 // template 0x10: slot 2 may branch
			// Slot 2 is bits 87..127 of the bundle, 23 bits into its
			// second half: make it opcode 5 (slot bits 37..40) with
			// bits 9..11 clear, an IP-relative branch.
			slot := binary.LittleEndian.Uint64(w[8:]) >> 23
			slot = slot&^(0xF<<37) | 5<<37
			slot &^= 7 << 9
			v := binary.LittleEndian.Uint64(w[8:])&(1<<23-1) | slot<<23
			binary.LittleEndian.PutUint64(w[8:], v)
		}
	}
	return b
}

// bcjFilterNames are the -Xbcj names of mksquashfs, as the xz command
// spells its options.
var bcjFilterNames = []string{"x86", "powerpc", "ia64", "arm", "armthumb", "sparc"}

// TestBCJUndoOracle has xz (liblzma) encode samples with each BCJ filter,
// with and without a start offset, gets the filtered bytes back by
// decoding the raw LZMA2 stream alone, and checks that our decoder turns
// them back into the original.
func TestBCJUndoOracle(t *testing.T) {
	xz := testtree.RequireTool(t, "xz")
	ids := map[string]uint64{"x86": xzFilterX86, "powerpc": xzFilterPowerPC, "ia64": xzFilterIA64,
		"arm": xzFilterARM, "armthumb": xzFilterARMThumb, "sparc": xzFilterSPARC}
	for _, name := range bcjFilterNames {
		for _, start := range []uint32{0, 4096} {
			t.Run(fmt.Sprintf("%s-start%d", name, start), func(t *testing.T) {
				orig := bcjSample(t, name, 256<<10+13) // an odd tail the filters leave alone
				opt := "--" + name
				if start != 0 {
					opt += "=start=4096"
				}
				raw := bcjRun(t, orig, xz, "--format=raw", opt, "--lzma2", "-c")
				filtered := bcjRun(t, raw, xz, "--format=raw", "--lzma2", "-d", "-c")
				if len(filtered) != len(orig) {
					t.Fatalf("filtered %d bytes, want %d", len(filtered), len(orig))
				}
				changed := 0
				for i := range orig {
					if orig[i] != filtered[i] {
						changed++
					}
				}
				if changed < 100 {
					t.Fatalf("the %s filter changed only %d bytes of the sample: the test exercises nothing", name, changed)
				}
				var props []byte
				if start != 0 {
					props = binary.LittleEndian.AppendUint32(nil, start)
				}
				f, err := newBCJFilter(ids[name], props)
				if err != nil {
					t.Fatal(err)
				}
				got := bytes.Clone(filtered)
				f.undo(got, f.start)
				if i := bcjFirstDiff(got, orig); i >= 0 {
					t.Fatalf("undoing %s (%d bytes changed by the encoder): first difference at byte %d: got % x, want % x",
						name, changed, i, got[i:min(i+8, len(got))], orig[i:min(i+8, len(orig))])
				}
			})
		}
	}
}

func bcjRun(t *testing.T, in []byte, tool string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, stderr.Bytes())
	}
	return out
}

func bcjFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestXZFilterChains decodes whole xz streams as squashfs blocks: each BCJ
// filter ahead of LZMA2 reads back; a filter squashfs-tools never writes
// (delta) is ErrUnsupportedCompression naming it, not corruption; and a
// BCJ filter where LZMA2 belongs is corruption.
func TestXZFilterChains(t *testing.T) {
	xz := testtree.RequireTool(t, "xz")
	for _, name := range bcjFilterNames {
		t.Run(name, func(t *testing.T) {
			orig := bcjSample(t, name, 128<<10)
			stream := bcjRun(t, orig, xz, "--format=xz", "--check=crc32", "--"+name, "--lzma2=dict=128KiB", "-c")
			got, err := readXZ{}.decode(nil, stream, len(orig))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(got, orig) {
				t.Fatalf("decoded %d bytes differ from the original (first at %d)", len(got), bcjFirstDiff(got, orig))
			}
		})
	}
	t.Run("delta", func(t *testing.T) {
		stream := bcjRun(t, bytes.Repeat([]byte("abcd"), 1000), xz, "--format=xz", "--check=crc32", "--delta=dist=4", "--lzma2", "-c")
		_, err := readXZ{}.decode(nil, stream, 4000)
		if !errors.Is(err, ErrUnsupportedCompression) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode = %v, want ErrUnsupportedCompression only", err)
		}
		if !strings.Contains(err.Error(), "xz filter 0x3") {
			t.Errorf("error %q does not name the filter", err)
		}
	})
}

// TestReaderBCJImages reads images mksquashfs wrote with -Xbcj (Porteus's
// own options among them) from x86 code and text, and checks that blocks
// really went through a BCJ filter, so the comparison with the source
// covers them. (mksquashfs keeps a filter only where it compresses better,
// which on synthetic code for the other architectures it seldom does:
// TestBCJUndoOracle and TestXZFilterChains cover those against xz.)
func TestReaderBCJImages(t *testing.T) {
	mksquashfs := testtree.RequireTool(t, "mksquashfs")
	src := t.TempDir()
	var text bytes.Buffer
	for i := 0; text.Len() < 300<<10; i++ {
		fmt.Fprintf(&text, "line %d of some text\n", i)
	}
	for name, b := range map[string][]byte{"x86-code": bcjSample(t, "x86", 768<<10+77), "text": text.Bytes()} {
		if err := os.WriteFile(src+"/"+name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readSourceTree(t, src)
	for _, tc := range []struct {
		name string
		args []string
		// filters is the -Xbcj bit mask the image records.
		filters int
	}{
		{"porteus", []string{"-comp", "xz", "-b", "256K", "-Xbcj", "x86"}, 1},
		{"all", []string{"-comp", "xz", "-Xbcj", "x86,powerpc,ia64,arm,armthumb,sparc"}, 63},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := t.TempDir() + "/img.sqfs"
			args := append([]string{src, img, "-noappend", "-quiet", "-no-progress", "-processors", "2"}, tc.args...)
			if out, err := exec.Command(mksquashfs, args...).CombinedOutput(); err != nil {
				t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
			}
			r := readOpen(t, img)
			counter := &readFilterCounter{inner: r.dec}
			r.dec = counter
			readCompare(t, readAll(t, r), want)
			opts, err := r.CompressorOptions()
			if err != nil || opts["filters"] != tc.filters {
				t.Errorf("CompressorOptions() = %v, %v; want filters %d", opts, err, tc.filters)
			}
			if counter.filtered == 0 {
				t.Errorf("no block of %d went through a BCJ filter", counter.blocks)
			}
			t.Logf("%d of %d blocks BCJ-filtered", counter.filtered, counter.blocks)
		})
	}
}

// readFilterCounter counts the xz blocks whose filter chain holds more
// than LZMA2 (the block header's flags byte, after the 12-byte stream
// header and the header size byte, keeps the filter count less one in its
// low two bits).
type readFilterCounter struct {
	inner            readDecoder
	blocks, filtered int
}

func (c *readFilterCounter) decode(dst, src []byte, limit int) ([]byte, error) {
	c.blocks++
	if len(src) > 13 && src[13]&3 != 0 {
		c.filtered++
	}
	return c.inner.decode(dst, src, limit)
}

// FuzzBCJ runs every filter over arbitrary bytes: whatever the input and
// the start offset, nothing panics and the length never changes.
func FuzzBCJ(f *testing.F) {
	f.Add([]byte{0xE8, 0, 0, 0, 0, 0xE8, 1, 2, 3, 0xFF}, uint32(0))
	f.Add(bytes.Repeat([]byte{0xE8, 0xE9, 0x00, 0xFF}, 8), uint32(5))
	f.Fuzz(func(t *testing.T, b []byte, start uint32) {
		for _, id := range []uint64{xzFilterX86, xzFilterPowerPC, xzFilterIA64, xzFilterARM, xzFilterARMThumb, xzFilterSPARC} {
			c := bytes.Clone(b)
			bcjFilters[id].undo(c, start)
			if len(c) != len(b) {
				t.Fatalf("filter %#x changed the length", id)
			}
		}
	})
}
