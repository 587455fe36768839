// Package npmtest makes npm applications for tests: package tarballs as
// npm pack writes them (or as an attacker would), their integrity, a
// lock and package.json naming them, and a registry on the loopback that
// serves them.
package npmtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// File is one tarball entry. Type defaults to a regular file; Mode to
// 0644. Size, when set, overrides the header's size (a lie about the body).
type File struct {
	Name, Body, Link string
	Type             byte
	Mode             int64
	Size             int64
}

// PackTime is the time npm pack gives every entry (1985-10-26 08:15 UTC).
var PackTime = time.Date(1985, 10, 26, 8, 15, 0, 0, time.UTC)

// Tarball writes the files as a gzip tar, in the order given.
func Tarball(t testing.TB, files ...File) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Typeflag: f.Type, Mode: f.Mode, Linkname: f.Link, ModTime: PackTime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.Body))
		}
		if f.Size != 0 {
			h.Size = f.Size
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if f.Body != "" {
			if _, err := tw.Write([]byte(f.Body)); err != nil && f.Size == 0 {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Flush(); err != nil && !strings.Contains(err.Error(), "missed writing") {
		t.Fatal(err)
	}
	// A header that lies about its size leaves the tar writer unable to
	// close; the bytes written so far are the attack.
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// SRI is the sha512 integrity of b, as a lock writes it.
func SRI(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(s[:])
}

// Package is a package for an App: its path in the lock, its tarball
// and any other lock fields (dev, optional, os, inBundle, ...).
type Package struct {
	Path    string // "node_modules/a"
	Name    string // default: from Path
	Version string
	Tarball []byte // nil for a bundled package
	Lock    map[string]any
}

// PackageJSON is a package's package.json body.
func PackageJSON(name, version string, more map[string]any) string {
	m := map[string]any{"name": name, "version": version}
	for k, v := range more {
		m[k] = v
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return string(b)
}

// NameOf is the package name a lock path ends in.
func NameOf(path string) string {
	i := strings.LastIndex(path, "node_modules/")
	return path[i+len("node_modules/"):]
}

// App writes package.json and package-lock.json (version 3) into dir:
// the root depends on deps, and the packages are as given. more adds keys
// to package.json (such as "byzantium").
func App(t testing.TB, dir, name string, deps map[string]string, more map[string]any, pkgs ...Package) {
	t.Helper()
	pj := map[string]any{"name": name, "version": "1.0.0", "private": true, "dependencies": deps}
	for k, v := range more {
		pj[k] = v
	}
	root := map[string]any{"name": name, "version": "1.0.0", "dependencies": deps}
	packages := map[string]any{"": root}
	for _, p := range pkgs {
		e := map[string]any{}
		if p.Version != "" {
			e["version"] = p.Version
		}
		if p.Tarball != nil {
			e["integrity"] = SRI(p.Tarball)
		}
		if p.Name != "" && p.Name != NameOf(p.Path) {
			e["name"] = p.Name
		}
		for k, v := range p.Lock {
			e[k] = v
		}
		packages[p.Path] = e
	}
	lock := map[string]any{"name": name, "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": packages}
	write := func(file string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("package.json", pj)
	write("package-lock.json", lock)
}

// Registry serves tarballs at the paths every npm registry uses,
// NAME/-/BASE-VERSION.tgz, on 127.0.0.1, and counts requests.
type Registry struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	// Fail, when set, answers a request instead (a status code), once
	// per entry: "path" → status.
	fail     map[string][]int
	Requests int
}

// NewRegistry serves the packages' tarballs. Close it when done.
func NewRegistry(t testing.TB, pkgs ...Package) *Registry {
	r := &Registry{files: map[string][]byte{}, fail: map[string][]int{}}
	for _, p := range pkgs {
		if p.Tarball != nil {
			r.Put(p.nameOrPath(), p.Version, p.Tarball)
		}
	}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (p Package) nameOrPath() string {
	if p.Name != "" {
		return p.Name
	}
	return NameOf(p.Path)
}

// TarballPath is where a registry serves a package's tarball.
func TarballPath(name, version string) string {
	base := name
	if _, b, ok := strings.Cut(name, "/"); ok {
		base = b
	}
	return "/" + name + "/-/" + base + "-" + version + ".tgz"
}

// Put serves body as name@version's tarball.
func (r *Registry) Put(name, version string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[TarballPath(name, version)] = body
}

// FailNext makes the next requests of name@version answer these statuses.
func (r *Registry) FailNext(name, version string, statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := TarballPath(name, version)
	r.fail[p] = append(r.fail[p], statuses...)
}

// Count is the number of requests served so far.
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Requests
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.Requests++
	if f := r.fail[req.URL.Path]; len(f) > 0 {
		r.fail[req.URL.Path] = f[1:]
		r.mu.Unlock()
		w.WriteHeader(f[0])
		return
	}
	body, ok := r.files[req.URL.Path]
	r.mu.Unlock()
	if !ok {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(body)
}

// Sample writes a small application into dir and returns its packages:
//
//	node_modules/greet                    1.0.0  bin greet (a CRLF shebang), depends on dep@2
//	node_modules/greet/node_modules/dep   2.0.0  (its tarball's top folder is not package/)
//	node_modules/dep                      1.0.0
//	node_modules/@s/tool                  1.0.0  bin "tool" given as a string
//	node_modules/devonly                  1.0.0  dev: left out by default
//
// require("greet")() from the app's folder returns "greet sees dep 2,
// the app sees dep 1" when node resolves the nested folder as npm laid
// it out. greet's tarball also carries what npm drops or changes: a
// .gitignore, a setuid file, a symlink and a hardlink out of the package,
// a device, a fifo, an empty folder.
func Sample(t testing.TB, dir string) []Package {
	t.Helper()
	pj := PackageJSON
	greet := Tarball(t,
		File{Name: "package/package.json", Body: pj("greet", "1.0.0", map[string]any{"main": "index.js",
			"bin": map[string]string{"greet": "./bin/greet.js"}, "dependencies": map[string]string{"dep": "^2.0.0"}})},
		File{Name: "package/index.js", Body: "module.exports = () => 'greet sees dep ' + require('dep').version +\n" +
			"  ', the app sees dep ' + require(require('path').join(__dirname, '..', 'dep')).version;\n"},
		File{Name: "package/bin/greet.js", Body: "#!/usr/bin/env node\r\nconsole.log(require('..')());\r\n"},
		File{Name: "package/.gitignore", Body: "node_modules\n"},
		File{Name: "package/lib/tool.sh", Body: "#!/bin/sh\necho tool\n", Mode: 0o755},
		File{Name: "package/lib/suid", Body: "x", Mode: 0o4755},
		File{Name: "package/empty/", Type: tar.TypeDir, Mode: 0o755},
		File{Name: "package/escape", Type: tar.TypeSymlink, Link: "../../../../etc/passwd"},
		File{Name: "package/hard", Type: tar.TypeLink, Link: "/etc/shadow"},
		File{Name: "package/null", Type: tar.TypeChar, Mode: 0o666},
		File{Name: "package/pipe", Type: tar.TypeFifo},
	)
	dep2 := Tarball(t,
		File{Name: "dep-2.0.0/package.json", Body: pj("dep", "2.0.0", nil)},
		File{Name: "dep-2.0.0/index.js", Body: "exports.version = '2';\n"},
	)
	dep1 := Tarball(t,
		File{Name: "package/package.json", Body: pj("dep", "1.0.0", nil)},
		File{Name: "package/index.js", Body: "exports.version = '1';\n"},
	)
	tool := Tarball(t,
		File{Name: "package/package.json", Body: pj("@s/tool", "1.0.0", map[string]any{"bin": "cli.js"})},
		File{Name: "package/cli.js", Body: "#!/usr/bin/env node\nconsole.log('tool');\n"},
	)
	devonly := Tarball(t,
		File{Name: "package/package.json", Body: pj("devonly", "1.0.0", nil)},
	)
	pkgs := []Package{
		{Path: "node_modules/greet", Version: "1.0.0", Tarball: greet,
			Lock: map[string]any{"bin": map[string]string{"greet": "bin/greet.js"}, "dependencies": map[string]string{"dep": "^2.0.0"}}},
		{Path: "node_modules/greet/node_modules/dep", Version: "2.0.0", Tarball: dep2},
		{Path: "node_modules/dep", Version: "1.0.0", Tarball: dep1},
		{Path: "node_modules/@s/tool", Version: "1.0.0", Tarball: tool, Lock: map[string]any{"bin": map[string]string{"tool": "cli.js"}}},
		{Path: "node_modules/devonly", Version: "1.0.0", Tarball: devonly, Lock: map[string]any{"dev": true}},
	}
	App(t, dir, "app", map[string]string{"greet": "1.0.0", "dep": "1.0.0", "@s/tool": "1.0.0"}, nil, pkgs...)
	return pkgs
}
