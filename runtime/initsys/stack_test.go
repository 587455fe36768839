package initsys

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

var mediaTree = map[string]string{
	"byzantium/media-abc123":           "",
	"byzantium/base/001-kernel.xzm":    "k",
	"byzantium/base/000-core.xzm":      "c",
	"byzantium/modules/010-test.xzm":   "t",
	"byzantium/modules/README.txt":     "not a module",
	"byzantium/optional/060-gimp.xzm":  "g",
	"byzantium/optional/050-kde.xzm":   "k",
	"byzantium/rootcopy/etc/motd":      "hello from rootcopy\n",
	"byzantium/rootcopy/etc/byz/a.txt": "a",
	"boot/vmlinuz":                     "",
	"byzantium/changes/notes.txt":      "persistence lives here",
}

func TestStack(t *testing.T) {
	for _, tc := range []struct {
		name, cmdline string
		want          []string // module files, bottom first
		rootcopy      bool
	}{
		{"default", "byz.media=abc123", []string{"base/000-core", "base/001-kernel", "modules/010-test"}, true},
		{"no id: any byzantium media", "", []string{"base/000-core", "base/001-kernel", "modules/010-test"}, true},
		{"base_only norootcopy", "byz.media=abc123 base_only norootcopy", []string{"base/000-core", "base/001-kernel"}, false},
		{"load noload", "byz.media=abc123 load=KDE;nothing noload=kernel", []string{"base/000-core", "modules/010-test", "optional/050-kde"}, true},
		{"from device", "from=/dev/vda1", []string{"base/000-core", "base/001-kernel", "modules/010-test"}, true},
		{"from label", "from=LABEL=byzantium byz.media=other", []string{"base/000-core", "base/001-kernel", "modules/010-test"}, true},
		{"copy2ram", "byz.media=abc123 copy2ram debug", []string{"base/000-core", "base/001-kernel", "modules/010-test"}, true},
		{"marked for this boot", "byz.media=abc123 byz.tree=load", []string{"base/000-core", "base/001-kernel", "modules/010-test", "optional/060-gimp"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := mediaTree
			if strings.Contains(tc.cmdline, "byz.tree=load") {
				// byzd's "load at next boot": exact names, not patterns.
				tree = maps.Clone(mediaTree)
				tree["byzantium/load"] = "# written by byzd\ngimp\nkd\n"
			}
			m, cfg, st := machine(t, tc.cmdline, tree)
			nr, err := Stack(cfg, st)
			if err != nil {
				t.Fatal(err)
			}
			if nr.Media.Dev != "/dev/vda1" || nr.Media.FSType != "vfat" || nr.Init != "/sbin/init" {
				t.Errorf("NewRoot = %+v, media %+v", nr, nr.Media)
			}
			var files, names []string
			for i, l := range nr.Layers {
				files = append(files, strings.TrimSuffix(strings.TrimPrefix(l.File, "byzantium/"), ".xzm"))
				names = append(names, l.Name)
				if want := "/" + overlays.LayersDir + "/" + layerDirName(i, l.File); l.Layer != want {
					t.Errorf("layer %d at %s, want %s", i, l.Layer, want)
				}
				// The overlay holds every layer.
				if _, err := os.Stat(filepath.Join(nr.Dir, "from-"+filepath.Base(strings.TrimSuffix(l.File, ".xzm")))); err != nil {
					t.Errorf("the root lacks layer %s: %v", l.File, err)
				}
			}
			if !reflect.DeepEqual(files, tc.want) {
				t.Errorf("layers = %v, want %v", files, tc.want)
			}
			if names[0] != "core" {
				t.Errorf("names = %v, want the NNN- prefix dropped", names)
			}
			motd, err := os.ReadFile(filepath.Join(nr.Dir, "etc/motd"))
			if tc.rootcopy && string(motd) != "hello from rootcopy\n" {
				t.Errorf("etc/motd = %q, %v", motd, err)
			}
			if !tc.rootcopy && err == nil {
				t.Errorf("norootcopy, yet etc/motd was copied")
			}
			var listed []overlays.Layer
			b, err := os.ReadFile(filepath.Join(cfg.RootDir, overlays.ModulesJSON))
			if err != nil || json.Unmarshal(b, &listed) != nil || !reflect.DeepEqual(listed, nr.Layers) {
				t.Errorf("modules.json = %s (%v), want %+v", b, err, nr.Layers)
			}
			all := strings.Join(m.mounts, "\n")
			if strings.Contains(tc.cmdline, "copy2ram") {
				// The layers come from RAM and the media is let go.
				for _, w := range []string{"tmpfs tmpfs /" + overlays.RAMDir, "squashfs /" + overlays.RAMDir + "/byzantium/base/000-core.xzm", "umount /" + overlays.MediaDir} {
					if !strings.Contains(all, w) {
						t.Errorf("mounts lack %q:\n%s", w, all)
					}
				}
				// The whole tree but the persistence store: enough to
				// clone the node once the stick is gone.
				ram := filepath.Join(cfg.RootDir, overlays.RAMDir)
				for _, f := range []string{"boot/vmlinuz", "byzantium/optional/060-gimp.xzm", "byzantium/media-abc123"} {
					if _, err := os.Stat(filepath.Join(ram, f)); err != nil {
						t.Errorf("copy2ram left out %s: %v", f, err)
					}
				}
				if _, err := os.Stat(filepath.Join(ram, "byzantium/changes")); err == nil {
					t.Error("copy2ram copied byzantium/changes")
				}
			} else if !strings.Contains(all, "squashfs /"+overlays.MediaDir+"/byzantium/base/000-core.xzm") {
				t.Errorf("the modules were not mounted from the media:\n%s", all)
			}
			if !strings.Contains(all, "overlay overlay /"+NewRootDir) {
				t.Errorf("no overlay root:\n%s", all)
			}
		})
	}
}

