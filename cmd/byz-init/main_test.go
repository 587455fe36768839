package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"byzantium/ci/testenv"
)

// TestNotPID1 runs the built byz-init as root, as a person would on a
// workstation: it answers --version and --help, refuses anything else
// with status 2, and mounts nothing in any case. Each run is in a mount
// namespace of its own, with a shell that lists the mounts before and
// after it, so that a byz-init that did boot could not touch this host's
// mounts and would still be caught.
func TestNotPID1(t *testing.T) {
	testenv.RequireRoot(t)
	sh := testenv.RequireTool(t, "sh")
	bin := filepath.Join(t.TempDir(), "byz-init")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=1.2-test", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tests := []struct {
		args      string
		code      int
		out, errs string
	}{
		{"--version", 0, "byz-init 1.2-test\n", ""},
		{"--help", 0, "Usage: byz-init", ""},
		{"-h", 0, "Usage: byz-init", ""},
		{"", 2, "", "refusing to boot as process"},
		{"copy2ram", 2, "", "unexpected arguments"},
		{"--version --debug", 2, "", "unexpected arguments"},
	}
	const sep = "=====\n"
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// stdout: mounts, separator, byz-init's output, separator,
			// mounts; the shell exits with byz-init's status.
			script := `cat /proc/self/mountinfo; printf '` + sep + `'; "$0" "$@"; s=$?; printf '` + sep + `'; cat /proc/self/mountinfo; exit $s`
			args := append([]string{"-c", script, bin}, strings.Fields(tt.args)...)
			cmd := exec.CommandContext(ctx, sh, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / private in it
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if ctx.Err() != nil {
				t.Fatalf("byz-init %s did not return: it is booting", tt.args)
			}
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(string(out), sep)
			if len(parts) != 3 {
				t.Fatalf("output not in three parts:\n%s", out)
			}
			before, got, after := parts[0], parts[1], parts[2]
			if before != after {
				t.Errorf("byz-init %s changed the mounts:\nbefore:\n%s\nafter:\n%s", tt.args, before, after)
			}
			if code != tt.code || !strings.HasPrefix(got, tt.out) || !strings.Contains(stderr.String(), tt.errs) {
				t.Errorf("byz-init %s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q…, stderr with %q",
					tt.args, code, got, stderr.String(), tt.code, tt.out, tt.errs)
			}
		})
	}
}
