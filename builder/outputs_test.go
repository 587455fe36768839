package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/builder/tmpdir"
)

// snapshot records every path under dir with its size and content digest
// (a folder's as "dir"), to show that a build left what it found alone.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			m[rel] = "dir"
			return nil
		}
		fi, _ := d.Info()
		m[rel] = fmt.Sprint(fi.ModTime(), " ", fi.Size(), " ", fi.Mode())
		if fi.Size() < 1<<20 {
			b, _ := os.ReadFile(p)
			m[rel] += string(b)
		}
		return nil
	})
	return m
}

// unrelated puts files and a folder that are not the build's into out.
func unrelated(t *testing.T, out string) {
	t.Helper()
	os.MkdirAll(filepath.Join(out, "notes/deep"), 0o755)
	os.WriteFile(filepath.Join(out, "README.txt"), []byte("mine\n"), 0o644)
	os.WriteFile(filepath.Join(out, "notes/deep/todo"), []byte("also mine\n"), 0o600)
	os.WriteFile(filepath.Join(out, ".hidden"), []byte("mine too\n"), 0o644)
}

func checkUnrelated(t *testing.T, out string) {
	t.Helper()
	for p, want := range map[string]string{"README.txt": "mine\n", "notes/deep/todo": "also mine\n", ".hidden": "mine too\n"} {
		if b, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; the build lost a file that was not its own", p, b, err)
		}
	}
}

// noTemp fails if a build left a temporary folder or file behind in the
// output folder or the cache.
func noTemp(t *testing.T, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, spec.StagePrefix) || strings.HasPrefix(name, ".work-") ||
				strings.HasPrefix(name, ".build-") || strings.Contains(name, ".tmp") || strings.HasPrefix(name, "artifact-") {
				t.Errorf("left behind: %s", p)
			}
			return nil
		})
	}
}

