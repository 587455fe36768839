package initramfs

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

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"

	"byzantium/builder/kernel"
	"byzantium/ci/testenv"
	"byzantium/modules/entry"
)

type listed struct {
	Name    string
	Mode    cpio.FileMode
	Inode   int64
	ModTime int64
	Body    string
}

// list reads a compressed archive back with the library's reader.
func list(t *testing.T, archive []byte) []listed {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	r := cpio.NewReader(zr)
	var out []listed
	for {
		h, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if h.Linkname != "" {
			body = []byte(h.Linkname) // the reader hands a symlink's body over as Linkname
		}
		out = append(out, listed{h.Name, h.Mode, h.Inode, h.ModTime.Unix(), string(body)})
	}
}

func sampleFiles(t *testing.T) []File {
	src := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []File{
		{Path: "lib/modules/6.1/kernel/fs/isofs.ko", Data: []byte("ko")},
		{Path: "init", Src: src, Mode: 0o755},
		{Path: "bin/sh", Type: entry.TypeSymlink, Linkname: "busybox"},
		{Path: "etc/byz", Type: entry.TypeDir, Mode: 0o700},
	}
}

func TestWrite(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	if err := Write(&buf, sampleFiles(t), Options{ModTime: epoch}); err != nil {
		t.Fatal(err)
	}
	got := list(t, buf.Bytes())
	dir, reg, sym := cpio.FileMode(cpio.TypeDir), cpio.FileMode(cpio.TypeReg), cpio.FileMode(cpio.TypeSymlink)
	want := []listed{
		{"bin", dir | 0o755, 1, 0, ""},
		{"bin/sh", sym | 0o777, 2, 0, "busybox"},
		{"dev", dir | 0o755, 3, 0, ""},
		{"dev/null", reg | 0o666, 4, 0, ""},
		{"etc", dir | 0o755, 5, 0, ""},
		{"etc/byz", dir | 0o700, 6, 0, ""},
		{"init", reg | 0o755, 7, 0, "#!/bin/sh\n"},
		{"lib", dir | 0o755, 8, 0, ""},
		{"lib/modules", dir | 0o755, 9, 0, ""},
		{"lib/modules/6.1", dir | 0o755, 10, 0, ""},
		{"lib/modules/6.1/kernel", dir | 0o755, 11, 0, ""},
		{"lib/modules/6.1/kernel/fs", dir | 0o755, 12, 0, ""},
		{"lib/modules/6.1/kernel/fs/isofs.ko", reg | 0o644, 13, 0, "ko"},
	}
	for i := range want {
		want[i].ModTime = epoch.Unix()
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("archive:\n got %v\nwant %v", got, want)
	}
}

// TestReproducible builds twice from differently ordered input and
// requires identical bytes.
func TestReproducible(t *testing.T) {
	files := sampleFiles(t)
	var a, b bytes.Buffer
	if err := Write(&a, files, Options{}); err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
		files[i], files[j] = files[j], files[i]
	}
	if err := Write(&b, files, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two builds of the same files differ")
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []File
	}{
		{"duplicate", []File{{Path: "a"}, {Path: "a"}}},
		{"unclean", []File{{Path: "a/../b"}}},
		{"root", []File{{Path: "/"}}},
		{"device", []File{{Path: "dev/console", Type: entry.TypeCharDev}}},
		{"missing source", []File{{Path: "init", Src: "/nonexistent/byz-init"}}},
	} {
		if err := Write(io.Discard, tc.files, Options{}); err == nil {
			t.Errorf("%s: Write succeeded", tc.name)
		}
	}
	err := Write(io.Discard, []File{{Path: "dev/sda", Type: entry.TypeBlockDev}}, Options{})
	if !errors.Is(err, entry.ErrUnsupported) {
		t.Errorf("a block device: %v, want entry.ErrUnsupported", err)
	}
}

