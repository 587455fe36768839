package npm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"byzantium/modules/entry"
	"byzantium/modules/npm/npmtest"
)

var testEpoch = time.Unix(1700000000, 0)

// got is an entry as a test compares it.
type got struct {
	typ  entry.Type
	mode uint32
	body string
}

func (g got) String() string { return fmt.Sprintf("%s %o %q", g.typ, g.mode, g.body) }

// fill puts the packages' tarballs in the cache, as Fetch would.
func fill(t *testing.T, c Cache, pkgs ...npmtest.Package) {
	t.Helper()
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		if p.Tarball == nil {
			continue
		}
		in, err := ParseIntegrity(npmtest.SRI(p.Tarball))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.Path(in), p.Tarball, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree reads a whole stream: path → entry, and the paths in order.
func readTree(t *testing.T, r entry.Reader) (map[string]got, []string, error) {
	t.Helper()
	tree := map[string]got{}
	var order []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			return tree, order, nil
		}
		if err != nil {
			return tree, order, err
		}
		if err := h.Validate(); err != nil {
			t.Errorf("%s: %v", h.Path, err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return tree, order, err
		}
		if int64(len(b)) != h.Size {
			t.Errorf("%s: body of %d bytes, header says %d", h.Path, len(b), h.Size)
		}
		body := string(b)
		if h.Type == entry.TypeSymlink {
			body = h.Linkname
		}
		if _, dup := tree[h.Path]; dup {
			t.Errorf("%s comes twice", h.Path)
		}
		tree[h.Path] = got{h.Type, h.Mode, body}
		order = append(order, h.Path)
	}
}

