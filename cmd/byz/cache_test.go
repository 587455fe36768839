package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCachePrune: --dry-run lists what would go, with sizes, and removes
// nothing; then prune removes what a killed build left and the artifacts
// unused for longer than asked, and says how much it freed and kept.
func TestCachePrune(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-40 * 24 * time.Hour)
	work := filepath.Join(dir, ".work-123")
	os.Mkdir(work, 0o755)
	os.WriteFile(filepath.Join(work, "x"), make([]byte, 3<<20), 0o644)
	os.Chtimes(work, old, old)
	key := strings.Repeat("ab", 32)
	shard := filepath.Join(dir, "ab")
	os.Mkdir(shard, 0o755)
	artifact := filepath.Join(shard, key+".xzm")
	os.WriteFile(artifact, make([]byte, 2<<20), 0o644)
	os.Chtimes(artifact, old, old)
	fresh := filepath.Join(shard, strings.Repeat("ab", 31)+"cd.zst")
	os.WriteFile(fresh, make([]byte, 1<<20), 0o644)
	mine := filepath.Join(dir, "notes.txt")
	os.WriteFile(mine, []byte("mine"), 0o644)

	r := byz(t, nil, "cache", "prune", "--cache", dir, "--dry-run")
	// One line per item, in its words; spacing aside.
	got := strings.Join(strings.Fields(r.stdout), " ")
	for _, s := range []string{"would remove 3.0 MiB " + work + " (work folder of a build that was killed)",
		"would remove 2.0 MiB " + artifact + " (unused for 40 days)",
		"left alone: " + mine, "would remove 2 item(s), 5.0 MiB; kept 1 artifact(s), 1.0 MiB"} {
		if r.code != 0 || !strings.Contains(got, s) {
			t.Errorf("dry run: exit %d, no %q in\n%s%s", r.code, s, r.stdout, r.stderr)
		}
	}
	for _, p := range []string{work, artifact, fresh, mine} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the dry run removed %s", p)
		}
	}
	r = byz(t, nil, "cache", "prune", "--cache", dir, "--unused-for", "7d")
	if r.code != 0 || !strings.Contains(r.stdout, "removed 2 item(s), 5.0 MiB; kept 1 artifact(s), 1.0 MiB") {
		t.Errorf("prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for p, want := range map[string]bool{work: false, artifact: false, fresh: true, mine: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
	if r := byz(t, nil, "cache", "prune", "--cache", filepath.Join(dir, "none")); r.code != 1 {
		t.Errorf("prune of a missing cache: exit %d, want 1\n%s", r.code, r.stderr)
	}
}
