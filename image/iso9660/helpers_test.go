package iso9660

import (
	"bytes"
	"errors"
	"math/rand/v2"
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

// epoch is the SOURCE_DATE_EPOCH every test image uses.
var epoch = time.Unix(1700000000, 0)

// stream is an entry stream under construction: headers in order, bodies
// by path.
type stream struct {
	hs     []*entry.Header
	bodies map[string][]byte
}

func newStream() *stream { return &stream{bodies: map[string][]byte{}} }

func (s *stream) file(p string, mode uint32, body []byte) *entry.Header {
	h := &entry.Header{Path: p, Type: entry.TypeRegular, Mode: mode, Size: int64(len(body)), ModTime: time.Unix(1600000000, 0)}
	s.hs = append(s.hs, h)
	s.bodies[p] = body
	return h
}

func (s *stream) add(h *entry.Header) *entry.Header {
	if h.ModTime.IsZero() {
		h.ModTime = time.Unix(1500000000, 0)
	}
	s.hs = append(s.hs, h)
	return h
}

func (s *stream) reader() entry.Reader { return &entry.Slice{Headers: s.hs, Bodies: s.bodies} }

// randBytes returns n bytes that differ per seed, so misplaced extents show.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// build writes s into an image file in t's temp dir and returns its path.
func build(t testing.TB, s *stream, opts Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "test.iso")
	if err := buildTo(img, s.reader(), opts); err != nil {
		t.Fatalf("building %s: %v", img, err)
	}
	return img
}