// TestUnrelatedFilesSurvive: files in the output folder that are not the
// build's survive every way a build can go: success, a rebuild replacing
// its outputs, a failure found up front, a failure found late (after the
// artifacts), a stop mid-way, an output folder that is somebody's, and a
// spec whose dir output is the output folder itself.
func TestUnrelatedFilesSurvive(t *testing.T) {
	f := newFixture(t)
	cacheDir := filepath.Join(f.dir, "cache")
	load := func(edit func(*spec.Spec)) *spec.Spec {
		s, err := spec.Load(f.specPath, spec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Outputs.Dir = "media"
		if edit != nil {
			edit(s)
		}
		return s
	}
	opts := func(out string) Options {
		return Options{Out: out, Cache: &cache.Cache{Dir: cacheDir}, Epoch: epoch, InitBinary: f.initBin,
			DebDir: f.debDir, Tool: "test"}
	}

	// A first build: the outputs go in beside the unrelated files.
	out := filepath.Join(f.dir, "out")
	unrelated(t, out)
	if _, err := Build(load(nil), opts(out)); err != nil {
		t.Fatal(err)
	}
	checkUnrelated(t, out)
	for _, name := range []string{"node.iso", "node-usb.img", "media/byzantium/manifest.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	noTemp(t, out, cacheDir)

	// A rebuild replaces its outputs, the media folder included.
	if _, err := Build(load(nil), opts(out)); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	checkUnrelated(t, out)
	noTemp(t, out, cacheDir)
	built := snapshot(t, out)

	failing := []struct {
		name string
		edit func(*spec.Spec)
		opts func(*Options)
		says string
	}{
		{"found up front", func(s *spec.Spec) { s.Modules[0].Depends = []string{"nothere"} }, nil, "nothere"},
		{"found late", func(s *spec.Spec) { s.Outputs.USB.Size, s.Outputs.USB.Spare = 64<<20, 48<<20 },
			nil, "outputs.usb.size: 64M is too small"},
		{"init binary gone", nil, func(o *Options) { o.InitBinary = filepath.Join(f.dir, "nope") }, "byz-init"},
	}
	for _, tc := range failing {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(out)
			if tc.opts != nil {
				tc.opts(&o)
			}
			_, err := Build(load(tc.edit), o)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Build: %v; want an error saying %q", err, tc.says)
			}
			if got := snapshot(t, out); !equal(got, built) {
				t.Errorf("a failed build changed the output folder:\n%s", diff(built, got))
			}
			noTemp(t, out, cacheDir)
		})
	}

	// A media folder at the dir output's path that holds a file of
	// somebody else's is not replaced, and nothing is built.
	t.Run("somebody's folder", func(t *testing.T) {
		os.WriteFile(filepath.Join(out, "media/byzantium/changes.txt"), []byte("a node's notes\n"), 0o644)
		defer os.Remove(filepath.Join(out, "media/byzantium/changes.txt"))
		before := snapshot(t, out)
		_, err := Build(load(nil), opts(out))
		if !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "byzantium/changes.txt") ||
			!strings.Contains(err.Error(), "outputs.dir") {
			t.Fatalf("Build over a folder with a foreign file: %v", err)
		}
		if got := snapshot(t, out); !equal(got, before) {
			t.Errorf("the refused build changed the output folder:\n%s", diff(before, got))
		}
	})
	t.Run("folder that is not media", func(t *testing.T) {
		other := filepath.Join(f.dir, "out-other")
		unrelated(t, other)
		_, err := Build(load(func(s *spec.Spec) { s.Outputs.Dir = "notes" }), opts(other))
		if !errors.Is(err, ErrNotOurs) {
			t.Fatalf("Build over a folder that is not media: %v", err)
		}
		checkUnrelated(t, other)
	})

	// The spec that wiped the folder: dir: "." is refused when read.
	t.Run("dir is the output folder", func(t *testing.T) {
		y, _ := os.ReadFile(f.specPath)
		bad := filepath.Join(f.dir, "dot.yaml")
		os.WriteFile(bad, []byte(strings.Replace(string(y), "outputs:\n", "outputs:\n  dir: .\n", 1)), 0o644)
		if _, err := spec.Load(bad, spec.Options{}); err == nil || !strings.Contains(err.Error(), "outputs.dir") {
			t.Fatalf("spec with dir: . loaded: %v", err)
		}
		// A caller that skips validation: the build itself refuses to
		// replace a folder it did not write, the output folder included.
		before := snapshot(t, out)
		_, err := Build(load(func(s *spec.Spec) { s.Outputs.Dir = "." }), opts(out))
		if !errors.Is(err, ErrNotOurs) {
			t.Errorf("Build with dir %q: %v, want ErrNotOurs", ".", err)
		}
		if got := snapshot(t, out); !equal(got, before) {
			t.Errorf("the refused build changed the output folder:\n%s", diff(before, got))
		}
	})

	// Stopped at each stage of a build that builds everything again
	// (Refresh), as the stage starts and, for the long ones, well into
	// it: the outputs of the build before are as they were.
	stops := []struct {
		at    string
		after time.Duration
	}{
		{"unpacking", 0}, {"unpacking", 300 * time.Millisecond},
		{"building 000-kernel.xzm", 0}, {"building 000-kernel.xzm", 500 * time.Millisecond},
		{"building initramfs", 0}, {"building modules/runtime", 0},
		{"writing " + filepath.Join(out, "node.iso"), 0}, {"writing " + filepath.Join(out, "node-usb.img"), 0},
		{"writing " + filepath.Join(out, "media"), 0},
	}
	for _, st := range stops {
		t.Run(fmt.Sprintf("stopped %v into %s", st.after, filepath.Base(st.at)), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := opts(out)
			o.Cache.Refresh = true
			var once sync.Once
			o.Logf = func(format string, args ...any) {
				if strings.HasPrefix(sprintf(format, args...), st.at) {
					once.Do(func() {
						if st.after == 0 {
							cancel()
						} else {
							time.AfterFunc(st.after, cancel)
						}
					})
				}
			}
			_, err := BuildContext(ctx, load(nil), o)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("BuildContext stopped at %q: %v", st.at, err)
			}
			if got := snapshot(t, out); !equal(got, built) {
				t.Errorf("a stopped build changed the output folder:\n%s", diff(built, got))
			}
			// The step under way may still be writing into a file that
			// is gone; let it find that out before looking for leftovers.
			time.Sleep(200 * time.Millisecond)
			noTemp(t, out, cacheDir)
		})
	}
}

