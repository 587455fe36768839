package initsys

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/modules"
)

// TestDepsListsBootOrder: `byz module deps` (modules.ResolveStack) must
// print a media tree's modules in exactly the order selectModules stacks
// them, every optional one loaded: two implementations of one rule, kept
// together by this test. The names probe the corners: bytewise order
// ("10-" before "9-", upper case before lower), .xzm in any case, a folder
// named like a module, files that are not modules; and the modules' own
// names sort the other way, so no order by name passes.
func TestDepsListsBootOrder(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	epoch := time.Unix(1700000000, 0)
	for i, f := range []string{
		"base/000-kernel.xzm", "base/10-b.xzm", "base/9-a.xzm", "base/Zed.XZM", "base/aa.xzm",
		"modules/001-x.xzm", "modules/001-x2.Xzm", "modules/050 with space.xzm",
		"optional/001-o.xzm", "optional/002-p.xzm",
	} {
		p := filepath.Join(dir, "byzantium", f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := modules.Create([]string{src}, p, modules.CreateOptions{Name: fmt.Sprintf("m%d", 9-i), Epoch: &epoch}); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "byzantium/modules/002-folder.xzm"), 0o755)
	os.WriteFile(filepath.Join(dir, "byzantium/modules/README.txt"), []byte("not a module"), 0o644)

	boot, err := selectModules(dir, Cmdline{Load: []string{"."}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := modules.ResolveStack([]string{dir}, modules.StackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, m := range st.Modules {
		rel, _ := filepath.Rel(dir, m.File)
		listed = append(listed, filepath.ToSlash(rel))
	}
	if strings.Join(listed, "\n") != strings.Join(boot, "\n") {
		t.Fatalf("byz module deps lists\n  %s\nbyz-init stacks\n  %s", strings.Join(listed, "\n  "), strings.Join(boot, "\n  "))
	}
	if len(boot) != 10 {
		t.Fatalf("byz-init stacks %d modules, want the 10 written: %v", len(boot), boot)
	}
}
