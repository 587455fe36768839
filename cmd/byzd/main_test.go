package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlags: --version and --help answer on stdout with status 0 and start
// nothing; a bad flag or an argument is status 2.
func TestFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "byzd")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=1.2-test", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	state := t.TempDir()
	for _, tt := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"--version"}, 0, "byzd 1.2-test\n", ""},
		{[]string{"--help"}, 0, "Usage: byzd", ""},
		{[]string{"-h"}, 0, "-https string", ""},
		{[]string{"--no-such-flag"}, 2, "", "flag provided but not defined: -no-such-flag"},
		{[]string{"extra"}, 2, "", `unexpected arguments ["extra"]`},
	} {
		// A byzd that did start would bind ports and write state: the
		// flags point both somewhere harmless, and the state must stay
		// empty.
		args := append([]string{"--state", state, "--https", "127.0.0.1:0", "--http", "127.0.0.1:0", "--no-net",
			"--no-services", "--no-coldplug"}, tt.args...)
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || !strings.Contains(string(out), tt.out) || !strings.Contains(stderr.String(), tt.errs) {
			t.Errorf("byzd %v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out, stderr.String(), tt.code, tt.out, tt.errs)
		}
	}
	if left, _ := os.ReadDir(state); len(left) != 0 {
		t.Errorf("byzd wrote state: %v", left)
	}
}
