package tarball

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"byzantium/modules/entry"
	"byzantium/modules/internal/testtree"
)

// compressors make each Compression from plain bytes. bzip2 has no Go
// writer, so it goes through the bzip2 command.
var compressors = []struct {
	c        Compression
	compress func(t *testing.T, b []byte) []byte
}{
	{None, func(t *testing.T, b []byte) []byte { return b }},
	{Gzip, func(t *testing.T, b []byte) []byte {
		var out bytes.Buffer
		w := gzip.NewWriter(&out)
		mustWrite(t, w, b)
		return out.Bytes()
	}},
	{Zstd, func(t *testing.T, b []byte) []byte {
		var out bytes.Buffer
		w, err := zstd.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, b)
		return out.Bytes()
	}},
	{XZ, func(t *testing.T, b []byte) []byte {
		var out bytes.Buffer
		w, err := xz.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, b)
		return out.Bytes()
	}},
	{Bzip2, func(t *testing.T, b []byte) []byte {
		cmd := exec.Command(testtree.RequireTool(t, "bzip2"), "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bzip2: %v", err)
		}
		return out
	}},
}

func mustWrite(t *testing.T, w io.WriteCloser, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

var when = time.Date(2024, 2, 29, 12, 0, 0, 123456789, time.UTC)

// goArchive is a tar made with archive/tar holding every type the stream
// carries, PAX xattrs, long names, big ids and a global header to skip; want
// is the stream it must read as.
func goArchive(t *testing.T) (tarball []byte, want []*entry.Header, bodies map[string]string) {
	long := strings.Repeat("long-directory-name/", 8) + "file"
	longLink := "/" + strings.Repeat("target/", 30)
	ths := []*tar.Header{
		{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "global"}},
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./dir/", Mode: 0o1777, Uid: 2000000, Gid: 3000000},
		{Typeflag: tar.TypeReg, Name: "./dir/file", Mode: 0o4755, Size: 5,
			PAXRecords: map[string]string{"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}},
		{Typeflag: tar.TypeReg, Name: long, Mode: 0o644, Size: 3},
		{Typeflag: tar.TypeLink, Name: "./dir/hard", Linkname: "./dir/file"},
		{Typeflag: tar.TypeSymlink, Name: "sym", Linkname: longLink, Mode: 0o777},
		{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Typeflag: tar.TypeBlock, Name: "big", Mode: 0o600, Devmajor: 259, Devminor: 65537},
		{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o2644},
		// An empty opaque-dir marker as OCI layers carry them.
		{Typeflag: tar.TypeDir, Name: "opaque/", Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}},
	}
	bodies = map[string]string{"dir/file": "hello", long: "abc"}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, th := range ths {
		if th.Typeflag != tar.TypeXGlobalHeader {
			th.ModTime = when
			th.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(th); err != nil {
			t.Fatalf("%s: %v", th.Name, err)
		}
		if _, err := io.WriteString(tw, bodies[entry.Clean(th.Name)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	h := func(p string, typ entry.Type, mode uint32) *entry.Header {
		return &entry.Header{Path: p, Type: typ, Mode: mode, ModTime: when}
	}
	want = []*entry.Header{
		h(".", entry.TypeDir, 0o755),
		{Path: "dir", Type: entry.TypeDir, Mode: 0o1777, UID: 2000000, GID: 3000000, ModTime: when},
		{Path: "dir/file", Type: entry.TypeRegular, Mode: 0o4755, Size: 5, ModTime: when,
			Xattrs: map[string][]byte{"user.a": []byte("1"), "security.capability": []byte("\x01\x00\x00\x02")}},
		{Path: long, Type: entry.TypeRegular, Mode: 0o644, Size: 3, ModTime: when},
		{Path: "dir/hard", Type: entry.TypeHardlink, Linkname: "dir/file", ModTime: when},
		{Path: "sym", Type: entry.TypeSymlink, Linkname: longLink, Mode: 0o777, ModTime: when},
		{Path: "null", Type: entry.TypeCharDev, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: when},
		{Path: "big", Type: entry.TypeBlockDev, Mode: 0o600, Devmajor: 259, Devminor: 65537, ModTime: when},
		h("fifo", entry.TypeFIFO, 0o2644),
		{Path: "opaque", Type: entry.TypeDir, Mode: 0o755, ModTime: when,
			Xattrs: map[string][]byte{"trusted.overlay.opaque": []byte("y")}},
	}
	return buf.Bytes(), want, bodies
}

// readAll reads a whole stream, bodies included.
func readAll(r entry.Reader) ([]*entry.Header, map[string]string, error) {
	var hs []*entry.Header
	bodies := map[string]string{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			return hs, bodies, nil
		}
		if err != nil {
			return hs, bodies, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return hs, bodies, err
		}
		if len(b) > 0 {
			bodies[h.Path] = string(b)
		}
		hs = append(hs, h)
	}
}

func TestCompressions(t *testing.T) {
	plain, want, wantBodies := goArchive(t)
	for _, tc := range compressors {
		t.Run(string(tc.c), func(t *testing.T) {
			data := tc.compress(t, plain)
			_, c, closeFn, err := Decompress(bytes.NewReader(data))
			if err != nil || c != tc.c {
				t.Fatalf("Decompress sniffed %q, %v; want %q", c, err, tc.c)
			}
			closeFn()
			r, err := NewReader(bytes.NewReader(data), "test.tar")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, bodies, err := readAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d entries, want %d: %v", len(got), len(want), paths(got))
			}
			for i := range want {
				if d := headerDiff(want[i], got[i]); d != "" {
					t.Errorf("entry %d: %s", i, d)
				}
			}
			if !reflect.DeepEqual(bodies, wantBodies) {
				t.Errorf("bodies = %q, want %q", bodies, wantBodies)
			}
		})
	}
}

// headerDiff describes how got differs from want; "" if it does not.
func headerDiff(want, got *entry.Header) string {
	w, g := *want, *got
	if !w.ModTime.Equal(g.ModTime) {
		return fmt.Sprintf("%s: mtime %v, want %v", g.Path, g.ModTime, w.ModTime)
	}
	w.ModTime, g.ModTime = time.Time{}, time.Time{}
	if len(w.Xattrs) == 0 && len(g.Xattrs) == 0 {
		w.Xattrs, g.Xattrs = nil, nil
	}
	if !reflect.DeepEqual(w, g) {
		return fmt.Sprintf("got %+v, want %+v", g, w)
	}
	return ""
}

func paths(hs []*entry.Header) []string {
	var ps []string
	for _, h := range hs {
		ps = append(ps, h.Path)
	}
	return ps
}

// TestBroken cuts each compressed archive short: reading it must fail with
// ErrBroken and name the archive, never end quietly.
func TestBroken(t *testing.T) {
	plain, _, _ := goArchive(t)
	// Pad the body of dir/file so the cut lands inside data for every
	// compression, not in the trailer.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	big := testtree.Content("big", 256<<10)
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: int64(len(big)), Mode: 0o644}))
	_, err := tw.Write(big)
	must(t, err)
	must(t, tw.Close())
	plain = append(plain[:len(plain)-1024], buf.Bytes()...) // drop the first end-of-archive blocks
	for _, tc := range compressors {
		t.Run(string(tc.c), func(t *testing.T) {
			data := tc.compress(t, plain)
			data = data[:len(data)*2/3]
			r, err := NewReader(bytes.NewReader(data), "cut.tar")
			if err == nil {
				_, _, err = readAll(r)
				r.Close()
			}
			if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "cut.tar") {
				t.Errorf("error %v, want ErrBroken naming cut.tar", err)
			}
		})
	}
}

// TestUnsupported reads a tar type the stream cannot carry.
func TestUnsupported(t *testing.T) {
	for _, typ := range []byte{tar.TypeCont, 'Z'} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		must(t, tw.WriteHeader(&tar.Header{Typeflag: typ, Name: "odd", Mode: 0o644, Format: tar.FormatUSTAR}))
		must(t, tw.Close())
		r, err := NewReader(&buf, "odd.tar")
		must(t, err)
		_, err = r.Next()
		if !errors.Is(err, entry.ErrUnsupported) || !strings.Contains(err.Error(), "odd.tar") {
			t.Errorf("type %q: error %v, want entry.ErrUnsupported naming odd.tar", typ, err)
		}
	}
}

// TestNotBzip2 is an uncompressed tar whose first name starts like a bzip2
// stream ("BZh"): sniffing must not take it for one.
func TestNotBzip2(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "BZh91-notes.txt", Mode: 0o644}))
	must(t, tw.Close())
	r, err := NewReader(&buf, "bzh.tar")
	must(t, err)
	got, _, err := readAll(r)
	if err != nil || len(got) != 1 || got[0].Path != "BZh91-notes.txt" {
		t.Errorf("read %v, %v; want the one entry BZh91-notes.txt", paths(got), err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
