package modules

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/modules/internal/testtree"
	"byzantium/modules/manifest"
	"byzantium/modules/squashfs"
)

// epoch is later than every mtime testtree makes (2001–2033), so clamping
// to it changes none of them; TestClamp checks clamping itself.
var epoch = time.Unix(2100000000, 0).UTC()

// buildTree makes the every-kind-of-entry tree, privileged when root.
func buildTree(t *testing.T) *testtree.Tree {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	return testtree.Build(t, src, testtree.Options{Privileged: os.Geteuid() == 0})
}

// inManifestDir skips the directories and file the pipeline adds.
func inManifestDir(p string, _ *testtree.Node) bool {
	return p == "usr" || strings.HasPrefix(p, "usr/share")
}

var cmpOpts = testtree.CompareOptions{MtimeResolution: time.Second, Skip: inManifestDir}

// TestCreateOracle builds the tree into a module with each compressor and
// checks it the three ways a module gets read: unsquashfs, the kernel and
// our own reader.
func TestCreateOracle(t *testing.T) {
	unsquashfs := testtree.RequireTool(t, "unsquashfs")
	tree := buildTree(t)
	for _, comp := range []squashfs.Compressor{squashfs.Zstd, squashfs.Gzip, squashfs.XZ} {
		t.Run(comp.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "010-tree.xzm")
			e := epoch
			opts := CreateOptions{Epoch: &e, Squashfs: squashfs.Options{Compressor: comp}}
			if _, err := Create([]string{tree.Root}, out, opts); err != nil {
				t.Fatalf("Create: %v", err)
			}

			// unsquashfs -lls lists every path.
			ls, err := exec.Command(unsquashfs, "-lls", "-d", "", out).CombinedOutput()
			if err != nil {
				t.Fatalf("unsquashfs -lls: %v\n%s", err, ls)
			}
			listed := map[string]bool{}
			for _, l := range strings.Split(string(ls), "\n") {
				if i := strings.Index(l, " /"); i > 0 && strings.Contains(l[:i], ":") {
					name := l[i+2:]
					if j := strings.Index(name, " -> "); j >= 0 {
						name = name[:j]
					}
					listed[name] = true
				}
			}
			scan := testtree.Scan(t, tree.Root)
			for p := range scan {
				if p != "." && !listed[p] {
					t.Errorf("unsquashfs -lls does not list %s", p)
				}
			}
			if !listed[manifest.Path("tree")] {
				t.Errorf("unsquashfs -lls does not list the manifest %s", manifest.Path("tree"))
			}

			// unsquashfs extracts the same tree.
			x := filepath.Join(t.TempDir(), "x")
			args := []string{"-d", x, "-no-progress"}
			if !tree.Privileged {
				args = append(args, "-no-xattrs")
			}
			if b, err := exec.Command(unsquashfs, append(args, out)...).CombinedOutput(); err != nil {
				t.Fatalf("unsquashfs: %v\n%s", err, b)
			}
			if tree.Privileged {
				testtree.Compare(t, tree.Root, x, cmpOpts)
			}

			// Our reader extracts the same tree.
			y := filepath.Join(t.TempDir(), "y")
			if err := Extract(out, y, false); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if tree.Privileged {
				testtree.Compare(t, tree.Root, y, cmpOpts)
			}

			// The kernel mounts it and shows the same tree.
			testtree.RequireRoot(t)
			mnt := t.TempDir()
			if b, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", out, mnt).CombinedOutput(); err != nil {
				t.Fatalf("mount: %v\n%s", err, b)
			}
			t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
			testtree.Compare(t, tree.Root, mnt, cmpOpts)

			info, err := Inspect(out)
			if err != nil {
				t.Fatal(err)
			}
			if info.Manifest == nil || info.Manifest.Name != "tree" || len(info.Manifest.Sources) != 1 ||
				info.Manifest.Sources[0].Kind != "dir" {
				t.Errorf("manifest = %+v, want name tree with one dir source", info.Manifest)
			}
			if info.Compressor != comp.String() || !info.Created.Equal(epoch) {
				t.Errorf("info: compressor %s created %v, want %s %v", info.Compressor, info.Created, comp, epoch)
			}
		})
	}
}

