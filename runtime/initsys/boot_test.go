package initsys

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

// fakeRoot lays out what the kernel would show under a temp dir: regular
// files stand in for /proc/cmdline, the console devices and /dev/kmsg.
func fakeRoot(t *testing.T, cmdline string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	all := map[string]string{
		"proc/cmdline":                 cmdline,
		"proc/modules":                 "isofs 49152 0 - Live 0x0\ncdrom 77824 1 isofs, Live 0x0\n",
		"sys/class/tty/console/active": "tty0 ttyS0\n",
		"dev/tty0":                     "",
		"dev/ttyS0":                    "",
		"dev/kmsg":                     "",
	}
	for k, v := range files {
		all[k] = v
	}
	for name, body := range all {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestBoot(t *testing.T) {
	root := fakeRoot(t, "console=ttyS0 debug byz.test=poweroff", map[string]string{
		overlays.ModuleListPath: "# comment\nlib/modules/6.1/cdrom.ko\n\nlib/modules/6.1/isofs.ko\nlib/modules/6.1/broken.ko\nlib/modules/6.1/loop.ko\n" +
			"lib/modules/6.1/crc32c-intel.ko\nlib/modules/6.1/padlock-aes.ko\n",
	})
	var mounted, loadedPaths []string
	con := NewConsole(root)
	st, err := Boot(Config{
		RootDir: root,
		Console: con,
		Mount: func(source, target, fstype string, flags uintptr, data string) error {
			mounted = append(mounted, strings.TrimPrefix(target, root)+":"+fstype)
			if fstype == "tmpfs" {
				return unix.EPERM // best-effort: logged, not fatal
			}
			return nil
		},
		LoadModule: func(path string) error {
			loadedPaths = append(loadedPaths, strings.TrimPrefix(path, root))
			switch filepath.Base(path) {
			case "broken.ko":
				return unix.ENOEXEC
			case "loop.ko":
				return unix.EEXIST
			case "crc32c-intel.ko":
				return unix.ENODEV // a CPU without SSE4.2
			case "padlock-aes.ko":
				return unix.ENXIO
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/proc:proc", "/sys:sysfs", "/dev:devtmpfs", "/run:tmpfs"}; !reflect.DeepEqual(mounted, want) {
		t.Errorf("mounts = %v, want %v", mounted, want)
	}
	wantPaths := []string{"/lib/modules/6.1/cdrom.ko", "/lib/modules/6.1/isofs.ko", "/lib/modules/6.1/broken.ko", "/lib/modules/6.1/loop.ko",
		"/lib/modules/6.1/crc32c-intel.ko", "/lib/modules/6.1/padlock-aes.ko"}
	if !reflect.DeepEqual(loadedPaths, wantPaths) {
		t.Errorf("loaded %v, want %v", loadedPaths, wantPaths)
	}
	if !reflect.DeepEqual(st.Loaded, []string{"cdrom", "isofs", "loop"}) || !reflect.DeepEqual(st.Failed, []string{"broken"}) ||
		!reflect.DeepEqual(st.NoDevice, []string{"crc32c-intel", "padlock-aes"}) {
		t.Errorf("Loaded %v, Failed %v, NoDevice %v", st.Loaded, st.Failed, st.NoDevice)
	}
	if st.Cmdline.Test() != "poweroff" || !st.Cmdline.Debug {
		t.Errorf("Cmdline = %+v", st.Cmdline)
	}
	// Both consoles get every line, the ones logged before Open included;
	// the kernel log gets them at KERN_DEBUG.
	for _, dev := range []string{"dev/tty0", "dev/ttyS0"} {
		b, _ := os.ReadFile(filepath.Join(root, dev))
		if strings.Contains(string(b), "warning: module crc32c-intel") {
			t.Errorf("%s warns about a module that is not for this machine:\n%s", dev, b)
		}
		for _, want := range []string{"byz-init: warning: mount -t tmpfs", "byz-init: warning: module broken:",
			"byz-init: loaded 3 kernel modules, 1 failed, 2 not for this machine", "byz-init: modules loaded: cdrom isofs\n",
			"byz-init: modules not for this machine (no such device): crc32c-intel padlock-aes\n"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q:\n%s", dev, want, b)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "dev/kmsg")); !strings.HasPrefix(string(b), "<7>byz-init: ") {
		t.Errorf("dev/kmsg = %q", b)
	}
}

func TestBootEssentialMountFails(t *testing.T) {
	root := fakeRoot(t, "", nil)
	_, err := Boot(Config{
		RootDir: root,
		Mount: func(source, target, fstype string, flags uintptr, data string) error {
			if fstype == "devtmpfs" {
				return unix.ENODEV
			}
			return nil
		},
		LoadModule: func(string) error { t.Error("modules loaded after a fatal failure"); return nil },
	})
	var fe *FatalError
	if !errors.As(err, &fe) || !errors.Is(err, unix.ENODEV) || fe.Hint == "" {
		t.Fatalf("Boot = %v, want a FatalError wrapping ENODEV with a hint", err)
	}
	if !strings.Contains(err.Error(), "devtmpfs") {
		t.Errorf("the error does not say which mount failed: %v", err)
	}
}

func TestBootNoModuleList(t *testing.T) {
	root := fakeRoot(t, "", nil)
	var logged []string
	st, err := Boot(Config{
		RootDir:    root,
		Logf:       func(f string, a ...any) { logged = append(logged, f) },
		Mount:      func(string, string, string, uintptr, string) error { return nil },
		LoadModule: func(string) error { t.Error("no list, yet a module was loaded"); return nil },
	})
	if err != nil || len(st.Loaded) != 0 {
		t.Fatalf("Boot = %+v, %v", st, err)
	}
	if !strings.Contains(strings.Join(logged, "\n"), "no %s") {
		t.Errorf("the missing list was not logged: %q", logged)
	}
}
