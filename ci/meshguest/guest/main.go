// Command guest is the whole userland of the QEMU guests ci/meshguest
// boots: it runs as PID 1 on Debian's generic kernel, loads the modules
// the test put in the initramfs, runs the scenario the kernel command line
// names against the real cfg80211, mac80211_hwsim and batman-adv, and
// reports each check on the console as
//
//	meshguest: PASS <name>[: detail]
//	meshguest: FAIL <name>: <why>
//
// then "meshguest: DONE" and powers off. The test on the host reads these
// lines; the program decides nothing the test cannot see.
//
// Kernel command line:
//
//	meshguest.scenario=wifi|wifimgr|batadv
//	meshguest.node=N            (batadv: this node's number, 1..3)
//	meshguest.neigh=MAC         (batadv, node 1: the neighbour to see)
//	meshguest.orig=MAC          (batadv, node 1: the originator two hops away)
//	meshguest.gw=server|client  (batadv)
//	meshguest.hwsim=PARAMS      (parameters for mac80211_hwsim, "radios=2")
//	meshguest.sae=off           (wifi, wifimgr: no wpa_supplicant in this initramfs)
//
// As "/init nsexec ARGV…" (a child, not PID 1) it runs ARGV in the
// network namespace open on its fd 3: the wifimgr scenario's launcher for
// the manager in a namespace.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// modulesList is where initramfs.ModuleFiles puts the load order
// (overlays.ModuleListPath).
const modulesList = "/etc/byz/modules.load"

var failed int

func pass(name, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if detail != "" {
		detail = ": " + detail
	}
	fmt.Printf("meshguest: PASS %s%s\n", name, detail)
}

func fail(name string, err error) {
	failed++
	fmt.Printf("meshguest: FAIL %s: %v\n", name, err)
}

func logf(format string, args ...any) {
	fmt.Printf("meshguest: "+format+"\n", args...)
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "nsexec" {
		nsExec(os.Args[2:]) // does not return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "meshguest: not PID 1; this program is a QEMU guest's init")
		os.Exit(2)
	}
	defer powerOff()
	if err := setup(); err != nil {
		fail("boot", err)
		return
	}
	args, err := cmdline()
	if err != nil {
		fail("boot", err)
		return
	}
	if err := loadModules(args["meshguest.hwsim"]); err != nil {
		fail("modules", err)
		return
	}
	switch s := args["meshguest.scenario"]; s {
	case "wifi":
		wifi(args["meshguest.sae"] != "off")
	case "wifimgr":
		wifiManagers(args["meshguest.sae"] != "off")
	case "batadv":
		batadvScenario(args)
	default:
		fail("boot", fmt.Errorf("unknown scenario %q", s))
	}
}

// setup mounts what the kernel interfaces need and readies lo.
func setup() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"},
		{"sys", "/sys", "sysfs"},
		{"dev", "/dev", "devtmpfs"},
		{"run", "/run", "tmpfs"},
		{"tmp", "/tmp", "tmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.typ, m.dst, err)
		}
	}
	if err := os.MkdirAll("/var/run", 0o755); err != nil {
		return err
	}
	return run("/bin/busybox", "ip", "link", "set", "lo", "up")
}

// cmdline returns the kernel command line's key=value words.
func cmdline() (map[string]string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	args := map[string]string{}
	for _, w := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(w, "=")
		args[k] = v
	}
	return args, nil
}

// loadModules loads the initramfs's modules in the listed order (a
// Closure: dependencies first) with finit_module; mac80211_hwsim gets
// hwsimParams.
func loadModules(hwsimParams string) error {
	f, err := os.Open(modulesList)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		params := ""
		if strings.TrimSuffix(filepath.Base(p), ".ko") == "mac80211_hwsim" {
			params = hwsimParams
		}
		if err := insmod("/"+p, params); err != nil {
			return err
		}
	}
	return sc.Err()
}

func insmod(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	switch err := unix.FinitModule(int(f.Fd()), params, 0); err {
	case nil, unix.EEXIST:
	case unix.ENODEV:
		// One of an alias's alternatives for hardware this CPU lacks
		// (crc32c-intel under TCG): the closure brings the generic one too.
		logf("%s: no such device here, skipped", filepath.Base(path))
	default:
		return fmt.Errorf("insmod %s %s: %w", path, params, err)
	}
	return nil
}

// run runs a command, its output on the console.
func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// ping sends count pings to addr and says whether one came back.
func ping(addr string, count int) error {
	out, err := exec.Command("/bin/busybox", "ping", "-c", fmt.Sprint(count), "-W", "2", addr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s: %w: %s", addr, err, lastLine(out))
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// waitFor polls check every interval until it returns nil or timeout
// passes, and returns how long it took or the last error.
func waitFor(timeout, interval time.Duration, check func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

func powerOff() {
	if failed == 0 {
		fmt.Println("meshguest: DONE all passed")
	} else {
		fmt.Printf("meshguest: DONE %d failed\n", failed)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	time.Sleep(time.Hour) // not select{}: PID 1 must not exit
}
