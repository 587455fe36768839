package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"byzantium/runtime/mesh"
	"byzantium/runtime/mesh/babel"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/mesh/radio"
	"byzantium/runtime/nodeapi"
)

// The wifimgr scenario runs two mesh managers (runtime/mesh.Manager, as
// byzd does) with the real babeld and wpa_supplicant: #1 in the initial
// namespace with radio 0, #2 with System.NS the namespace that holds
// radio 1's wiphy. The managers read, choose and configure the radios
// themselves; the scenario only changes their settings with Apply.

const (
	babeldPath     = "/usr/sbin/babeld"
	supplicantPath = "/sbin/wpa_supplicant"
	// libEnv: the initramfs has no ld.so cache.
	libEnv = "LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"
)

// nsExec is the guest program's other life: "/init nsexec ARGV…" with a
// network namespace open on fd 3 enters it and executes ARGV, so that a
// supervisor (which starts its command itself) runs babeld and
// wpa_supplicant in manager #2's namespace.
func nsExec(argv []string) {
	runtime.LockOSThread()
	if err := unix.Setns(3, unix.CLONE_NEWNET); err != nil {
		fmt.Fprintf(os.Stderr, "nsexec: setns: %v\n", err)
		os.Exit(126)
	}
	unix.Close(3)
	err := unix.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(os.Stderr, "nsexec: exec %s: %v\n", argv[0], err)
	os.Exit(127)
}

func plainLaunch(_ context.Context, argv []string) (*exec.Cmd, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{libEnv}
	return cmd, nil
}

func nsLaunch(ns netns.NsHandle) babel.Launcher {
	return func(_ context.Context, argv []string) (*exec.Cmd, error) {
		fd, err := unix.Dup(int(ns))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("/init", append([]string{"nsexec"}, argv...)...)
		cmd.Env = []string{libEnv}
		cmd.ExtraFiles = []*os.File{os.NewFile(uintptr(fd), "netns")}
		return cmd, nil
	}
}

// node is one manager and its radio.
type node struct {
	name string
	m    *mesh.Manager
	p    *peer
}

