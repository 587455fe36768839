package clone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/image/bootloader"
	"byzantium/image/fat"
	"byzantium/image/gpt"
	"byzantium/image/media"
	"byzantium/image/usbimg"
	"byzantium/modules/hostfs"
	"byzantium/overlays"
)

var epoch = time.Unix(1700000000, 0).UTC()

// workDir holds what every test shares: the source media.
var workDir string

func TestMain(m *testing.M) {
	var err error
	if workDir, err = os.MkdirTemp("", "byz-clone-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// media is a USB media tree the tests clone: as a folder and as an image.
type srcMedia struct {
	dir, img string
	id       string
	menu     bootloader.Config
}

var (
	srcOnce sync.Once
	src     *srcMedia
	srcErr  error
)

// sourceMedia builds, once, a USB media tree with the real bootloader
// (from the fetched packages: GRUB's BIOS core is made from them) and
// made-up kernel, initramfs and modules of some size, and writes it as a
// folder and as a USB image.
func sourceMedia(t *testing.T) *srcMedia {
	t.Helper()
	var debs []string
	for _, pkg := range bootloader.Packages() {
		m, _ := filepath.Glob(filepath.Join("..", "..", ".cache", "debs", pkg+"_*.deb"))
		if len(m) == 0 {
			testenv.RequireFile(t, filepath.Join("..", "..", ".cache", "debs", pkg+"_VERSION.deb"), "make fetch")
		}
		debs = append(debs, m[len(m)-1])
	}
	srcOnce.Do(func() { src, srcErr = buildSource(debs) })
	if srcErr != nil {
		t.Fatal(srcErr)
	}
	return src
}

func buildSource(debs []string) (*srcMedia, error) {
	l, err := bootloader.Extract(debs...)
	if err != nil {
		return nil, err
	}
	in := filepath.Join(workDir, "inputs")
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(rel string, size int) (string, error) {
		p := filepath.Join(in, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return p, os.WriteFile(p, b, 0o644)
	}
	files := map[string]int{"vmlinuz": 3 << 20, "initrd": 1<<20 + 3, "000-kernel.xzm": 6 << 20, "001-busybox.xzm": 700000,
		"010-runtime.xzm": 2<<20 + 1, "100-ngircd.xzm": 900000, "101-extra.xzm": 4096,
		"rc/etc/hostname": 10, "rc/etc/motd": 100, "rc/root/.profile": 50}
	paths := map[string]string{}
	for rel, size := range files {
		if paths[rel], err = write(rel, size); err != nil {
			return nil, err
		}
	}
	s := &srcMedia{menu: bootloader.Config{Title: "Test node", Cmdline: "console=ttyS0 quiet", Timeout: 2 * time.Second,
		Entries: []bootloader.Entry{{Label: "Test node", Default: true}, {Label: "Test node (debug)", Append: "debug"}}}}
	tree, err := media.Plan(media.Media{Flavour: bootloader.USB, Loader: l, Kernel: paths["vmlinuz"], Initramfs: paths["initrd"],
		Base: []string{paths["000-kernel.xzm"], paths["001-busybox.xzm"]}, Modules: []string{paths["010-runtime.xzm"]},
		Optional: []string{paths["100-ngircd.xzm"], paths["101-extra.xzm"]}, Rootcopy: []string{filepath.Join(in, "rc")},
		Menu: s.menu, ModTime: epoch})
	if err != nil {
		return nil, err
	}
	s.id = tree.ID
	s.dir = filepath.Join(workDir, "media")
	if err := hostfs.Extract(tree.Reader(), s.dir, hostfs.ExtractOptions{NoChown: true}); err != nil {
		return nil, err
	}
	mbr, core, err := l.GrubPC(usbimg.BIOSBootLBA)
	if err != nil {
		return nil, err
	}
	s.img = filepath.Join(workDir, "source.img")
	err = usbimg.Write(s.img, tree.Reader(), usbimg.Options{Size: 64 << 20, Seed: []byte("source"), ModTime: epoch,
		BootCode: mbr, BIOSCore: core})
	return s, err
}

// copyFile copies a file for a test to change.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// ids are the identities of a USB image.
type ids struct {
	disk, part gpt.GUID
	volume     uint32
	media      string
	manifest   media.Manifest
}

func readIDs(t *testing.T, img string) ids {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	tab, err := gpt.Read(f, fi.Size())
	if err != nil {
		t.Fatalf("%s: %v", img, err)
	}
	fsys, err := fat.OpenFS(f, tab.Partitions[0].Offset())
	if err != nil {
		t.Fatal(err)
	}
	out := ids{disk: tab.DiskGUID, part: tab.Partitions[0].GUID, volume: fsys.VolumeID()}
	b, err := fs.ReadFile(fsys, overlays.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out.manifest); err != nil {
		t.Fatal(err)
	}
	out.media = out.manifest.ID
	return out
}

// mtoolsTree copies the FAT partition of img out with mtools.
func mtoolsTree(t *testing.T, img string) string {
	t.Helper()
	mcopy := testenv.RequireTool(t, "mcopy")
	dst := t.TempDir()
	cmd := exec.Command(mcopy, "-s", "-n", "-i", img+"@@1M", "::", dst+"/")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	return dst
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// oracles runs sgdisk -v over the disk and fsck.fat -n over its FAT
// partition.
func oracles(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command(testenv.RequireTool(t, "sgdisk"), "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	tab, err := gpt.Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "part.img")
	pf, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(pf, io.NewSectionReader(f, tab.Partitions[0].Offset(), tab.Partitions[0].Size())); err != nil {
		t.Fatal(err)
	}
	pf.Close()
	if out, err := exec.Command(testenv.RequireTool(t, "fsck.fat"), "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
}

// clone plans and writes a clone of source into a new image file.
func cloneTo(t *testing.T, s *Source, opts Options, img string, size int64) (*Result, error) {
	t.Helper()
	p, err := NewPlan(s, opts)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		size = p.MinSize()
	}
	tg, err := CreateImage(img, size, false)
	if err != nil {
		return nil, err
	}
	defer tg.Close()
	return p.Write(context.Background(), tg, &Progress{})
}

// TestCloneImage clones the source image and its folder into image
// files: new disk, partition, volume and media IDs; sgdisk and fsck.fat
// find them clean; mtools reads back every file the new manifest lists,
// with its digest; the payload is the source's, the menu too, under the
// new ID; the save.dat is there.
func TestCloneImage(t *testing.T) {
	m := sourceMedia(t)
	orig := readIDs(t, m.img)
	for _, from := range []string{m.img, m.dir} {
		t.Run(filepath.Base(from), func(t *testing.T) {
			s, err := OpenSource(from)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.ID != m.id {
				t.Fatalf("source media ID %s, built %s", s.ID, m.id)
			}
			img := filepath.Join(t.TempDir(), "clone.img")
			res, err := cloneTo(t, s, Options{SaveSize: 40 << 20, TempDir: t.TempDir()}, img, 0)
			if err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(img)); len(ents) != 1 {
				t.Errorf("left beside the image: %v", ents)
			}
			got := readIDs(t, img)
			if got.disk == orig.disk || got.part == orig.part || got.volume == orig.volume || got.media == orig.media || got.media != res.MediaID {
				t.Errorf("IDs not new: disk %s/%s part %s/%s volume %x/%x media %s/%s (result %s)",
					got.disk, orig.disk, got.part, orig.part, got.volume, orig.volume, got.media, orig.media, res.MediaID)
			}
			if res.DiskGUID != got.disk.String() || res.VolumeID != fmt.Sprintf("%04X-%04X", got.volume>>16, got.volume&0xffff) {
				t.Errorf("result %+v", res)
			}
			oracles(t, img)
			tree := mtoolsTree(t, img)
			origSums := map[string]string{}
			for _, f := range orig.manifest.Files {
				origSums[f.Path] = f.SHA256
			}
			for _, f := range got.manifest.Files {
				if sum := fileSum(t, filepath.Join(tree, f.Path)); sum != f.SHA256 {
					t.Errorf("%s: mtools reads sha256 %s, the manifest says %s", f.Path, sum, f.SHA256)
				}
				if o, ok := origSums[strings.ReplaceAll(f.Path, got.media, orig.media)]; !ok {
					t.Errorf("%s is new", f.Path)
				} else if o != f.SHA256 && !strings.Contains(f.Path, "grub.cfg") && !strings.Contains(f.Path, "media-") {
					t.Errorf("%s differs from the source's", f.Path)
				}
			}
			if len(got.manifest.Files) != len(orig.manifest.Files) {
				t.Errorf("%d files in the clone's manifest, %d in the source's", len(got.manifest.Files), len(orig.manifest.Files))
			}
			grub, _ := os.ReadFile(filepath.Join(tree, bootloader.GrubCfgDisk))
			want, _ := bootloader.Grub(bootloader.Config{Title: m.menu.Title, Cmdline: m.menu.Cmdline, Timeout: m.menu.Timeout, Entries: m.menu.Entries, MediaID: got.media})
			if !bytes.Equal(grub, want) {
				t.Errorf("grub.cfg:\n%s\nwant\n%s", grub, want)
			}
			if marker, err := os.ReadFile(filepath.Join(tree, overlays.MarkerPath(got.media))); err != nil || string(marker) != got.media+"\n" {
				t.Errorf("marker: %q, %v", marker, err)
			}
			if fi, err := os.Stat(filepath.Join(tree, "byzantium/changes/save.dat")); err != nil || fi.Size() != 40<<20 {
				t.Errorf("save.dat: %v", err)
			}
		})
	}
}

// TestPlanPrint: the plan lists what comes from where, what is left out,
// the state module and what it leaves out, and the space needed.
func TestPlanPrint(t *testing.T) {
	m := sourceMedia(t)
	s, err := OpenSource(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	for _, f := range []string{"etc/hostname", "var/lib/byzantium/tls/key.pem", "root/notes"} {
		os.MkdirAll(filepath.Join(state, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(state, f), bytes.Repeat([]byte("x"), 1000), 0o600)
	}
	p, err := NewPlan(s, Options{Modules: []string{"ngircd"}, SaveSize: 64 << 20, State: state, Now: epoch})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := p.Print(&b, 32<<20); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"source: " + m.dir + " (media " + m.id + ")", "byzantium/optional/100-ngircd.xzm",
		"left out: byzantium/optional/101-extra.xzm", "save.dat", "byzantium/modules/999-state-20231114-221320.xzm",
		"without var/lib/byzantium/tls", "needs a disk of at least", "TOO SMALL", "boot/grub/i386-pc/kernel.img"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	min := p.MinSize()
	if sp, err := p.Space(min); err != nil || !sp.Fits() {
		t.Errorf("MinSize %d does not fit: %+v %v", min, sp, err)
	}
	if sp, _ := p.Space(min - 4<<20); sp.Fits() {
		t.Errorf("MinSize %d is not the smallest: 4 MiB less fits", min)
	}
	if min > p.Bytes()+p.Bytes()/10+8<<20 {
		t.Errorf("MinSize %d for %d bytes of files", min, p.Bytes())
	}
	if _, err := NewPlan(s, Options{Modules: []string{"nope"}}); !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "ngircd, extra") {
		t.Errorf("unknown module: %v", err)
	}
}

// TestCloneModulesAndState: --modules leaves the other optional modules
// out of the tree and the manifest; the node's changes go along as a
// module without the secrets, or with them when asked.
func TestCloneModulesAndState(t *testing.T) {
	unsquashfs := testenv.RequireTool(t, "unsquashfs")
	m := sourceMedia(t)
	s, err := OpenSource(m.img)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	state := t.TempDir()
	for _, f := range []string{"etc/hostname", "etc/ssh/ssh_host_ed25519_key", "etc/ssh/sshd_config",
		"var/lib/byzantium/tls/key.pem", "var/lib/byzantium/auth/users.json", "var/lib/byzantium/node-id",
		"var/lib/byzantium/mesh/identity", "var/lib/byzantium/services.json", "root/notes"} {
		os.MkdirAll(filepath.Join(state, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(state, f), []byte(f), 0o600)
	}
	kept := []string{"etc/hostname", "etc/ssh/sshd_config", "var/lib/byzantium/services.json", "root/notes"}
	secret := []string{"etc/ssh/ssh_host_ed25519_key", "var/lib/byzantium/tls/key.pem", "var/lib/byzantium/auth/users.json",
		"var/lib/byzantium/node-id"}
	// The mesh identity never goes along, not even with the secrets.
	never := "var/lib/byzantium/mesh/identity.json"
	os.MkdirAll(filepath.Join(state, filepath.Dir(never)), 0o755)
	os.WriteFile(filepath.Join(state, never), []byte("{}"), 0o600)
	for _, withSecrets := range []bool{false, true} {
		t.Run(fmt.Sprint("secrets=", withSecrets), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "clone.img")
			res, err := cloneTo(t, s, Options{Modules: []string{}, State: state, WithSecrets: withSecrets, Now: epoch, TempDir: t.TempDir()}, img, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := readIDs(t, img)
			for _, f := range got.manifest.Files {
				if strings.HasPrefix(f.Path, "byzantium/optional/") {
					t.Errorf("%s went along with --modules empty", f.Path)
				}
			}
			tree := mtoolsTree(t, img)
			mod := filepath.Join(tree, res.StateModule)
			out, err := exec.Command(unsquashfs, "-lc", mod).CombinedOutput()
			if err != nil {
				t.Fatalf("unsquashfs -lc %s: %v\n%s", mod, err, out)
			}
			for _, f := range kept {
				if !strings.Contains(string(out), "/"+f+"\n") {
					t.Errorf("%s is missing from the state module:\n%s", f, out)
				}
			}
			for _, f := range secret {
				if strings.Contains(string(out), "/"+f+"\n") != withSecrets {
					t.Errorf("%s in the state module: %v, with secrets: %v", f, !withSecrets, withSecrets)
				}
			}
			if strings.Contains(string(out), "/"+never+"\n") {
				t.Errorf("%s went along (with secrets: %v)", never, withSecrets)
			}
		})
	}
}

// TestCloneMismatch: a source module that differs from the source's
// manifest stops the clone with an error naming it; an image target is
// not created, and a used stick is left with no partition table.
func TestCloneMismatch(t *testing.T) {
	m := sourceMedia(t)
	dir := filepath.Join(t.TempDir(), "media")
	if err := os.CopyFS(dir, os.DirFS(m.dir)); err != nil {
		t.Fatal(err)
	}
	const bad = "byzantium/modules/010-runtime.xzm"
	f, err := os.OpenFile(filepath.Join(dir, bad), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff, 0xfe}, 100000)
	f.Close()
	s, err := OpenSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "clone.img")
	_, err = cloneTo(t, s, Options{}, img, 0)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v, want ErrMismatch naming %s", err, bad)
	}
	if ents, _ := os.ReadDir(filepath.Dir(img)); len(ents) != 0 {
		t.Errorf("a failed clone left %v", ents)
	}
	used := copyFile(t, m.img)
	p, err := NewPlan(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := openDisk(used)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if _, err := p.Write(context.Background(), tg, nil); !errors.Is(err, ErrMismatch) {
		t.Fatalf("onto a used disk: %v", err)
	}
	noTable(t, used)
}

// noTable checks that a disk has no partition table our reader or sgdisk
// would take.
func noTable(t *testing.T, img string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if _, err := gpt.Read(f, fi.Size()); err == nil {
		t.Error("the disk has a valid GPT")
	}
	out, _ := exec.Command(testenv.RequireTool(t, "sgdisk"), "-p", img).CombinedOutput()
	if rows := partitionRows(string(out)); len(rows) > 0 {
		t.Errorf("sgdisk -p still lists a partition: %q\n%s", rows, out)
	}
}

// partitionRows returns the partition rows of `sgdisk -p` output: the
// lines under its "Number  Start (sector) ..." header. The lines above it
// hold random GUIDs, which may spell a type code such as EF00.
func partitionRows(out string) []string {
	var rows []string
	header := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Number "):
			header = true
		case header && strings.TrimSpace(l) != "":
			rows = append(rows, strings.TrimSpace(l))
		}
	}
	return rows
}

// TestPartitionRows: noTable looks at sgdisk's partition rows only, so a
// random disk GUID that spells a type code does not fail it, and a row
// does.
func TestPartitionRows(t *testing.T) {
	const head = `Disk used.img: 8192 sectors, 4.0 MiB
Sector size (logical): 512 bytes
Disk identifier (GUID): 12345678-EF00-4000-8000-0000000000EF
Partition table holds up to 128 entries
Total free space is 8125 sectors (4.0 MiB)

Number  Start (sector)    End (sector)  Size       Code  Name
`
	if rows := partitionRows("Creating new GPT entries in memory.\n" + head); len(rows) != 0 {
		t.Errorf("no partitions: rows %q", rows)
	}
	row := "1            2048            4095   1024.0 KiB  EF00  BYZANTIUM"
	if rows := partitionRows(head + "   " + row + "\n"); len(rows) != 1 || rows[0] != row {
		t.Errorf("one partition: rows %q", rows)
	}
}

// TestCloneCancel: cancelling midway, onto a stick that held a complete
// Byzantium image, leaves it with no valid GPT (primary or backup).
func TestCloneCancel(t *testing.T) {
	m := sourceMedia(t)
	s, err := OpenSource(m.img)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	used := copyFile(t, m.img)
	p, err := NewPlan(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := openDisk(used)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ctx, cancel := context.WithCancel(context.Background())
	prog := &Progress{}
	go func() {
		for {
			if e := prog.Snapshot(); e.Phase == "write" && e.Bytes > 4<<20 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err = p.Write(ctx, tg, prog)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if e := prog.Snapshot(); e.Phase != "write" || e.Bytes >= e.Total {
		t.Errorf("cancelled at %+v: not midway", e)
	}
	noTable(t, used)
}

// TestCloneTooSmall: the exact check before writing refuses a target the
// clone does not fit.
func TestCloneTooSmall(t *testing.T) {
	m := sourceMedia(t)
	s, err := OpenSource(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "clone.img")
	if _, err := cloneTo(t, s, Options{SaveSize: 64 << 20}, img, 40<<20); !errors.Is(err, ErrTooSmall) {
		t.Errorf("err = %v, want ErrTooSmall", err)
	}
	if _, err := os.Stat(img); err == nil {
		t.Error("the refused clone exists")
	}
}

// TestOpenNode: a running node's media is the mounted stick, or after
// copy2ram the copy in RAM (the whole tree), which clones as well.
func TestOpenNode(t *testing.T) {
	m := sourceMedia(t)
	for _, dir := range []string{overlays.MediaDir, overlays.RAMDir} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, dir)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(m.dir, filepath.Join(root, dir)); err != nil {
			t.Fatal(err)
		}
		s, err := OpenNode(root)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if s.Name != "/"+dir || s.ID == "" || len(s.Sums) == 0 {
			t.Errorf("%s: source %q, id %q, %d files", dir, s.Name, s.ID, len(s.Sums))
		}
		s.Close()
	}
	if _, err := OpenNode(t.TempDir()); !errors.Is(err, ErrNotMedia) {
		t.Errorf("no media: %v", err)
	}
}

// TestCloneAddedModules: modules dropped onto the media by hand (into a
// folder, or into the FAT partition of a stick image) go along, are named
// in the plan and marked unlisted in the clone's manifest, and stay so in
// a clone of the clone; --modules picks among the added optional ones
// too.
func TestCloneAddedModules(t *testing.T) {
	m := sourceMedia(t)
	dir := filepath.Join(t.TempDir(), "media")
	if err := os.CopyFS(dir, os.DirFS(m.dir)); err != nil {
		t.Fatal(err)
	}
	added := map[string][]byte{
		"byzantium/modules/050-handmade.xzm": bytes.Repeat([]byte("handmade"), 5000),
		"byzantium/optional/200-dropped.xzm": bytes.Repeat([]byte("dropped"), 3000),
	}
	for p, b := range added {
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The same two, dropped into the FAT partition of a stick image.
	img := copyFile(t, m.img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gpt.Read(f, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	vol, err := fat.OpenVolume(f, tab.Partitions[0].Offset())
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range added {
		if err := vol.AddFile(p, int64(len(b)), bytes.NewReader(b), epoch); err != nil {
			t.Fatal(err)
		}
	}
	if err := vol.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, from := range []string{dir, img} {
		t.Run(filepath.Base(from), func(t *testing.T) {
			s, err := OpenSource(from)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			p, err := NewPlan(s, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			p.Print(&b, 0)
			for path := range added {
				if !strings.Contains(b.String(), "added by hand: "+path) || !strings.Contains(b.String(), fmt.Sprintf("  %-8s  %s\n", "added", path)) {
					t.Errorf("the plan does not say %s was added by hand:\n%s", path, b.String())
				}
			}
			out := filepath.Join(t.TempDir(), "clone.img")
			res, err := cloneTo(t, s, Options{TempDir: t.TempDir()}, out, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Unlisted) != 2 {
				t.Errorf("result lists %v as unlisted", res.Unlisted)
			}
			got := readIDs(t, out)
			tree := mtoolsTree(t, out)
			seen := 0
			for _, mf := range got.manifest.Files {
				_, isAdded := added[mf.Path]
				if mf.Unlisted != isAdded {
					t.Errorf("%s: unlisted %v in the clone's manifest", mf.Path, mf.Unlisted)
				}
				if isAdded {
					seen++
					if b, _ := os.ReadFile(filepath.Join(tree, mf.Path)); !bytes.Equal(b, added[mf.Path]) {
						t.Errorf("%s differs on the clone", mf.Path)
					}
				}
			}
			if seen != 2 {
				t.Errorf("%d added modules in the clone's manifest", seen)
			}

			// A clone of the clone keeps them marked.
			s2, err := OpenSource(out)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			out2 := filepath.Join(t.TempDir(), "clone2.img")
			if _, err := cloneTo(t, s2, Options{TempDir: t.TempDir()}, out2, 0); err != nil {
				t.Fatal(err)
			}
			for _, mf := range readIDs(t, out2).manifest.Files {
				if _, isAdded := added[mf.Path]; mf.Unlisted != isAdded {
					t.Errorf("clone of the clone: %s unlisted %v", mf.Path, mf.Unlisted)
				}
			}

			// --modules chooses among the added optional modules too.
			p, err = NewPlan(s, Options{Modules: []string{"ngircd"}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(p.Left, "byzantium/optional/200-dropped.xzm") || !slices.Contains(p.Modules, "byzantium/modules/050-handmade.xzm") {
				t.Errorf("--modules ngircd: left %v, modules %v", p.Left, p.Modules)
			}
			if p, err = NewPlan(s, Options{Modules: []string{"dropped"}}); err != nil || !slices.Equal(p.Optional, []string{"byzantium/optional/200-dropped.xzm"}) {
				t.Errorf("--modules dropped: %v, %v", p, err)
			}
		})
	}
}

// TestCloneMissingFiles: a file the source's manifest lists that was
// removed from the media (a module, a boot file), or replaced by one of
// another size, is named before anything is written, with what to do.
func TestCloneMissingFiles(t *testing.T) {
	m := sourceMedia(t)
	for _, tc := range []struct {
		remove, resize string
		want           error
		says           []string
	}{
		{remove: "byzantium/optional/101-extra.xzm", want: ErrMissing,
			says: []string{"byzantium/optional/101-extra.xzm", "in the source's manifest but not on the media", "put it back", "rebuild", "--modules"}},
		{remove: "byzantium/modules/010-runtime.xzm", want: ErrMissing,
			says: []string{"byzantium/modules/010-runtime.xzm", "not on the media", "put it back", "or rebuild the media"}},
		{remove: "EFI/BOOT/BOOTX64.EFI", want: ErrMissing, says: []string{"EFI/BOOT/BOOTX64.EFI", "not on the media"}},
		{resize: "byzantium/base/001-busybox.xzm", want: ErrMismatch,
			says: []string{"byzantium/base/001-busybox.xzm is 683.6 KiB", "the source's manifest says 683.6 KiB", "put the original back"}},
	} {
		t.Run(tc.remove+tc.resize, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "media")
			if err := os.CopyFS(dir, os.DirFS(m.dir)); err != nil {
				t.Fatal(err)
			}
			if tc.remove != "" {
				if err := os.Remove(filepath.Join(dir, tc.remove)); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Truncate(filepath.Join(dir, tc.resize), 700001); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSource(dir)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.remove, "byzantium/optional/") {
				// Left out by --modules, it is not missed.
				if _, err := NewPlan(s, Options{Modules: []string{"ngircd"}}); err != nil {
					t.Errorf("%s removed, --modules ngircd: %v", tc.remove, err)
				}
			}
			_, err = NewPlan(s, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, w := range tc.says {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "no such file") {
				t.Errorf("a bare error: %v", err)
			}
		})
	}
}

// TestCloneSizes: a save.dat is at most FAT32's largest file in whole MiB
// (4 GiB is refused by the plan, with the largest allowed); the plan and
// the result say how much room a target leaves for a save.dat, and a
// save.dat of that size does fit the clone afterwards; an image file
// gets the source's size unless told.
func TestCloneSizes(t *testing.T) {
	m := sourceMedia(t)
	s, err := OpenSource(m.img)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := NewPlan(s, Options{SaveSize: 4 << 30}); !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "at most 4095 MiB") {
		t.Errorf("a 4 GiB save.dat: %v, want ErrBadOption with the largest allowed", err)
	}
	if _, err := NewPlan(s, Options{SaveSize: 10<<20 + 1}); !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "at least 32 MiB") {
		t.Errorf("a 10 MiB save.dat: %v", err)
	}
	p, err := NewPlan(s, Options{SaveSize: MaxSaveDat})
	if err != nil {
		t.Fatalf("a %d MiB save.dat: %v", MaxSaveDat>>20, err)
	}
	if p.MinSize() < MaxSaveDat {
		t.Errorf("MinSize %d with a 4095 MiB save.dat", p.MinSize())
	}

	p, err = NewPlan(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.ImageSize() != 64<<20 || s.DiskSize != 64<<20 {
		t.Errorf("an image of a 64 MiB image is %d bytes by default", p.ImageSize())
	}
	dirSrc, err := OpenSource(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	if dp, _ := NewPlan(dirSrc, Options{}); dp.ImageSize() != dp.MinSize() {
		t.Errorf("an image of a folder is %d bytes by default, the smallest is %d", dp.ImageSize(), dp.MinSize())
	}
	var b strings.Builder
	p.Print(&b, 64<<20)
	if !strings.Contains(b.String(), "room for a save.dat: up to ") {
		t.Errorf("the plan does not say the room for a save.dat:\n%s", b.String())
	}
	b.Reset()
	p.Print(&b, p.MinSize())
	if !strings.Contains(b.String(), "room for a save.dat: NONE") {
		t.Errorf("the plan for the smallest target does not say there is no room:\n%s", b.String())
	}

	for _, size := range []int64{p.MinSize(), 64 << 20, 96 << 20} {
		img := filepath.Join(t.TempDir(), "clone.img")
		res, err := cloneTo(t, s, Options{TempDir: t.TempDir()}, img, size)
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Fit(size)
		// The plan's need is an upper bound (the new manifest's size is
		// estimated): within a MiB of what the clone has.
		if err != nil || res.SaveDatRoom < f.SaveDatRoom || res.SaveDatRoom > f.SaveDatRoom+1<<20 ||
			res.Free < f.Have-f.Need || res.Free > f.Have-f.Need+1<<20 {
			t.Errorf("%d MiB: result room %d free %d, plan %+v %v", size>>20, res.SaveDatRoom, res.Free, f, err)
		}
		if size == p.MinSize() {
			if res.SaveDatRoom != 0 || !strings.Contains(RoomLine(res), "no room for a save.dat") {
				t.Errorf("the smallest clone: room %d, %q", res.SaveDatRoom, RoomLine(res))
			}
			continue
		}
		if res.SaveDatRoom < 32<<20 || !strings.Contains(RoomLine(res), fmt.Sprintf("--size %dM", res.SaveDatRoom>>20)) {
			t.Errorf("%d MiB: room %d, %q", size>>20, res.SaveDatRoom, RoomLine(res))
		}
		// A save.dat of the size said fits.
		fl, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := gpt.Read(fl, size)
		if err != nil {
			t.Fatal(err)
		}
		vol, err := fat.OpenVolume(fl, tab.Partitions[0].Offset())
		if err != nil {
			t.Fatal(err)
		}
		if err := vol.AddFile("byzantium/changes/save.dat", res.SaveDatRoom, io.LimitReader(zeros{}, res.SaveDatRoom), epoch); err != nil {
			t.Errorf("%d MiB: a save.dat of the %d MiB said to fit: %v", size>>20, res.SaveDatRoom>>20, err)
		}
		fl.Close()
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestCloneLargeTarget: a target over 2 TiB (a sparse 3 TiB image) takes
// the clone in a FAT partition capped at FAT32's limit, the rest left
// unpartitioned and said so; sgdisk -v finds the table sound.
func TestCloneLargeTarget(t *testing.T) {
	m := sourceMedia(t)
	s, err := OpenSource(m.img)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := NewPlan(s, Options{SaveSize: 40 << 20, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	const size = 3 << 40
	f, err := p.Fit(size)
	if err != nil || !f.Fits() || f.FATSize != usbimg.MaxFATSize || f.Unpartitioned < 1<<40-1<<20 {
		t.Fatalf("Fit(3 TiB) = %+v, %v", f, err)
	}
	var b strings.Builder
	p.Print(&b, size)
	if !strings.Contains(b.String(), ": fits") || !strings.Contains(b.String(), "stops at FAT32's limit of 2.0 TiB; the other 1.0 TiB of the disk are left unpartitioned") {
		t.Errorf("plan:\n%s", b.String())
	}
	img := filepath.Join(t.TempDir(), "3t.img")
	start := time.Now()
	res, err := cloneTo(t, s, Options{SaveSize: 40 << 20, TempDir: t.TempDir()}, img, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a clone onto a 3 TiB image in %v", time.Since(start).Round(time.Millisecond))
	if res.Unpartitioned != f.Unpartitioned || res.SaveDatRoom != MaxSaveDat {
		t.Errorf("result: unpartitioned %d, room %d", res.Unpartitioned, res.SaveDatRoom)
	}
	out, err := exec.Command(testenv.RequireTool(t, "sgdisk"), "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	if got := readIDs(t, img); got.media != res.MediaID {
		t.Errorf("media %s, result %s", got.media, res.MediaID)
	}
}
