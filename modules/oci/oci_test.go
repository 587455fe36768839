package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"byzantium/overlays/whiteout"
)

var (
	wantLayer1 = []string{
		`a regular 644 "one"`,
		`dir dir 755`,
		`dir/b regular 644 "bee"`,
		`dir/c regular 600 "sea"`,
		`dir2 dir 755`,
		`dir2/x regular 644 "old"`,
		`link hardlink 0 -> dir/c`,
	}
	// The whiteout of dir/b becomes a char device 0:0; dir2 is re-emitted,
	// with the mode of its earlier header, carrying the opaque xattr.
	wantLayer2 = []string{
		`a regular 644 "two"`,
		`dir dir 755`,
		`dir/b chardev 0 0:0`,
		`dir2 dir 700`,
		`dir2 dir 700 trusted.overlay.opaque=y`,
		`dir2/y regular 644 "new"`,
	}
	// b is gone, a has layer 2's content, dir2/x is hidden by the opaque
	// marker, the hardlink is kept, and no whiteout is left.
	wantFlat = []string{
		`a regular 644 "two"`,
		`dir dir 755`,
		`dir/c regular 600 "sea"`,
		`dir2 dir 700`,
		`dir2/y regular 644 "new"`,
		`link hardlink 0 -> dir/c`,
	}
)