func TestStackBadModule(t *testing.T) {
	m, cfg, st := machine(t, "byz.media=abc123", mediaTree)
	m.fail["010-test.xzm"] = unix.EINVAL
	_, err := Stack(cfg, st)
	var fe *FatalError
	if !errors.As(err, &fe) || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Stack = %v, want a FatalError wrapping EINVAL", err)
	}
	for _, w := range []string{"byzantium/modules/010-test.xzm", "invalid argument", "noload=010-test"} {
		if !strings.Contains(fe.String(), w) {
			t.Errorf("the error lacks %q: %s", w, fe.String())
		}
	}
}

func TestOverlayOptions(t *testing.T) {
	got := overlayOptions([]string{"/run/byz/layers/001-b", "/run/byz/layers/000-a"}, "/run/byz/rw/upper", "/run/byz/rw/work")
	want := "lowerdir=/run/byz/layers/001-b:/run/byz/layers/000-a,upperdir=/run/byz/rw/upper,workdir=/run/byz/rw/work"
	if got != want {
		t.Errorf("overlayOptions = %q, want %q", got, want)
	}
}

func TestLayerDirName(t *testing.T) {
	for _, tc := range []struct {
		n          int
		file, want string
	}{
		{0, "byzantium/base/000-busybox.xzm", "000-000-busybox"},
		{12, "byzantium/modules/a:b,c d.xzm", "012-a_b_c_d"},
		{3, "byzantium/modules/lib++-1.2.xzm", "003-lib++-1.2"},
	} {
		if got := layerDirName(tc.n, tc.file); got != tc.want {
			t.Errorf("layerDirName(%d, %q) = %q, want %q", tc.n, tc.file, got, tc.want)
		}
	}
}

