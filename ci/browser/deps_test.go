package browser

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShippedBinariesDoNotLinkTheBrowser keeps chromedp test support: the
// binaries that ship (byz, and byzd and byz-init in the image) must not link
// it, nor this package (STYLE §11).
func TestShippedBinariesDoNotLinkTheBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-deps", "./cmd/byz", "./cmd/byzd", "./cmd/byz-init")
	cmd.Dir = repoRoot()
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps printed nothing")
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/chromedp/") || dep == "byzantium/ci/browser" {
			t.Errorf("a shipped binary depends on %s: the browser is test support", dep)
		}
	}
}
