package testenv

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/ulikunitz/xz"
)

// ReadXZ returns the decompressed content of the .xz file at path (a
// corpus file).
func ReadXZ(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := xz.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// EachTarXZ calls f with each regular file of the .tar.xz at path, whole
// (GNU sparse entries read back with their holes as zeros).
func EachTarXZ(t testing.TB, path string, f func(name string, b []byte)) {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	zr, err := xz.NewReader(bufio.NewReader(file))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeGNUSparse {
			continue
		}
		b := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			t.Fatalf("%s: %s: %v", path, hdr.Name, err)
		}
		f(hdr.Name, b)
	}
}
