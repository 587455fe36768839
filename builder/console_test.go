package builder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/image/bootloader"
	"byzantium/image/media"
	"byzantium/modules/squashfs"
	"byzantium/overlays"
	"byzantium/runtime/mesh/meshcfg"
)

// TestInittab: each console setting gets the whole table, with the line
// for the serial console that the setting asks for and no other.
func TestInittab(t *testing.T) {
	lines := map[string]string{
		spec.ShellLogin: "ttyS0::respawn:/usr/bin/byz console\n",
		spec.ShellRoot:  "ttyS0::respawn:-/bin/sh\n",
	}
	for _, tc := range []struct {
		shell string
		want  string // the serial console's line; "" for none
	}{
		{"", lines[spec.ShellLogin]},
		{spec.ShellLogin, lines[spec.ShellLogin]},
		{spec.ShellRoot, lines[spec.ShellRoot]},
		{spec.ShellNone, ""},
	} {
		tab, err := Inittab(tc.shell)
		if err != nil {
			t.Fatalf("Inittab(%q): %v", tc.shell, err)
		}
		s := string(tab)
		for _, l := range lines {
			if strings.Contains(s, l) != (l == tc.want) {
				t.Errorf("Inittab(%q): has %q: %v\n%s", tc.shell, l, !strings.Contains(s, l), s)
			}
		}
		// Only ttyS0 ever gets a process, and only the one above: no
		// other line may start a shell or a getty.
		for _, l := range strings.Split(s, "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			id, _, _ := strings.Cut(l, ":")
			if id != "" && l+"\n" != tc.want {
				t.Errorf("Inittab(%q): unexpected line for a terminal: %q", tc.shell, l)
			}
			if strings.Contains(l, "/bin/sh") && l+"\n" != tc.want {
				t.Errorf("Inittab(%q): a shell: %q", tc.shell, l)
			}
		}
		for _, must := range []string{"::respawn:/usr/sbin/byzd --state /var/lib/byzantium\n",
			"::shutdown:/usr/bin/byz persist save --at-shutdown\n", "::sysinit:/bin/busybox --install -s\n"} {
			if !strings.Contains(s, must) {
				t.Errorf("Inittab(%q) lacks %q", tc.shell, must)
			}
		}
	}
	if _, err := Inittab("bash"); err == nil {
		t.Error(`Inittab("bash"): no error`)
	}
}

