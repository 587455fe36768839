package whiteout

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"byzantium/modules/entry"
)

var (
	t1 = time.Unix(1_700_000_000, 0).UTC()
	t2 = time.Unix(1_700_000_100, 0).UTC()
)

func dir(p string, mode, uid uint32, xattrs ...string) *entry.Header {
	h := &entry.Header{Path: p, Type: entry.TypeDir, Mode: mode, UID: uid, GID: uid, ModTime: t1}
	for i := 0; i+1 < len(xattrs); i += 2 {
		if h.Xattrs == nil {
			h.Xattrs = map[string][]byte{}
		}
		h.Xattrs[xattrs[i]] = []byte(xattrs[i+1])
	}
	return h
}

func file(p string) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, ModTime: t1}
}

// marker is an OCI whiteout as layer tools write it: an empty regular file.
func marker(p string, uid uint32) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, UID: uid, GID: uid, ModTime: t2}
}

func dev(p string, uid uint32) *entry.Header {
	return &entry.Header{Path: p, Type: entry.TypeCharDev, UID: uid, GID: uid, ModTime: t2}
}

func opq(h *entry.Header) *entry.Header {
	c := *h
	c.Xattrs = map[string][]byte{}
	for k, v := range h.Xattrs {
		c.Xattrs[k] = v
	}
	c.Xattrs[OpaqueXattr] = []byte("y")
	return &c
}

