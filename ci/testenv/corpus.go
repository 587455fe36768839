package testenv

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"
)

// CorpusEnv names a folder that replaces the search for the shared corpus.
const CorpusEnv = "BYZ_CORPUS"

// Corpus returns the folder of the peer corpus name: other projects'
// test data (cryptsetup's LUKS2 headers, mksquashfs images …), kept
// beside the repository in shared/corpus/NAME and read in place, never
// copied in. It is found in $BYZ_CORPUS/NAME, or else in shared/corpus/NAME
// in the repository's parent folder or any folder above it (a worktree
// may sit a level deeper than a clone). When it is missing the test
// skips, or under CI fails.
func Corpus(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv(CorpusEnv); dir != "" {
		return RequireFile(t, filepath.Join(dir, name), "$"+CorpusEnv+" names a folder without it")
	}
	root, err := repoRoot()
	if err != nil {
		Unavailable(t, "shared corpus "+name+": "+err.Error())
	}
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "shared", "corpus", name)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	Unavailable(t, "shared corpus "+name+" not found in shared/corpus beside the repository or above it (or set $"+CorpusEnv+")")
	return ""
}

// repoRoot is the folder holding go.mod, found from the working
// directory (a test's is its package folder).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

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