func TestModuleName(t *testing.T) {
	dir := t.TempDir()
	if got := moduleName(dir, "byzantium/base/000-busy-box.xzm"); got != "busy-box" {
		t.Errorf("moduleName without a manifest = %q", got)
	}
	if got := moduleName(dir, "byzantium/base/kde.xzm"); got != "kde" {
		t.Errorf("moduleName without a prefix = %q", got)
	}
	writeFiles(t, dir, map[string]string{"usr/share/byzantium/modules/busybox.json": "{}"})
	if got := moduleName(dir, "byzantium/base/000-busy-box.xzm"); got != "busybox" {
		t.Errorf("moduleName with a manifest = %q", got)
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFiles(t, src, map[string]string{"etc/motd": "new", "usr/bin/tool": "#!/bin/sh\n", "etc/ssh/sshd_config": "x"})
	writeFiles(t, dst, map[string]string{"etc/motd": "old", "etc/keep": "k", "etc/link-target": "t"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(src, "usr/bin/tool"), 0o755|os.ModeSetuid))
	must(os.Chmod(filepath.Join(src, "etc/ssh"), 0o700))
	must(os.Symlink("/etc/motd", filepath.Join(src, "etc/issue")))
	// A symlink in the root where rootcopy has a file: replaced, not
	// written through.
	must(os.Symlink("link-target", filepath.Join(dst, "etc/sshd")))
	writeFiles(t, src, map[string]string{"etc/sshd": "file"})
	must(os.Chmod(filepath.Join(dst, "etc"), 0o751))

	must(copyTree(src, dst))
	for _, tc := range []struct {
		path string
		mode os.FileMode
		body string
	}{
		{"etc/motd", 0o644, "new"},
		{"etc/keep", 0o644, "k"},
		{"usr/bin/tool", 0o755 | os.ModeSetuid, "#!/bin/sh\n"},
		{"etc/ssh", 0o700 | os.ModeDir, ""},
		{"etc", 0o751 | os.ModeDir, ""}, // an existing folder keeps its mode
		{"etc/sshd", 0o644, "file"},
		{"etc/link-target", 0o644, "t"},
		{"etc/issue", os.ModeSymlink | 0o777, ""},
	} {
		fi, err := os.Lstat(filepath.Join(dst, tc.path))
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if fi.Mode() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, fi.Mode(), tc.mode)
		}
		if tc.body != "" {
			if b, _ := os.ReadFile(filepath.Join(dst, tc.path)); string(b) != tc.body {
				t.Errorf("%s = %q, want %q", tc.path, b, tc.body)
			}
		}
	}
	if l, _ := os.Readlink(filepath.Join(dst, "etc/issue")); l != "/etc/motd" {
		t.Errorf("etc/issue -> %q", l)
	}

	// A file where the root has a folder is an error, and the rest is
	// still copied.
	src2 := t.TempDir()
	writeFiles(t, src2, map[string]string{"etc": "not a folder", "zz/late": "late"})
	err := copyTree(src2, dst)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("copyTree over a folder = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "zz/late")); err != nil {
		t.Errorf("copying stopped at the first failure: %v", err)
	}
}

func TestCheckInit(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"usr/bin/busybox": "", "etc/inittab": ""})
	if err := os.Chmod(filepath.Join(root, "usr/bin/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Merged /usr with absolute links: they must resolve inside root.
	if err := os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"usr/sbin", "sbin"}, {"/usr/bin/busybox", "usr/sbin/init"}, {"/nowhere", "usr/sbin/dangling"}} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		init string
		ok   bool
	}{
		{"/sbin/init", true},
		{"/usr/bin/busybox", true},
		{"/sbin/dangling", false},
		{"/etc/inittab", false}, // not executable
		{"/etc", false},
		{"/sbin/missing", false},
	} {
		if err := checkInit(root, tc.init); (err == nil) != tc.ok {
			t.Errorf("checkInit(%s) = %v, want ok %v", tc.init, err, tc.ok)
		}
	}
}

func TestDeleteRootfsRefusesADisk(t *testing.T) {
	// deleteRootfs may only wipe a tmpfs or ramfs; a disk is all this can
	// offer it outside a VM. t.TempDir is one, unless it is a tmpfs: then
	// an ext4 image of our own is loop-mounted (as root) and offered.
	dir := t.TempDir()
	if onRAM(t, dir) {
		dir = ext4Dir(t)
	}
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := deleteRootfs(dir); err == nil {
		t.Error("deleteRootfs agreed to delete a disk")
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Errorf("deleteRootfs refused but deleted a file: %v", err)
	}
}

// onRAM reports whether dir is on a tmpfs or a ramfs.
func onRAM(t *testing.T, dir string) bool {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	return sfs.Type == unix.TMPFS_MAGIC || sfs.Type == unix.RAMFS_MAGIC
}

// ext4Dir makes a small ext4 image, loop-mounts it for the test and
// returns the mount point.
func ext4Dir(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	mkfs := testenv.RequireTool(t, "mkfs.ext4")
	mount := testenv.RequireTool(t, "mount")
	umount := testenv.RequireTool(t, "umount")
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "disk.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if out, err := exec.Command(mount, "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -o loop: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(umount, "-d", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	if onRAM(t, mnt) {
		t.Fatalf("%s is still on a tmpfs after mounting ext4 on it", mnt)
	}
	return mnt
}
