package hostfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
	"byzantium/modules/entry"
)

// TestReaderErrors makes reads fail in ways that fail for root too, and
// checks that the error names the full path and wraps the cause.
func TestReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nexts  int // calls to Next before after breaks src
		after  func(t *testing.T, src string)
		path   string // relative to src, named in the error
		target error  // errors.Is target
	}{
		{"vanished between readdir and lstat", 1, func(t *testing.T, src string) {
			must(t, os.Remove(filepath.Join(src, "b")))
		}, "b", fs.ErrNotExist},
		{"file shrank", 2, func(t *testing.T, src string) {
			must(t, os.Truncate(filepath.Join(src, "a"), 3))
		}, "a", io.ErrUnexpectedEOF},
		{"replaced by a symlink", 2, func(t *testing.T, src string) {
			p := filepath.Join(src, "a")
			must(t, os.Remove(p))
			must(t, os.Symlink("b", p))
		}, "a", ErrReplaced},
		{"replaced by another file", 2, func(t *testing.T, src string) {
			p := filepath.Join(src, "a")
			must(t, os.WriteFile(p+".new", make([]byte, 10), 0o644)) // a new inode, not the freed one
			must(t, os.Rename(p+".new", p))
		}, "a", ErrReplaced},
		// Opening a FIFO for reading waits for a writer: without
		// O_NONBLOCK this case hangs.
		{"replaced by a FIFO", 2, func(t *testing.T, src string) {
			p := filepath.Join(src, "a")
			must(t, os.Remove(p))
			must(t, unix.Mkfifo(p, 0o644))
		}, "a", ErrReplaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			must(t, os.WriteFile(filepath.Join(src, "a"), make([]byte, 10), 0o644))
			must(t, os.WriteFile(filepath.Join(src, "b"), nil, 0o644))
			r, err := NewReader(src)
			must(t, err)
			defer r.Close()
			for range tc.nexts {
				if _, err := r.Next(); err != nil {
					t.Fatal(err)
				}
			}
			tc.after(t, src)
			err = drain(r)
			want := filepath.Join(src, tc.path) + ":"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one naming %s", err, want)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %v does not wrap %v", err, tc.target)
			}
			if _, again := r.Next(); again == nil {
				t.Errorf("Next after an error succeeded; errors must be sticky")
			}
		})
	}
}

// TestReaderUnreadable: a file the reader may not open is an error naming
// it. Root opens mode-000 files, so as root (CI) the test runs again as
// nobody.
func TestReaderUnreadable(t *testing.T) {
	if testenv.RerunAsNobody(t) {
		return
	}
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "secret"), []byte("x"), 0))
	r, err := NewReader(src)
	must(t, err)
	err = drain(r)
	if want := filepath.Join(src, "secret") + ": open: permission denied"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestNewReaderErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	must(t, os.WriteFile(file, nil, 0o644))
	for _, root := range []string{file, filepath.Join(dir, "missing")} {
		if _, err := NewReader(root); err == nil || !strings.Contains(err.Error(), root) {
			t.Errorf("NewReader(%s) = %v, want an error naming it", root, err)
		}
	}
}

// drain reads the rest of r, bodies included, starting with the body of
// the current entry.
// TestRootSymlink walks a tree named through a symlink: the root is the one
// symlink that is followed.
func TestRootSymlink(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, "real"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "real/f"), []byte("x"), 0o644))
	must(t, os.Symlink("real", filepath.Join(dir, "link")))
	r, err := NewReader(filepath.Join(dir, "link"))
	must(t, err)
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		got = append(got, h.Path+":"+h.Type.String())
	}
	if strings.Join(got, " ") != ".:dir f:regular" {
		t.Errorf("walk = %q, want [.:dir f:regular]", got)
	}
}

func drain(r entry.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var mtime = time.Unix(1700000000, 123456789)

func dirH(p string, mode uint32) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeDir, Mode: mode, ModTime: mtime}
}
func fileH(p string, size int64) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, Size: size, ModTime: mtime}
}
func linkH(p string, typ entry.Type, target string) *entry.Header {
	return &entry.Header{Path: p, Type: typ, Linkname: target, Mode: 0o777, ModTime: mtime}
}

