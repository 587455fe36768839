package oci

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcrtar "github.com/google/go-containerregistry/pkg/v1/tarball"

	"byzantium/modules/entry"
)

// The test image is built here with go-containerregistry, so no test needs a
// registry, a docker daemon or a checked-in blob.

var mtime = time.Unix(1_700_000_000, 0).UTC()

// tarEntry describes one member of a layer tar.
type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	body     string
	linkname string
}

func makeTar(t *testing.T, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)),
			Linkname: e.linkname, ModTime: mtime, Uid: 1000, Gid: 1000, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Layer 1 lays out files; layer 2 deletes dir/b, makes dir2 opaque and
// overwrites a.
var (
	layer1 = []tarEntry{
		{name: "a", typ: tar.TypeReg, mode: 0o644, body: "one"},
		{name: "dir/", typ: tar.TypeDir, mode: 0o755},
		{name: "dir/b", typ: tar.TypeReg, mode: 0o644, body: "bee"},
		{name: "dir/c", typ: tar.TypeReg, mode: 0o600, body: "sea"},
		{name: "dir2/", typ: tar.TypeDir, mode: 0o755},
		{name: "dir2/x", typ: tar.TypeReg, mode: 0o644, body: "old"},
		{name: "link", typ: tar.TypeLink, linkname: "dir/c"},
	}
	layer2 = []tarEntry{
		{name: "a", typ: tar.TypeReg, mode: 0o644, body: "two"},
		{name: "dir/", typ: tar.TypeDir, mode: 0o755},
		{name: "dir/.wh.b", typ: tar.TypeReg},
		{name: "dir2/", typ: tar.TypeDir, mode: 0o700},
		{name: "dir2/.wh..wh..opq", typ: tar.TypeReg},
		{name: "dir2/y", typ: tar.TypeReg, mode: 0o644, body: "new"},
	}
)

func layerOf(t *testing.T, es []tarEntry) v1.Layer {
	t.Helper()
	b := makeTar(t, es)
	l, err := ggcrtar.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testImage(t *testing.T, layers ...[]tarEntry) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, es := range layers {
		ls = append(ls, layerOf(t, es))
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeLayout writes an OCI layout holding imgs, tagged with the given
// ref.name annotations ("" for none), and returns its directory.
func writeLayout(t *testing.T, imgs []v1.Image, tags []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		var opts []layout.Option
		if tags[i] != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: tags[i]}))
		}
		if err := p.AppendImage(img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeArchive(t *testing.T, img v1.Image, tag string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "image.tar")
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrtar.WriteToFile(file, ref, img); err != nil {
		t.Fatal(err)
	}
	return file
}

// drain reads a whole stream into one line per entry, in stream order.
func drain(t *testing.T, r ReadCloser) []string {
	t.Helper()
	defer r.Close()
	var lines []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			return lines
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: Read: %v", h.Path, err)
		}
		lines = append(lines, describe(h, body))
	}
}

func describe(h *entry.Header, body []byte) string {
	s := fmt.Sprintf("%s %s %o", h.Path, h.Type, h.Mode)
	switch h.Type {
	case entry.TypeRegular:
		s += fmt.Sprintf(" %q", body)
	case entry.TypeHardlink:
		s += " -> " + h.Linkname
	case entry.TypeCharDev:
		s += fmt.Sprintf(" %d:%d", h.Devmajor, h.Devminor)
	}
	for _, k := range h.XattrNames() {
		s += fmt.Sprintf(" %s=%s", k, h.Xattrs[k])
	}
	return s
}

func sorted(lines []string) string {
	lines = append([]string(nil), lines...)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func writeTarFile(t *testing.T, file string, es []tarEntry) {
	t.Helper()
	if err := os.WriteFile(file, makeTar(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
}
