package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDeps keeps byzd free of the build-time code, in the manner of
// tailscale's cmd/tailscaled/deps_test.go (STYLE §11).
func TestDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []struct{ re, why string }{
		{`^byzantium/image(/|$)`, "the image writers belong to the builder"},
		{`^byzantium/builder(/|$)`, "runtime never imports builder"},
		{`^byzantium/modules/squashfs(/|$)`, "the squashfs writer is heavy and build-time only"},
		{`^github.com/chromedp/`, "the browser drives tests only"},
		{`^byzantium/ci(/|$)`, "test support never ships"},
		{`^runtime/cgo$`, "byzd must be static (CGO_ENABLED=0)"},
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps printed nothing")
	}
	// The clone's wire types (request, progress event, result) are the
	// one part of image byzd may link: they need only the standard
	// library, and whatever they pulled in would still be listed here.
	allowed := map[string]bool{"byzantium/image/clone/cloneapi": true}
	for _, dep := range deps {
		if allowed[dep] {
			continue
		}
		for _, f := range forbidden {
			if regexp.MustCompile(f.re).MatchString(dep) {
				t.Errorf("byzd depends on %s: %s", dep, f.why)
			}
		}
	}
}