func buildTo(img string, r entry.Reader, opts Options) error {
	f, err := os.Create(img)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := NewWriter(f, opts)
	if err != nil {
		return err
	}
	if _, err := entry.Copy(w, r); err != nil {
		return errors.Join(err, w.Close())
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}

// run runs an oracle tool and returns its combined output, failing the
// test if it fails.
func run(t testing.TB, tool string, args ...string) string {
	t.Helper()
	path := testenv.RequireTool(t, tool)
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lsdlLine matches xorriso's "-exec lsdl" output.
var lsdlLine = regexp.MustCompile(`^(\S{10})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s+'([^']*)'(?: -> '(.*)')?$`)

// lsEntry is one line of xorriso's listing.
type lsEntry struct {
	mode, uid, gid, size, link string
}

// lsdl lists every file in img with xorriso, keyed by path without the
// leading slash ("." for the root).
func lsdl(t testing.TB, img string) map[string]lsEntry {
	t.Helper()
	out := run(t, "xorriso", "-indev", img, "-find", "/", "-exec", "lsdl", "--")
	m := map[string]lsEntry{}
	for _, line := range strings.Split(out, "\n") {
		f := lsdlLine.FindStringSubmatch(line)
		if f == nil {
			continue
		}
		p := strings.TrimPrefix(f[6], "/")
		if p == "" {
			p = "."
		}
		m[p] = lsEntry{mode: f[1], uid: f[3], gid: f[4], size: f[5], link: f[7]}
	}
	return m
}

// extract unpacks img with xorriso into a fresh directory.
func extract(t testing.TB, img string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x")
	run(t, "xorriso", "-osirrox", "on", "-indev", img, "-extract", "/", dir)
	return dir
}

// expected resolves a stream to what the image must hold: the last header
// per path, and the directories the paths imply.
func expected(s *stream) map[string]*entry.Header {
	m := map[string]*entry.Header{".": {Path: ".", Type: entry.TypeDir, Mode: 0o755, ModTime: epoch}}
	for _, h := range s.hs {
		for d := filepath.Dir(h.Path); d != "."; d = filepath.Dir(d) {
			if m[d] == nil {
				m[d] = &entry.Header{Path: d, Type: entry.TypeDir, Mode: 0o755, ModTime: epoch}
			}
		}
		if old := m[h.Path]; old != nil && old.Type == entry.TypeDir && h.Type != entry.TypeDir {
			for p := range m {
				if strings.HasPrefix(p, h.Path+"/") {
					delete(m, p)
				}
			}
		}
		m[h.Path] = h
	}
	return m
}

// resolveHard follows a hardlink to the header of its target.
func resolveHard(m map[string]*entry.Header, h *entry.Header) *entry.Header {
	for h.Type == entry.TypeHardlink {
		h = m[h.Linkname]
	}
	return h
}

// checkExtracted compares the tree xorriso extracted with the stream:
// content, mode and mtime of files and directories, symlink targets, and
// that nothing else is there. xorriso extracts neither devices nor
// sockets; lsdl covers them.
func checkExtracted(t *testing.T, dir string, s *stream) {
	t.Helper()
	want := expected(s)
	seen := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := want[rel]
		if h == nil {
			t.Errorf("extracted %s, which the stream does not have", rel)
			return nil
		}
		seen++
		h = resolveHard(want, h)
		if got, want := fi.Mode().Type(), h.FileMode().Type(); got != want {
			t.Errorf("%s: type %v, want %v", rel, got, want)
			return nil
		}
		switch h.Type {
		case entry.TypeSymlink:
			if got, _ := os.Readlink(p); got != h.Linkname {
				t.Errorf("%s: symlink to %q, want %q", rel, got, h.Linkname)
			}
			return nil
		case entry.TypeRegular:
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if body := s.bodies[h.Path]; !bytes.Equal(got, body) {
				t.Errorf("%s: content differs: %d bytes, want %d", rel, len(got), len(body))
			}
		}
		if got, want := fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky), h.FileMode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky); got != want {
			t.Errorf("%s: mode %v, want %v", rel, got, want)
		}
		if got, want := fi.ModTime().Unix(), h.ModTime.Unix(); got != want {
			t.Errorf("%s: mtime %d, want %d", rel, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	extractable := 0
	for _, h := range want {
		if r := resolveHard(want, h); r.Type == entry.TypeRegular || r.Type == entry.TypeDir || r.Type == entry.TypeSymlink || r.Type == entry.TypeFIFO {
			extractable++
		}
	}
	if seen != extractable {
		t.Errorf("extracted %d entries, want %d", seen, extractable)
	}
}

// checkListing compares xorriso's listing with the stream: type and mode
// string, uid, gid, size and symlink target of every entry.
func checkListing(t *testing.T, img string, s *stream) {
	t.Helper()
	got := lsdl(t, img)
	want := expected(s)
	if len(got) != len(want) {
		t.Errorf("xorriso lists %d entries, want %d", len(got), len(want))
	}
	for p, h := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: missing from xorriso's listing", p)
			continue
		}
		r := resolveHard(want, h)
		wantSize := strconv.FormatInt(r.Size, 10)
		if r.Type == entry.TypeDir {
			wantSize = g.size // xorriso lists directories with size 0
		}
		if r.Type == entry.TypeCharDev || r.Type == entry.TypeBlockDev {
			wantSize = g.size // the size column holds major,minor
			if w := strconv.Itoa(int(r.Devmajor)) + "," + strconv.Itoa(int(r.Devminor)); g.size != w {
				t.Errorf("%s: device %s, want %s", p, g.size, w)
			}
		}
		w := lsEntry{mode: r.ModeString(), uid: strconv.Itoa(int(r.UID)), gid: strconv.Itoa(int(r.GID)), size: wantSize, link: r.Linkname}
		if r.Type != entry.TypeSymlink {
			w.link = ""
		}
		if g != w {
			t.Errorf("%s: xorriso lists %+v, want %+v", p, g, w)
		}
	}
}

// isoNames returns the plain ISO 9660 identifiers per directory, as isoinfo
// reads them without Rock Ridge.
func isoNames(t *testing.T, img string) map[string][]string {
	t.Helper()
	out := run(t, "isoinfo", "-l", "-i", img)
	m := map[string][]string{}
	dir := ""
	for _, line := range strings.Split(out, "\n") {
		if d, ok := strings.CutPrefix(line, "Directory listing of "); ok {
			dir = strings.TrimSpace(d)
			continue
		}
		if i := strings.Index(line, "] "); i >= 0 && dir != "" {
			name := strings.TrimSpace(line[i+2:])
			if name != "." && name != ".." {
				m[dir] = append(m[dir], name)
			}
		}
	}
	return m
}
