package fat

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/modules/entry"
)

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// body returns the deterministic content of the file at p: a pattern
// seeded by the path, so a misplaced cluster shows as a content mismatch.
func body(p string, size int64) io.Reader {
	h := fnv.New32a()
	h.Write([]byte(p))
	return io.LimitReader(&pattern{seed: h.Sum32()}, size)
}

type pattern struct {
	seed uint32
	i    uint64
}

func (r *pattern) Read(b []byte) (int, error) {
	for j := range b {
		x := r.i*0x9E3779B1 + uint64(r.seed)
		b[j] = byte(x>>24 ^ x>>7)
		r.i++
	}
	return len(b), nil
}

func sum(r io.Reader) string {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// file builds a regular-file header.
func file(p string, size int64) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeRegular, Size: size, Mode: 0o644, ModTime: testTime}
}

func dir(p string) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeDir, Mode: 0o755, ModTime: testTime}
}

// write streams hs (bodies from body) into a new image file of
// offset+size bytes with the volume at offset.
func write(t *testing.T, img string, offset, size int64, opts Options, hs []*entry.Header) {
	t.Helper()
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(offset + size); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, offset, size, opts)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	for _, h := range hs {
		if err := w.WriteHeader(h); err != nil {
			t.Fatalf("WriteHeader(%s): %v", h.Path, err)
		}
		if _, err := io.Copy(w, body(h.Path, h.Size)); err != nil {
			t.Fatalf("body of %s: %v", h.Path, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

var fsckSummary = regexp.MustCompile(`(\d+) files, (\d+)/(\d+) clusters`)

// fsck runs fsck.fat -n -v on a volume at offset 0 and checks that it is
// clean and that FSInfo's free count and next-free hint agree with it.
func fsck(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command(testenv.RequireTool(t, "fsck.fat"), "-n", "-v", img).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Invalid") {
		t.Fatalf("fsck.fat -n -v: %v\n%s", err, out)
	}
	m := fsckSummary.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("fsck.fat -v printed no summary:\n%s", out)
	}
	used, _ := strconv.Atoi(m[2])
	total, _ := strconv.Atoi(m[3])
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info := make([]byte, sectorSize)
	if _, err := f.ReadAt(info, fsInfoSector*sectorSize); err != nil {
		t.Fatal(err)
	}
	if free := binary.LittleEndian.Uint32(info[488:]); int(free) != total-used {
		t.Errorf("FSInfo free count %d, fsck.fat counts %d free (%d/%d used)", free, total-used, used, total)
	}
	// The next-free hint must name a free cluster.
	if next := binary.LittleEndian.Uint32(info[492:]); next != 0xFFFFFFFF {
		boot := make([]byte, sectorSize)
		if _, err := f.ReadAt(boot, 0); err != nil {
			t.Fatal(err)
		}
		e := make([]byte, 4)
		if _, err := f.ReadAt(e, int64(binary.LittleEndian.Uint16(boot[14:]))*sectorSize+int64(next)*4); err != nil {
			t.Fatal(err)
		}
		if v := binary.LittleEndian.Uint32(e); v != 0 {
			t.Errorf("FSInfo next free is cluster %d, whose FAT entry is %#x", next, v)
		}
	}
}

// extract copies the volume at offset out with mtools and returns the
// directory.
func extract(t *testing.T, img string, offset int64) string {
	t.Helper()
	mcopy := testenv.RequireTool(t, "mcopy")
	dst := t.TempDir()
	cmd := exec.Command(mcopy, "-s", "-m", "-n", "-i", fmt.Sprintf("%s@@%d", img, offset), "::", dst+"/")
	cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	return dst
}

// compareTree checks that dst holds exactly the entries of hs (and the
// directories they imply), with the same names, contents and mtimes
// (FAT keeps even seconds).
func compareTree(t *testing.T, dst string, hs []*entry.Header) {
	t.Helper()
	want := map[string]*entry.Header{}
	for _, h := range hs { // the last header for a path wins
		want[h.Path] = h
		for d := h.Path; strings.Contains(d, "/"); {
			d = d[:strings.LastIndexByte(d, '/')]
			if want[d] == nil {
				want[d] = dir(d)
			}
		}
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dst {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		h := want[rel]
		if h == nil {
			t.Errorf("extracted %q, which was never written", rel)
			return nil
		}
		seen[rel] = true
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.IsDir() != h.IsDir() {
			t.Errorf("%s: directory %v, want %v", rel, fi.IsDir(), h.IsDir())
			return nil
		}
		if wantT := h.ModTime.Truncate(2 * time.Second); !fi.ModTime().Equal(wantT) {
			t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime().UTC(), wantT)
		}
		if !fi.IsDir() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if fi.Size() != h.Size {
				t.Errorf("%s: %d bytes, want %d", rel, fi.Size(), h.Size)
			} else if sum(f) != sum(body(h.Path, h.Size)) {
				t.Errorf("%s: content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if !seen[p] && p != "." {
			t.Errorf("%s was written but not extracted", p)
		}
	}
}