// TestSources opens the same image through every offline transport and
// checks the per-layer streams, the flattened stream and the digests.
func TestSources(t *testing.T) {
	img := testImage(t, layer1, layer2)
	other := testImage(t, layer1)
	lay := writeLayout(t, []v1.Image{img, other}, []string{"v1", "v2"})
	single := writeLayout(t, []v1.Image{img}, []string{""})
	arch := writeArchive(t, img, "example.com/byz/test:v1")

	wantDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var wantLayerDigests []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		wantLayerDigests = append(wantLayerDigests, d.String())
	}

	for _, ref := range []string{
		"oci:" + lay + ":v1",
		"oci:" + single,
		"docker-archive:" + arch,
		"docker-archive:" + arch + ":example.com/byz/test:v1",
	} {
		t.Run(ref, func(t *testing.T) {
			im, err := Open(ref)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			d, err := im.Digest()
			if err != nil || d != wantDigest.String() {
				t.Errorf("Digest() = %q, %v, want %q", d, err, wantDigest)
			}
			layers, err := im.Layers()
			if err != nil {
				t.Fatalf("Layers: %v", err)
			}
			if len(layers) != 2 {
				t.Fatalf("got %d layers, want 2", len(layers))
			}
			for i, want := range [][]string{wantLayer1, wantLayer2} {
				d, err := layers[i].Digest()
				if err != nil || d != wantLayerDigests[i] {
					t.Errorf("layer %d: Digest() = %q, %v, want %q", i, d, err, wantLayerDigests[i])
				}
				if id, err := layers[i].DiffID(); err != nil || !strings.HasPrefix(id, "sha256:") {
					t.Errorf("layer %d: DiffID() = %q, %v", i, id, err)
				}
				r, err := layers[i].Open()
				if err != nil {
					t.Fatalf("layer %d: Open: %v", i, err)
				}
				if got, want := strings.Join(drain(t, r), "\n"), strings.Join(want, "\n"); got != want {
					t.Errorf("layer %d stream:\n%s\nwant:\n%s", i, got, want)
				}
			}
			r, err := im.Flatten()
			if err != nil {
				t.Fatalf("Flatten: %v", err)
			}
			if got, want := sorted(drain(t, r)), sorted(wantFlat); got != want {
				t.Errorf("flattened:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	img := testImage(t, layer1)
	lay := writeLayout(t, []v1.Image{img, img}, []string{"v1", "v2"})
	arch := writeArchive(t, img, "example.com/byz/test:v1")
	junk := filepath.Join(t.TempDir(), "junk.tar")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a tarball "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nope")

	tests := []struct {
		ref     string
		wantErr error    // checked with errors.Is when set
		wantMsg []string // substrings of the message besides the reference
	}{
		{"oci:" + missing, fs.ErrNotExist, []string{"not an OCI image layout"}},
		{"oci:" + lay + ":v3", ErrNotFound, []string{`"v3"`, "v1, v2"}},
		{"oci:" + lay, ErrAmbiguous, []string{"v1, v2", ":TAG"}},
		{"oci:", nil, []string{"empty layout path"}},
		{"docker-archive:" + missing, fs.ErrNotExist, nil},
		{"docker-archive:" + junk, nil, []string{"not a docker-archive"}},
		{"docker-archive:" + arch + ":example.com/byz/test:v9", ErrNotFound, []string{"example.com/byz/test:v1"}},
		{"docker-archive:" + arch + ":Bad Tag", nil, []string{"Bad Tag"}},
		{"Not A Reference!", nil, []string{"not oci:PATH"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := Open(tt.ref)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Open: %v, want %v", err, tt.wantErr)
			}
			for _, s := range append([]string{"oci: open " + tt.ref + ": "}, tt.wantMsg...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Open: %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestLayerVerified replaces a layer blob with a valid gzip of another tar:
// it reads cleanly, so only the diff ID check at the end of the stream can
// catch it, in the layer stream and in the flattened one.
func TestLayerVerified(t *testing.T) {
	img := testImage(t, layer1)
	lay := writeLayout(t, []v1.Image{img}, []string{"v1"})
	im, err := Open("oci:" + lay)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := im.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, filepath.Join(lay, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))

	r, err := layers[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), "layer 1/1") {
		t.Fatalf("reading a tampered layer: %v, want ErrDigest naming the layer", err)
	}
	if _, again := r.Next(); again != err {
		t.Errorf("Next after failure = %v, want the same error", again)
	}
}

func TestFlattenVerified(t *testing.T) {
	img := testImage(t, layer1)
	lay := writeLayout(t, []v1.Image{img}, []string{"v1"})
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, filepath.Join(lay, "blobs", d.Algorithm, d.Hex))
	im, err := Open("oci:" + lay)
	if err != nil {
		t.Fatal(err)
	}
	r, err := im.Flatten()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for err == nil {
		_, err = r.Next()
	}
	if !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), "(flattened)") {
		t.Fatalf("flattening a tampered image: %v, want %v", err, ErrDigest)
	}
}

// tamper replaces a layer blob with a gzip of another valid tar.
func tamper(t *testing.T, blob string) {
	t.Helper()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(makeTar(t, layer2)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDockerSave reads an archive laid out as `docker save` writes it, with
// uncompressed layer tars, which go-containerregistry reads through another
// path than the gzipped layers of its own tarball.Write.
func TestDockerSave(t *testing.T) {
	img := testImage(t, layer1, layer2)
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "save.tar")
	writeTarFile(t, file, []tarEntry{
		{name: "manifest.json", typ: tar.TypeReg, mode: 0o644,
			body: `[{"Config":"config.json","RepoTags":["byz:v1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]`},
		{name: "config.json", typ: tar.TypeReg, mode: 0o644, body: string(cfg)},
		{name: "l1/layer.tar", typ: tar.TypeReg, mode: 0o644, body: string(makeTar(t, layer1))},
		{name: "l2/layer.tar", typ: tar.TypeReg, mode: 0o644, body: string(makeTar(t, layer2))},
	})
	im, err := Open("docker-archive:" + file + ":byz:v1")
	if err != nil {
		t.Fatal(err)
	}
	wantID, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if id, err := im.ConfigDigest(); err != nil || id != wantID.String() {
		t.Errorf("ConfigDigest() = %q, %v, want %q", id, err, wantID)
	}
	if d, err := im.Digest(); err != nil || !strings.HasPrefix(d, "sha256:") {
		t.Errorf("Digest() = %q, %v", d, err)
	}
	layers, err := im.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{wantLayer1, wantLayer2} {
		r, err := layers[i].Open()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(drain(t, r), "\n"), strings.Join(want, "\n"); got != want {
			t.Errorf("layer %d stream:\n%s\nwant:\n%s", i, got, want)
		}
	}
	r, err := im.Flatten()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(drain(t, r)), sorted(wantFlat); got != want {
		t.Errorf("flattened:\n%s\nwant:\n%s", got, want)
	}
}

// TestBadWhiteoutNamesLayer checks that an error of the whiteout filter says
// which image and layer it came from.
func TestBadWhiteoutNamesLayer(t *testing.T) {
	img := testImage(t, []tarEntry{{name: "d/.wh.x/y", typ: tar.TypeReg, mode: 0o644}})
	ref := "oci:" + writeLayout(t, []v1.Image{img}, []string{""})
	im, err := Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := im.Layers()
	if err != nil {
		t.Fatal(err)
	}
	r, err := layers[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Next()
	if !errors.Is(err, whiteout.ErrBadWhiteout) || !strings.Contains(err.Error(), ref+" layer 1/1") {
		t.Errorf("Next: %v, want ErrBadWhiteout naming %s layer 1/1", err, ref)
	}
}
