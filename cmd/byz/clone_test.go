package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/image/bootloader"
	"byzantium/image/clone/cloneapi"
	"byzantium/image/media"
	"byzantium/image/usbimg"
	"byzantium/modules/hostfs"
)

var (
	cloneSrcOnce sync.Once
	cloneSrcDir  string // the media folder
	cloneSrcImg  string // the same media as a 64 MiB USB image
	cloneSrcErr  error
)

// cloneSource builds, once, small USB media with the real bootloader
// files (from the fetched packages) and made-up kernel and modules, as a
// folder and as an image, for the clone command to copy.
func cloneSource(t *testing.T) (dir, img string) {
	t.Helper()
	var debs []string
	for _, pkg := range bootloader.Packages() {
		m, _ := filepath.Glob(filepath.Join("..", "..", ".cache", "debs", pkg+"_*.deb"))
		if len(m) == 0 {
			testenv.RequireFile(t, filepath.Join("..", "..", ".cache", "debs", pkg+"_VERSION.deb"), "make fetch")
		}
		debs = append(debs, m[len(m)-1])
	}
	cloneSrcOnce.Do(func() {
		work := filepath.Join(filepath.Dir(byzBin), "clone-source")
		in := filepath.Join(work, "in")
		write := func(name string, size int) string {
			p := filepath.Join(in, name)
			if cloneSrcErr == nil {
				b := bytes.Repeat([]byte(name), size/len(name)+1)[:size]
				if cloneSrcErr = os.MkdirAll(in, 0o755); cloneSrcErr == nil {
					cloneSrcErr = os.WriteFile(p, b, 0o644)
				}
			}
			return p
		}
		kernel, initrd := write("vmlinuz", 1<<20), write("initrd", 512<<10)
		base, runtime, opt := write("000-kernel.xzm", 2<<20), write("010-runtime.xzm", 1<<20), write("100-ngircd.xzm", 300<<10)
		if cloneSrcErr != nil {
			return
		}
		l, err := bootloader.Extract(debs...)
		if err != nil {
			cloneSrcErr = err
			return
		}
		tree, err := media.Plan(media.Media{Flavour: bootloader.USB, Loader: l, Kernel: kernel, Initramfs: initrd,
			Base: []string{base}, Modules: []string{runtime}, Optional: []string{opt},
			Menu: bootloader.Config{Title: "CLI test", Entries: []bootloader.Entry{{Label: "CLI test", Default: true}}}, ModTime: time.Unix(1700000000, 0)})
		if err != nil {
			cloneSrcErr = err
			return
		}
		cloneSrcDir = filepath.Join(work, "media")
		if cloneSrcErr = hostfs.Extract(tree.Reader(), cloneSrcDir, hostfs.ExtractOptions{NoChown: true}); cloneSrcErr != nil {
			return
		}
		mbr, core, err := l.GrubPC(usbimg.BIOSBootLBA)
		if err != nil {
			cloneSrcErr = err
			return
		}
		cloneSrcImg = filepath.Join(work, "source.img")
		cloneSrcErr = usbimg.Write(cloneSrcImg, tree.Reader(), usbimg.Options{Size: 64 << 20, Seed: []byte("cli"),
			BootCode: mbr, BIOSCore: core})
	})
	if cloneSrcErr != nil {
		t.Fatal(cloneSrcErr)
	}
	return cloneSrcDir, cloneSrcImg
}

