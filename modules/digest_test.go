package modules

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDigestMatchesManifest: Digest gives, without building, exactly the
// digest Create records, for every kind of source.
func TestDigestMatchesManifest(t *testing.T) {
	// A directory's digest must not depend on when its files were made.
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		os.WriteFile(filepath.Join(d, "f"), []byte("same"), 0o644)
	}
	os.Chtimes(filepath.Join(b, "f"), time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	ep0 := time.Unix(1000000000, 0)
	da, _ := Digest(a, &ep0)
	db, _ := Digest(b, &ep0)
	if da != db || da == "" {
		t.Errorf("digests of the same tree made at different times differ: %s vs %s", da, db)
	}

	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc/motd"), []byte("mesh\n"), 0o644)
	tarball := filepath.Join(dir, "t.tar")
	f, _ := os.Create(tarball)
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	f.Close()
	mod := filepath.Join(dir, "m.xzm")
	if _, err := Create([]string{tree}, mod, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	refs := []string{tree, tarball, mod, ociLayout(t)}
	if debs, _ := filepath.Glob("../.cache/debs/busybox-static_*.deb"); len(debs) > 0 {
		refs = append(refs, debs[0])
	}
	// An epoch older than the tree clamps its mtimes: the digests must
	// still agree.
	ep := time.Unix(1000000000, 0)
	for _, ref := range refs {
		out := filepath.Join(t.TempDir(), "out.xzm")
		if _, err := Create([]string{ref}, out, CreateOptions{Name: "x", Epoch: &ep}); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		m, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := m.Manifests()
		m.Close()
		if err != nil || len(ms) == 0 {
			t.Fatalf("%s: manifests %v, %v", ref, ms, err)
		}
		var recorded string
		for _, mf := range ms {
			if mf.Name == "x" {
				recorded = mf.Sources[0].SHA256
			}
		}
		got, err := Digest(ref, &ep)
		if err != nil {
			t.Fatalf("Digest(%s): %v", ref, err)
		}
		if got != recorded {
			t.Errorf("Digest(%s) = %s, the manifest records %s", ref, got, recorded)
		}
	}
}
