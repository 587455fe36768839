package deb

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/modules/internal/testtree"
)

const control = `Package: byz-test
Version: 1:2.0-1
Architecture: amd64
Maintainer: Byzantium <byz@example.org>
Installed-Size: 300
Depends: libc6 (>= 2.34), busybox | busybox-static,
 zlib1g
Provides: byz-tool
Description: a test package
 Built by deb_test.go with dpkg-deb --build.
 .
 Second paragraph.
`

// buildDeb makes a .deb with dpkg-deb from a small tree: a 200 KiB file,
// a setuid binary, a symlink, a hardlink and an empty directory.
func buildDeb(t *testing.T, name, compression string) string {
	t.Helper()
	dpkgDeb := testtree.RequireTool(t, "dpkg-deb")
	root := filepath.Join(t.TempDir(), name)
	files := map[string]string{
		"DEBIAN/control":                 strings.ReplaceAll(control, "byz-test", name),
		"usr/bin/" + name:                "#!/bin/sh\necho hi\n",
		"usr/share/doc/" + name + "/big": string(testtree.Content(name, 200<<10)),
		"etc/" + name + ".conf":          "key=value\n",
	}
	for p, body := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), []byte(body), 0o644))
	}
	must(t, os.Chmod(filepath.Join(root, "usr/bin", name), 0o4755))
	must(t, os.Symlink(name, filepath.Join(root, "usr/bin", name+"-alias")))
	must(t, os.Link(filepath.Join(root, "usr/bin", name), filepath.Join(root, "usr/bin", name+"-hard")))
	must(t, os.MkdirAll(filepath.Join(root, "var/lib", name), 0o750))
	deb := filepath.Join(t.TempDir(), name+".deb")
	out, err := exec.Command(dpkgDeb, "--root-owner-group", "-Z"+compression, "--build", root, deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, out)
	}
	return deb
}

func TestDpkgDeb(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want string // Package.Compression
	}{{"xz", "xz"}, {"gzip", "gzip"}, {"zstd", "zstd"}, {"none", "none"}} {
		t.Run(tc.flag, func(t *testing.T) {
			debPath := buildDeb(t, "byz-test", tc.flag)
			p := openFile(t, debPath)
			c := p.Control
			if c.Package != "byz-test" || c.Version != "1:2.0-1" || c.Architecture != "amd64" || c.InstalledSize != 300 {
				t.Errorf("control = %+v", c)
			}
			if want := []string{"libc6 (>= 2.34)", "busybox | busybox-static", "zlib1g"}; fmt.Sprint(c.Depends) != fmt.Sprint(want) {
				t.Errorf("Depends = %q, want %q", c.Depends, want)
			}
			if fmt.Sprint(c.Provides) != "[byz-tool]" || !strings.HasSuffix(c.Description, "\n Second paragraph.") {
				t.Errorf("Provides %q, Description %q", c.Provides, c.Description)
			}
			if string(p.Compression) != tc.want {
				t.Errorf("Compression = %q, want %q", p.Compression, tc.want)
			}
			// Our extraction must equal dpkg-deb's, attribute for attribute.
			ours, theirs := filepath.Join(t.TempDir(), "ours"), t.TempDir()
			if err := hostfs.Extract(p, ours, hostfs.ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("dpkg-deb", "-x", debPath, theirs).CombinedOutput(); err != nil {
				t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
			}
			testtree.Compare(t, theirs, ours, testtree.CompareOptions{
				// GNU tar under dpkg-deb -x makes hardlinks after it has
				// restored their directory's mtime, so usr/bin carries the
				// extraction time there.
				Skip: func(p string, _ *testtree.Node) bool { return p == "usr/bin" },
			})
			compareListing(t, debPath, readHeaders(t, openFile(t, debPath)))
		})
	}
}

