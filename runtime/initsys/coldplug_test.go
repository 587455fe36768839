package initsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFnmatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00008086d00001237sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", false},
		// '*' crosses '/' and ',' (fnmatch without FNM_PATHNAME).
		{"of:N*T*Cvirtio,mmio", "of:NfooT/bar/bazCvirtio,mmio", true},
		{"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00", true},
		{"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip62in00", false},
		{"acpi*:PNP0A0[38]:*", "acpi:PNP0A03:", true},
		{"acpi*:PNP0A0[38]:*", "acpi:PNP0A05:", false},
		{"acpi*:PNP0A0[!38]:*", "acpi:PNP0A05:", true},
		{"acpi*:PNP0A0[^38]:*", "acpi:PNP0A03:", false},
		{"x[a-c]y", "xby", true},
		{"x[a-c]y", "xdy", false},
		{"x[]]y", "x]y", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a\\*c", "a*c", true},
		{"a\\*c", "abc", false},
		{"a[bc", "a[bc", true}, // an unclosed '[' is literal
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"*a*b*c", "xxaxxbxxc", true},
		{"*a*b*c", "xxaxxbxxcx", false},
		{"cpu:type:x86,ven*fam*mod*:feature:*0081*", "cpu:type:x86,ven0000fam0006mod0006:feature:,0000,0081,00C0", true},
	} {
		if got := fnmatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

const (
	testRelease = "6.1.0-56-cloud-amd64"
	nicAlias    = "virtio:d00000001v00001AF4"
)

// fakeSysfs writes a sysfs with a virtio NIC behind a virtio PCI
// function, a PCI bridge with no driver and a serial port, and a new
// root whose module index knows drivers for some of them.
func fakeSysfs(t *testing.T) (root, newRoot string) {
	t.Helper()
	root = t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sys/devices/pci0000:00/0000:00:03.0/modalias", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n")
	write("sys/devices/pci0000:00/0000:00:03.0/virtio0/modalias", nicAlias+"\n")
	write("sys/devices/pci0000:00/0000:00:01.0/modalias", "pci:v00008086d00007000sv00001AF4sd00001100bc06sc01i00\n")
	write("sys/devices/pnp0/00:04/modalias", "acpi:PNP0501:\n") // matched by no alias
	write("sys/devices/platform/serial8250/modalias", "platform:serial8250\n")
	write("sys/devices/platform/floppy.0/modalias", "platform:floppy\n")
	// virtio_pci is in the initramfs and loaded already.
	if err := os.MkdirAll(filepath.Join(root, "sys/module/virtio_pci"), 0o755); err != nil {
		t.Fatal(err)
	}
	mods := "newroot/lib/modules/" + testRelease + "/"
	write(mods+"modules.dep", strings.Join([]string{
		"kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko",
		"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko",
		"kernel/net/core/failover.ko:",
		"kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/block/floppy.ko:",
		"kernel/drivers/char/ipmi/ipmi-si.ko:",
		"",
	}, "\n"))
	write(mods+"modules.alias", strings.Join([]string{
		"alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci",
		"alias virtio:d00000001v* virtio_net",
		"alias platform:floppy floppy",
		"alias platform:serial8250 serial8250_missing", // in no modules.dep line
		"alias pl* ipmi-si",                            // a short literal prefix: checked for every modalias
		"alias *:PNP0A0[38]:* pci_root",
		"",
	}, "\n"))
	return root, filepath.Join(root, "newroot")
}

func TestColdplug(t *testing.T) {
	root, newRoot := fakeSysfs(t)
	var tried []string
	var logs []string
	cfg := Config{RootDir: root, KernelRelease: testRelease,
		Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
		LoadModule: func(p string) error {
			rel, _ := filepath.Rel(filepath.Join(newRoot, "lib/modules", testRelease), p)
			tried = append(tried, rel)
			switch filepath.Base(p) {
			case "floppy.ko":
				return fmt.Errorf("finit_module %s: %w", p, unix.EKEYREJECTED)
			case "ipmi-si.ko":
				return fmt.Errorf("finit_module %s: %w", p, unix.ENODEV)
			case "failover.ko":
				return fmt.Errorf("finit_module %s: %w", p, unix.EEXIST)
			}
			return nil
		}}
	res := Coldplug(cfg, newRoot)

	// Sorted walk: pci0000:00/0000:00:01.0, 0000:00:03.0, its virtio0,
	// then platform/, then pnp0/. Dependencies load before the module.
	wantTried := []string{
		"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
		"kernel/drivers/block/floppy.ko", "kernel/drivers/char/ipmi/ipmi-si.ko",
	}
	if !reflect.DeepEqual(tried, wantTried) {
		t.Errorf("modules tried:\n got %q\nwant %q", tried, wantTried)
	}
	want := ColdplugResult{Devices: 6,
		Loaded:   []string{"failover", "net_failover", "virtio_net"},
		Failed:   []string{"floppy"},
		Missing:  []string{"serial8250_missing"},
		NoDevice: []string{"ipmi_si"}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Coldplug = %+v, want %+v", res, want)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "floppy") || !strings.Contains(logs[0], "platform:floppy") {
		t.Errorf("log = %q, want one warning naming floppy and its device", logs)
	}
}

// TestColdplugNewDevices: a driver that brings up a bus makes devices
// appear, and the next round loads their drivers.
func TestColdplugNewDevices(t *testing.T) {
	root, newRoot := fakeSysfs(t)
	mods := filepath.Join(newRoot, "lib/modules", testRelease)
	f, err := os.OpenFile(filepath.Join(mods, "modules.alias"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb-storage")
	f.Close()
	f, err = os.OpenFile(filepath.Join(mods, "modules.dep"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "kernel/drivers/usb/storage/usb-storage.ko:")
	f.Close()
	var loaded []string
	cfg := Config{RootDir: root, KernelRelease: testRelease, LoadModule: func(p string) error {
		loaded = append(loaded, koName(p))
		if koName(p) == "virtio_net" { // stands in for a USB host controller
			d := filepath.Join(root, "sys/devices/usb1/1-1/1-1:1.0")
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d, "modalias"), []byte("usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00\n"), 0o644)
		}
		return nil
	}}
	res := Coldplug(cfg, newRoot)
	if n := len(loaded); n == 0 || loaded[n-1] != "usb_storage" {
		t.Errorf("loaded %q, want usb_storage last (found in the second round)", loaded)
	}
	if res.Devices != 7 {
		t.Errorf("Devices = %d, want 7", res.Devices)
	}
}

func TestColdplugNoIndex(t *testing.T) {
	root := t.TempDir()
	var logs []string
	cfg := Config{RootDir: root, KernelRelease: testRelease,
		Logf:       func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
		LoadModule: func(string) error { return errors.New("must not be called") }}
	res := Coldplug(cfg, filepath.Join(root, "newroot"))
	if !reflect.DeepEqual(res, ColdplugResult{}) {
		t.Errorf("Coldplug = %+v, want nothing done", res)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "modules.dep") {
		t.Errorf("log = %q, want one warning naming modules.dep", logs)
	}
}
