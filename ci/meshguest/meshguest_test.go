// Package meshguest boots QEMU guests on Debian's generic kernel, which
// has cfg80211, mac80211_hwsim and batman-adv (the host's and the cloud
// kernel have none), and runs runtime/mesh/radio and runtime/mesh/batadv
// against the real kernel code there: the guest program in guest/ is each
// guest's init and reports "meshguest: PASS name" or "meshguest: FAIL
// name: why" for every check, which the tests here read off the console.
//
//	go test ./ci/meshguest -run TestWifi -v     # one VM, two hwsim radios
//	go test ./ci/meshguest -run TestBatadv -v   # three VMs in a line
//
// TestBatadv checks that a cut-off originator goes stale (not heard for
// 5 s) and unreachable; with BYZ_MESHGUEST_PURGE=1 it also waits for
// batman-adv to purge the entry, about 200 s (BATADV_PURGE_TIMEOUT, fixed
// in the kernel), which make test skips to keep CI's time. The tests do not run in parallel: four TCG guests
// booting at once on a shared 2-core machine took over 90 s to print a
// line.
package meshguest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/builder/initramfs"
	"byzantium/builder/kernel"
	"byzantium/ci/qemu"
	"byzantium/ci/testenv"
	"byzantium/modules/entry"
	"byzantium/runtime/mesh/radio"
)

// wpaDebs are wpa_supplicant and every package whose shared library it
// loads (ldd on Debian 12's 2.10 build, which has CONFIG_MESH): the SAE
// check needs them in .cache/debs.
var wpaDebs = []string{
	"wpasupplicant", "libc6", "libnl-3-200", "libnl-genl-3-200", "libnl-route-3-200", "libpcsclite1",
	"libssl3", "libdbus-1-3", "libsystemd0", "libcap2", "libgcrypt20", "liblzma5", "libzstd1",
	"liblz4-1", "libgpg-error0",
}

// wifiModules are the wifi guest's modules. The guest has no modprobe, so
// the kernel's own on-demand loads fail: the crypto templates mac80211
// asks for when wpa_supplicant installs the mesh's keys (CCMP, BIP-CMAC,
// GCMP) are loaded up front, or every key addition fails and the peers,
// though ESTAB, cannot read each other's frames.
var wifiModules = append([]string{"mac80211_hwsim"}, radio.SAEKernelModules...)

// inputs is what every guest is built from, made once per test binary.
type inputs struct {
	dir     string // a temporary folder, removed by TestMain
	root    string // the repository
	vmlinuz string
	modDir  string
	kernel  *kernel.Kernel
	guest   string // the guest program
	busybox string
	err     error
}