func TestFromOCI(t *testing.T) {
	etc := dir("etc", 0o750, 7, "user.k", "v")
	tests := []struct {
		name    string
		in      []*entry.Header
		want    []*entry.Header
		wantErr error
	}{{
		name: "plain entries pass through",
		in:   []*entry.Header{dir(".", 0o755, 0), etc, file("etc/a")},
		want: []*entry.Header{dir(".", 0o755, 0), etc, file("etc/a")},
	}, {
		name: "whiteout becomes a char device 0:0 with the marker's owner and mtime",
		in:   []*entry.Header{etc, marker("etc/.wh.passwd", 5)},
		want: []*entry.Header{etc, dev("etc/passwd", 5)},
	}, {
		name: "whiteout at the root",
		in:   []*entry.Header{marker(".wh.a", 0)},
		want: []*entry.Header{dev("a", 0)},
	}, {
		name: "opaque marker re-emits the remembered dir header with the xattr",
		in:   []*entry.Header{etc, file("etc/a"), marker("etc/.wh..wh..opq", 0)},
		want: []*entry.Header{etc, file("etc/a"), opq(etc)},
	}, {
		name: "opaque marker for an unseen dir uses 0755 root and the marker's mtime",
		in:   []*entry.Header{marker("var/lib/.wh..wh..opq", 3)},
		want: []*entry.Header{opq(&entry.Header{Path: "var/lib", Type: entry.TypeDir, Mode: 0o755, ModTime: t2})},
	}, {
		name: "opaque root",
		in:   []*entry.Header{dir(".", 0o700, 0), marker(".wh..wh..opq", 0)},
		want: []*entry.Header{dir(".", 0o700, 0), opq(dir(".", 0o700, 0))},
	}, {
		name: "a dir header after the opaque marker keeps the xattr",
		in: []*entry.Header{marker("etc/.wh..wh..opq", 0), etc,
			marker("etc/.wh..wh..opq", 0)},
		want: []*entry.Header{
			opq(&entry.Header{Path: "etc", Type: entry.TypeDir, Mode: 0o755, ModTime: t2}),
			opq(etc), opq(etc)},
	}, {
		name: "whiteout then a file at the same path: the file comes later and wins",
		in:   []*entry.Header{marker("x/.wh.f", 0), file("x/f")},
		want: []*entry.Header{dev("x/f", 0), file("x/f")},
	}, {
		name: "file then its whiteout: the whiteout only hides lower layers, dropped",
		in:   []*entry.Header{file("x/f"), marker("x/.wh.f", 0)},
		want: []*entry.Header{file("x/f")},
	}, {
		name: "whiteout then a dir at the same path: the dir is opaque",
		in:   []*entry.Header{marker(".wh.etc", 0), etc},
		want: []*entry.Header{dev("etc", 0), opq(etc)},
	}, {
		name: "dir then its whiteout: the dir is re-emitted opaque",
		in:   []*entry.Header{etc, marker(".wh.etc", 0)},
		want: []*entry.Header{etc, opq(etc)},
	}, {
		name: "aufs metadata and everything under it is dropped",
		in: []*entry.Header{dir(".wh..wh.plnk", 0o700, 0), file(".wh..wh.plnk/1.2"),
			file(".wh..wh.aufs"), dir("d/.wh..wh.orph", 0o700, 0), file("d/e")},
		want: []*entry.Header{file("d/e")},
	}, {
		name:    "hardlink into aufs metadata",
		in:      []*entry.Header{{Path: "l", Type: entry.TypeHardlink, Linkname: ".wh..wh.plnk/1.2"}},
		wantErr: entry.ErrUnsupported,
	}, {
		name:    "whiteout of nothing",
		in:      []*entry.Header{marker("d/.wh.", 0)},
		wantErr: ErrBadWhiteout,
	}, {
		name:    "entry inside a whiteout",
		in:      []*entry.Header{marker("d/.wh.x/y", 0)},
		wantErr: ErrBadWhiteout,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(FromOCI(&entry.Slice{Headers: tt.in}))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FromOCI: err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if g, w := dump(got), dump(tt.want); g != w {
				t.Errorf("FromOCI:\ngot:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}

// TestFromOCIBodies checks that bodies of passed entries stream through and
// that translated entries have none, even when the marker had one.
func TestFromOCIBodies(t *testing.T) {
	in := &entry.Slice{
		Headers: []*entry.Header{
			{Path: "a", Type: entry.TypeRegular, Size: 5},
			{Path: ".wh.b", Type: entry.TypeRegular, Size: 4},
			{Path: "c", Type: entry.TypeRegular, Size: 3},
		},
		Bodies: map[string][]byte{"a": []byte("hello"), ".wh.b": []byte("junk"), "c": []byte("bye")},
	}
	r := FromOCI(in)
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Path+"="+string(b))
	}
	if g, w := strings.Join(got, " "), "a=hello b= c=bye"; g != w {
		t.Errorf("bodies = %q, want %q", g, w)
	}
}

// TestFromOCICopies checks that a caller changing a returned header (which it
// owns) does not change what the filter re-emits later.
func TestFromOCICopies(t *testing.T) {
	r := FromOCI(&entry.Slice{Headers: []*entry.Header{
		dir("d", 0o711, 0, "user.k", "v"), marker("d/.wh..wh..opq", 0),
	}})
	h, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	h.Mode = 0
	h.Xattrs["user.k"] = []byte("changed")
	h, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Mode != 0o711 || string(h.Xattrs["user.k"]) != "v" || string(h.Xattrs[OpaqueXattr]) != "y" {
		t.Errorf("re-emitted header = %s, want mode 711, user.k=v and opaque", fmtHeader(h))
	}
}

func readAll(r entry.Reader) ([]*entry.Header, error) {
	var hs []*entry.Header
	for {
		h, err := r.Next()
		if err == io.EOF {
			return hs, nil
		}
		if err != nil {
			return hs, err
		}
		hs = append(hs, h)
	}
}

func dump(hs []*entry.Header) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(fmtHeader(h) + "\n")
	}
	return b.String()
}

func fmtHeader(h *entry.Header) string {
	s := fmt.Sprintf("%s %s mode=%o uid=%d gid=%d mtime=%d dev=%d:%d link=%q",
		h.Path, h.Type, h.Mode, h.UID, h.GID, h.ModTime.Unix(), h.Devmajor, h.Devminor, h.Linkname)
	for _, k := range h.XattrNames() {
		s += fmt.Sprintf(" %s=%q", k, h.Xattrs[k])
	}
	return s
}