// TestReproducible builds the same tree with one and two workers and
// requires identical bytes, and a changed epoch to change them.
func TestReproducible(t *testing.T) {
	tree := buildTree(t)
	dir := t.TempDir()
	build := func(name string, workers int, ep time.Time) []byte {
		out := filepath.Join(dir, name)
		opts := CreateOptions{Epoch: &ep, Squashfs: squashfs.Options{Workers: workers}}
		if _, err := Create([]string{tree.Root}, out, opts); err != nil {
			t.Fatalf("Create: %v", err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := build("a.xzm", 1, epoch)
	b := build("a.xzm", 2, epoch)
	if !bytes.Equal(a, b) {
		t.Errorf("1 worker and 2 workers gave different modules (%d vs %d bytes)", len(a), len(b))
	}
	c := build("a.xzm", 2, epoch.Add(time.Hour))
	if bytes.Equal(a, c) {
		t.Errorf("a different SOURCE_DATE_EPOCH gave the same bytes: the epoch is not recorded")
	}
}

// TestMergeAndDeb merges two sources: a later file replaces an earlier one.
func TestMerge(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	write := func(dir, name, body string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "etc/motd", "from a")
	write(a, "etc/only-a", "a")
	write(b, "etc/motd", "from b")
	out := filepath.Join(t.TempDir(), "m.xzm")
	svc := []manifest.Service{{Name: "motd", Command: []string{"/bin/cat", "/etc/motd"}, User: "nobody",
		Config: []manifest.ConfigFile{{Path: "/etc/motd", Template: "{{.Node}}\n"}}}}
	if _, err := Create([]string{a, b}, out, CreateOptions{Name: "merged", Services: svc}); err != nil {
		t.Fatal(err)
	}
	m, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for p, want := range map[string]string{"etc/motd": "from b", "etc/only-a": "a"} {
		got, err := m.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	ms, err := m.Manifests()
	if err != nil || len(ms) != 1 || len(ms[0].Sources) != 2 {
		t.Fatalf("manifests = %+v, %v; want one with two sources", ms, err)
	}
	if !reflect.DeepEqual(ms[0].Services, svc) {
		t.Errorf("manifest services = %+v, want %+v", ms[0].Services, svc)
	}
}

// TestBadInput: every failure names what failed and leaves no output, not
// even a temporary file.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	good := t.TempDir()
	os.WriteFile(filepath.Join(good, "f"), []byte("x"), 0o644)
	broken := filepath.Join(dir, "broken.tar.gz")
	os.WriteFile(broken, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3}, 0o644)
	corrupt := filepath.Join(dir, "corrupt.xzm")
	os.WriteFile(corrupt, bytes.Repeat([]byte("hsqs"), 100), 0o644)
	unknown := filepath.Join(dir, "data.bin")
	os.WriteFile(unknown, []byte("x"), 0o644)

	tests := []struct {
		name    string
		srcs    []string
		opts    CreateOptions
		wantErr error
		names   string
	}{
		{"missing source", []string{filepath.Join(dir, "nope")}, CreateOptions{}, ErrSource, "nope"},
		{"unknown kind", []string{unknown}, CreateOptions{}, ErrSource, "data.bin"},
		{"broken tarball", []string{broken}, CreateOptions{}, nil, "broken.tar.gz"},
		{"corrupt module", []string{corrupt}, CreateOptions{}, nil, "corrupt.xzm"},
		{"unknown compressor", []string{good}, CreateOptions{Squashfs: squashfs.Options{Compressor: squashfs.LZO}}, squashfs.ErrUnknownCompressor, "lzo"},
		{"bad block size", []string{good}, CreateOptions{Squashfs: squashfs.Options{BlockSize: 3000}}, nil, "3000"},
		{"bad name", []string{good}, CreateOptions{Name: "Not A Name"}, manifest.ErrInvalid, "Not A Name"},
		{"good then broken", []string{good, broken}, CreateOptions{}, nil, "broken.tar.gz"},
		{"bad service", []string{good}, CreateOptions{Services: []manifest.Service{{Name: "web", Command: []string{"nginx"}}}},
			manifest.ErrInvalid, "service web: command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "out.xzm")
			_, err := Create(tt.srcs, out, tt.opts)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.names) {
				t.Errorf("error %q does not name %q", err, tt.names)
			}
			if left, _ := os.ReadDir(outDir); len(left) != 0 {
				t.Errorf("output directory holds %v after a failure", left)
			}
		})
	}
}

