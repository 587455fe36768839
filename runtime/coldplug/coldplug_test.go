package coldplug

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

// device makes a device the way sysfs shows it: its folder under
// sys/devices with a modalias file, and a link in sys/bus/BUS/devices.
func device(t *testing.T, root, bus, path, modalias string) {
	t.Helper()
	dir := filepath.Join(root, "sys/devices", path)
	links := filepath.Join(root, "sys/bus", bus, "devices")
	for _, d := range []string{dir, links} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "modalias"), []byte(modalias+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(links, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(links, filepath.Base(path))); err != nil {
		t.Fatal(err)
	}
}

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
	device(t, root, "pci", "pci0000:00/0000:00:03.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	device(t, root, "virtio", "pci0000:00/0000:00:03.0/virtio0", nicAlias)
	device(t, root, "pci", "pci0000:00/0000:00:01.0", "pci:v00008086d00007000sv00001AF4sd00001100bc06sc01i00")
	device(t, root, "acpi", "LNXSYSTM:00/PNP0501:00", "acpi:PNP0501:") // matched by no alias
	device(t, root, "platform", "platform/serial8250", "platform:serial8250")
	device(t, root, "platform", "platform/floppy.0", "platform:floppy")
	// A device's folder holds more than its modalias.
	write("sys/devices/pci0000:00/0000:00:03.0/virtio0/net/eth0/address", "52:54:00:12:34:56\n")
	// The CPU's modalias is on no bus; nothing here matches it.
	write("sys/devices/system/cpu/modalias", "cpu:type:x86,ven0000fam0006mod00CF:feature:,0000,0001\n")
	// A modalias outside the buses and the CPU is not read.
	write("sys/devices/virtual/misc/x/modalias", "platform:floppy-not-on-a-bus\n")
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
	opts := Options{Root: root, ModDir: filepath.Join(newRoot, "lib/modules", testRelease),
		Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
		Load: func(p string) error {
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
	res := Run(opts)

	// Bus by bus, sorted: acpi, pci (01.0, 03.0), platform (floppy.0,
	// serial8250), virtio. Dependencies load before the module.
	wantTried := []string{
		"kernel/drivers/block/floppy.ko", "kernel/drivers/char/ipmi/ipmi-si.ko",
		"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
	}
	if !reflect.DeepEqual(tried, wantTried) {
		t.Errorf("modules tried:\n got %q\nwant %q", tried, wantTried)
	}
	want := Result{Devices: 7,
		Loaded: []string{"failover", "net_failover", "virtio_net"},
		// serial8250 matches a module with no file.
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
	opts := Options{Root: root, ModDir: mods, Load: func(p string) error {
		loaded = append(loaded, koName(p))
		if koName(p) == "virtio_net" { // stands in for a USB host controller
			device(t, root, "usb", "pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0", "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00")
		}
		return nil
	}}
	res := Run(opts)
	if n := len(loaded); n == 0 || loaded[n-1] != "usb_storage" {
		t.Errorf("loaded %q, want usb_storage last (found in the second round)", loaded)
	}
	if res.Devices != 8 {
		t.Errorf("Devices = %d, want 8", res.Devices)
	}
}

func TestColdplugNoIndex(t *testing.T) {
	root := t.TempDir()
	var logs []string
	opts := Options{Root: root, ModDir: filepath.Join(root, "newroot/lib/modules", testRelease),
		Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
		Load: func(string) error { return errors.New("must not be called") }}
	res := Run(opts)
	if !reflect.DeepEqual(res, Result{}) {
		t.Errorf("Coldplug = %+v, want nothing done", res)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "modules.dep") {
		t.Errorf("log = %q, want one warning naming modules.dep", logs)
	}
}

// TestOnlyNetwork: with Only set to Network, only the NIC's driver (and
// its dependencies, wherever they live) loads; the other matches count as
// skipped, and a second, unrestricted run picks them up.
func TestOnlyNetwork(t *testing.T) {
	root, newRoot := fakeSysfs(t)
	var loaded []string
	opts := Options{Root: root, ModDir: filepath.Join(newRoot, "lib/modules", testRelease),
		Load: func(p string) error { loaded = append(loaded, koName(p)); return nil }, Only: Network}
	res := Run(opts)
	if want := []string{"failover", "net_failover", "virtio_net"}; !reflect.DeepEqual(loaded, want) {
		t.Errorf("loaded %q, want %q", loaded, want)
	}
	if res.Skipped != 2 { // floppy, ipmi-si
		t.Errorf("Skipped = %d, want 2", res.Skipped)
	}
	loaded = nil
	opts.Only = nil
	Run(opts)
	if want := []string{"floppy", "ipmi_si", "failover", "net_failover", "virtio_net"}; !reflect.DeepEqual(loaded, want) {
		t.Errorf("second run loaded %q, want %q (this fake sysfs never marks a module loaded)", loaded, want)
	}
}

// TestColdplugSoftdeps: a driver's softdeps (modules.softdep) load around
// it, as modprobe would load them: r8169 after the PHY driver it asks for
// (realtek), a post-softdep named by an alias after it. A module whose
// dependency declined to load (ENODEV) is not tried, and counts as not
// for this machine, not as a failure; one whose dependency failed is
// reported with that dependency named.
func TestColdplugSoftdeps(t *testing.T) {
	root, newRoot := fakeSysfs(t)
	mods := filepath.Join(newRoot, "lib/modules", testRelease)
	appendTo := func(name string, lines ...string) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(mods, name), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, l := range lines {
			fmt.Fprintln(f, l)
		}
	}
	appendTo("modules.dep",
		"kernel/drivers/net/ethernet/realtek/r8169.ko: kernel/drivers/net/phy/libphy.ko",
		"kernel/drivers/net/phy/libphy.ko:",
		"kernel/drivers/net/phy/realtek.ko: kernel/drivers/net/phy/libphy.ko",
		"kernel/drivers/net/late.ko:",
		"kernel/drivers/edac/amd64_edac.ko: kernel/drivers/edac/edac_mce_amd.ko",
		"kernel/drivers/edac/edac_mce_amd.ko:",
		"kernel/drivers/hwmon/k10temp.ko: kernel/drivers/hwmon/broken_dep.ko",
		"kernel/drivers/hwmon/broken_dep.ko:")
	appendTo("modules.alias",
		"alias pci:v000010ECd00008168sv*sd*bc*sc*i* r8169",
		"alias platform:late late",
		"alias cpu:type:x86,ven*fam*mod*:feature:*0001* amd64_edac",
		"alias cpu:type:x86,ven*fam*mod*:feature:*0000* k10temp")
	appendTo("modules.softdep",
		"# softdeps extracted from modules",
		"softdep r8169 pre: realtek no-such-module post: platform:late")
	device(t, root, "pci", "pci0000:00/0000:00:05.0", "pci:v000010ECd00008168sv000010ECsd00008168bc02sc00i00")
	var tried []string
	res := Run(Options{Root: root, ModDir: mods, Load: func(p string) error {
		tried = append(tried, koName(p))
		switch koName(p) {
		case "edac_mce_amd":
			return unix.ENODEV
		case "broken_dep":
			return unix.EKEYREJECTED
		}
		return nil
	}})
	// The PCI bus comes first; platform:late matches the fixture's "pl*"
	// (ipmi_si) too, and an alias brings every module it matches.
	want := []string{"libphy", "realtek", "r8169", "ipmi_si", "late", "floppy", "failover", "net_failover", "virtio_net",
		"edac_mce_amd", "broken_dep"}
	if !reflect.DeepEqual(tried, want) {
		t.Errorf("modules tried:\n got %q\nwant %q", tried, want)
	}
	if !reflect.DeepEqual(res.NoDevice, []string{"edac_mce_amd", "amd64_edac"}) || !reflect.DeepEqual(res.Failed, []string{"broken_dep", "k10temp"}) {
		t.Errorf("NoDevice %q, Failed %q", res.NoDevice, res.Failed)
	}
}

// TestLoad: modules asked for by name or alias load after their
// dependencies, each once; one in the kernel already is skipped, and a
// name nothing provides is reported.
func TestLoad(t *testing.T) {
	root, newRoot := fakeSysfs(t)
	mods := filepath.Join(newRoot, "lib/modules", testRelease)
	f, err := os.OpenFile(filepath.Join(mods, "modules.dep"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "kernel/net/batman-adv/batman-adv.ko: kernel/lib/libcrc32c.ko")
	fmt.Fprintln(f, "kernel/lib/libcrc32c.ko:")
	f.Close()
	var tried []string
	res := Load(Options{Root: root, ModDir: mods, Load: func(p string) error { tried = append(tried, koName(p)); return nil }},
		"batman-adv", "virtio_pci", "platform:floppy", "batman_adv", "no-such-feature")
	// platform:floppy matches the fixture's "pl*" too (ipmi_si): an alias
	// brings every module it matches, as modprobe does.
	if want := []string{"libcrc32c", "batman_adv", "floppy", "ipmi_si"}; !reflect.DeepEqual(tried, want) {
		t.Errorf("modules tried %q, want %q", tried, want)
	}
	if !reflect.DeepEqual(res.Loaded, []string{"libcrc32c", "batman_adv", "floppy", "ipmi_si"}) || !reflect.DeepEqual(res.Missing, []string{"no-such-feature"}) {
		t.Errorf("Load = %+v", res)
	}
}
