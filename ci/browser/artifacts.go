package browser

import (
	"os"
	"path/filepath"
	"testing"
)

// ArtifactsEnv names the variable that chooses where tests keep their
// artifacts (screenshots). Unset, they go to out/test-artifacts in the
// repository, which git ignores.
const ArtifactsEnv = "BYZ_ARTIFACTS"

// ArtifactDir returns the folder for the artifacts of the test t:
// $BYZ_ARTIFACTS/<test name>, or out/test-artifacts/<test name> under the
// repository's root. It empties the folder, so that what it holds after a
// run comes from that run, and logs where it is. The folder outlives the
// test.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv(ArtifactsEnv)
	if root == "" {
		root = filepath.Join(repoRoot(), "out", "test-artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(root, safeName(t.Name())))
	if err != nil {
		t.Fatalf("browser: artifact folder: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("browser: artifact folder: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browser: artifact folder: %v", err)
	}
	t.Logf("browser: artifacts in %s", dir)
	return dir
}

// repoRoot returns the nearest folder above the working directory (a test's
// package folder) that holds go.mod, or the system's temporary folder
// outside a module.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return os.TempDir()
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return os.TempDir()
		}
		dir = parent
	}
}
