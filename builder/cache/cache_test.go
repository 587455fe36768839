package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestBuildIn: an artifact is made there and nothing of
// it is left there or in the cache when its build fails.
func TestBuildIn(t *testing.T) {
	work := t.TempDir()
	c := &Cache{Dir: t.TempDir()}
	var made string
	if _, _, err := c.BuildIn(work, Key("a"), ".xzm", func(p string) error {
		made = p
		return os.WriteFile(p, []byte("a"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if rel, err := filepath.Rel(work, made); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("artifact made at %s, not in %s", made, work)
	}
	boom := errors.New("boom")
	if _, _, err := c.BuildIn(work, Key("b"), ".xzm", func(p string) error { os.WriteFile(p, []byte("b"), 0o644); return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("left in the work folder: %v", left)
	}
	// The work folder gone (an interrupted build removed it): a build
	// fails rather than making it again.
	os.RemoveAll(work)
	if _, _, err := c.BuildIn(work, Key("c"), ".xzm", func(p string) error { return os.WriteFile(p, nil, 0o644) }); err == nil {
		t.Error("Build made an artifact in a work folder that was removed")
	}
	if _, err := os.Stat(work); err == nil {
		t.Error("Build brought the removed work folder back")
	}
}

// TestHitRefreshesTime: a hit on an artifact last used long ago marks it
// used now, so Prune keeps what builds still use.
func TestHitRefreshesTime(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	k := Key("a")
	p, _, err := c.Build(k, ".xzm", func(p string) error { return os.WriteFile(p, []byte("a"), 0o644) })
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-30 * 24 * time.Hour)
	os.Chtimes(p, past, past)
	if _, hit, _ := c.Build(k, ".xzm", nil); !hit {
		t.Fatal("no hit")
	}
	if fi, _ := os.Stat(p); time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("a hit left the artifact's time at %v", fi.ModTime())
	}
}

func TestNewWorkDir(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	other, _, err := c.NewWorkDir() // a build running meanwhile
	if err != nil {
		t.Fatal(err)
	}
	defer other.Remove()
	past := time.Now().Add(-time.Hour)
	os.Chtimes(other.Path, past, past)
	stale := filepath.Join(c.Dir, ".work-123") // a build killed an hour ago
	os.Mkdir(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "big"), make([]byte, 4096), 0o644)
	os.Chtimes(stale, past, past)
	d, swept, err := c.NewWorkDir()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	if len(swept) != 1 || swept[0].Path != stale || swept[0].Size != 4096 {
		t.Errorf("swept %+v; want %s (4096 bytes) alone", swept, stale)
	}
	if _, err := os.Stat(other.Path); err != nil {
		t.Errorf("the running build's work folder was removed: %v", err)
	}
}

func TestPrune(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	mk := func(name string, size int, age time.Duration) string {
		p, _, err := c.Build(Key(name), ".xzm", func(p string) error { return os.WriteFile(p, make([]byte, size), 0o644) })
		if err != nil {
			t.Fatal(err)
		}
		tm := time.Now().Add(-age)
		os.Chtimes(p, tm, tm)
		return p
	}
	fresh := mk("fresh", 10, time.Hour)
	old := mk("old", 100, 30*24*time.Hour)
	work := filepath.Join(c.Dir, ".work-1")
	os.Mkdir(work, 0o755)
	os.WriteFile(filepath.Join(work, "x"), make([]byte, 1000), 0o644)
	half := filepath.Join(filepath.Dir(fresh), ".build-1")
	os.Mkdir(half, 0o755)
	os.WriteFile(filepath.Join(half, "artifact.xzm"), make([]byte, 7), 0o644)
	for _, p := range []string{work, half} {
		tm := time.Now().Add(-time.Hour)
		os.Chtimes(p, tm, tm)
	}
	notes := filepath.Join(c.Dir, "notes.txt") // not the cache's: left alone
	os.WriteFile(notes, []byte("mine"), 0o644)

	res, err := c.Prune(PruneOptions{UnusedFor: 7 * 24 * time.Hour, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 3 || res.RemovedBytes() != 1107 || res.Kept != 1 || res.KeptBytes != 10 ||
		len(res.Foreign) != 1 || res.Foreign[0] != notes {
		t.Errorf("dry run: %+v", res)
	}
	for _, p := range []string{fresh, old, work, half} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a dry run removed %s", p)
		}
	}

	unlock, err := c.Use()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prune(PruneOptions{All: true}); !errors.Is(err, ErrBusy) {
		t.Errorf("Prune while a build uses the cache: %v, want ErrBusy", err)
	}
	unlock()

	if res, err = c.Prune(PruneOptions{UnusedFor: 7 * 24 * time.Hour}); err != nil || res.RemovedBytes() != 1107 {
		t.Fatalf("Prune: %+v, %v", res, err)
	}
	for p, want := range map[string]bool{fresh: true, old: false, work: false, half: false, notes: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
	if res, err = c.Prune(PruneOptions{All: true}); err != nil || len(res.Removed) != 1 || res.Removed[0].Path != fresh {
		t.Fatalf("Prune --all: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Dir(fresh)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the emptied shard folder is still there")
	}
	if _, err := os.Stat(notes); err != nil {
		t.Error("Prune --all removed a file the cache did not make")
	}
}
