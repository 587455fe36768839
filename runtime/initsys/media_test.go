package initsys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
)

// Superblocks as the filesystems lay them out, just enough for sniff.
func fat32Sector(label string) []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[11:], 512)
	copy(b[71:82], label+strings.Repeat(" ", 11-len(label)))
	copy(b[82:], "FAT32   ")
	b[510], b[511] = 0x55, 0xAA
	return b
}

func fat16Sector() []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[11:], 512)
	copy(b[43:54], "NO NAME    ")
	copy(b[54:], "FAT16   ")
	b[510], b[511] = 0x55, 0xAA
	return b
}

func isoImage(label string) []byte {
	b := make([]byte, sniffLen)
	// An isohybrid image has an MBR too: ISO 9660 must win.
	b[510], b[511] = 0x55, 0xAA
	b[32768] = 1
	copy(b[32769:], "CD001")
	copy(b[32768+40:32768+72], label+strings.Repeat(" ", 32-len(label)))
	return b
}

func ext4Image(label string) []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[1024+56:], 0xEF53)
	copy(b[1024+120:], label)
	return b
}

func protectiveMBR() []byte {
	b := make([]byte, 4096)
	b[510], b[511] = 0x55, 0xAA
	b[450] = 0xEE
	return b
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want fsInfo
		ok   bool
	}{
		{"fat32", fat32Sector("BYZANTIUM"), fsInfo{"vfat", "BYZANTIUM", "0000-0000"}, true},
		{"fat16 no label", fat16Sector(), fsInfo{"vfat", "", "0000-0000"}, true},
		{"isohybrid", isoImage("BYZANTIUM_1"), fsInfo{"iso9660", "BYZANTIUM_1", ""}, true},
		{"ext4", ext4Image("persist"), fsInfo{"ext4", "persist", "00000000-0000-0000-0000-000000000000"}, true},
		{"gpt disk", protectiveMBR(), fsInfo{}, false},
		{"zeros", make([]byte, 8192), fsInfo{}, false},
		{"short", []byte{1, 2, 3}, fsInfo{}, false},
	} {
		got, ok := sniff(bytes.NewReader(tc.data))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: sniff = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// sysTree writes fake /sys/block entries: "disk" or "disk/part" → size.
func sysTree(t *testing.T, root string, devs map[string]string) {
	t.Helper()
	for path, size := range devs {
		dir := filepath.Join(root, "sys/block", path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "size"), []byte(size+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(path, "/") {
			if err := os.WriteFile(filepath.Join(dir, "partition"), []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestBlockCandidates(t *testing.T) {
	root := t.TempDir()
	sysTree(t, root, map[string]string{
		"sdb": "1000", "sdb/sdb1": "900",
		"sda": "1000", "sda/sda10": "10", "sda/sda2": "10", "sda/sda1": "10", "sda/sda3": "0",
		"sr0": "0", "sr1": "700",
		"loop0": "100", "ram0": "100", "zram0": "100", "fd0": "2880",
		"vda": "1000", "vda/vda1": "900",
		"sdaa": "5",
	})
	// Not a partition: sysfs puts queue/, holders/ and so on beside them.
	if err := os.MkdirAll(filepath.Join(root, "sys/block/sda/queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := blockCandidates(root)
	want := []string{"sr1", "sda1", "sda2", "sda10", "sda", "sdb1", "sdb", "vda1", "vda", "sdaa"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("blockCandidates = %v\nwant %v", got, want)
	}
}

// fakeMachine stands in for the kernel under a temp root: "mounting" a
// device copies the media tree it holds into the mount point, a module
// mount writes a file named after the module, and an overlay mount
// copies the lower layers bottom first. It records every mount.
type fakeMachine struct {
	t      *testing.T
	root   string
	media  map[string]string // device path under root → media tree dir
	mounts []string
	fail   map[string]error // fstype or module base name → error
}

func (m *fakeMachine) mount(source, target, fstype string, flags uintptr, data string) error {
	rel := strings.TrimPrefix(target, m.root)
	m.mounts = append(m.mounts, fstype+" "+strings.TrimPrefix(source, m.root)+" "+rel)
	if err := m.fail[fstype]; err != nil {
		return err
	}
	switch fstype {
	case "vfat", "iso9660", "ext4":
		if tree, ok := m.media[source]; ok {
			return copyTree(tree, target)
		}
		return errors.New("no filesystem")
	case "": // MS_MOVE
		if err := os.Remove(target); err != nil {
			return err
		}
		return os.Rename(source, target)
	case "squashfs":
		if err := m.fail[filepath.Base(source)]; err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.Base(source), ".xzm")
		return os.WriteFile(filepath.Join(target, "from-"+name), []byte(rel), 0o644)
	case "overlay":
		lower := strings.TrimPrefix(strings.Split(data, ",")[0], "lowerdir=")
		dirs := strings.Split(lower, ":")
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := copyTree(dirs[i], target); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *fakeMachine) unmount(target string, _ int) error {
	m.mounts = append(m.mounts, "umount "+strings.TrimPrefix(target, m.root))
	entries, _ := os.ReadDir(target)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(target, e.Name()))
	}
	return nil
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// machine lays out a fake machine with a GPT disk vda whose vda1 holds
// the media tree, and an unrelated FAT stick sda1.
func machine(t *testing.T, cmdline string, tree map[string]string) (*fakeMachine, Config, *State) {
	t.Helper()
	root := t.TempDir()
	sysTree(t, root, map[string]string{"vda": "1000", "vda/vda1": "900", "sda": "100", "sda/sda1": "90"})
	media, other := t.TempDir(), t.TempDir()
	writeFiles(t, media, tree)
	writeFiles(t, other, map[string]string{"photos/cat.jpg": "meow"})
	writeFiles(t, root, map[string]string{
		"dev/vda":  string(protectiveMBR()),
		"dev/vda1": string(fat32Sector("BYZANTIUM")),
		"dev/sda":  string(protectiveMBR()),
		"dev/sda1": string(fat32Sector("HOLIDAY")),
	})
	m := &fakeMachine{t: t, root: root, media: map[string]string{
		filepath.Join(root, "dev/vda1"): media, filepath.Join(root, "dev/sda1"): other,
	}, fail: map[string]error{}}
	c, err := ParseCmdline(cmdline)
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	cfg := Config{
		RootDir: root, Mount: m.mount, Unmount: m.unmount,
		Logf: func(f string, a ...any) { log = append(log, strings.TrimSpace(fmt.Sprintf(f, a...))) },
		AttachLoop: func(file string) (io.Closer, string, error) {
			return io.NopCloser(nil), file, nil // the fake mount reads the file name
		},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s\nmounts:\n%s", strings.Join(log, "\n"), strings.Join(m.mounts, "\n"))
		}
	})
	return m, cfg, &State{Cmdline: c}
}

func TestFindMediaErrors(t *testing.T) {
	tree := map[string]string{"byzantium/media-abc123": "", "byzantium/base/000-a.xzm": "a"}
	for _, tc := range []struct {
		name, cmdline string
		want          []string
	}{
		{"wrong id", "byz.media=bad delay=1", []string{
			"no boot media with byzantium/media-bad after 1s",
			"/dev/vda1 (vfat, a different media: abc123)", "/dev/sda1 (vfat, no byzantium/media-* marker)",
			"/dev/vda (no filesystem the init can read)",
			"from=/dev/vda1"}},
		{"from a device without media", "byz.media=abc123 from=/dev/sda1 delay=1", []string{
			"from=/dev/sda1 has no usable Byzantium media", "/dev/sda1 (vfat, no byzantium/ folder)"}},
		{"from a label nobody has", "from=LABEL=NOPE delay=1", []string{"no filesystem labelled NOPE"}},
		{"from a UUID nobody has", "from=UUID=1234-5678 delay=1", []string{"no filesystem with UUID 1234-5678", "/dev/vda1 (not the one from= names)"}},
		{"from a folder", "from=/byzantium-old/", []string{"only from=/dev/DEVICE, from=LABEL=NAME and from=UUID=ID"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, st := machine(t, tc.cmdline, tree)
			start := time.Now()
			_, err := Stack(cfg, st)
			var fe *FatalError
			if !errors.As(err, &fe) || fe.Hint == "" {
				t.Fatalf("Stack = %v, want a FatalError with a hint", err)
			}
			msg := fe.String()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error lacks %q:\n%s", w, msg)
				}
			}
			if st.Cmdline.Delay > 0 && time.Since(start) < st.Cmdline.Delay {
				t.Errorf("gave up after %v, before delay=%v", time.Since(start), st.Cmdline.Delay)
			}
		})
	}
}

// TestSniffUUIDMatchesBlkid makes each filesystem with its own tool and
// wants sniff's UUID to be blkid's.
func TestSniffUUIDMatchesBlkid(t *testing.T) {
	blkid := testenv.RequireTool(t, "blkid")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "byzantium"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make []string // command; the image path is appended
		size int64
	}{
		{"fat32", []string{testenv.RequireTool(t, "mkfs.vfat"), "-F", "32", "-i", "1234ABCD", "-n", "BYZANTIUM"}, 40 << 20},
		{"fat16", []string{testenv.RequireTool(t, "mkfs.vfat"), "-F", "16", "-i", "DEADBEEF"}, 16 << 20},
		{"ext4", []string{testenv.RequireTool(t, "mkfs.ext4"), "-q", "-U", "6f1e2c3d-4b5a-4978-8a9b-0c1d2e3f4a5b", "-L", "persist"}, 16 << 20},
		{"iso9660", []string{testenv.RequireTool(t, "genisoimage"), "-quiet", "-R", "-V", "BYZ", "-o"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(dir, tc.name+".img")
			args := append(tc.make[1:], img)
			if tc.size > 0 {
				if err := os.WriteFile(img, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(img, tc.size); err != nil {
					t.Fatal(err)
				}
			} else {
				args = append(args, tree)
			}
			if out, err := exec.Command(tc.make[0], args...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tc.make[0], err, out)
			}
			out, err := exec.Command(blkid, "-p", "-o", "value", "-s", "UUID", img).Output()
			if err != nil {
				t.Fatalf("blkid: %v", err)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info, ok := sniff(f)
			if want := strings.TrimSpace(string(out)); !ok || want == "" || info.UUID != want {
				t.Errorf("sniff = %+v, %v; blkid says UUID %q", info, ok, want)
			}
		})
	}
}
