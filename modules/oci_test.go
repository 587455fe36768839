package modules

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"byzantium/modules/entry"
	"byzantium/modules/internal/testtree"
	"byzantium/modules/manifest"
)

type tarEntry struct {
	name, body, link string
	typ              byte
}

func layerTar(t *testing.T, es ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, ModTime: time.Unix(1600000000, 0), Linkname: e.link}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return buf.Bytes()
}

// ociImage makes a two-layer image: the second deletes dir/b, makes dir2
// opaque and rewrites a.
func ociImage(t *testing.T) v1.Image {
	t.Helper()
	l1 := layerTar(t,
		tarEntry{name: "a", body: "one", typ: tar.TypeReg},
		tarEntry{name: "dir/", typ: tar.TypeDir},
		tarEntry{name: "dir/b", body: "bee", typ: tar.TypeReg},
		tarEntry{name: "dir/c", body: "sea", typ: tar.TypeReg},
		tarEntry{name: "dir/c-link", link: "dir/c", typ: tar.TypeLink},
		tarEntry{name: "dir2/", typ: tar.TypeDir},
		tarEntry{name: "dir2/x", body: "hidden later", typ: tar.TypeReg},
	)
	l2 := layerTar(t,
		tarEntry{name: "a", body: "two", typ: tar.TypeReg},
		tarEntry{name: "dir/.wh.b", typ: tar.TypeReg},
		tarEntry{name: "dir2/", typ: tar.TypeDir},
		tarEntry{name: "dir2/.wh..wh..opq", typ: tar.TypeReg},
		tarEntry{name: "dir2/y", body: "new", typ: tar.TypeReg},
	)
	img := empty.Image
	for _, b := range [][]byte{l1, l2} {
		b := b
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// ociLayout writes ociImage as an OCI layout and returns its oci: reference.
func ociLayout(t *testing.T) string {
	t.Helper()
	img := ociImage(t)
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + ":v1"
}

func TestOCIFlatten(t *testing.T) {
	ref := ociLayout(t)
	out := filepath.Join(t.TempDir(), "050-app.xzm")
	if _, err := Create([]string{ref}, out, CreateOptions{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	m, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for p, want := range map[string]string{"a": "two", "dir/c": "sea", "dir2/y": "new"} {
		if b, err := m.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	for _, gone := range []string{"dir/b", "dir2/x", "dir/.wh.b", "dir2/.wh..wh..opq"} {
		if _, err := m.Stat(gone); err == nil {
			t.Errorf("%s is in the flattened module", gone)
		}
	}
	// The hardlink is one inode with its target.
	r := m.Entries()
	links := 0
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Type == entry.TypeHardlink {
			links++
		}
	}
	if links != 1 {
		t.Errorf("%d hardlink entries in the module, want 1 (dir/c and dir/c-link)", links)
	}
	ms, err := m.Manifests()
	if err != nil || len(ms) != 1 || ms[0].Sources[0].Kind != "oci" || len(ms[0].Sources[0].SHA256) != 64 {
		t.Errorf("manifest = %+v, %v", ms, err)
	}
}

// TestOCIPerLayer writes one module per layer and lets the kernel stack
// them with overlayfs: the whiteouts must hide what the image deleted.
func TestOCIPerLayer(t *testing.T) {
	ref := ociLayout(t)
	dir := t.TempDir()
	svc := []manifest.Service{{Name: "app", Command: []string{"/a"}}}
	outs, err := Create([]string{ref}, filepath.Join(dir, "050-app.xzm"), CreateOptions{Layout: PerLayer, Services: svc})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if len(outs) != 2 || filepath.Base(outs[0]) != "050-app-layer00.xzm" || filepath.Base(outs[1]) != "050-app-layer01.xzm" {
		t.Fatalf("outputs %v", outs)
	}
	st, err := ResolveStack([]string{dir}, StackOptions{})
	if err != nil || len(st.Modules) != 2 || st.Modules[0].Name != "app-layer00" || st.Modules[1].Depends[0] != "app-layer00" || len(st.Notes) != 0 {
		t.Fatalf("ResolveStack = %+v, %v", st, err)
	}
	top, err := Open(outs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	// The services are the top layer's: it stacks on all the others.
	if ms, err := top.Manifests(); err != nil || len(ms) != 1 || !reflect.DeepEqual(ms[0].Services, svc) {
		t.Errorf("top layer's manifest = %+v, %v; want the services", ms, err)
	}
	if bottom, err := Open(outs[0]); err == nil {
		if ms, err := bottom.Manifests(); err != nil || len(ms) != 1 || ms[0].Services != nil {
			t.Errorf("bottom layer's manifest = %+v, %v; want no services", ms, err)
		}
		bottom.Close()
	}
	if h, err := top.Stat("dir/b"); err != nil || h.Type != entry.TypeCharDev || h.Devmajor != 0 || h.Devminor != 0 {
		t.Errorf("dir/b in the top layer = %+v, %v; want a 0:0 char device", h, err)
	}
	if h, err := top.Stat("dir2"); err != nil || string(h.Xattrs["trusted.overlay.opaque"]) != "y" {
		t.Errorf("dir2 in the top layer = %+v, %v; want trusted.overlay.opaque=y", h, err)
	}

	testtree.RequireRoot(t)
	var lowers []string
	for i, o := range outs {
		mnt := filepath.Join(dir, fmt.Sprintf("l%d", i))
		os.Mkdir(mnt, 0o755)
		if b, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", o, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v\n%s", o, err, b)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		lowers = append([]string{mnt}, lowers...) // overlayfs lists the top first
	}
	merged := filepath.Join(dir, "merged")
	os.Mkdir(merged, 0o755)
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lowers, ":")); err != nil {
		t.Fatalf("overlay mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	for p, want := range map[string]string{"a": "two", "dir/c": "sea", "dir2/y": "new"} {
		if b, err := os.ReadFile(filepath.Join(merged, p)); err != nil || string(b) != want {
			t.Errorf("merged %s = %q, %v; want %q", p, b, err, want)
		}
	}
	for _, gone := range []string{"dir/b", "dir2/x"} {
		if _, err := os.Lstat(filepath.Join(merged, gone)); !os.IsNotExist(err) {
			t.Errorf("merged %s: %v; want it hidden by a whiteout", gone, err)
		}
	}
}

// TestOCIRegistry pulls the image from a registry served on loopback by
// go-containerregistry's own registry implementation: the registry path
// runs for real, with no network beyond 127.0.0.1.
func TestOCIRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/byz/app:v1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, ociImage(t)); err != nil {
		t.Fatalf("push: %v", err)
	}
	out := filepath.Join(t.TempDir(), "app.xzm")
	if _, err := Create([]string{ref}, out, CreateOptions{}); err != nil {
		t.Fatalf("Create(%s): %v", ref, err)
	}
	m, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if b, err := m.ReadFile("a"); err != nil || string(b) != "two" {
		t.Errorf("a = %q, %v; want two", b, err)
	}
	if _, err := Create([]string{host + "/byz/nope:v1"}, filepath.Join(t.TempDir(), "x.xzm"), CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "nope") {
		t.Errorf("a missing image: %v; want an error naming it", err)
	}
}
