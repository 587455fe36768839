// Package testtree builds a directory tree holding every kind of entry a
// module can carry, and compares two trees attribute by attribute. Sources
// and writers (hostfs, squashfs, the pipeline) share it so that "round trip
// the tree and compare" means the same thing everywhere.
//
// Typical use:
//
//	src := t.TempDir()
//	testtree.Build(t, src, testtree.Options{Privileged: true})
//	... write src somewhere and read it back into dst ...
//	testtree.Compare(t, src, dst, testtree.CompareOptions{})
package testtree

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// privilege or tool is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test with reason, or fails it under CI: the tests a
// developer's laptop cannot run must still run in CI.
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
		Unavailable(t, "needs root (device nodes, chown, trusted.* xattrs)")
	}
}

// RequireTool returns the path of the executable name, skipping (or under CI
// failing) the test when it is not on $PATH.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "needs "+name+" on $PATH")
	}
	return p
}