// copyTo copies a file into dir.
func copyTo(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestCloneSameAsSource: `byz clone` refuses a target that is its
// source, before writing anything and whatever the options (--force,
// --yes, --plan): the image itself, a symlink to it, a loop device over
// it, and the other way round; the refusal does not suggest --force.
func TestCloneSameAsSource(t *testing.T) {
	_, src := cloneSource(t)
	dir := t.TempDir()
	img := copyTo(t, src, dir)
	link := filepath.Join(dir, "link.img")
	if err := os.Symlink(img, link); err != nil {
		t.Fatal(err)
	}
	type tc struct{ from, target string }
	cases := []tc{{img, img}, {img, link}, {link, img}}
	if os.Geteuid() == 0 {
		losetup := testenv.RequireTool(t, "losetup")
		out, err := exec.Command(losetup, "--find", "--show", img).CombinedOutput()
		if err != nil {
			testenv.Unavailable(t, "losetup: "+err.Error()+": "+string(out))
		} else {
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() { exec.Command(losetup, "--detach", dev).Run() })
			cases = append(cases, tc{img, dev}, tc{dev, img}, tc{dev, dev})
		}
	}
	before := sum(t, img)
	for _, c := range cases {
		for _, extra := range [][]string{{"--force"}, {"--force", "--yes"}, {"--plan"}, {"--force", "--save-size", "40M"}} {
			args := append([]string{"clone", "--from", c.from, c.target}, extra...)
			r := byz(t, nil, args...)
			if r.code != 1 || !strings.Contains(r.stderr, "it is the source") || strings.Contains(r.stderr, "--force") {
				t.Errorf("byz %s: exit %d, want 1 and a refusal naming the source without --force:\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
		}
	}
	if sum(t, img) != before {
		t.Error("a refused clone changed the source")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left in the folder: %v", ents)
	}
}

// TestCloneAddedAndMissing: a module dropped onto the media by hand goes
// along and the plan and the result say so; one removed by hand is named
// with what to do, before anything is written.
func TestCloneAddedAndMissing(t *testing.T) {
	srcDir, _ := cloneSource(t)
	dir := filepath.Join(t.TempDir(), "media")
	if err := os.CopyFS(dir, os.DirFS(srcDir)); err != nil {
		t.Fatal(err)
	}
	const added = "byzantium/modules/050-handmade.xzm"
	if err := os.WriteFile(filepath.Join(dir, added), bytes.Repeat([]byte("hand"), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "clone.img")
	r := byz(t, nil, "clone", "--from", dir, out, "--plan")
	if r.code != 0 || !strings.Contains(r.stdout, "added by hand: "+added) {
		t.Errorf("--plan: exit %d, no word of %s:\n%s%s", r.code, added, r.stdout, r.stderr)
	}
	r = byz(t, nil, "clone", "--from", dir, out, "--progress=none")
	if r.code != 0 || !strings.Contains(r.stdout, "marked unlisted in the clone's manifest: "+added) {
		t.Fatalf("clone: exit %d, no word of %s:\n%s%s", r.code, added, r.stdout, r.stderr)
	}
	cmd := exec.Command(testenv.RequireTool(t, "mdir"), "-i", out+"@@1M", "::byzantium/modules")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "050-handmade.xzm") {
		t.Errorf("the clone's byzantium/modules (%v):\n%s", err, b)
	}

	const gone = "byzantium/optional/100-ngircd.xzm"
	if err := os.Remove(filepath.Join(dir, gone)); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "clone.img")
	for _, args := range [][]string{{"--plan"}, {}} {
		r := byz(t, nil, append([]string{"clone", "--from", dir, out2}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, gone+": it is in the source's manifest but not on the media") ||
			!strings.Contains(r.stderr, "--modules") || strings.Contains(r.stderr, "no such file") {
			t.Errorf("%v with %s removed: exit %d:\n%s", args, gone, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(out2); err == nil {
		t.Error("the refused clone was written")
	}
}

// TestCloneSizes: --save-size beyond FAT32's largest file fails in the
// plan, in MiB; an image of a source image gets its size, and the room
// the command says a save.dat has is room `byz persist create --image`
// can use; a 3 TiB target takes a FAT partition capped at 2 TiB and says
// so, and sgdisk -v finds its table sound.
func TestCloneSizes(t *testing.T) {
	_, src := cloneSource(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "clone.img")
	for _, args := range [][]string{{"--plan"}, {}} {
		r := byz(t, nil, append([]string{"clone", "--from", src, out, "--save-size", "4G"}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "FAT32 holds no file of 4 GiB or more: at most 4095 MiB") {
			t.Errorf("--save-size 4G %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused clone was written")
	}

	r := byz(t, nil, "clone", "--from", src, out, "--plan")
	if r.code != 0 || !strings.Contains(r.stdout, "of 64.0 MiB (the source's size)") || !strings.Contains(r.stdout, "room for a save.dat: up to") {
		t.Errorf("--plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = byz(t, nil, "clone", "--from", src, out, "--progress=none")
	if r.code != 0 {
		t.Fatalf("clone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var room int
	if i := strings.Index(r.stdout, "byz persist create --size "); i < 0 {
		t.Fatalf("the clone does not say the room for a save.dat:\n%s", r.stdout)
	} else if _, err := fmt.Sscanf(r.stdout[i:], "byz persist create --size %dM", &room); err != nil || room < 32 {
		t.Fatalf("room %d MiB (%v):\n%s", room, err, r.stdout)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != 64<<20 {
		t.Errorf("the clone image: %v", err)
	}
	if r := byz(t, nil, "persist", "create", "--image", out, "--size", fmt.Sprintf("%dM", room)); r.code != 0 {
		t.Errorf("a save.dat of the %d MiB said to fit: exit %d\n%s", room, r.code, r.stderr)
	}

	big := filepath.Join(dir, "3t.img")
	r = byz(t, nil, "clone", "--from", src, big, "--size", "3T", "--save-size", "40M", "--progress=none")
	if r.code != 0 || !strings.Contains(r.stdout, "1.0 TiB of "+big+" are left unpartitioned") || !strings.Contains(r.stdout, "the save.dat is in place") {
		t.Fatalf("clone onto 3 TiB: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, err := exec.Command(testenv.RequireTool(t, "sgdisk"), "-v", big).CombinedOutput(); err != nil || !strings.Contains(string(b), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, b)
	}
}

// TestCloneStateEncryptedCLI: `--state DIR --encrypt` puts no state
// module on the clone (the changes go into the encrypted save.dat), and
// nothing of the changes is on it in the clear.
func TestCloneStateEncryptedCLI(t *testing.T) {
	testenv.RequireRoot(t)
	_, src := cloneSource(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "upper")
	const marker = "state-marker-in-the-clear-8c2e"
	if err := os.MkdirAll(filepath.Join(state, "root"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "root/notes"), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(dir, "pass")
	if err := os.WriteFile(pf, []byte("clone-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "clone.img")
	r := byz(t, nil, "clone", "--from", src, out, "--state", state, "--save-size", "64M", "--encrypt",
		"--passphrase-file", pf, "--kdf-memory", "8M", "--kdf-time", "1", "--progress=none")
	if r.code != 0 {
		t.Fatalf("clone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "inside the encrypted save.dat") {
		t.Errorf("the clone does not say where the changes went:\n%s", r.stdout)
	}
	cmd := exec.Command(testenv.RequireTool(t, "mdir"), "-b", "-i", out+"@@1M", "::byzantium/modules")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if b, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(b), "state") {
		t.Errorf("the clone's byzantium/modules (%v):\n%s", err, b)
	}
	if b, _ := os.ReadFile(out); bytes.Contains(b, []byte(marker)) {
		t.Error("the node's changes are on the clone in the clear")
	}
}

// TestCloneRequest: byz clone --request - reads the clone as JSON on
// standard input (as byzd runs it) and prints JSON progress lines ending
// in "done"; a request byz cannot read, or flags beside it, are usage
// errors that write nothing.
func TestCloneRequest(t *testing.T) {
	_, src := cloneSource(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "clone.img")
	run := func(stdin string, args ...string) result {
		t.Helper()
		cmd := exec.Command(byzBin, append([]string{"clone"}, args...)...)
		var o, e strings.Builder
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return result{o.String(), e.String(), cmd.ProcessState.ExitCode()}
	}
	good := `{"from":"` + src + `","target":"` + out + `","save_size":33554432}`
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"an unknown field", `{"from":"` + src + `","target":"` + out + `","yes":true}`, []string{"--request", "-"}},
		{"no JSON", "", []string{"--request", "-"}},
		{"a flag beside it", good, []string{"--request", "-", "--save-size", "64M"}},
		{"a TARGET beside it", good, []string{"--request", "-", out}},
		{"a request Check refuses", `{"from":"` + src + `","target":"` + out + `","encrypt":true}`, []string{"--request", "-"}},
	} {
		if r := run(tc.stdin, tc.args...); r.code != 2 {
			t.Errorf("%s: exit %d\n%s", tc.name, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused request wrote the clone")
	}
	r := run(good, "--request", "-", "--progress=json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	phases := map[string]bool{}
	var last cloneapi.Event
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		last = cloneapi.Event{}
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		phases[last.Phase] = true
	}
	if last.Phase != "done" || last.Result == nil || last.Target != out || !last.SaveDat || !phases["write"] || !phases["verify"] {
		t.Errorf("progress lines:\n%s", r.stdout)
	}
}