// TestBusybox reads a real Debian package, fetched into the repository's
// gitignored cache by `apt-get download busybox-static` run in .cache/debs.
func TestBusybox(t *testing.T) {
	testtree.RequireTool(t, "dpkg-deb")
	debs, _ := filepath.Glob(filepath.Join(repoRoot(t), ".cache/debs/busybox-static_*.deb"))
	if len(debs) == 0 {
		testtree.Unavailable(t, "no .cache/debs/busybox-static_*.deb; fetch it with: mkdir -p .cache/debs && cd .cache/debs && apt-get download busybox-static")
	}
	p := openFile(t, debs[0])
	if p.Control.Package != "busybox-static" || len(p.Control.Provides) == 0 {
		t.Errorf("control = %+v", p.Control)
	}
	hs := readHeaders(t, p)
	compareListing(t, debs[0], hs)
	found := false
	for _, h := range hs {
		found = found || (h.Path == "bin/busybox" && h.Type == entry.TypeRegular && h.Size > 500<<10)
	}
	if !found {
		t.Errorf("no bin/busybox of more than 500 KiB in %d entries", len(hs))
	}
}

// TestConcat merges two packages into one stream, as a module of several
// .debs is built.
func TestConcat(t *testing.T) {
	debA, debB := buildDeb(t, "pkg-a", "xz"), buildDeb(t, "pkg-b", "gzip")
	want := append(pathsOf(readHeaders(t, openFile(t, debA))), pathsOf(readHeaders(t, openFile(t, debB)))...)
	got := pathsOf(readHeaders(t, entry.Concat(openFile(t, debA), openFile(t, debB))))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Concat gave %q, want a's entries then b's: %q", got, want)
	}
	if !slices.Contains(got, "usr/bin/pkg-a") || !slices.Contains(got, "usr/bin/pkg-b-hard") {
		t.Errorf("Concat gave %q, missing files of a package", got)
	}
}

func pathsOf(hs []*entry.Header) []string {
	var ps []string
	for _, h := range hs {
		ps = append(ps, h.Path)
	}
	return ps
}

func openFile(t *testing.T, path string) *Package {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	p, err := Open(f, filepath.Base(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// readHeaders reads a whole stream, checking each body has its size.
func readHeaders(t *testing.T, r entry.Reader) []*entry.Header {
	t.Helper()
	var hs []*entry.Header
	for {
		h, err := r.Next()
		if err == io.EOF {
			return hs
		}
		must(t, err)
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != h.Size {
			t.Fatalf("%s: body %d bytes, %v; want %d", h.Path, n, err, h.Size)
		}
		hs = append(hs, h)
	}
}

// compareListing checks our stream against `dpkg-deb -c`, which prints
// tar -tv lines: "-rwsr-xr-x root/root 19 2024-01-01 00:00 ./usr/bin/x".
func compareListing(t *testing.T, deb string, hs []*entry.Header) {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(hs) {
		t.Fatalf("dpkg-deb -c lists %d entries, we read %d", len(lines), len(hs))
	}
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("odd dpkg-deb -c line %q", line)
		}
		name := strings.Join(f[5:], " ")
		h := hs[i]
		want := lsLine(h)
		got := f[0] + " " + f[2] + " " + name
		if h.Type != entry.TypeRegular {
			got = f[0] + " " + name // tar prints sizes of links oddly
			want = want[:len(f[0])] + want[strings.Index(want, " ./"):]
		}
		if got != want {
			t.Errorf("entry %d: dpkg-deb says %q, we read %q", i, got, want)
		}
	}
}

// lsLine renders h as tar -tv does: mode string, size, "./"-rooted name and
// link target.
func lsLine(h *entry.Header) string {
	name := "./"
	if h.Path != "." {
		name += h.Path
	}
	if h.Type == entry.TypeDir && h.Path != "." {
		name += "/"
	}
	switch h.Type {
	case entry.TypeSymlink:
		name += " -> " + h.Linkname
	case entry.TypeHardlink:
		name += " link to ./" + h.Linkname
	}
	return fmt.Sprintf("%s %d %s", modeString(h), h.Size, name)
}

// modeString is ls's form, with hardlinks marked 'h' as dpkg-deb -c does.
func modeString(h *entry.Header) string {
	m := h.ModeString()
	if h.Type == entry.TypeHardlink {
		m = "h" + m[1:]
	}
	return m
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
