package cache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKey(t *testing.T) {
	if Key("ab", "c") == Key("a", "bc") {
		t.Error("Key does not separate its parts")
	}
	if a, b := Key("x", "y"), Key("x", "y"); a != b {
		t.Error("Key is not deterministic")
	}
}

func TestBuild(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	builds := 0
	make := func(content string) func(string) error {
		return func(p string) error {
			builds++
			return os.WriteFile(p, []byte(content), 0o644)
		}
	}
	k := Key("module", "busybox", "digest1")
	p1, hit, err := c.Build(k, ".xzm", make("one"))
	if err != nil || hit || builds != 1 {
		t.Fatalf("first Build: %v hit=%v builds=%d", err, hit, builds)
	}
	p2, hit, err := c.Build(k, ".xzm", make("two"))
	if err != nil || !hit || builds != 1 || p2 != p1 {
		t.Fatalf("second Build: %v hit=%v builds=%d", err, hit, builds)
	}
	if b, _ := os.ReadFile(p2); string(b) != "one" {
		t.Errorf("cached content %q", b)
	}
	// Refresh rebuilds and replaces.
	c.Refresh = true
	if _, hit, err := c.Build(k, ".xzm", make("three")); err != nil || hit || builds != 2 {
		t.Fatalf("refresh Build: %v hit=%v builds=%d", err, hit, builds)
	}
	if b, _ := os.ReadFile(p1); string(b) != "three" {
		t.Errorf("refreshed content %q", b)
	}
	if h, m := c.Stats(); h != 1 || m != 2 {
		t.Errorf("Stats = %d hits, %d misses", h, m)
	}
}

// TestFailedBuildLeavesNothing: a failing build leaves no entry behind, so
// the next build does not mistake a partial artifact for a finished one.
func TestFailedBuildLeavesNothing(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	boom := errors.New("boom")
	k := Key("x")
	_, _, err := c.Build(k, ".xzm", func(p string) error {
		os.WriteFile(p, []byte("half"), 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(c.Path(k, ".xzm")); !os.IsNotExist(err) {
		t.Errorf("failed build left %s", c.Path(k, ".xzm"))
	}
	left, _ := filepath.Glob(filepath.Join(c.Dir, "*", ".build-*"))
	if len(left) != 0 {
		t.Errorf("temp dirs left: %v", left)
	}
}
