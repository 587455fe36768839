package modules

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules/deps"
	"byzantium/modules/internal/testtree"
)

// stackFixture writes small modules: byz ones with a manifest, and
// Porteus ones (mksquashfs, no manifest).
type stackFixture struct {
	t   *testing.T
	src string
}

func newStackFixture(t *testing.T) *stackFixture {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &stackFixture{t: t, src: src}
}

// mod writes a module with a manifest naming it name (default: from the
// file name) and its dependencies.
func (f *stackFixture) mod(path, name string, depends ...string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	e := epoch
	if _, err := Create([]string{f.src}, path, CreateOptions{Name: name, Depends: depends, Epoch: &e}); err != nil {
		f.t.Fatalf("Create %s: %v", path, err)
	}
}

// porteus writes a module as Porteus makes them: mksquashfs with xz and
// the x86 BCJ filter, and no manifest.
func (f *stackFixture) porteus(path string) {
	f.t.Helper()
	mksquashfs := testtree.RequireTool(f.t, "mksquashfs")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if out, err := exec.Command(mksquashfs, f.src, path, "-noappend", "-quiet", "-no-progress",
		"-comp", "xz", "-b", "256K", "-Xbcj", "x86").CombinedOutput(); err != nil {
		f.t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
}

func stackFiles(st *Stack, root string) []string {
	var out []string
	for _, m := range st.Modules {
		rel, err := filepath.Rel(root, m.File)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = m.File
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

// TestResolveStackMediaTree: a media tree's modules come out in the order
// byz-init stacks them (base, modules, optional; file names bytewise;
// .xzm in any case; folders and other files left out), whichever way the
// tree is named: its root, its byzantium/ folder, or the build output
// folder holding it.
func TestResolveStackMediaTree(t *testing.T) {
	f := newStackFixture(t)
	out := t.TempDir()
	media := filepath.Join(out, "media")
	b := filepath.Join(media, "byzantium")
	f.mod(filepath.Join(b, "base/000-kernel.xzm"), "kernel")
	f.mod(filepath.Join(b, "base/10-busybox.xzm"), "busybox")
	f.mod(filepath.Join(b, "base/9-libc.xzm"), "libc") // "10-" sorts before "9-", as byz-init lists them
	f.mod(filepath.Join(b, "modules/001-web.xzm"), "web", "lib")
	f.mod(filepath.Join(b, "modules/002-lib.xzm"), "lib", "busybox")
	f.porteus(filepath.Join(b, "modules/003-Porteus-Tool.XZM"))
	f.mod(filepath.Join(b, "optional/001-extra.xzm"), "extra", "web")
	os.MkdirAll(filepath.Join(b, "modules/004-folder.xzm"), 0o755)
	os.WriteFile(filepath.Join(b, "modules/README"), []byte("not a module"), 0o644)
	// The other outputs of the build lie beside it, not read.
	os.WriteFile(filepath.Join(out, "node.iso"), []byte("iso"), 0o644)
	os.WriteFile(filepath.Join(out, "node-usb.img"), []byte("img"), 0o644)

	want := []string{"base/000-kernel.xzm", "base/10-busybox.xzm", "base/9-libc.xzm",
		"modules/001-web.xzm", "modules/002-lib.xzm", "modules/003-Porteus-Tool.XZM", "optional/001-extra.xzm"}
	for _, arg := range []string{out, media, b} {
		t.Run(filepath.Base(arg), func(t *testing.T) {
			st, err := ResolveStack([]string{arg}, StackOptions{OpenDisk: func(string) (fs.FS, string, io.Closer, error) {
				t.Fatal("a disk image was opened although a media folder is there")
				return nil, "", nil, nil
			}})
			if err != nil {
				t.Fatalf("ResolveStack: %v", err)
			}
			if got := strings.Join(stackFiles(st, b), " "); got != strings.Join(want, " ") {
				t.Fatalf("order\n got %s\nwant %s", got, strings.Join(want, " "))
			}
			p := st.Modules[5]
			if !p.NoManifest || p.Name != "porteus-tool" || p.Folder != "modules" || len(p.Depends) != 0 {
				t.Errorf("Porteus module = %+v; want no manifest, named after its file", p)
			}
			if len(st.Notes) != 1 || !strings.Contains(st.Notes[0], "web needs lib, which stacks above it") {
				t.Errorf("notes %q; want one saying web needs lib, stacked above it", st.Notes)
			}
			if arg == out && (len(st.Sources) != 1 || !strings.Contains(st.Sources[0], media) || !strings.Contains(st.Sources[0], "node.iso")) {
				t.Errorf("sources %q; want the media tree, and the ISO and image left alone", st.Sources)
			}
		})
	}
}

// TestResolveStackCases covers plain folders and files, what is wrong with
// a set, and what is reported when nothing is found.
func TestResolveStackCases(t *testing.T) {
	f := newStackFixture(t)

	plain := t.TempDir()
	f.mod(filepath.Join(plain, "x/050-irc.xzm"), "irc", "tls", "base")
	f.mod(filepath.Join(plain, "020-tls.xzm"), "tls", "base")
	f.mod(filepath.Join(plain, "y/001-base.xzm"), "base")

	porteusDeps := t.TempDir() // a byz module depending on a Porteus one, by its name
	f.porteus(filepath.Join(porteusDeps, "001-gtk.xzm"))
	f.mod(filepath.Join(porteusDeps, "002-app.xzm"), "app", "gtk")

	optional := t.TempDir()
	f.mod(filepath.Join(optional, "byzantium/modules/001-app.xzm"), "app", "db")
	f.mod(filepath.Join(optional, "byzantium/optional/001-db.xzm"), "db")

	missing := t.TempDir()
	f.mod(filepath.Join(missing, "050-irc.xzm"), "irc", "tls")

	dup := t.TempDir()
	f.mod(filepath.Join(dup, "a/001-x.xzm"), "x")
	f.mod(filepath.Join(dup, "b/002-x.xzm"), "x")

	twoTrees := t.TempDir()
	f.mod(filepath.Join(twoTrees, "m1/byzantium/base/001-a.xzm"), "a")
	f.mod(filepath.Join(twoTrees, "m2/byzantium/base/001-a.xzm"), "a")

	isoOnly := t.TempDir()
	iso := make([]byte, 34816) // ISO 9660's first volume descriptor at 32 KiB
	copy(iso[32769:], "CD001")
	os.WriteFile(filepath.Join(isoOnly, "node.iso"), iso, 0o644)

	emptyTree := t.TempDir()
	os.MkdirAll(filepath.Join(emptyTree, "byzantium/base"), 0o755)

	// A USB image, as far as ResolveStack knows: OpenDisk hands it the
	// media tree inside.
	imgTree := t.TempDir()
	f.mod(filepath.Join(imgTree, "byzantium/base/001-a.xzm"), "a")
	f.mod(filepath.Join(imgTree, "byzantium/modules/001-b.xzm"), "b", "a")
	withImg := t.TempDir()
	img := filepath.Join(withImg, "node-usb.img")
	os.WriteFile(img, []byte("a disk"), 0o644)
	os.WriteFile(filepath.Join(withImg, "node.iso"), []byte("iso"), 0o644)
	openDisk := func(p string) (fs.FS, string, io.Closer, error) {
		if p != img {
			return nil, "", nil, errors.New("not a disk")
		}
		return os.DirFS(imgTree), p + " (partition 1)", io.NopCloser(nil), nil
	}

	for _, tc := range []struct {
		name   string
		args   []string
		want   []string // base names, in order
		notes  string
		err    error
		errHas []string
	}{
		{name: "plain folder in file-name order", args: []string{plain}, want: []string{"001-base.xzm", "020-tls.xzm", "050-irc.xzm"}},
		{name: "files in file-name order", args: []string{filepath.Join(plain, "x/050-irc.xzm"), filepath.Join(plain, "020-tls.xzm"), filepath.Join(plain, "y/001-base.xzm")},
			want: []string{"001-base.xzm", "020-tls.xzm", "050-irc.xzm"}},
		{name: "a Porteus module satisfies a dependency by its name", args: []string{porteusDeps}, want: []string{"001-gtk.xzm", "002-app.xzm"}},
		{name: "boot module needing an optional one", args: []string{optional}, want: []string{"001-app.xzm", "001-db.xzm"},
			notes: "app needs db, which is in optional/"},
		{name: "disk image in an output folder", args: []string{withImg}, want: []string{"001-a.xzm", "001-b.xzm"}},
		{name: "disk image named", args: []string{img}, want: []string{"001-a.xzm", "001-b.xzm"}},
		{name: "missing dependency", args: []string{missing}, err: deps.ErrMissing, errHas: []string{"irc needs tls"}},
		{name: "one module in two files", args: []string{dup}, err: deps.ErrDuplicate, errHas: []string{"001-x.xzm", "002-x.xzm"}},
		{name: "two media trees", args: []string{twoTrees}, errHas: []string{"2 media trees", "m1", "m2", "name the one"}},
		{name: "only an ISO", args: []string{isoOnly}, err: ErrNoModules, errHas: []string{"node.iso is an ISO image", "looked for a media tree"}},
		{name: "an ISO named", args: []string{filepath.Join(isoOnly, "node.iso")}, errHas: []string{"node.iso is an ISO image", "USB image"}},
		{name: "nothing", args: []string{t.TempDir()}, err: ErrNoModules, errHas: []string{"looked for a media tree", "*.img", "*.xzm"}},
		{name: "empty media tree", args: []string{emptyTree}, err: ErrNoModules, errHas: []string{"hold no .xzm file"}},
		{name: "absent", args: []string{filepath.Join(plain, "nope")}, err: fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ResolveStack(tc.args, StackOptions{OpenDisk: openDisk})
			if tc.err != nil || tc.errHas != nil {
				if err == nil {
					t.Fatalf("ResolveStack = %+v, want an error", st.Modules)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Errorf("error %v, want %v", err, tc.err)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveStack: %v", err)
			}
			var got []string
			for _, m := range st.Modules {
				got = append(got, filepath.Base(m.File))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("order %v, want %v", got, tc.want)
			}
			if notes := strings.Join(st.Notes, "\n"); (tc.notes == "") != (notes == "") || !strings.Contains(notes, tc.notes) {
				t.Errorf("notes %q, want %q", notes, tc.notes)
			}
		})
	}
}
