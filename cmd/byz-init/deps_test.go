package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDeps keeps the init small and free of what it must not carry, in
// the manner of tailscale's cmd/tailscaled/deps_test.go.
func TestDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []struct {
		re, why string
	}{
		{`^net/http$`, "bloats the binary; the init serves nothing"},
		{`^crypto/tls$`, "bloats the binary; the init talks to no one"},
		{`^github.com/chromedp/`, "the browser drives tests only"},
		{`^byzantium/ci(/|$)`, "test support never ships"},
		{`^runtime/cgo$`, "the init must be static (CGO_ENABLED=0)"},
		{`^byzantium/image(/|$)`, "the image writers belong to the builder"},
		{`^byzantium/builder(/|$)`, "runtime never imports builder"},
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if regexp.MustCompile(f.re).MatchString(dep) {
				t.Errorf("byz-init depends on %s: %s", dep, f.why)
			}
		}
	}
}
