package modules

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/modules/npm"
	"byzantium/modules/npm/npmtest"
)

// fetchSample writes the sample app into a folder and fetches its
// tarballs from a loopback registry into a cache, as make npm-fetch would.
func fetchSample(t *testing.T) (string, npm.Cache) {
	t.Helper()
	dir, cache := t.TempDir(), npm.Cache{Dir: t.TempDir()}
	srv := npmtest.NewRegistry(t, npmtest.Sample(t, dir)...)
	u, _ := url.Parse(srv.URL + "/")
	app, err := npm.LoadApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &npm.Fetcher{Registry: &npm.Registry{URL: u, From: "test"}, Cache: cache}
	if _, err := f.Fetch(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	return dir, cache
}

// copyDir copies a folder of plain files (a cache, an app).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNPMSourceReproducible: the same lock gives the same module bytes,
// whatever folder the app and the cache are in; the manifest records the
// app's digest.
func TestNPMSourceReproducible(t *testing.T) {
	dir, cache := fetchSample(t)
	dir2, cache2 := t.TempDir(), npm.Cache{Dir: t.TempDir()}
	copyDir(t, dir, dir2)
	copyDir(t, cache.Dir, cache2.Dir)
	ep := time.Unix(1700000000, 0)
	out := t.TempDir()
	build := func(name, app string, c npm.Cache) []byte {
		p := filepath.Join(out, name)
		if _, err := Create([]string{"npm:" + app}, p, CreateOptions{Name: "app", Epoch: &ep, NPMCache: c,
			SourceNames: []string{"npm:apps/app"}}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := build("a.xzm", dir, cache)
	b := build("b.xzm", dir2, cache2)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds of one lock differ (%d and %d bytes)", len(a), len(b))
	}
	m, err := Open(filepath.Join(out, "a.xzm"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ms, err := m.Manifests()
	if err != nil || len(ms) != 1 {
		t.Fatalf("manifests: %v, %v", ms, err)
	}
	app, _ := npm.LoadApp(dir)
	want := []string{"npm:apps/app", string(KindNPM), app.Digest()}
	if s := ms[0].Sources; len(s) != 1 || s[0].Ref != want[0] || s[0].Kind != want[1] || s[0].SHA256 != want[2] {
		t.Errorf("manifest sources %+v, want %v", s, want)
	}
	d, err := Digest("npm:"+dir, &ep)
	if err != nil || d != app.Digest() {
		t.Errorf("Digest = %s, %v; want the manifest's %s", d, err, app.Digest())
	}
}

// TestNPMSourceRefusedWritesNothing: a refused package fails Create before
// any output exists.
func TestNPMSourceRefusedWritesNothing(t *testing.T) {
	dir, cache := t.TempDir(), npm.Cache{Dir: t.TempDir()}
	p := npmtest.Package{Path: "node_modules/addon", Version: "1.0.0", Tarball: npmtest.Tarball(t,
		npmtest.File{Name: "package/package.json", Body: npmtest.PackageJSON("addon", "1.0.0", nil)},
		npmtest.File{Name: "package/binding.gyp", Body: "{}"})}
	npmtest.App(t, dir, "app", map[string]string{"addon": "1.0.0"}, nil, p)
	srv := npmtest.NewRegistry(t, p)
	u, _ := url.Parse(srv.URL + "/")
	app, _ := npm.LoadApp(dir)
	if _, err := (&npm.Fetcher{Registry: &npm.Registry{URL: u}, Cache: cache}).Fetch(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err := Create([]string{"npm:" + dir}, filepath.Join(out, "app.xzm"), CreateOptions{NPMCache: cache})
	if !errors.Is(err, npm.ErrNative) || !strings.Contains(err.Error(), "addon@1.0.0") {
		t.Fatalf("Create = %v, want ErrNative naming addon@1.0.0", err)
	}
	if es, _ := os.ReadDir(out); len(es) != 0 {
		t.Errorf("the output folder holds %v after a refused build", es)
	}
}

func TestParseSourceNPM(t *testing.T) {
	dir := t.TempDir()
	if _, err := ParseSource("npm:" + dir); !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), "no package-lock.json") {
		t.Errorf("npm: of a folder without a lock: %v", err)
	}
	npmtest.App(t, dir, "app", nil, nil)
	for _, ref := range []string{"npm:" + dir, "npm:" + filepath.Join(dir, "package-lock.json")} {
		if s, err := ParseSource(ref); err != nil || s.Kind != KindNPM {
			t.Errorf("ParseSource(%s) = %+v, %v", ref, s, err)
		}
	}
}

// extract unpacks a module with unsquashfs, the reference tool.
func extract(t *testing.T, module string) string {
	t.Helper()
	unsquashfs := testenv.RequireTool(t, "unsquashfs")
	dst := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command(unsquashfs, "-no-progress", "-quiet", "-d", dst, module).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	return dst
}

// TestNPMSourceNode: Node.js loads the laid-out packages from a module
// extracted by unsquashfs: nested node_modules resolve as npm meant, and
// a bin link runs (through its mended shebang).
func TestNPMSourceNode(t *testing.T) {
	node := testenv.RequireTool(t, "node")
	dir, cache := fetchSample(t)
	mod := filepath.Join(t.TempDir(), "app.xzm")
	if _, err := Create([]string{"npm:" + dir}, mod, CreateOptions{NPMCache: cache}); err != nil {
		t.Fatal(err)
	}
	root := extract(t, mod)
	appDir := filepath.Join(root, "opt", "app")
	cmd := exec.Command(node, "-e", "console.log(require('greet')())")
	cmd.Dir = appDir
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "greet sees dep 2, the app sees dep 1" {
		t.Errorf("node require('greet'): %v\n%s", err, out)
	}
	// The bin runs by its link, its #! line read by the kernel: a CR left
	// in it would make env look for "node\r".
	cmd = exec.Command(filepath.Join(appDir, "node_modules", ".bin", "greet"))
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(node)+":/usr/bin:/bin")
	out, err = cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "greet sees dep 2, the app sees dep 1" {
		t.Errorf("node_modules/.bin/greet: %v\n%s", err, out)
	}
}

// TestNPMExamples fetches the example locks (examples/apps/npm-*) from
// the registry the machine's npm configuration names — the network — lays
// each out in a module, checks it against npm ci's own layout of the
// same lock when npm is here, and has Node.js load it: npm-sample's
// nested dependency, npm-native's prebuilt add-on (a real linux-x64 .node
// from its tarball, used as shipped).
func TestNPMExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches from the npm registry (-short)")
	}
	for _, tc := range []struct {
		app, dir string
		tarballs int
		script   string // run by node in the app's folder
		want     string // its output
		bin      []string
	}{
		{app: "npm-sample", dir: "opt/npm-sample", tarballs: 3,
			script: `const which = require('which'), isexe = require('isexe');
				console.log(typeof isexe.isexe, require('which/package.json').version,
					require(require.resolve('isexe/package.json', {paths: [require.resolve('which')]})).version,
					require('isexe/package.json').version, which.sync('sh').endsWith('/sh'))`,
			want: "function 2.0.2 2.0.0 3.1.1 true", bin: []string{"node-which", "sh"}},
		{app: "npm-native", dir: "opt/npm-native", tarballs: 2,
			script: `const b = require('bufferutil'), buf = Buffer.from([1, 2, 3, 4]);
				b.mask(buf, Buffer.from([1, 1, 1, 1]), buf, 0, 4);
				console.log(require.resolve('bufferutil'), buf.join(','), b.mask === require('bufferutil/fallback').mask ? 'js' : 'native')`,
			want: "/node_modules/bufferutil/index.js 0,3,2,5 native"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			example, err := filepath.Abs(filepath.Join("..", "examples", "apps", tc.app))
			if err != nil {
				t.Fatal(err)
			}
			reg, err := npm.LoadRegistry(npm.ConfigOptions{Project: example})
			if err != nil {
				testenv.Unavailable(t, err.Error())
			}
			app, err := npm.LoadApp(example)
			if err != nil {
				t.Fatal(err)
			}
			cache := npm.Cache{Dir: t.TempDir()}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			st, err := (&npm.Fetcher{Registry: reg, Cache: cache}).Fetch(ctx, app)
			if err != nil {
				t.Fatalf("fetch from the registry of %s: %v", reg.From, err)
			}
			if st.Fetched != tc.tarballs {
				t.Errorf("fetched %+v, want %d tarballs", st, tc.tarballs)
			}
			mod := filepath.Join(t.TempDir(), tc.app+".xzm")
			if _, err := Create([]string{"npm:" + example}, mod, CreateOptions{NPMCache: cache}); err != nil {
				t.Fatal(err)
			}
			appDir := filepath.Join(extract(t, mod), tc.dir)

			t.Run("node", func(t *testing.T) {
				node := testenv.RequireTool(t, "node")
				cmd := exec.Command(node, "-e", tc.script)
				cmd.Dir = appDir
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), tc.want) {
					t.Errorf("node: %v\n%s\nwant it to end in %q", err, out, tc.want)
				}
				if tc.bin == nil {
					return
				}
				cmd = exec.Command(filepath.Join(appDir, "node_modules", ".bin", tc.bin[0]), tc.bin[1:]...)
				cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(node)+":/usr/bin:/bin")
				if out, err := cmd.CombinedOutput(); err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "/sh") {
					t.Errorf(".bin/%s: %v\n%s", tc.bin[0], err, out)
				}
			})

			t.Run("npm ci agrees", func(t *testing.T) {
				npmCmd := testenv.RequireTool(t, "npm")
				ref := t.TempDir()
				for _, f := range []string{"package.json", "package-lock.json"} {
					b, _ := os.ReadFile(filepath.Join(example, f))
					os.WriteFile(filepath.Join(ref, f), b, 0o644)
				}
				cmd := exec.CommandContext(ctx, npmCmd, "ci", "--ignore-scripts", "--omit=dev", "--no-audit", "--no-fund", "--cache", t.TempDir())
				cmd.Dir = ref
				cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("npm ci: %v\n%s", err, out)
				}
				want := describeTree(t, filepath.Join(ref, "node_modules"))
				delete(want, ".package-lock.json") // npm's hidden lockfile
				got := describeTree(t, filepath.Join(appDir, "node_modules"))
				if len(want) < 10 {
					t.Fatalf("npm ci laid out only %d entries", len(want))
				}
				for _, p := range sortedKeys(want) {
					if got[p] != want[p] {
						t.Errorf("%s: byz %q, npm ci %q", p, got[p], want[p])
					}
				}
				for _, p := range sortedKeys(got) {
					if _, ok := want[p]; !ok {
						t.Errorf("%s: byz %q, not in npm ci's layout", p, got[p])
					}
				}
			})
		})
	}
}

// describeTree maps each path under root to its type, mode and content
// digest (or link target), for comparing two layouts.
func describeTree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = "link " + l
		case fi.IsDir():
			m[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			m[rel] = fmt.Sprintf("file %o %s", fi.Mode().Perm(), hex.EncodeToString(s[:8]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