// lay loads the app in dir and lays it out from cache.
func lay(t *testing.T, dir string, c Cache, opts Options) (map[string]got, error) {
	t.Helper()
	app, err := LoadApp(dir)
	if err != nil {
		return nil, err
	}
	r, err := Open(app, c, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	tree, _, err := readTree(t, r)
	return tree, err
}

func TestLayoutSample(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	fill(t, c, npmtest.Sample(t, dir)...)
	app, err := LoadApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(app, c, Options{ModTime: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	tree, order, err := readTree(t, r)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	pj := npmtest.PackageJSON
	d := got{entry.TypeDir, 0o755, ""}
	f := func(body string) got { return got{entry.TypeRegular, 0o644, body} }
	x := func(body string) got { return got{entry.TypeRegular, 0o755, body} }
	l := func(target string) got { return got{entry.TypeSymlink, 0o777, target} }
	nm := "opt/app/node_modules/"
	want := map[string]got{
		"opt": d, "opt/app": d, "opt/app/node_modules": d,
		nm + "@s": d, nm + "@s/tool": d,
		nm + "@s/tool/package.json": f(pj("@s/tool", "1.0.0", map[string]any{"bin": "cli.js"})),
		nm + "@s/tool/cli.js":       x("#!/usr/bin/env node\nconsole.log('tool');\n"),
		nm + "dep":                  d,
		nm + "dep/package.json":     f(pj("dep", "1.0.0", nil)),
		nm + "dep/index.js":         f("exports.version = '1';\n"),
		nm + "greet":                d,
		nm + "greet/package.json": f(pj("greet", "1.0.0", map[string]any{"main": "index.js",
			"bin": map[string]string{"greet": "./bin/greet.js"}, "dependencies": map[string]string{"dep": "^2.0.0"}})),
		nm + "greet/index.js": f("module.exports = () => 'greet sees dep ' + require('dep').version +\n" +
			"  ', the app sees dep ' + require(require('path').join(__dirname, '..', 'dep')).version;\n"),
		nm + "greet/bin": d,
		// A bin: executable, its shebang's CR removed (npm's bin-links).
		nm + "greet/bin/greet.js": x("#!/usr/bin/env node\nconsole.log(require('..')());\r\n"),
		nm + "greet/.npmignore":   f("node_modules\n"),
		nm + "greet/lib":          d,
		nm + "greet/lib/tool.sh":  x("#!/bin/sh\necho tool\n"),
		// setuid dropped; the symlink, hardlink, device, fifo and empty
		// folder are not there at all.
		nm + "greet/lib/suid":                      x("x"),
		nm + "greet/node_modules":                  d,
		nm + "greet/node_modules/dep":              d,
		nm + "greet/node_modules/dep/package.json": f(pj("dep", "2.0.0", nil)),
		nm + "greet/node_modules/dep/index.js":     f("exports.version = '2';\n"),
		nm + ".bin":                                d,
		nm + ".bin/greet":                          l("../greet/bin/greet.js"),
		nm + ".bin/tool":                           l("../@s/tool/cli.js"),
	}
	if !reflect.DeepEqual(tree, want) {
		for _, p := range sortedKeys(want) {
			if tree[p] != want[p] {
				t.Errorf("%s: got %v, want %v", p, tree[p], want[p])
			}
		}
		for _, p := range sortedKeys(tree) {
			if _, ok := want[p]; !ok {
				t.Errorf("%s: unexpected %v", p, tree[p])
			}
		}
	}
	// Folders come before what they hold.
	seen := map[string]bool{}
	for _, p := range order {
		if dir := filepath.Dir(p); dir != "." && !seen[dir] {
			t.Errorf("%s comes before its folder", p)
		}
		seen[p] = true
	}
}

func TestLayoutOmitDev(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	fill(t, c, pkgs...)
	npmtest.App(t, dir, "app", map[string]string{"greet": "1.0.0", "dep": "1.0.0", "@s/tool": "1.0.0"},
		map[string]any{"byzantium": map[string]any{"omit": []string{}, "dir": "/srv/app"}}, pkgs...)
	tree, err := lay(t, dir, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tree["srv/app/node_modules/devonly/package.json"]; !ok {
		t.Error(`"omit": [] left out the dev package`)
	}
	if tree["srv/app"].typ != entry.TypeDir || tree["srv/app"].mode != 0o755 {
		t.Errorf("byzantium.dir /srv/app: %v", tree["srv/app"])
	}
}

// TestLayoutBundled: a bundled package comes from its bundler's tarball
// (its bins linked too); a path the lock gives another package is filled
// from that package's own tarball, whatever the bundler carries there; a
// file where the layout needs a folder gives way.
func TestLayoutBundled(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pj := npmtest.PackageJSON
	b := npmtest.Tarball(t,
		npmtest.File{Name: "package/package.json", Body: pj("b", "1.0.0", map[string]any{"bundleDependencies": []string{"inner"}})},
		npmtest.File{Name: "package/node_modules/inner/package.json", Body: pj("inner", "3.0.0", map[string]any{"bin": map[string]string{"inner": "x.js"}})},
		npmtest.File{Name: "package/node_modules/inner/x.js", Body: "inner"},
		npmtest.File{Name: "package/node_modules/other/index.js", Body: "stale copy"},
		npmtest.File{Name: "package/node_modules/other/stray.js", Body: "stray"},
	)
	other := npmtest.Tarball(t,
		npmtest.File{Name: "package/package.json", Body: pj("other", "1.0.0", nil)},
		npmtest.File{Name: "package/index.js", Body: "its own"},
	)
	shadow := npmtest.Tarball(t,
		npmtest.File{Name: "package/package.json", Body: pj("shadow", "1.0.0", nil)},
		npmtest.File{Name: "package/node_modules", Body: "a file where a folder goes"},
	)
	leaf := npmtest.Tarball(t, npmtest.File{Name: "package/package.json", Body: pj("leaf", "1.0.0", nil)})
	pkgs := []npmtest.Package{
		{Path: "node_modules/b", Version: "1.0.0", Tarball: b},
		{Path: "node_modules/b/node_modules/inner", Version: "3.0.0", Lock: map[string]any{"inBundle": true}},
		{Path: "node_modules/b/node_modules/other", Version: "1.0.0", Tarball: other},
		{Path: "node_modules/shadow", Version: "1.0.0", Tarball: shadow},
		{Path: "node_modules/shadow/node_modules/leaf", Version: "1.0.0", Tarball: leaf},
	}
	npmtest.App(t, dir, "app", map[string]string{"b": "1.0.0", "shadow": "1.0.0"}, nil, pkgs...)
	fill(t, c, pkgs...)
	tree, err := lay(t, dir, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	nm := "opt/app/node_modules/"
	for p, want := range map[string]string{
		nm + "b/node_modules/inner/x.js":             "inner",
		nm + "b/node_modules/other/index.js":         "its own",
		nm + "b/node_modules/.bin/inner":             "../inner/x.js",
		nm + "shadow/node_modules/leaf/package.json": pj("leaf", "1.0.0", nil),
	} {
		if tree[p].body != want {
			t.Errorf("%s: %v, want %q", p, tree[p], want)
		}
	}
	if _, ok := tree[nm+"b/node_modules/other/stray.js"]; ok {
		t.Error("a file of the bundler's copy of a package the lock installs separately was laid out")
	}
	if tree[nm+"shadow/node_modules"].typ != entry.TypeDir {
		t.Errorf("shadow/node_modules: %v, want the folder", tree[nm+"shadow/node_modules"])
	}
	if tree[nm+"b/node_modules/inner/x.js"].mode != 0o755 {
		t.Errorf("a bundled package's bin target is %o, want 755", tree[nm+"b/node_modules/inner/x.js"].mode)
	}
}

// TestHostileTarballs: what a registry's tarball may try. Escapes are
// refused with ErrUnsafe before anything is laid out; links and devices
// are dropped, as npm drops them, so nothing in the tree points out.
func TestHostileTarballs(t *testing.T) {
	pjson := npmtest.File{Name: "package/package.json", Body: npmtest.PackageJSON("evil", "1.0.0", nil)}
	long := strings.Repeat("a", 256)
	for _, tc := range []struct {
		name   string
		files  []npmtest.File
		limits Limits
		err    string            // ErrUnsafe with this, or
		other  string            // another error with this, or
		want   map[string]string // these files (path under the package: body); links never appear
	}{
		{name: "dot-dot", files: []npmtest.File{pjson, {Name: "package/../../../etc/cron.d/x", Body: "pwned"}}, err: "climbs out"},
		{name: "dot-dot in a symlink's name", files: []npmtest.File{pjson, {Name: "package/../x", Type: tar.TypeSymlink, Link: "/"}}, err: "climbs out"},
		{name: "absolute", files: []npmtest.File{pjson, {Name: "/etc/passwd", Body: "root::0:0"}}, err: "absolute path"},
		{name: "huge header", files: []npmtest.File{pjson, {Name: "package/big", Size: 2 << 30}}, err: "unpacks to more than 1024 MiB"},
		{name: "over the byte limit", limits: Limits{Bytes: 1000}, files: []npmtest.File{pjson,
			{Name: "package/a", Body: strings.Repeat("a", 600)}, {Name: "package/b", Body: strings.Repeat("b", 600)}}, err: "unpacks to more than"},
		{name: "over the file limit", limits: Limits{Files: 3}, files: []npmtest.File{pjson,
			{Name: "package/a"}, {Name: "package/b"}, {Name: "package/c"}}, err: "more than 3 entries"},
		{name: "long name", files: []npmtest.File{pjson, {Name: "package/" + long, Body: "x"}}, err: "a name of 256 bytes"},
		{name: "symlink out, then a file through it", files: []npmtest.File{pjson,
			{Name: "package/lib", Type: tar.TypeSymlink, Link: "../../../../etc"},
			{Name: "package/lib/passwd", Body: "inside"}},
			want: map[string]string{"lib/passwd": "inside"}},
		{name: "hardlink out", files: []npmtest.File{pjson, {Name: "package/shadow", Type: tar.TypeLink, Link: "/etc/shadow"}},
			want: map[string]string{}},
		{name: "devices", files: []npmtest.File{pjson, {Name: "package/sda", Type: tar.TypeBlock}, {Name: "package/mem", Type: tar.TypeChar}},
			want: map[string]string{}},
		{name: "dot segments stay inside", files: []npmtest.File{pjson, {Name: "package/./a/./b", Body: "ok"}},
			want: map[string]string{"a/b": "ok"}},
		{name: "a file outside any folder is skipped", files: []npmtest.File{pjson, {Name: "loose", Body: "x"}},
			want: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
			p := npmtest.Package{Path: "node_modules/evil", Version: "1.0.0", Tarball: npmtest.Tarball(t, tc.files...)}
			npmtest.App(t, dir, "app", map[string]string{"evil": "1.0.0"}, nil, p)
			fill(t, c, p)
			tree, err := lay(t, dir, c, Options{Limits: tc.limits})
			switch {
			case tc.err != "":
				if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "evil@1.0.0") {
					t.Fatalf("err = %v, want ErrUnsafe naming evil@1.0.0 and %q", err, tc.err)
				}
				return
			case tc.other != "":
				if err == nil || !strings.Contains(err.Error(), tc.other) {
					t.Fatalf("err = %v, want %q", err, tc.other)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			files := map[string]string{}
			for p, g := range tree {
				if g.typ == entry.TypeSymlink || g.typ == entry.TypeHardlink || g.typ == entry.TypeCharDev || g.typ == entry.TypeBlockDev {
					t.Errorf("%s: a %s in the layout", p, g.typ)
				}
				if rel, ok := strings.CutPrefix(p, "opt/app/node_modules/evil/"); ok && g.typ == entry.TypeRegular && rel != "package.json" {
					files[rel] = g.body
				}
				if !strings.HasPrefix(p, "opt/app/node_modules/evil/") && g.typ != entry.TypeDir {
					t.Errorf("%s: outside the package", p)
				}
			}
			if !reflect.DeepEqual(files, tc.want) {
				t.Errorf("files %v, want %v", files, tc.want)
			}
		})
	}
}

func TestBrokenTarballs(t *testing.T) {
	good := npmtest.Tarball(t, npmtest.File{Name: "package/package.json", Body: npmtest.PackageJSON("evil", "1.0.0", nil)},
		npmtest.File{Name: "package/a.js", Body: strings.Repeat("x", 5000)})
	for name, body := range map[string][]byte{
		"truncated gzip": good[:len(good)/2],
		"not a tarball":  []byte("<html>not found</html>"),
		"gzip of junk":   gzipOf(t, []byte(strings.Repeat("junk", 300))),
	} {
		t.Run(name, func(t *testing.T) {
			dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
			p := npmtest.Package{Path: "node_modules/evil", Version: "1.0.0", Tarball: body}
			npmtest.App(t, dir, "app", map[string]string{"evil": "1.0.0"}, nil, p)
			fill(t, c, p)
			_, err := lay(t, dir, c, Options{})
			if err == nil || !strings.Contains(err.Error(), "evil@1.0.0") {
				t.Fatalf("err = %v, want an error naming evil@1.0.0", err)
			}
		})
	}
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestTamperedTarball: a cached tarball whose bytes changed is refused,
// naming the package, its version and both digests; nothing is laid out.
func TestTamperedTarball(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	fill(t, c, pkgs...)
	dep := pkgs[2] // node_modules/dep, dep@1.0.0
	in, _ := ParseIntegrity(npmtest.SRI(dep.Tarball))
	bad := bytes.Clone(dep.Tarball)
	bad[len(bad)/2] ^= 0x40
	if err := os.WriteFile(c.Path(in), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	app, err := LoadApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(app, c, Options{})
	var me *MismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Open = %v, want a *MismatchError", err)
	}
	for _, want := range []string{"dep@1.0.0", npmtest.SRI(dep.Tarball), npmtest.SRI(bad), c.Path(in)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestTamperedWhileStreaming: a tarball changed after Open checked it is
// caught by the second hash, at the end of that tarball.
func TestTamperedWhileStreaming(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	fill(t, c, pkgs...)
	app, err := LoadApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(app, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Bytes after the gzip stream: the tar still reads, the digest differs.
	in, _ := ParseIntegrity(npmtest.SRI(pkgs[0].Tarball))
	if err := os.WriteFile(c.Path(in), append(bytes.Clone(pkgs[0].Tarball), "trailing"...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = readTree(t, r)
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "greet@1.0.0") {
		t.Fatalf("stream = %v, want ErrIntegrity for greet@1.0.0", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrIntegrity) {
		t.Errorf("Next after the failure = %v, want the same error again", err)
	}
}

func TestNotCached(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	fill(t, c, pkgs[1:]...)
	_, err := lay(t, dir, c, Options{})
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "greet@1.0.0") ||
		!strings.Contains(err.Error(), "1 of 4 tarballs") || !strings.Contains(err.Error(), "byz module fetch npm:"+dir) {
		t.Fatalf("err = %v, want ErrNotCached naming greet@1.0.0 and the fetch command", err)
	}
}

// elf is the start of a shared object for machine m (62: x86-64, 183:
// aarch64) that needs libc: enough for nodeKind.
func elf(m uint16, libc string) string {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(h[16:], 3) // ET_DYN
	binary.LittleEndian.PutUint16(h[18:], m)
	return string(h) + strings.Repeat("\x00", 70000) + libc + "\x00"
}

func TestNativeAddons(t *testing.T) {
	glibc, musl := elf(62, "libc.so.6"), elf(62, "libc.musl-x86_64.so.1")
	pjWith := func(more map[string]any) npmtest.File {
		return npmtest.File{Name: "package/package.json", Body: npmtest.PackageJSON("addon", "1.0.0", more)}
	}
	pj := pjWith(nil)
	gyp := npmtest.File{Name: "package/binding.gyp", Body: "{}"}
	post := map[string]any{"scripts": map[string]string{"postinstall": "node fetch-binary.js", "test": "tap"}}
	byz := func(k string, v ...string) map[string]any { return map[string]any{k: v} }
	for _, tc := range []struct {
		name  string
		files []npmtest.File
		cfg   map[string]any // package.json's byzantium
		err   string         // ErrNative with this, "" for none
	}{
		{name: "pure JS", files: []npmtest.File{pj, {Name: "package/index.js", Body: "1"}}},
		{name: "binding.gyp", files: []npmtest.File{pj, gyp}, err: "addon@1.0.0 (node_modules/addon) is a native add-on: it builds with node-gyp"},
		{name: "binding.gyp with gypfile false", files: []npmtest.File{pjWith(map[string]any{"gypfile": false}), gyp}},
		{name: "gypfile true", files: []npmtest.File{pjWith(map[string]any{"gypfile": true})}, err: "builds with node-gyp"},
		{name: ".node file", files: []npmtest.File{pj, {Name: "package/build/Release/addon.node", Body: glibc}}, err: "it ships .node files"},
		{name: ".node file, prebuilt", cfg: byz("prebuilt", "addon"),
			files: []npmtest.File{pj, {Name: "package/build/Release/addon.node", Body: glibc}}},
		{name: "prebuilds for many platforms, prebuilt pinned to the version", cfg: byz("prebuilt", "addon@1.0.0"), files: []npmtest.File{
			pjWith(map[string]any{"gypfile": true, "scripts": map[string]string{"install": "node-gyp-build"}}), gyp,
			{Name: "package/prebuilds/darwin-arm64/node.napi.node", Body: "\xcf\xfa\xed\xfe"},
			{Name: "package/prebuilds/linux-x64/node.napi.musl.node", Body: musl},
			{Name: "package/prebuilds/linux-x64/node.napi.glibc.node", Body: glibc}}},
		{name: "prebuilt, but none for this platform", cfg: byz("prebuilt", "addon"), files: []npmtest.File{pj,
			{Name: "package/prebuilds/linux-arm64/node.napi.node", Body: elf(183, "libc.so.6")},
			{Name: "package/prebuilds/linux-x64/node.napi.musl.node", Body: musl},
			{Name: "package/prebuilds/win32-x64/node.napi.node", Body: "MZ"}},
			err: "ships no .node file for linux-x64 glibc (found: prebuilds/linux-arm64/node.napi.node (ELF aarch64), prebuilds/linux-x64/node.napi.musl.node (ELF x86-64 musl), prebuilds/win32-x64/node.napi.node (PE (Windows)))"},
		{name: "prebuilt, binding.gyp only", cfg: byz("prebuilt", "addon"), files: []npmtest.File{pj, gyp}, err: "found: none"},
		{name: "install script", files: []npmtest.File{pjWith(post)}, err: `has install scripts (postinstall: "node fetch-binary.js")`},
		{name: "install script, ignored", cfg: byz("ignore-scripts", "addon"), files: []npmtest.File{pjWith(post)}},
		{name: "install script, listed as prebuilt", cfg: byz("prebuilt", "addon"), files: []npmtest.File{pjWith(post)},
			err: "listed in byzantium.prebuilt but has no native add-on"},
		{name: "ignore-scripts with no scripts", cfg: byz("ignore-scripts", "addon"), files: []npmtest.File{pj},
			err: "byzantium.ignore-scripts lists addon, which installs nothing that needs it here"},
		{name: "a test script is not an install script", files: []npmtest.File{pjWith(map[string]any{"scripts": map[string]string{"test": "x", "prepare": "y"}})}},
		{name: "package.json of another package", files: []npmtest.File{{Name: "package/package.json", Body: npmtest.PackageJSON("other", "1.0.0", nil)}},
			err: "its tarball's package.json is other@1.0.0, not what the lock says"},
		{name: "package.json of another version", files: []npmtest.File{{Name: "package/package.json", Body: npmtest.PackageJSON("addon", "6.6.6", nil)}},
			err: "is addon@6.6.6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
			p := npmtest.Package{Path: "node_modules/addon", Version: "1.0.0", Tarball: npmtest.Tarball(t, tc.files...)}
			var more map[string]any
			if tc.cfg != nil {
				more = map[string]any{"byzantium": tc.cfg}
			}
			npmtest.App(t, dir, "app", map[string]string{"addon": "1.0.0"}, more, p)
			fill(t, c, p)
			tree, err := lay(t, dir, c, Options{})
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range tc.files {
					if f.Type == 0 && strings.HasPrefix(f.Name, "package/") {
						if _, ok := tree["opt/app/node_modules/addon/"+strings.TrimPrefix(f.Name, "package/")]; !ok {
							t.Errorf("%s is not laid out", f.Name)
						}
					}
				}
				return
			}
			if !errors.Is(err, ErrNative) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v\nwant ErrNative with %q", err, tc.err)
			}
		})
	}
}

func TestCRLFShebang(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"#!/usr/bin/env node\r\nx", 19},
		{"#!/usr/bin/env node\nx\r\n", -1},
		{"#!\r\n", -1},
		{"#!x\r\n", 3},
		{"// #!/x\r\n", -1},
		{"#!" + strings.Repeat("x", 3000) + "\r\n", -1},
	} {
		if got := crlfShebang([]byte(tc.in)); got != tc.want {
			t.Errorf("crlfShebang(%.20q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	// The byte goes whatever the read sizes.
	for _, chunk := range []int{1, 2, 3, 64} {
		r := &dropByte{r: &chunked{s: "#!abc\r\nrest", n: chunk}, at: 5}
		b, err := io.ReadAll(r)
		if err != nil || string(b) != "#!abc\nrest" {
			t.Errorf("chunks of %d: %q, %v", chunk, b, err)
		}
	}
}

type chunked struct {
	s string
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[n:]
	return n, nil
}

func TestFileMode(t *testing.T) {
	for in, want := range map[int64]uint32{0o644: 0o644, 0o600: 0o644, 0o400: 0o644, 0o755: 0o755, 0o700: 0o744,
		0o4755: 0o755, 0o2777: 0o755, 0o1666: 0o644, 0: 0o644} {
		if got := fileMode(in); got != want {
			t.Errorf("fileMode(%o) = %o, want %o", in, got, want)
		}
	}
}

func TestBins(t *testing.T) {
	files := map[string]*pkgFile{"node_modules/p/bin/a": {}, "node_modules/p/bin/sub/b": {}, "node_modules/p/bin/.hidden": {}, "node_modules/p/x": {}}
	for _, tc := range []struct {
		bin, dirs string
		want      map[string]string
	}{
		{bin: `"cli.js"`, want: map[string]string{"p": "cli.js"}},
		{bin: `{"x": "./bin/x.js", "dir/y": "y.js", "c:\\z": "..\\..\\z.js", "..": "a", "e": ""}`,
			want: map[string]string{"x": "bin/x.js", "y": "y.js", "z": "z.js"}},
		{bin: `{"a": "1", "b/a": "2"}`, want: map[string]string{"a": "2"}},
		{bin: `["nope"]`, want: map[string]string{}},
		{dirs: "./bin", want: map[string]string{"a": "bin/a", "b": "bin/sub/b"}},
	} {
		m := &manifest{Name: "@s/p", Bin: []byte(tc.bin)}
		m.Directories.Bin = tc.dirs
		if tc.bin == "" {
			m.Bin = nil
		}
		m.normaliseBins(&Package{Path: "node_modules/p", Name: "@s/p"}, files)
		if tc.bin == `"cli.js"` {
			tc.want = map[string]string{"p": "cli.js"}
		}
		if !reflect.DeepEqual(m.bins, tc.want) {
			t.Errorf("bin %s dirs %q: %v, want %v", tc.bin, tc.dirs, m.bins, tc.want)
		}
	}
}
