package builder

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
)

// TestModuleExclude: a module's exclude leaves the matching paths, and
// what is under a matching folder, out of every source; it is part of the
// module's cache key.
func TestModuleExclude(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a/etc/app", "a/var/lib/app/data/pages", "b/usr/share/doc/app"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "a/var/lib/app/data/pages/start.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "a/etc/app/app.conf"), []byte("x"), 0o644)
	os.Symlink("/var/lib/app/acl/acl.conf", filepath.Join(dir, "a/etc/app/acl.conf"))
	os.WriteFile(filepath.Join(dir, "b/usr/share/doc/app/copyright"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "b/usr/share/doc/app/acl.conf"), []byte("x"), 0o644)
	y := `name: node
kernel: {deb: none.deb}
base:
  - name: app
    sources: [a/, b/]
    exclude: [etc/app/acl.*, var/lib/app/data]
outputs: {dir: true}
`
	specPath := filepath.Join(dir, "node.yaml")
	os.WriteFile(specPath, []byte(y), 0o644)
	s, err := spec.Load(specPath, spec.Options{SkipInputChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"etc/app/acl.*", "var/lib/app/data"}; !reflect.DeepEqual(s.Base[0].Exclude, want) {
		t.Fatalf("exclude %v, want %v", s.Base[0].Exclude, want)
	}
	c := &cache.Cache{Dir: filepath.Join(dir, "cache")}
	stage := func() string {
		t.Helper()
		b := &builder{spec: s, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: c, tool: "test"}
		mods, err := b.moduleStage()
		if err != nil {
			t.Fatalf("moduleStage: %v", err)
		}
		return mods[0].path
	}
	tr := readTree(t, stage())
	for p, want := range map[string]bool{"etc/app/app.conf": true, "etc/app/acl.conf": false, "var/lib/app": true,
		"var/lib/app/data": false, "var/lib/app/data/pages/start.txt": false, "usr/share/doc/app/copyright": true,
		"usr/share/doc/app/acl.conf": true} {
		if _, got := tr.entries[p]; got != want {
			t.Errorf("%s in the module: %v, want %v", p, got, want)
		}
	}
	s.Base[0].Exclude = nil
	tr = readTree(t, stage())
	if _, ok := tr.entries["var/lib/app/data/pages/start.txt"]; !ok {
		t.Errorf("without exclude, the module lacks var/lib/app/data/pages/start.txt")
	}
	if h, m := c.Stats(); h != 0 || m != 2 {
		t.Errorf("%d hits, %d misses; want 0 and 2 (exclude is in the key)", h, m)
	}
}