var (
	built     inputs
	buildOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// prepare extracts the generic kernel and busybox and builds the guest
// program, once; a missing tool or package skips (fails under CI).
func prepare(t *testing.T) *inputs {
	t.Helper()
	testenv.RequireTool(t, "qemu-system-x86_64")
	testenv.RequireTool(t, "dpkg-deb")
	goTool := testenv.RequireTool(t, "go")
	root := repoRoot(t)
	kdeb := oneDeb(t, root, "linux-image-*-amd64")
	bdeb := oneDeb(t, root, "busybox-static")
	buildOnce.Do(func() {
		built.root = root
		built.dir, built.err = os.MkdirTemp("", "meshguest-")
		if built.err != nil {
			return
		}
		built.err = built.make(goTool, kdeb, bdeb)
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return &built
}

func (in *inputs) make(goTool, kdeb, bdeb string) error {
	if out, err := exec.Command("dpkg-deb", "-x", bdeb, filepath.Join(in.dir, "bb")).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v\n%s", bdeb, err, out)
	}
	in.busybox = filepath.Join(in.dir, "bb/bin/busybox")
	f, err := os.Open(kdeb)
	if err != nil {
		return err
	}
	defer f.Close()
	in.vmlinuz, in.modDir = filepath.Join(in.dir, "vmlinuz"), filepath.Join(in.dir, "modules")
	if in.kernel, err = kernel.ExtractDeb(f, f.Name(), kernel.ExtractOptions{Vmlinuz: in.vmlinuz, ModulesDir: in.modDir}); err != nil {
		return err
	}
	// A static binary: the guest has no libc of its own.
	in.guest = filepath.Join(in.dir, "guest")
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", in.guest, "./ci/meshguest/guest")
	cmd.Dir = in.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build the guest: %v\n%s", err, out)
	}
	return nil
}

// initrd writes an uncompressed initramfs (the guest's TCG kernel has
// nothing to decompress) with the guest program as /init, busybox for
// ip and ping, the closure of modules, and extra files.
func (in *inputs) initrd(t *testing.T, name string, modules []string, extra []initramfs.File) string {
	t.Helper()
	mods, err := in.kernel.Modules.Closure(modules...)
	if err != nil {
		t.Fatalf("module closure of %v: %v", modules, err)
	}
	files := append([]initramfs.File{
		{Path: "init", Src: in.guest, Mode: 0o755},
		{Path: "bin/busybox", Src: in.busybox, Mode: 0o755},
	}, initramfs.ModuleFiles(in.modDir, in.kernel.Version, mods)...)
	files = append(files, extra...)
	p := filepath.Join(t.TempDir(), name)
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := initramfs.Write(out, files, initramfs.Options{ModTime: time.Unix(1700000000, 0), Uncompressed: true}); err != nil {
		t.Fatal(err)
	}
	return p
}

// babeldDebs are babeld and the packages of the libraries it loads (the
// babeld module of the example specs).
var babeldDebs = []string{"babeld", "libb2-1", "libgomp1", "libc6"}

// wpaFiles unpacks wpa_supplicant and its libraries for the guest, or
// returns a reason they are not there.
func (in *inputs) wpaFiles(t *testing.T) ([]initramfs.File, string) {
	return in.debFiles(t, wpaDebs, []string{"sbin/wpa_supplicant"})
}

// debFiles unpacks packages for the guest: the programs bins (paths in
// the packages) and every shared library, or returns a reason they are
// not there.
func (in *inputs) debFiles(t *testing.T, pkgs, bins []string) ([]initramfs.File, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "debs")
	for _, pkg := range pkgs {
		debs, _ := filepath.Glob(filepath.Join(in.root, ".cache/debs", pkg+"_*.deb"))
		if len(debs) == 0 {
			return nil, fmt.Sprintf(".cache/debs has no %s: fetch %s with apt-get download", pkg, strings.Join(pkgs, " "))
		}
		if out, err := exec.Command("dpkg-deb", "-x", debs[len(debs)-1], dir).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", debs[0], err, out)
		}
	}
	var files []initramfs.File
	for _, top := range append(slices.Clone(bins), "lib", "lib64", "usr/lib") {
		err := filepath.WalkDir(filepath.Join(dir, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				files = append(files, initramfs.File{Path: rel, Type: entry.TypeSymlink, Linkname: target})
			case d.IsDir() && d.Name() == "gconv":
				return fs.SkipDir // iconv's modules: 8 MB nothing here loads
			case d.Type().IsRegular() && (strings.Contains(d.Name(), ".so") || slices.Contains(bins, rel)):
				files = append(files, initramfs.File{Path: rel, Src: p, Mode: 0o755})
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return files, ""
}

// boot starts one guest on the generic kernel.
func (in *inputs) boot(t *testing.T, name, initrd, cmdline string, links []qemu.Link) *qemu.VM {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(log); err == nil {
				t.Logf("%s's console:\n%s", name, b)
			}
		}
	})
	return qemu.StartT(t, qemu.Config{
		Options: qemu.Options{Kernel: in.vmlinuz, Initrd: initrd, Mem: "512M", Links: links, Monitor: len(links) > 0,
			Append: "console=ttyS0 panic=-1 quiet " + cmdline},
		SerialLog: log,
	})
}

// result is one guest's report: check name → "PASS detail" or
// "FAIL why", in the order reported.
var resultLine = regexp.MustCompile(`meshguest: (PASS|FAIL) ([a-z0-9-]+)(?::\s?(.*))?$`)

type report struct {
	names []string
	lines map[string][]string // name → "PASS …"/"FAIL …" lines
}

func readReport(vm *qemu.VM) report {
	r := report{lines: map[string][]string{}}
	for _, l := range vm.Tail(100000) {
		m := resultLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if _, ok := r.lines[m[2]]; !ok {
			r.names = append(r.names, m[2])
		}
		r.lines[m[2]] = append(r.lines[m[2]], m[1]+" "+m[3])
	}
	return r
}

// check makes a subtest of each wanted check: it passes only if the guest
// reported PASS for it and no FAIL. Checks the guest failed that are not
// in want fail the test too.
func (r report) check(t *testing.T, want []string) {
	t.Helper()
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			lines := r.lines[name]
			if len(lines) == 0 {
				t.Fatalf("the guest never reported %s (an earlier step failed?)", name)
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "FAIL") {
					t.Errorf("%s", l)
				} else {
					t.Logf("%s", l)
				}
			}
		})
	}
	for _, name := range r.names {
		for _, l := range r.lines[name] {
			if strings.HasPrefix(l, "FAIL") {
				t.Errorf("%s: %s", name, l)
			}
		}
	}
}