// TestSweepAtNextBuild: what a killed build left (a work folder in the
// cache, a staging folder in the output folder) goes at the next build;
// the folders of a build still running stay.
func TestSweepAtNextBuild(t *testing.T) {
	f := newFixture(t)
	cacheDir := filepath.Join(f.dir, "cache")
	out := filepath.Join(f.dir, "out")
	past := time.Now().Add(-time.Hour)
	leftovers := []string{filepath.Join(cacheDir, ".work-killed"), filepath.Join(out, spec.StagePrefix+"killed")}
	for _, p := range leftovers {
		os.MkdirAll(filepath.Join(p, "kernel-1"), 0o755)
		os.WriteFile(filepath.Join(p, "kernel-1/vmlinuz"), make([]byte, 1<<20), 0o644)
		os.Chtimes(p, past, past)
	}
	liveWork, err := tmpdir.New(cacheDir, ".work-")
	if err != nil {
		t.Fatal(err)
	}
	defer liveWork.Remove()
	liveStage, err := tmpdir.New(out, spec.StagePrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer liveStage.Remove()
	for _, p := range []string{liveWork.Path, liveStage.Path} {
		os.Chtimes(p, past, past)
	}
	var logged []string
	var mu sync.Mutex
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(s, Options{Out: out, Cache: &cache.Cache{Dir: cacheDir}, Epoch: epoch, InitBinary: f.initBin,
		DebDir: f.debDir, Tool: "test", Logf: func(format string, args ...any) {
			mu.Lock()
			logged = append(logged, sprintf(format, args...))
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range leftovers {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after the next build", p)
		}
		found := false
		for _, l := range logged {
			found = found || strings.Contains(l, p) && strings.Contains(l, "1.0 MiB")
		}
		if !found {
			t.Errorf("the build did not say it removed %s (1.0 MiB):\n%s", p, strings.Join(logged, "\n"))
		}
	}
	for _, p := range []string{liveWork.Path, liveStage.Path} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the folder of a running build was removed: %v", err)
		}
	}
}

// TestUSBSizeNeeded: a USB size too small for the media fails before any
// output is written, naming the spec line and the size needed; that size
// then builds.
func TestUSBSizeNeeded(t *testing.T) {
	f := newFixture(t)
	y, _ := os.ReadFile(f.specPath)
	os.WriteFile(f.specPath, []byte(strings.Replace(string(y), "usb: {spare: 32M}", "usb: {size: 64M, spare: 48M}", 1)), 0o644)
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(f.dir, "out")
	var wrote []string
	o := Options{Out: out, Cache: &cache.Cache{Dir: filepath.Join(f.dir, "cache")}, Epoch: epoch, InitBinary: f.initBin,
		DebDir: f.debDir, Tool: "test", Logf: func(format string, args ...any) {
			if strings.HasPrefix(format, "writing") {
				wrote = append(wrote, sprintf(format, args...))
			}
		}}
	_, err = Build(s, o)
	var se *spec.Error
	if !errors.As(err, &se) || se.Pos.Line == 0 || se.Path != "outputs.usb.size" {
		t.Fatalf("Build with a small USB size: %v; want a spec error at outputs.usb.size", err)
	}
	if se.Pos.File != f.specPath || !strings.HasPrefix(err.Error(), se.Pos.String()+": outputs.usb.size: 64M is too small") {
		t.Errorf("error %q; want it at %s", err, f.specPath)
	}
	if len(wrote) != 0 {
		t.Errorf("outputs were written before the size was checked: %v", wrote)
	}
	_, need, ok := strings.Cut(err.Error(), "make it at least ")
	need, _, _ = strings.Cut(need, ",")
	n, perr := spec.ParseSize(need)
	if !ok || perr != nil || n <= 64<<20 {
		t.Fatalf("no size needed in %q", err)
	}
	s.Outputs.USB.Size = n
	if _, err := Build(s, o); err != nil {
		t.Fatalf("Build at the size the error asked for (%s): %v", need, err)
	}
	if fi, err := os.Stat(filepath.Join(out, "node-usb.img")); err != nil || fi.Size() != n {
		t.Errorf("the USB image: %v", err)
	}
}

// TestDebDir: with no package folder given, the build looks for the nearest
// .cache/debs above the spec (where make fetch puts it), from any working
// directory; when there is none it says where it looked and what to do.
func TestDebDir(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	os.MkdirAll(filepath.Join(repo, ".cache/debs"), 0o755)
	os.MkdirAll(filepath.Join(repo, "examples/deep"), 0o755)
	for dir, want := range map[string]string{
		filepath.Join(repo, "examples/deep"): filepath.Join(repo, ".cache/debs"),
		repo:                                 filepath.Join(repo, ".cache/debs"),
	} {
		if got := findDebDir(dir); got != want {
			t.Errorf("findDebDir(%s) = %s, want %s", dir, got, want)
		}
	}
	wd, _ := os.Getwd()
	if got := findDebDir(root); got != filepath.Join(wd, ".cache/debs") {
		t.Errorf("findDebDir with none above = %s, want the working directory's", got)
	}

	f := newFixture(t) // its spec's folder has no .cache/debs above it
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(s, Options{Out: filepath.Join(f.dir, "out"), Cache: &cache.Cache{Dir: filepath.Join(f.dir, "cache")},
		Epoch: epoch, InitBinary: f.initBin, Tool: "test"})
	for _, says := range []string{"isolinux", filepath.Join(wd, ".cache/debs"), "make fetch", "--debs"} {
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("error %v does not say %q", err, says)
		}
	}
}

func sprintf(format string, args ...any) string {
	return strings.TrimSpace(fmt.Sprintf(format, args...))
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func diff(want, got map[string]string) string {
	var lines []string
	for k := range want {
		if _, ok := got[k]; !ok {
			lines = append(lines, "- "+k)
		} else if got[k] != want[k] {
			lines = append(lines, "~ "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, "+ "+k)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
