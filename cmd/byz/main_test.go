package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"byzantium/ci/testenv"
	"byzantium/image/usbimg"
	"byzantium/modules/entry"
)

// byzBin is the byz binary built once for these tests.
var byzBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "byz-cli-")
	if err != nil {
		panic(err)
	}
	byzBin = filepath.Join(dir, "byz")
	if out, err := exec.Command("go", "build", "-o", byzBin, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	os.Chmod(dir, 0o755) // the unprivileged test runs it as nobody
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func byz(t *testing.T, cred *syscall.Credential, args ...string) result {
	t.Helper()
	cmd := exec.Command(byzBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("byz %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// TestHelpHasExamples: every command of the cobra tree, walked rather
// than listed so that a new one cannot be forgotten, prints an Examples
// section in its --help. cobra's own help and completion commands are
// left out: their help is cobra's.
func TestHelpHasExamples(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Hidden || len(path) == 1 && (c.Name() == "help" || c.Name() == "completion") {
			return
		}
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(slices.Clip(path), sub.Name()))
		}
	}
	root := newRootCmd()
	for _, c := range root.Commands() {
		walk(c, []string{c.Name()})
	}
	paths = append(paths, nil) // byz itself
	if len(paths) < 30 {
		t.Fatalf("walked only %d commands: %v", len(paths), paths)
	}
	for _, path := range paths {
		args := append(slices.Clip(path), "--help")
		r := byz(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("byz %v: exit %d, no Examples section:\n%s", args, r.code, r.stdout)
		}
	}
	if r := byz(t, nil, "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "__start_byz") {
		t.Errorf("byz completion bash: exit %d", r.code)
	}
}

// TestCreateLsInfoExtract drives the commands the way a user does, with
// unsquashfs as the oracle for ls.
func TestCreateLsInfoExtract(t *testing.T) {
	unsquashfs := testenv.RequireTool(t, "unsquashfs")
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/motd"), []byte("hello mesh\n"), 0o644)
	os.Symlink("/nowhere", filepath.Join(src, "dangling"))
	os.WriteFile(filepath.Join(src, "big"), make([]byte, 300000), 0o600)
	out := filepath.Join(t.TempDir(), "010-base.xzm")

	if r := byz(t, nil, "module", "create", src, "-o", out, "--version", "1.0", "--comp", "gzip", "--block-size", "64K"); r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	ls := byz(t, nil, "module", "ls", out)
	if ls.code != 0 {
		t.Fatalf("ls: exit %d: %s", ls.code, ls.stderr)
	}
	oracle, err := exec.Command(unsquashfs, "-lls", "-d", "", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	// Compare the sets of (mode, size, path) with unsquashfs's listing.
	key := func(line string) string {
		f := strings.Fields(line)
		if len(f) < 6 {
			return ""
		}
		path := f[5]
		if path == "/" {
			path = ""
		}
		return f[0] + " " + f[2] + " " + path
	}
	var got, want []string
	for _, l := range strings.Split(strings.TrimSpace(ls.stdout), "\n") {
		if strings.HasPrefix(l, "d") {
			continue // directory sizes differ by design (we print 0)
		}
		got = append(got, key(l))
	}
	for _, l := range strings.Split(strings.TrimSpace(string(oracle)), "\n") {
		if strings.HasPrefix(l, "d") || !strings.Contains(l, "/") {
			continue
		}
		want = append(want, key(l))
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("byz module ls disagrees with unsquashfs -lls:\nbyz:\n%s\nunsquashfs:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	info := byz(t, nil, "module", "info", "--json", out)
	var doc struct {
		Compressor string
		BlockSize  int `json:"block_size"`
		Manifest   struct{ Name, Version string }
	}
	if err := json.Unmarshal([]byte(info.stdout), &doc); err != nil {
		t.Fatalf("info --json: %v\n%s", err, info.stdout)
	}
	if doc.Compressor != "gzip" || doc.BlockSize != 64<<10 || doc.Manifest.Name != "base" || doc.Manifest.Version != "1.0" {
		t.Errorf("info --json = %+v", doc)
	}

	dest := filepath.Join(t.TempDir(), "x")
	if r := byz(t, nil, "module", "extract", out, dest); r.code != 0 {
		t.Fatalf("extract: exit %d: %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "etc/motd")); string(b) != "hello mesh\n" {
		t.Errorf("extracted motd = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dest, "dangling")); l != "/nowhere" {
		t.Errorf("extracted symlink = %q", l)
	}
	if r := byz(t, nil, "module", "extract", out, dest); r.code == 0 || !strings.Contains(r.stderr, dest) {
		t.Errorf("extract into a non-empty dir: exit %d, %q", r.code, r.stderr)
	}
}

func TestDeps(t *testing.T) {
	dir := t.TempDir()
	src := t.TempDir()
	mk := func(file, name string, depends string) {
		args := []string{"module", "create", src, "-o", filepath.Join(dir, file), "--name", name, "-q"}
		if depends != "" {
			args = append(args, "--depends", depends)
		}
		if r := byz(t, nil, args...); r.code != 0 {
			t.Fatalf("create %s: %s", file, r.stderr)
		}
	}
	mk("050-irc.xzm", "irc", "tls,base")
	mk("020-tls.xzm", "tls", "base")
	mk("001-base.xzm", "base", "")
	r := byz(t, nil, "module", "deps", dir)
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		names = append(names, strings.Fields(l)[0])
	}
	if r.code != 0 || strings.Join(names, " ") != "base tls irc" {
		t.Errorf("deps: exit %d, order %v, want base tls irc (%s)", r.code, names, r.stderr)
	}
	os.Remove(filepath.Join(dir, "020-tls.xzm"))
	r = byz(t, nil, "module", "deps", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "irc needs tls") {
		t.Errorf("deps with tls missing: exit %d, %q; want an error naming irc and tls", r.code, r.stderr)
	}
}

// TestBadUsage: usage errors exit 2, failures exit 1, neither leaves output.
func TestBadUsage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "o.xzm")
	src := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		code  int
		names string
	}{
		{"no output", []string{"module", "create", src}, 2, "-o"},
		{"unknown compressor", []string{"module", "create", src, "-o", out, "--comp", "lz5"}, 2, "lz5"},
		{"bad block size", []string{"module", "create", src, "-o", out, "--block-size", "100K"}, 2, "--block-size 100K"},
		{"xz has no levels", []string{"module", "create", src, "-o", out, "--comp", "xz", "--level", "3"}, 2, "xz has no compression levels"},
		{"zstd level too high", []string{"module", "create", src, "-o", out, "--level", "30"}, 2, "--level 30"},
		{"gzip level too high", []string{"module", "create", src, "-o", out, "--comp", "gzip", "--level", "10"}, 2, "--level 10"},
		{"negative processors", []string{"module", "create", src, "-o", out, "--processors", "-3"}, 2, "--processors -3"},
		{"both layouts", []string{"module", "create", src, "-o", out, "--flatten", "--per-layer"}, 2, "flatten"},
		{"unknown flag", []string{"module", "create", src, "-o", out, "--fast"}, 2, "--fast"},
		{"missing source", []string{"module", "create", filepath.Join(dir, "nope"), "-o", out}, 1, "nope"},
		{"not a module", []string{"module", "ls", filepath.Join(dir, "..")}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := byz(t, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.names) {
				t.Errorf("exit %d, stderr %q; want exit %d naming %q", r.code, r.stderr, tt.code, tt.names)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestUnreadableFile runs byz as an unprivileged user over a tree with a
// file it cannot read: the error names the file and no output is left.
func TestUnreadableFile(t *testing.T) {
	testenv.RequireRoot(t)
	// t.TempDir's parent is private to root; nobody must reach the tree.
	base, err := os.MkdirTemp("", "byz-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	src := filepath.Join(base, "src")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "ok"), []byte("x"), 0o644)
	secret := filepath.Join(src, "secret")
	os.WriteFile(secret, []byte("x"), 0o600)
	outDir := filepath.Join(base, "out")
	os.Mkdir(outDir, 0o777)
	os.Chmod(outDir, 0o777) // past the umask
	r := byz(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "module", "create", src, "-o", filepath.Join(outDir, "m.xzm"))
	if r.code != 1 || !strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming %s", r.code, r.stderr, secret)
	}
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestPersistCreate makes a plain and an encrypted save.dat on a media
// folder; e2fsck and cryptsetup accept them, and a second create is
// refused without touching the first.
func TestPersistCreate(t *testing.T) {
	fsck := testenv.RequireTool(t, "e2fsck")
	cs := testenv.RequireTool(t, "cryptsetup")
	for _, enc := range []bool{false, true} {
		media := t.TempDir()
		if err := os.MkdirAll(filepath.Join(media, "byzantium"), 0o755); err != nil {
			t.Fatal(err)
		}
		args := []string{"persist", "create", "--media", media, "--size", "64M"}
		pf := filepath.Join(t.TempDir(), "pass")
		if enc {
			if err := os.WriteFile(pf, []byte("mesh at dawn\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--encrypt", "--passphrase-file", pf, "--kdf-memory", "16M", "--kdf-time", "1")
		}
		r := byz(t, nil, args...)
		sd := filepath.Join(media, "byzantium/changes/save.dat")
		if r.code != 0 || !strings.Contains(r.stdout, sd) {
			t.Fatalf("byz %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if enc {
			// The passphrase is the file's first line, without its newline.
			if err := os.WriteFile(pf, []byte("mesh at dawn"), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", pf, sd).CombinedOutput(); err != nil {
				t.Errorf("cryptsetup open --test-passphrase: %v\n%s", err, out)
			}
		} else if out, err := exec.Command(fsck, "-fn", sd).CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn: %v\n%s", err, out)
		}
		before, _ := os.ReadFile(sd)
		if r := byz(t, nil, args...); r.code != 1 || !strings.Contains(r.stderr, "never overwritten") {
			t.Errorf("a second create: exit %d\n%s", r.code, r.stderr)
		}
		if after, _ := os.ReadFile(sd); string(before) != string(after) {
			t.Error("a refused create changed the save.dat")
		}
	}
	if r := byz(t, nil, "persist", "create", "--media", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "no byzantium/ folder") {
		t.Errorf("create on a folder that is not media: exit %d\n%s", r.code, r.stderr)
	}
	if r := byz(t, nil, "persist", "create", "--size", "64M"); r.code != 2 {
		t.Errorf("create without --media: exit %d, want 2", r.code)
	}
}

// TestPersistPassphrase changes an encrypted save.dat's passphrase, then
// adds a second one: cryptsetup agrees on which open it.
func TestPersistPassphrase(t *testing.T) {
	cs := testenv.RequireTool(t, "cryptsetup")
	media := t.TempDir()
	if err := os.MkdirAll(filepath.Join(media, "byzantium"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pf := func(name, pass string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(pass+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := pf("a", "alpha"), pf("b", "bravo"), pf("c", "charlie")
	if r := byz(t, nil, "persist", "create", "--media", media, "--size", "64M", "--encrypt", "--passphrase-file", a,
		"--kdf-memory", "16M", "--kdf-time", "1"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	sd := filepath.Join(media, "byzantium/changes/save.dat")
	if r := byz(t, nil, "persist", "passphrase", sd, "--old-file", c, "--new-file", b); r.code != 1 || !strings.Contains(r.stderr, "no keyslot opens") {
		t.Errorf("a wrong old passphrase: exit %d\n%s", r.code, r.stderr)
	}
	if r := byz(t, nil, "persist", "passphrase", sd, "--old-file", a, "--new-file", b); r.code != 0 {
		t.Fatalf("change: %s", r.stderr)
	}
	if r := byz(t, nil, "persist", "passphrase", sd, "--old-file", b, "--new-file", c, "--add"); r.code != 0 {
		t.Fatalf("add: %s", r.stderr)
	}
	for name, ok := range map[string]bool{"alpha": false, "bravo": true, "charlie": true} {
		kf := filepath.Join(dir, "kf")
		if err := os.WriteFile(kf, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", kf, sd).CombinedOutput()
		if (err == nil) != ok {
			t.Errorf("cryptsetup with %q: %v (want success %v)\n%s", name, err, ok, out)
		}
	}
}

// TestPersistCreateImage puts a save.dat into a USB image's FAT partition:
// fsck.fat finds the partition clean, mtools reads the save.dat back, and
// e2fsck finds it clean. One that does not fit leaves the image as it was.
func TestPersistCreateImage(t *testing.T) {
	fsck, fsckFat := testenv.RequireTool(t, "e2fsck"), testenv.RequireTool(t, "fsck.fat")
	mcopy := testenv.RequireTool(t, "mcopy")
	dir := t.TempDir()
	img := filepath.Join(dir, "usb.img")
	tree := &entry.Slice{Headers: []*entry.Header{
		{Path: "byzantium/base/000-kernel.xzm", Type: entry.TypeRegular, Mode: 0o644, Size: 5},
		{Path: "byzantium/manifest.json", Type: entry.TypeRegular, Mode: 0o644, Size: 3},
	}, Bodies: map[string][]byte{"byzantium/base/000-kernel.xzm": []byte("kern\n"), "byzantium/manifest.json": []byte("{}\n")}}
	if err := usbimg.Write(img, tree, usbimg.Options{Size: 128 << 20, Spare: 16 << 20, Seed: []byte("t")}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(img)
	if r := byz(t, nil, "persist", "create", "--image", img, "--size", "512M"); r.code != 1 || !strings.Contains(r.stderr, "free space") {
		t.Errorf("a save.dat larger than the partition: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(img); string(before) != string(after) {
		t.Error("a refused create changed the image")
	}
	if r := byz(t, nil, "persist", "create", "--image", img, "--size", "48M"); r.code != 0 {
		t.Fatalf("persist create --image: exit %d\n%s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(img)
	part := filepath.Join(dir, "part.img")
	if err := os.WriteFile(part, b[1<<20:(128-16)<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(fsckFat, "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
	sd := filepath.Join(dir, "save.dat")
	cmd := exec.Command(mcopy, "-i", img+"@@1M", "::byzantium/changes/save.dat", sd)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	if fi, err := os.Stat(sd); err != nil || fi.Size() != 48<<20 {
		t.Fatalf("the save.dat read back: %v", err)
	}
	if out, err := exec.Command(fsck, "-fn", sd).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
}
