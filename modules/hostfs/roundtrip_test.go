package hostfs

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules/entry"
	"byzantium/modules/internal/testtree"
)

// TestRoundTrip walks a tree with every kind of entry into a stream, extracts
// the stream elsewhere and compares the two trees attribute by attribute.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name       string
		privileged bool
	}{
		{"unprivileged", false},
		{"privileged", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.privileged {
				testtree.RequireRoot(t)
			}
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
			tree := testtree.Build(t, src, testtree.Options{Privileged: tc.privileged})
			r, err := NewReader(src)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := Extract(r, dst, ExtractOptions{}); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			testtree.Compare(t, src, dst, testtree.CompareOptions{})

			got := testtree.Scan(t, dst)
			if len(got) != tree.Count {
				t.Errorf("extracted %d entries, the tree has %d", len(got), tree.Count)
			}
			sparse := got[testtree.SparsePath]
			if used := sparse.Blocks * 512; used > 64<<10 {
				t.Errorf("%s: %d bytes allocated for %d of data in a %d-byte file: holes were filled",
					testtree.SparsePath, used, 4096+100+1, sparse.Size)
			}
		})
	}
}

// TestReaderOrder checks the walk order, the hardlink form and that only one
// file is open at a time.
func TestReaderOrder(t *testing.T) {
	src := t.TempDir()
	testtree.Build(t, src, testtree.Options{WideEntries: 300})
	r, err := NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	baseFDs := openFDs(t)
	var paths []string
	seen := map[string]*entry.Header{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Validate(); err != nil {
			t.Errorf("invalid header: %v", err)
		}
		if h.Path != "." {
			if p := seen[path.Dir(h.Path)]; p == nil || p.Type != entry.TypeDir {
				t.Errorf("%s comes before its directory", h.Path)
			}
		}
		seen[h.Path] = h
		paths = append(paths, h.Path)
		if n, err := io.Copy(io.Discard, r); err != nil || n != h.Size {
			t.Errorf("%s: read %d bytes, %v; header says %d", h.Path, n, err, h.Size)
		}
		if n := openFDs(t); n > baseFDs+1 {
			t.Fatalf("at %s: %d descriptors open, %d before the walk", h.Path, n, baseFDs)
		}
	}
	if paths[0] != "." {
		t.Errorf("first entry %q, want \".\"", paths[0])
	}
	// Within each directory, names come in bytewise order.
	last := map[string]string{}
	for _, p := range paths[1:] {
		dir, name := path.Split(p)
		if prev, ok := last[dir]; ok && prev >= name {
			t.Errorf("in %q, %q comes after %q", dir, name, prev)
		}
		last[dir] = name
	}
	want := []string{"names/.hidden", "names/UPPER", "names/a", "names/a/b", "names/a-b"}
	if got := filter(paths, "names/"); strings.Join(got[:5], " ") != strings.Join(want, " ") {
		t.Errorf("names/ order = %q, want it to start %q", got, want)
	}
	for link, target := range map[string]string{
		"hard/b": "hard/a", "hard/sub/c": "hard/a", "hard/z-size-4097": "files/size-4097",
		"hard/fifo2": "hard/fifo", "hard/empty2": "hard/empty",
	} {
		h := seen[link]
		if h == nil || h.Type != entry.TypeHardlink || h.Linkname != target || h.Size != 0 {
			t.Errorf("%s = %+v, want a hardlink to %s", link, h, target)
		}
	}
	if h := seen["links/absolute"]; h == nil || h.Linkname != "/etc/passwd" {
		t.Errorf("links/absolute = %+v, want a symlink to /etc/passwd", h)
	}
	if h := seen["xattrs/user"]; h == nil || string(h.Xattrs["user.bin"]) != "\x00\x01\xff" || h.Xattrs["user.empty"] == nil {
		t.Errorf("xattrs/user = %+v, want user.bin and an empty user.empty", h)
	}
}

func filter(paths []string, prefix string) []string {
	var out []string
	for _, p := range paths {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}

func openFDs(t *testing.T) int {
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(des)
}

// TestExtractNoChown extracts files owned by others without restoring
// ownership.
func TestExtractNoChown(t *testing.T) {
	testtree.RequireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	testtree.Build(t, src, testtree.Options{Privileged: true, WideEntries: 1})
	r, err := NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := Extract(r, dst, ExtractOptions{NoChown: true}); err != nil {
		t.Fatal(err)
	}
	got := testtree.Scan(t, dst)
	for _, p := range []string{"owners/u1000", "owners/dir", "owners/link", "owners/setuid-1000"} {
		if n := got[p]; n == nil || n.UID != 0 || n.GID != 0 {
			t.Errorf("%s: %+v, want owned by 0:0", p, n)
		}
	}
	if n := got["owners/setuid-1000"]; n == nil || n.Mode != 0o4755 {
		t.Errorf("owners/setuid-1000: %+v, want mode 4755", n)
	}
}