func TestWriterAfterClose(t *testing.T) {
	w, err := NewWriter(io.Discard, Options{Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&entry.Header{Path: "a", Type: entry.TypeRegular}); !errors.Is(err, ErrWriteAfterClose) {
		t.Errorf("WriteHeader after Close = %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrWriteAfterClose) {
		t.Errorf("Write after Close = %v", err)
	}
}

// TestZstdOracle has the reference zstd tool check the frame and its
// window, which the kernel's decompressor must be able to allocate.
func TestZstdOracle(t *testing.T) {
	zstdTool := testenv.RequireTool(t, "zstd")
	archive := filepath.Join(t.TempDir(), "initrd.zst")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, sampleFiles(t), Options{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(zstdTool, "-t", "-v", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("zstd -t: %v\n%s", err, out)
	}
	out, err = exec.Command(zstdTool, "-lv", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("zstd -lv: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Check: XXH64") {
		t.Errorf("zstd -lv shows no checksum:\n%s", out)
	}
}

func TestModuleFiles(t *testing.T) {
	mods := []*kernel.Module{{Name: "cdrom", Path: "kernel/cd/cdrom.ko"}, {Name: "isofs", Path: "kernel/fs/isofs.ko"}}
	files := ModuleFiles("/m", "6.1", mods)
	if len(files) != 3 || files[0].Path != "lib/modules/6.1/kernel/cd/cdrom.ko" || files[0].Src != "/m/kernel/cd/cdrom.ko" {
		t.Fatalf("ModuleFiles = %+v", files)
	}
	want := "# Kernel modules for byz-init to load, dependencies first.\n" +
		"lib/modules/6.1/kernel/cd/cdrom.ko\nlib/modules/6.1/kernel/fs/isofs.ko\n"
	if files[2].Path != "etc/byz/modules.load" || string(files[2].Data) != want {
		t.Errorf("load list %s = %q", files[2].Path, files[2].Data)
	}
}

// TestCPIOOracle reads the archive, as shipped (zstd), with the reference
// tools instead of the library that wrote it: zstd decompresses it, GNU
// cpio lists it (`cpio -tv`) and unpacks it (`cpio -i`), as the kernel's
// unpacker would.
func TestCPIOOracle(t *testing.T) {
	zstdTool, cpioTool := testenv.RequireTool(t, "zstd"), testenv.RequireTool(t, "cpio")
	epoch := time.Unix(1700000000, 0)
	var archive bytes.Buffer
	if err := Write(&archive, sampleFiles(t), Options{ModTime: epoch}); err != nil {
		t.Fatal(err)
	}
	unzstd := exec.Command(zstdTool, "-d", "-c")
	unzstd.Stdin = &archive
	raw, err := unzstd.Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}

	// The listing: mode, owner, size and name of each entry, in order.
	cmd := exec.Command(cpioTool, "-t", "-v", "--numeric-uid-gid", "--quiet")
	cmd.Stdin = bytes.NewReader(raw)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// drwxr-xr-x   2 0        0               0 Nov 14  2023 bin
		f := strings.Fields(l)
		if len(f) < 9 {
			t.Fatalf("cpio -t line %q", l)
		}
		got = append(got, strings.Join(append([]string{f[0], f[2], f[3], f[4]}, f[8:]...), " "))
	}
	want := []string{
		"drwxr-xr-x 0 0 0 bin",
		"lrwxrwxrwx 0 0 7 bin/sh -> busybox",
		"drwxr-xr-x 0 0 0 dev",
		"-rw-rw-rw- 0 0 0 dev/null",
		"drwxr-xr-x 0 0 0 etc",
		"drwx------ 0 0 0 etc/byz",
		"-rwxr-xr-x 0 0 10 init",
		"drwxr-xr-x 0 0 0 lib",
		"drwxr-xr-x 0 0 0 lib/modules",
		"drwxr-xr-x 0 0 0 lib/modules/6.1",
		"drwxr-xr-x 0 0 0 lib/modules/6.1/kernel",
		"drwxr-xr-x 0 0 0 lib/modules/6.1/kernel/fs",
		"-rw-r--r-- 0 0 2 lib/modules/6.1/kernel/fs/isofs.ko",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cpio -tv:\n got %q\nwant %q", got, want)
	}

	// Unpacked: the bodies, modes, link targets and file times.
	dir := t.TempDir()
	cmd = exec.Command(cpioTool, "-i", "-d", "--preserve-modification-time", "--no-absolute-filenames", "--quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
		body string
	}{
		{"init", 0o755, "#!/bin/sh\n"},
		{"lib/modules/6.1/kernel/fs/isofs.ko", 0o644, "ko"},
		{"dev/null", 0o666, ""},
	} {
		p := filepath.Join(dir, f.path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("cpio -i: %v", err)
			continue
		}
		if fi.Mode() != f.mode || !fi.ModTime().Equal(epoch) {
			t.Errorf("cpio -i: %s is %v at %v, want %v at %v", f.path, fi.Mode(), fi.ModTime(), f.mode, epoch)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != f.body {
			t.Errorf("cpio -i: %s holds %q (%v), want %q", f.path, b, err, f.body)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("cpio -i: bin/sh → %q (%v), want busybox", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc/byz")); err != nil {
		t.Errorf("cpio -i: %v", err)
	} else if fi.Mode() != os.ModeDir|0o700 {
		t.Errorf("cpio -i: etc/byz is %v, want a folder 0700", fi.Mode())
	}
}