func expect(t *testing.T, vm *qemu.VM, timeout time.Duration, text string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	line, err := vm.Expect(ctx, text)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// TestWifi runs two mac80211_hwsim radios in one guest, the second in its
// own network namespace: capabilities and the mode choice, an open
// 802.11s mesh (peering, forwarding off, ping), an IBSS cell (each sees
// the other, ping), and SAE with wpa_supplicant (one key peers, two keys
// do not).
func TestWifi(t *testing.T) {
	in := prepare(t)
	wpa, missing := in.wpaFiles(t)
	cmdline := "meshguest.scenario=wifi meshguest.hwsim=radios=2"
	if missing != "" {
		cmdline += " meshguest.sae=off"
	}
	start := time.Now()
	vm := in.boot(t, "wifi", in.initrd(t, "wifi.cpio", wifiModules, wpa), cmdline, nil)
	expect(t, vm, 3*time.Minute, "meshguest: PASS wifi-netns")
	t.Logf("two radios up and the second in its namespace %.1fs after QEMU started", time.Since(start).Seconds())
	expect(t, vm, 4*time.Minute, "meshguest: DONE")
	t.Logf("the scenario took %.1fs in all", time.Since(start).Seconds())
	want := []string{"wifi-capabilities", "wifi-netns", "mesh-peer", "mesh-forwarding-off", "mesh-ping", "ibss-peer", "ibss-bssid", "ibss-ping"}
	if missing == "" {
		want = append(want, "sae-same-key", "sae-forwarding-off", "sae-ping", "sae-wrong-key")
	}
	readReport(vm).check(t, want)
	if missing != "" {
		t.Run("sae", func(t *testing.T) { testenv.Unavailable(t, missing) })
	}
}

// TestWifiManager runs two mesh managers (runtime/mesh.Manager, as byzd
// does, with the real babeld and wpa_supplicant) in one guest with two
// hwsim radios, the second manager in the namespace of the second radio:
// they read and configure their radios themselves; over an open 802.11s
// mesh they become babel neighbours and route to each other's mesh
// address (ping both ways); with one key SAE peers the radios and babel
// takes the routes; with two keys neither happens in 40 s; forced to
// ad-hoc (the Options.RadioCapabilities test seam masks mesh point out)
// they mesh again, the key protecting the routing only.
func TestWifiManager(t *testing.T) {
	in := prepare(t)
	cmdline := "meshguest.scenario=wifimgr meshguest.hwsim=radios=2"
	files, missing := in.debFiles(t, append(slices.Clone(wpaDebs), babeldDebs...), []string{"sbin/wpa_supplicant", "usr/sbin/babeld"})
	if missing != "" {
		// Without wpa_supplicant the keyed part is skipped (failed under
		// CI); without babeld there is nothing to test.
		var noBabeld string
		if files, noBabeld = in.debFiles(t, babeldDebs, []string{"usr/sbin/babeld"}); noBabeld != "" {
			testenv.Unavailable(t, noBabeld)
		}
		cmdline += " meshguest.sae=off"
	}
	start := time.Now()
	// The manager's netlink handle opens the route, xfrm and netfilter
	// families, and the guest cannot load their modules on demand.
	mods := append(slices.Clone(wifiModules), "xfrm_user", "nfnetlink")
	vm := in.boot(t, "wifimgr", in.initrd(t, "wifimgr.cpio", mods, files), cmdline, nil)
	expect(t, vm, 3*time.Minute, "meshguest: PASS wifimgr-mesh-ping")
	t.Logf("the open 802.11s mesh routed %.1fs after QEMU started", time.Since(start).Seconds())
	expect(t, vm, 5*time.Minute, "meshguest: DONE")
	t.Logf("the scenario took %.1fs in all", time.Since(start).Seconds())
	want := []string{"wifimgr-mesh-mode", "wifimgr-mesh-neighbours", "wifimgr-mesh-ping"}
	if missing == "" {
		want = append(want, "wifimgr-sae-mode", "wifimgr-sae-neighbours", "wifimgr-sae-ping", "wifimgr-sae-wrong-key")
	}
	want = append(want, "wifimgr-ibss-mode", "wifimgr-ibss-neighbours", "wifimgr-ibss-ping")
	readReport(vm).check(t, want)
	if missing != "" {
		t.Run("sae", func(t *testing.T) { testenv.Unavailable(t, missing) })
	}
}

// The batman-adv line: node 1 – node 2 – node 3, each link a QEMU UDP
// socket pair on 127.0.0.1. Each node's link MACs are fixed, so node 1
// knows whom to expect: node 2's first link (its primary interface, so
// its originator address) and node 3's only one.
func linkMAC(node, link int) string { return fmt.Sprintf("52:54:00:99:%02x:%02x", node, link) }

// TestBatadv boots three guests in a line, each setting bat0 up through
// batadv.Engine with a fixed bat0 MAC (02:ba:00:00:00:0N), and checks, on
// node 1: a ping to node 3 over bat0 through node 2; node 2 as the only
// neighbour and node 3 as an originator through it (and their nodeapi
// forms, and Engine.Status); node 3 as the gateway node 1 uses; node 3's
// and node 2's bat0 MACs in the global translation table, announced by
// their originators; a second Engine.Start that changes nothing; the
// entry for node 3 going when the test cuts the 2–3 link with the
// monitor, and coming back when it restores it; SetGateway on the
// running engine; a Start without eth0 releasing it and one with it
// taking it back; Engine.Stop removing bat0 and freeing the hard
// interfaces.
func TestBatadv(t *testing.T) {
	in := prepare(t)
	initrd := in.initrd(t, "batadv.cpio", []string{"virtio_pci", "virtio_net", "batman_adv"}, nil)
	ports := qemu.MustFreeUDPPorts(t, 4)
	ab1 := qemu.Link{ID: "ab", Local: ports[0], Peer: ports[1], MAC: linkMAC(1, 1)}
	ab2 := qemu.Link{ID: "ab", Local: ports[1], Peer: ports[0], MAC: linkMAC(2, 1)}
	bc2 := qemu.Link{ID: "bc", Local: ports[2], Peer: ports[3], MAC: linkMAC(2, 2)}
	bc3 := qemu.Link{ID: "bc", Local: ports[3], Peer: ports[2], MAC: linkMAC(3, 1)}
	start := time.Now()
	a := in.boot(t, "node1", initrd, fmt.Sprintf("meshguest.scenario=batadv meshguest.node=1 meshguest.gw=client meshguest.neigh=%s meshguest.orig=%s",
		linkMAC(2, 1), linkMAC(3, 1)), []qemu.Link{ab1})
	b := in.boot(t, "node2", initrd, "meshguest.scenario=batadv meshguest.node=2", []qemu.Link{ab2, bc2})
	c := in.boot(t, "node3", initrd, "meshguest.scenario=batadv meshguest.node=3 meshguest.gw=server", []qemu.Link{bc3})
	for i, vm := range []*qemu.VM{b, c} {
		expect(t, vm, 2*time.Minute, "meshguest: READY")
		t.Logf("node %d ready %.1fs after QEMU started", i+2, time.Since(start).Seconds())
	}
	expect(t, a, 3*time.Minute, "meshguest: WAIT cut")
	t.Logf("node 1 waits for the cut %.1fs after QEMU started", time.Since(start).Seconds())
	if out, err := b.Monitor("set_link bc off"); err != nil || out != "" {
		t.Fatalf("set_link bc off: %q, %v", out, err)
	}
	purge := os.Getenv("BYZ_MESHGUEST_PURGE") == "1" && !testing.Short()
	answer := "cut short\n"
	if purge {
		answer = "cut\n"
	}
	if err := a.Type(answer); err != nil {
		t.Fatal(err)
	}
	expect(t, a, 5*time.Minute, "meshguest: WAIT restore")
	if out, err := b.Monitor("set_link bc on"); err != nil || out != "" {
		t.Fatalf("set_link bc on: %q, %v", out, err)
	}
	if err := a.Type("restored\n"); err != nil {
		t.Fatal(err)
	}
	expect(t, a, 2*time.Minute, "meshguest: DONE")
	t.Logf("the scenario took %.1fs in all", time.Since(start).Seconds())
	want := []string{"batadv-setup", "batadv-ping", "batadv-tables", "batadv-gateway", "batadv-tt", "batadv-idempotent",
		"batadv-cut-stale", "batadv-restore", "batadv-restore-ping", "batadv-gw-switch", "batadv-release", "batadv-stop"}
	if purge {
		want = append(want, "batadv-cut")
	}
	readReport(a).check(t, want)
	for i, vm := range []*qemu.VM{b, c} {
		t.Run(fmt.Sprintf("node%d", i+2), func(t *testing.T) { readReport(vm).check(t, []string{"batadv-setup"}) })
	}
}

// oneDeb finds the newest cached .deb of a package (a glob), skipping or
// failing the test when there is none.
func oneDeb(t *testing.T, root, pkg string) string {
	t.Helper()
	pattern := filepath.Join(root, ".cache/debs", pkg+"_*.deb")
	debs, _ := filepath.Glob(pattern)
	// linux-image-*-amd64 also matches the cloud kernel: keep the generic.
	var keep []string
	for _, d := range debs {
		if !strings.Contains(filepath.Base(d), "-cloud-") {
			keep = append(keep, d)
		}
	}
	if len(keep) == 0 {
		testenv.RequireFile(t, pattern, "run make fetch")
	}
	return keep[len(keep)-1]
}

func repoRoot(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
