package npm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules/npm/npmtest"
)

// TestSelectPackages: which lock entries npm ci would install on
// linux-x64-glibc, with npm's omit rules.
func TestSelectPackages(t *testing.T) {
	p := func(path string, lock map[string]any) npmtest.Package {
		return npmtest.Package{Path: path, Version: "1.0.0", Tarball: []byte(path), Lock: lock}
	}
	pkgs := []npmtest.Package{
		p("node_modules/prod", nil),
		p("node_modules/dev", map[string]any{"dev": true}),
		p("node_modules/dev/node_modules/devchild", map[string]any{"dev": true}),
		p("node_modules/opt", map[string]any{"optional": true}),
		p("node_modules/devopt", map[string]any{"devOptional": true}),
		p("node_modules/peer", map[string]any{"peer": true}),
		p("node_modules/esbuild-darwin", map[string]any{"optional": true, "os": []string{"darwin"}, "cpu": []string{"arm64"}}),
		p("node_modules/esbuild-darwin/node_modules/under", map[string]any{"optional": true}),
		p("node_modules/musl-only", map[string]any{"optional": true, "os": []string{"linux"}, "libc": []string{"musl"}}),
		p("node_modules/linux-x64", map[string]any{"optional": true, "os": []string{"linux"}, "cpu": []string{"x64"}, "libc": []string{"glibc"}}),
		p("node_modules/not-windows", map[string]any{"os": []string{"!win32"}}),
	}
	for _, tc := range []struct {
		omit any // nil: no byzantium.omit
		want string
	}{
		{nil, "devopt linux-x64 not-windows opt peer prod"},
		{[]string{}, "dev dev/node_modules/devchild devopt linux-x64 not-windows opt peer prod"},
		{[]string{"dev", "optional"}, "not-windows peer prod"},
		{[]string{"optional"}, "dev dev/node_modules/devchild devopt not-windows peer prod"},
		{[]string{"dev", "peer"}, "devopt linux-x64 not-windows opt prod"},
	} {
		dir := t.TempDir()
		var more map[string]any
		if tc.omit != nil {
			more = map[string]any{"byzantium": map[string]any{"omit": tc.omit}}
		}
		npmtest.App(t, dir, "app", map[string]string{"prod": "1.0.0"}, more, pkgs...)
		app, err := LoadApp(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range app.Install {
			got = append(got, strings.TrimPrefix(p.Path, "node_modules/"))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("omit %v: installs %q, want %q", tc.omit, strings.Join(got, " "), tc.want)
		}
	}

	// A required package for another platform cannot be left out.
	dir := t.TempDir()
	npmtest.App(t, dir, "app", nil, nil, p("node_modules/fsevents", map[string]any{"os": []string{"darwin"}}))
	if _, err := LoadApp(dir); !errors.Is(err, ErrLock) || !strings.Contains(err.Error(), "fsevents@1.0.0 (node_modules/fsevents) is for os [darwin]") {
		t.Errorf("LoadApp = %v, want ErrLock naming fsevents and its platform", err)
	}
}

func TestLoadAppErrors(t *testing.T) {
	one := npmtest.Package{Path: "node_modules/a", Version: "1.0.0", Tarball: []byte("a")}
	for _, tc := range []struct {
		name string
		// setup writes the app; it gets the folder.
		setup func(t *testing.T, dir string)
		err   string
	}{
		{"no lock", func(t *testing.T, dir string) {}, "no package-lock.json in this folder (make npm-relock writes one"},
		{"out of date", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", map[string]string{"a": "1.0.0"}, nil, one)
			rewrite(t, filepath.Join(dir, "package.json"), `"a": "1.0.0"`, `"a": "^1.1.0"`)
		}, "out of date with PJ (dependencies: a: package.json wants ^1.1.0, the lock has 1.0.0); run make npm-relock"},
		{"new dependency", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", map[string]string{"a": "1.0.0"}, nil, one)
			rewrite(t, filepath.Join(dir, "package.json"), `"a": "1.0.0"`, `"a": "1.0.0", "b": "2"`)
		}, "b 2 is not in the lock"},
		{"unknown key", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", nil, map[string]any{"byzantium": map[string]any{"prebuild": []string{"a"}}}, one)
		}, `unknown field "prebuild"`},
		{"bad omit", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", nil, map[string]any{"byzantium": map[string]any{"omit": []string{"tests"}}}, one)
		}, `byzantium.omit: "tests": want dev, optional or peer`},
		{"relative dir", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", nil, map[string]any{"byzantium": map[string]any{"dir": "opt/app"}}, one)
		}, `byzantium.dir "opt/app": want a clean absolute folder`},
		{"climbing dir", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", nil, map[string]any{"byzantium": map[string]any{"dir": "/opt/../etc"}}, one)
		}, `byzantium.dir "/opt/../etc"`},
		{"scoped name, no dir", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "@me/app", nil, nil, one)
		}, `no byzantium.dir, and the name "@me/app" does not make one`},
		{"prebuilt not in the lock", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", nil, map[string]any{"byzantium": map[string]any{"prebuilt": []string{"sqlite3"}}}, one)
		}, "byzantium.prebuilt: the lock installs no sqlite3"},
		{"prebuilt of another version", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", nil, map[string]any{"byzantium": map[string]any{"ignore-scripts": []string{"a@2.0.0"}}}, one)
		}, "byzantium.ignore-scripts: the lock installs no a@2.0.0"},
		{"package.json not JSON", func(t *testing.T, dir string) {
			npmtest.App(t, dir, "app", nil, nil, one)
			os.WriteFile(filepath.Join(dir, "package.json"), []byte("{\n\"name\": app\n}"), 0o644)
		}, "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := LoadApp(dir)
			want := strings.ReplaceAll(tc.err, "PJ", filepath.Join(dir, "package.json"))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("LoadApp = %v\nwant %q", err, want)
			}
		})
	}
}

func rewrite(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", file, old)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAppDigest: the digest follows the lock and the package.json, and
// nothing else (not the folder's name, not the cache).
func TestAppDigest(t *testing.T) {
	one := npmtest.Package{Path: "node_modules/a", Version: "1.0.0", Tarball: []byte("a")}
	d1, d2 := t.TempDir(), t.TempDir()
	npmtest.App(t, d1, "app", map[string]string{"a": "1.0.0"}, nil, one)
	npmtest.App(t, d2, "app", map[string]string{"a": "1.0.0"}, nil, one)
	a1, err := LoadApp(d1)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := LoadApp(filepath.Join(d2, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if a1.Digest() != a2.Digest() || len(a1.Digest()) != 64 {
		t.Errorf("same app, digests %s and %s", a1.Digest(), a2.Digest())
	}
	npmtest.App(t, d2, "app", map[string]string{"a": "1.0.0"}, map[string]any{"byzantium": map[string]any{"dir": "/srv/x"}}, one)
	if a3, _ := LoadApp(d2); a3.Digest() == a1.Digest() {
		t.Error("a changed byzantium.dir kept the digest")
	}
}
