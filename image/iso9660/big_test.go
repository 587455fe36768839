package iso9660

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"byzantium/modules/entry"
)

// bigSize is over 4 GiB and not sector aligned, so the file needs two
// sections and its last sector is partial.
const bigSize = 4<<30 + 100<<20 + 12345

// bigRegions hold data; the rest of the file is zeros. One straddles the
// boundary between the two sections.
var bigRegions = [][2]int64{{0, 5000}, {maxSection - 3000, 6000}, {3 << 30, 4096}, {bigSize - 7000, 7000}}

func bigByte(i int64) byte { return byte(i*131+i>>9) ^ 0x5a }

// bigStream yields a directory, the big file, then a small file whose
// extent comes after it.
type bigStream struct {
	i   int
	off int64
}

func (s *bigStream) Next() (*entry.Header, error) {
	s.i++
	s.off = 0
	switch s.i {
	case 1:
		return &entry.Header{Path: "data", Type: entry.TypeDir, Mode: 0o755, ModTime: epoch}, nil
	case 2:
		return &entry.Header{Path: "data/big.bin", Type: entry.TypeRegular, Mode: 0o644, Size: bigSize, ModTime: epoch}, nil
	case 3:
		return &entry.Header{Path: "data/after.txt", Type: entry.TypeRegular, Mode: 0o644, Size: 6, ModTime: epoch}, nil
	}
	return nil, io.EOF
}

func (s *bigStream) Read(p []byte) (int, error) {
	if s.i == 3 {
		if s.off > 0 {
			return 0, io.EOF
		}
		s.off = 6
		return copy(p, "after\n"), nil
	}
	if s.off >= bigSize {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), bigSize-s.off)]
	clear(p)
	for _, r := range bigRegions {
		for i := max(r[0], s.off); i < min(r[0]+r[1], s.off+int64(len(p))); i++ {
			p[i-s.off] = bigByte(i)
		}
	}
	s.off += int64(len(p))
	return len(p), nil
}

// TestLargeFile writes a 4.1 GiB mostly-zero file, which needs a
// multi-extent directory entry, and has xorriso report its size and cut out
// sampled regions (including across the section boundary) whose hashes must
// match. The image itself must stay sparse.
func TestLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 4.1 GiB; skipped with -short")
	}
	img := filepath.Join(t.TempDir(), "big.iso")
	start := time.Now()
	if err := buildTo(img, &bigStream{}, Options{ModTime: epoch}); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote the 4.1 GiB image in %v", time.Since(start))
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size < bigSize || st.Blocks*512 > 64<<20 {
		t.Errorf("image is %d bytes with %d allocated, want ≥ %d and sparse", st.Size, st.Blocks*512, int64(bigSize))
	}

	ls := lsdl(t, img)
	if got := ls["data/big.bin"].size; got != strconv.Itoa(bigSize) {
		t.Errorf("xorriso lists big.bin with size %s, want %d", got, bigSize)
	}
	if out := run(t, "isoinfo", "-l", "-i", img); strings.Count(out, "BIG.BIN;1") != 2 {
		t.Errorf("isoinfo should list two sections of BIG.BIN:\n%s", out)
	}

	// One xorriso run for all cuts: each run loads the image anew.
	dir := t.TempDir()
	samples := append(bigRegions, [2]int64{1 << 30, 4096}) // a zero region too
	args := []string{"-osirrox", "on", "-indev", img}
	for i, r := range samples {
		args = append(args, "-extract_cut", "/data/big.bin", strconv.FormatInt(r[0], 10), strconv.FormatInt(r[1], 10), filepath.Join(dir, "cut"+strconv.Itoa(i)))
	}
	after := filepath.Join(dir, "after.txt")
	run(t, "xorriso", append(args, "-extract", "/data/after.txt", after)...)
	for i, r := range samples {
		got, err := os.ReadFile(filepath.Join(dir, "cut"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, r[1])
		s := &bigStream{i: 2, off: r[0]}
		io.ReadFull(s, want)
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("bytes %d+%d of big.bin: hash differs from the stream's", r[0], r[1])
		}
	}
	if got, _ := os.ReadFile(after); !bytes.Equal(got, []byte("after\n")) {
		t.Errorf("after.txt = %q, want %q", got, "after\n")
	}
}