// TestClamp: with SOURCE_DATE_EPOCH, files newer than it get its time and
// older ones keep theirs, and the filesystem records it as its own time.
func TestClamp(t *testing.T) {
	dir := t.TempDir()
	old, young := time.Unix(1000000000, 0), time.Unix(1800000000, 0)
	for name, mt := range map[string]time.Time{"old": old, "young": young} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(name), 0o644)
		os.Chtimes(p, mt, mt)
	}
	ep := time.Unix(1700000000, 0).UTC()
	out := filepath.Join(t.TempDir(), "c.xzm")
	if _, err := Create([]string{dir}, out, CreateOptions{Epoch: &ep}); err != nil {
		t.Fatal(err)
	}
	m, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, want := range map[string]time.Time{"old": old, "young": ep} {
		h, err := m.Stat(name)
		if err != nil || !h.ModTime.Equal(want) {
			t.Errorf("%s: mtime %v (%v), want %v", name, h.ModTime, err, want)
		}
	}
	if got := m.Superblock().ModTime; int64(got) != ep.Unix() {
		t.Errorf("superblock time %d, want %d", got, ep.Unix())
	}
}

func TestNameFromFile(t *testing.T) {
	for in, want := range map[string]string{
		"/x/050-ngircd.xzm": "ngircd", "base.xzm": "base", "001-Busybox.xzm": "busybox", "a-b-c.xzm": "a-b-c",
	} {
		if got := NameFromFile(in); got != want {
			t.Errorf("NameFromFile(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExportTable: with --export the kernel can hand out and resolve file
// handles (what an NFS server does), which needs the export table; without
// it squashfs refuses to make handles at all.
func TestExportTable(t *testing.T) {
	testtree.RequireRoot(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d/e"), 0o755)
	os.WriteFile(filepath.Join(src, "d/e/f"), []byte("exported"), 0o644)
	for _, export := range []bool{true, false} {
		out := filepath.Join(t.TempDir(), "e.xzm")
		if _, err := Create([]string{src}, out, CreateOptions{Squashfs: squashfs.Options{Export: export}}); err != nil {
			t.Fatal(err)
		}
		mnt := t.TempDir()
		if b, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", out, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v\n%s", err, b)
		}
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, filepath.Join(mnt, "d/e/f"), 0)
		if !export {
			if !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("without an export table: name_to_handle_at = %v, want EOPNOTSUPP", err)
			}
			unix.Unmount(mnt, 0)
			continue
		}
		if err != nil {
			t.Fatalf("name_to_handle_at: %v", err)
		}
		// Drop the cached inode so the handle must be resolved through the
		// export table, not found in memory.
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0)
		mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY)
		unix.Close(mfd)
		if err != nil {
			t.Fatalf("open_by_handle_at: %v", err)
		}
		f := os.NewFile(uintptr(fd), "by-handle")
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "exported" {
			t.Errorf("read by handle = %q, %v", b, err)
		}
		unix.Unmount(mnt, 0)
	}
}