func wifiManagers(sae bool) {
	var err error
	if initNS, err = netns.Get(); err != nil {
		fail("wifimgr-setup", err)
		return
	}
	for _, p := range []string{babeldPath, supplicantPath} {
		if _, err := os.Stat(p); err != nil && (p == babeldPath || sae) {
			fail("wifimgr-setup", fmt.Errorf("not in this initramfs: %w", err))
			return
		}
	}
	c, err := radio.Open()
	if err != nil {
		fail("wifimgr-setup", err)
		return
	}
	a, b, err := wifiRadios(c)
	if err != nil {
		fail("wifimgr-setup", err)
		return
	}
	if err := moveToNewNS(c, b); err != nil {
		fail("wifimgr-setup", err)
		return
	}
	// The test seam: with forceIBSS set, the cards' mesh point is masked
	// out, so the managers choose ad-hoc on their next configuration.
	var forceIBSS atomic.Bool
	mask := func(_ string, caps *radio.Capabilities) {
		if forceIBSS.Load() {
			caps.Iftypes = slices.DeleteFunc(caps.Iftypes, func(t int) bool { return t == radio.IftypeMeshPoint })
		}
	}
	s := meshcfg.Defaults()
	s.SSID, s.Channel, s.Share = meshID, wifiChannel, nodeapi.ShareOff
	var nodes []*node
	for i, p := range []*peer{a, b} {
		name := fmt.Sprintf("m%d", i+1)
		opt := mesh.Options{
			StateDir: "/tmp/" + name + "/state", RunDir: "/tmp/" + name + "/run",
			Logf:   func(f string, args ...any) { logf(name+": "+f, args...) },
			Launch: plainLaunch, Babeld: babeldPath,
			Supplicant: supplicantPath, RadioCapabilities: mask,
		}
		if sae {
			opt.LaunchSupplicant = plainLaunch
		}
		if p.ns != -1 {
			ifname := p.ifname
			opt.System = &mesh.System{NS: p.ns}
			// Its sysfs is the initial namespace's: say which link is
			// the radio.
			opt.Wireless = func(n string) bool { return n == ifname }
			opt.Launch = nsLaunch(p.ns)
			if sae {
				opt.LaunchSupplicant = nsLaunch(p.ns)
			}
		}
		m, err := mesh.New(opt, s)
		if err != nil {
			fail("wifimgr-setup", err)
			return
		}
		nodes = append(nodes, &node{name: name, m: m, p: p})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.m.Run(ctx); err != nil {
				fail("wifimgr-setup", fmt.Errorf("%s: %w", n.name, err))
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait() // babeld and wpa_supplicant stopped before the power goes
	}()
	n1, n2 := nodes[0], nodes[1]
	apply := func(k1, k2 string, change func(*nodeapi.MeshSettings)) error {
		for i, n := range nodes {
			ns := s
			ns.Key = []string{k1, k2}[i]
			if change != nil {
				change(&ns)
			}
			if err := n.m.Apply(ns); err != nil {
				return err
			}
		}
		return nil
	}

	// An open 802.11s mesh, configured by the managers from the defaults.
	if err := joined(c, n1, n2, "mesh-point", "802.11s mesh point on channel 6", false, "wifimgr-mesh"); err != nil {
		fail("wifimgr-mesh", err)
		return
	}
	if sae {
		// One key: SAE peers the radios, babel's HMAC takes the routes.
		if err := apply("correct horse", "correct horse", nil); err != nil {
			fail("wifimgr-sae", err)
			return
		}
		if err := joined(c, n1, n2, "mesh-point", "the mesh key is used for SAE (wpa_supplicant)", true, "wifimgr-sae"); err != nil {
			fail("wifimgr-sae", err)
		}
		// Two keys: no peer link, no babel neighbour.
		if err := apply("left horse", "right horse", nil); err != nil {
			fail("wifimgr-sae-wrong-key", err)
			return
		}
		if err := apart(c, n1, n2, 40*time.Second); err != nil {
			fail("wifimgr-sae-wrong-key", err)
		}
	}
	// Ad-hoc, forced through the seam; a key, which there protects the
	// routing only.
	forceIBSS.Store(true)
	if err := apply("ibss horse", "ibss horse", func(s *nodeapi.MeshSettings) { s.SSID = meshID + "-ibss" }); err != nil {
		fail("wifimgr-ibss", err)
		return
	}
	if err := joined(c, n1, n2, "ibss", "babel's HMAC keeps strangers' routes out", false, "wifimgr-ibss"); err != nil {
		fail("wifimgr-ibss", err)
	}
}

// radioOf is n's radio as its manager reports it.
func radioOf(n *node) (nodeapi.MeshInterface, bool) {
	for _, i := range n.m.Status().Interfaces {
		if i.Name == n.p.ifname {
			return i, true
		}
	}
	return nodeapi.MeshInterface{}, false
}

// neighbourOn says whether n's babeld has a neighbour on its radio.
func neighbourOn(st nodeapi.Mesh, ifname string) bool {
	for _, nb := range st.Neighbours {
		if nb.Interface == ifname {
			return true
		}
	}
	return false
}

// routeTo says whether st has an installed route to addr.
func routeTo(st nodeapi.Mesh, addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	for _, r := range st.Routes {
		p, err := netip.ParsePrefix(r.Prefix)
		if err == nil && r.Installed && p.Bits() > 0 && p.Contains(a) {
			return true
		}
	}
	return false
}

// joined waits for both managers to report their radio in mode with a
// reason containing reason, to be babel neighbours over it and to route
// to each other's mesh address, then pings both ways; estab also wants
// the 802.11s peer link ESTAB both ways (SAE done).
func joined(c *radio.Client, n1, n2 *node, mode, reason string, estab bool, check string) error {
	start := time.Now()
	took, err := waitFor(60*time.Second, 500*time.Millisecond, func() error {
		for _, n := range []*node{n1, n2} {
			mi, ok := radioOf(n)
			switch {
			case !ok:
				return fmt.Errorf("%s reports no %s", n.name, n.p.ifname)
			case mi.Mode != mode || !mi.Meshing || !strings.Contains(mi.Reason, reason):
				return fmt.Errorf("%s reports %s as %+v, want mode %s meshing with %q in the reason", n.name, n.p.ifname, mi, mode, reason)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	mi, _ := radioOf(n1)
	pass(check+"-mode", "both managers configured their radio %.1fs after the settings: %s: %s", took.Seconds(), mi.Mode, mi.Reason)
	a1, a2 := n1.m.Status().Addresses.IPv4, n2.m.Status().Addresses.IPv4
	took, err = waitFor(90*time.Second, 500*time.Millisecond, func() error {
		for _, pr := range [][2]*node{{n1, n2}, {n2, n1}} {
			st := pr[0].m.Status()
			other := pr[1].m.Status().Addresses.IPv4
			switch {
			case !neighbourOn(st, pr[0].p.ifname):
				return fmt.Errorf("%s: no babel neighbour on %s (%s)", pr[0].name, pr[0].p.ifname, st.Summary)
			case !routeTo(st, other):
				return fmt.Errorf("%s: no installed route to %s's %s (%s)", pr[0].name, pr[1].name, other, st.Summary)
			}
		}
		if estab {
			for _, pr := range [][2]*peer{{n1.p, n2.p}, {n2.p, n1.p}} {
				s, ok, err := stationOf(c, pr[0], pr[1].mac)
				switch {
				case err != nil:
					return err
				case !ok || !s.HasPlink || s.PlinkState != radio.PlinkEstab:
					return fmt.Errorf("%s: no ESTAB peer link with %s", pr[0].ifname, pr[1].mac)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	extra := ""
	if estab {
		extra = ", 802.11s peer links ESTAB both ways (wpa_supplicant did SAE)"
	}
	pass(check+"-neighbours", "babel neighbours over %s/%s, each routing to the other's %s / %s%s, %.1fs after the radios were set up (%.1fs in all)",
		n1.p.ifname, n2.p.ifname, a1, a2, extra, took.Seconds(), time.Since(start).Seconds())
	took, err = waitFor(20*time.Second, 500*time.Millisecond, func() error {
		if err := ping(a2, 1); err != nil {
			return fmt.Errorf("m1 → m2: %w", err)
		}
		return in(n2.p.ns, func() error {
			if err := ping(a1, 1); err != nil {
				return fmt.Errorf("m2 → m1: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	pass(check+"-ping", "m1 pings m2's %s and m2 pings m1's %s through babeld's routes (%.1fs)", a2, a1, took.Seconds())
	return nil
}

// apart checks, over a fair wait, that managers with different keys
// never become babel neighbours and their radios never peer.
func apart(c *radio.Client, n1, n2 *node, wait time.Duration) error {
	_, err := waitFor(30*time.Second, 500*time.Millisecond, func() error {
		for _, n := range []*node{n1, n2} {
			if mi, _ := radioOf(n); mi.Mode != "mesh-point" || !strings.Contains(mi.Reason, "SAE") {
				return fmt.Errorf("%s: %+v, want a keyed mesh point", n.name, mi)
			}
			if state, _, _ := n.m.EngineStarts(); state != babel.StateRunning {
				return fmt.Errorf("%s: babeld %s", n.name, state)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The manager's monitor may show the former babeld's last
	// neighbour events for a moment after the restart, until it reads
	// the new babeld's dump; a neighbour the new keys allowed would
	// appear within a few hellos and stay, so the wait below still sees
	// it.
	time.Sleep(5 * time.Second)
	start := time.Now()
	heard := false
	for time.Since(start) < wait {
		for _, pr := range [][2]*node{{n1, n2}, {n2, n1}} {
			if st := pr[0].m.Status(); len(st.Neighbours) > 0 {
				return fmt.Errorf("%s has babel neighbours %+v although the keys differ", pr[0].name, st.Neighbours)
			}
			s, ok, err := stationOf(c, pr[0].p, pr[1].p.mac)
			if err != nil {
				return err
			}
			heard = heard || ok
			if ok && s.HasPlink && s.PlinkState == radio.PlinkEstab {
				return fmt.Errorf("%s peered with %s although the keys differ", pr[0].p.ifname, pr[1].p.ifname)
			}
		}
		time.Sleep(time.Second)
	}
	if err := ping(n2.m.Status().Addresses.IPv4, 2); err == nil {
		return errors.New("m1 pings m2 although the keys differ")
	}
	said := "no station entry for the other radio (not heard, or refused before one was made)"
	if heard {
		said = "each radio saw the other as a station, never ESTAB"
	}
	pass("wifimgr-sae-wrong-key", "different keys: no babel neighbour, no 802.11s peer link, no ping in %.0fs; %s", time.Since(start).Seconds(), said)
	return nil
}
