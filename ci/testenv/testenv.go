// Package testenv tells tests what this machine can do and applies the
// project's rule for what it cannot: a test that needs root or a tool skips
// with the reason on a developer's machine, and fails under CI (CI=true),
// where .ci/run installs everything.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test with reason, or fails it under CI.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI=true, so this is a failure, not a skip)", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or under CI fails) the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root")
	}
}

// RequireTool returns the path of the executable name, skipping (or under
// CI failing) the test when it is not installed.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, name+" not found: run ci/install-deps (packages in ci/packages.txt)")
	}
	return p
}

// RequireFile returns path if it exists, skipping (or under CI failing)
// the test when it does not; hint says how to get it.
func RequireFile(t testing.TB, path, hint string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Unavailable(t, path+" is missing: "+hint)
	}
	return path
}

// RequireBabeld skips (or under CI fails) a test that runs the real
// babeld in network namespaces: it needs root, babeld and ip.
func RequireBabeld(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "babeld")
	RequireTool(t, "ip")
}
