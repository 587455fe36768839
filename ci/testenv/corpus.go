package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedCorpus returns the folder shared/corpus/name, the peer test data
// kept beside the repository rather than in it (other projects' images and
// headers, read in place and never copied into the tree). CI clones the
// repository into a folder whose parent holds shared/; a developer's clone
// or a git worktree may sit deeper, so every folder above the repository
// root is tried, nearest first. A missing corpus skips the test, or fails
// it under CI.
func SharedCorpus(t testing.TB, name string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		Unavailable(t, "shared/corpus/"+name+": "+err.Error())
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
	Unavailable(t, "shared/corpus/"+name+" not found in any folder above "+root+
		" (CI keeps shared/ beside the clone)")
	return ""
}

// repoRoot finds the repository root, the nearest folder above the working
// directory (a test's package folder) holding go.mod.
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