// TestExtractRefuses checks the streams and destinations Extract must refuse.
func TestExtractRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dest, outside string)
		opts    ExtractOptions
		headers []*entry.Header
		bodies  map[string][]byte
		target  error
		names   string // path relative to dest named in the error
	}{
		{name: "symlink from the stream", headers: []*entry.Header{
			dirH(".", 0o755), linkH("evil", entry.TypeSymlink, "OUTSIDE"), fileH("evil/x", 0),
		}, target: ErrEscape, names: "evil"},
		{name: "symlink already in dest", opts: ExtractOptions{Overwrite: true},
			prepare: func(t *testing.T, dest, outside string) {
				must(t, os.Symlink(outside, filepath.Join(dest, "etc")))
			},
			headers: []*entry.Header{fileH("etc/passwd", 0)}, target: ErrEscape, names: "etc"},
		{name: "dest not empty", prepare: func(t *testing.T, dest, _ string) {
			must(t, os.WriteFile(filepath.Join(dest, "old"), nil, 0o644))
		}, headers: []*entry.Header{fileH("x", 0)}, target: ErrNotEmpty},
		{name: "hardlink to nothing", headers: []*entry.Header{
			linkH("h", entry.TypeHardlink, "nowhere"),
		}, names: "h"},
		{name: "short body", headers: []*entry.Header{fileH("f", 10)},
			bodies: map[string][]byte{"f": []byte("12345")}, target: io.ErrUnexpectedEOF, names: "f"},
		{name: "unclean path", headers: []*entry.Header{fileH("a/../../x", 0)}, target: entry.ErrBadHeader},
		{name: "root not a dir", headers: []*entry.Header{fileH(".", 0)}, target: entry.ErrBadHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest, outside := t.TempDir(), t.TempDir()
			for _, h := range tc.headers {
				if h.Linkname == "OUTSIDE" {
					h.Linkname = outside
				}
			}
			if tc.prepare != nil {
				tc.prepare(t, dest, outside)
			}
			err := Extract(&entry.Slice{Headers: tc.headers, Bodies: tc.bodies}, dest, tc.opts)
			if err == nil {
				t.Fatal("Extract succeeded")
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %v does not wrap %v", err, tc.target)
			}
			if tc.names != "" && !strings.Contains(err.Error(), filepath.Join(dest, tc.names)) {
				t.Errorf("error %v does not name %s", err, filepath.Join(dest, tc.names))
			}
			if des, _ := os.ReadDir(outside); len(des) != 0 {
				t.Errorf("Extract wrote %d entries outside dest", len(des))
			}
		})
	}
}

// TestExtractStreamOrder covers orders a merged stream produces: a hardlink
// before its target, a path given twice, a read-only directory with
// contents, and parents that the stream never names.
func TestExtractStreamOrder(t *testing.T) {
	dest := t.TempDir()
	headers := []*entry.Header{
		linkH("early", entry.TypeHardlink, "d/target"),
		fileH("d/target", 4),
		dirH("ro", 0o555), fileH("ro/inside", 1),
		dirH("x", 0o755), fileH("x/child", 1), fileH("x", 2), // a file replaces a directory
		fileH("twice", 1), fileH("twice", 3),
		fileH("implicit/parent/f", 0),
	}
	bodies := map[string][]byte{"d/target": []byte("data"), "ro/inside": {1}, "x/child": {1}, "x": {1, 2}, "twice": {9, 9, 9}}
	if err := Extract(&entry.Slice{Headers: headers, Bodies: bodies}, dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	var a, b os.FileInfo
	a, err := os.Stat(filepath.Join(dest, "early"))
	must(t, err)
	b, err = os.Stat(filepath.Join(dest, "d/target"))
	must(t, err)
	if !os.SameFile(a, b) {
		t.Errorf("early and d/target are different files")
	}
	for p, want := range map[string]string{"x": "\x01\x02", "twice": "\x09\x09\x09", "ro/inside": "\x01"} {
		got, err := os.ReadFile(filepath.Join(dest, p))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	st, err := os.Stat(filepath.Join(dest, "ro"))
	must(t, err)
	if st.Mode().Perm() != 0o555 || !st.ModTime().Equal(mtime) {
		t.Errorf("ro: mode %v mtime %v, want 0555 and %v", st.Mode(), st.ModTime(), mtime)
	}
	must(t, os.Chmod(filepath.Join(dest, "ro"), 0o755)) // let t.TempDir clean up as non-root
}