// TestBuildConsole builds the fixture node with each console setting and
// reads what the media holds: the console module's /etc/inittab (the
// generated table, stacked last in base), a rescue shell in the initramfs
// only for a root console, and a boot menu that cannot be edited unless
// the console gives a root shell anyway. A module or rootcopy folder
// carrying its own /etc/inittab is refused before any work.
func TestBuildConsole(t *testing.T) {
	f := newFixture(t)
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Console.Shell != spec.ShellLogin {
		t.Errorf("a spec without console: shell %q, want %q", s.Console.Shell, spec.ShellLogin)
	}
	cacheDir := filepath.Join(f.dir, "cache")
	for _, shell := range []string{spec.ShellLogin, spec.ShellRoot, spec.ShellNone} {
		t.Run(shell, func(t *testing.T) {
			sc := *s
			sc.Console = spec.Console{Shell: shell}
			sc.Outputs = spec.Outputs{Dir: "media"}
			out := filepath.Join(f.dir, "out-"+shell)
			if _, err := Build(&sc, Options{Out: out, Cache: &cache.Cache{Dir: cacheDir}, Epoch: epoch,
				InitBinary: f.initBin, DebDir: f.debDir, Tool: "test"}); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(out, "media")
			base, _ := filepath.Glob(filepath.Join(dir, "byzantium/base/*.xzm"))
			var names []string
			for _, b := range base {
				names = append(names, filepath.Base(b))
			}
			if want := []string{"000-kernel.xzm", "001-busybox.xzm", "002-console.xzm"}; strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("base modules %v, want %v (the console module last)", names, want)
			}
			got := readModuleFile(t, filepath.Join(dir, "byzantium/base/002-console.xzm"), InittabPath)
			want, _ := Inittab(shell)
			if !bytes.Equal(got, want) {
				t.Errorf("the console module's /etc/inittab:\n%s\nwant\n%s", got, want)
			}
			if h := statModuleFile(t, filepath.Join(dir, "byzantium/base/002-console.xzm"), InittabPath); h.UID != 0 || h.GID != 0 || h.Mode.Perm() != 0o644 {
				t.Errorf("/etc/inittab is %v %d:%d, want -rw-r--r-- root:root", h.Mode, h.UID, h.GID)
			}
			// byzd's mesh defaults, from the spec's mesh section.
			mesh := readModuleFile(t, filepath.Join(dir, "byzantium/base/002-console.xzm"), meshcfg.ImageFile)
			wantMesh, _ := sc.Mesh.Image().Marshal()
			if !bytes.Equal(mesh, wantMesh) || !bytes.Contains(mesh, []byte(`"ssid": "`+meshcfg.DefaultSSID+`"`)) {
				t.Errorf("the console module's %s:\n%s\nwant\n%s", meshcfg.ImageFile, mesh, wantMesh)
			}
			open := shell == spec.ShellRoot
			if got := initramfsHas(t, filepath.Join(dir, bootloader.InitramfsPath), "bin/sh"); got != open {
				t.Errorf("a rescue shell (bin/sh) in the initramfs: %v, want %v", got, open)
			}
			grub, err := os.ReadFile(filepath.Join(dir, bootloader.GrubCfgDisk))
			if err != nil {
				t.Fatal(err)
			}
			if locked := strings.Contains(string(grub), "set superusers=\"\"\n"); locked == open {
				t.Errorf("grub.cfg locked: %v, want %v\n%s", locked, !open, grub)
			}
			var bi media.BootInfo
			b, _ := os.ReadFile(filepath.Join(dir, overlays.BootInfoPath))
			if err := json.Unmarshal(b, &bi); err != nil || bi.Locked == open {
				t.Errorf("boot.json says locked %v (%v), want %v", bi.Locked, err, !open)
			}
		})
	}

	// Anything that would stack over the console module's inittab.
	for _, tc := range []struct {
		name  string
		plant string // where an etc/inittab goes
		says  string
	}{
		{"module folder", f.runtime, "modules[0].sources[0]: " + f.runtime + ", a source of module runtime, has its own /etc/inittab"},
		{"rootcopy folder", filepath.Join(f.dir, "rootcopy"), "rootcopy[0]: rootcopy folder " + filepath.Join(f.dir, "rootcopy") + " has its own /etc/inittab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(tc.plant, InittabPath)
			if err := os.WriteFile(p, []byte("ttyS0::respawn:-/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(p)
			out, cacheDir := filepath.Join(t.TempDir(), "out"), t.TempDir()
			_, err := Build(s, Options{Out: out, Cache: &cache.Cache{Dir: cacheDir}, Epoch: epoch,
				InitBinary: f.initBin, DebDir: f.debDir, Tool: "test"})
			if !errors.Is(err, errOwnInittab) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "console") {
				t.Fatalf("Build: %v\nwant an error saying %q", err, tc.says)
			}
			if entries, _ := os.ReadDir(cacheDir); len(entries) != 0 {
				t.Errorf("the cache holds %d entries: the check came after work started", len(entries))
			}
		})
	}
}

// TestBuildConsoleTarInittab: a module whose tarball brings /etc/inittab
// is found once built, since only then is its content known.
func TestBuildConsoleTarInittab(t *testing.T) {
	f := newFixture(t)
	s, err := spec.Load(f.specPath, spec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(f.dir, "sysvinit.tar")
	if err := os.WriteFile(tarball, inittabTar([]byte("ttyS0::respawn:-/bin/sh\n"), epoch), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Modules[0].Sources = append(s.Modules[0].Sources, tarball)
	s.Outputs = spec.Outputs{Dir: "media"}
	out := filepath.Join(t.TempDir(), "out")
	_, err = Build(s, Options{Out: out, Cache: &cache.Cache{Dir: filepath.Join(f.dir, "cache")}, Epoch: epoch,
		InitBinary: f.initBin, DebDir: f.debDir, Tool: "test"})
	if want := "modules[0]: module 001-runtime has its own /etc/inittab"; !errors.Is(err, errOwnInittab) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Build: %v\nwant an error saying %q", err, want)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("outputs left after the failure: %v", left)
	}
}

func openModule(t *testing.T, file string) *squashfs.Reader {
	t.Helper()
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	fi, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, err := squashfs.NewReader(fh, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readModuleFile(t *testing.T, module, path string) []byte {
	t.Helper()
	b, err := openModule(t, module).ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statModuleFile(t *testing.T, module, path string) struct {
	Mode     os.FileMode
	UID, GID uint32
} {
	t.Helper()
	h, err := openModule(t, module).Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return struct {
		Mode     os.FileMode
		UID, GID uint32
	}{os.FileMode(h.Mode), h.UID, h.GID}
}

// initramfsHas reports whether the zstd-compressed cpio archive holds name.
func initramfsHas(t *testing.T, file, name string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	cr := cpio.NewReader(zr)
	for {
		h, err := cr.Next()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return true
		}
	}
}
