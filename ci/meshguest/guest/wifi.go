package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"byzantium/runtime/mesh/radio"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The wifi scenario's settings: channel 6 is open to beaconing in the
// world regulatory domain, which is all a guest without a regdb has.
const (
	meshID      = "byz-guest"
	wifiChannel = 6
	// Two radios, the second moved into its own network namespace so
	// that traffic between them crosses the simulated air instead of lo.
	addrA, addrB = "10.0.98.1", "10.0.98.2"
)

// nl80211 values the guest alone needs (linux/nl80211.h).
const (
	cmdSetWiphyNetns = 49  // NL80211_CMD_SET_WIPHY_NETNS
	attrWiphy        = 1   // NL80211_ATTR_WIPHY
	attrNetnsFD      = 219 // NL80211_ATTR_NETNS_FD
)

// peer is one radio: its interface, in which namespace.
type peer struct {
	name   string
	ifname string
	mac    net.HardwareAddr
	ns     netns.NsHandle // -1: the initial namespace
}

var initNS netns.NsHandle

// in runs f on a thread switched into ns (the initial namespace when ns
// is -1). Netlink sockets and child processes made in f belong to ns.
func in(ns netns.NsHandle, f func() error) error {
	if ns == -1 {
		ns = initNS
	}
	runtime.LockOSThread()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace: %w", err)
	}
	err := f()
	if rerr := netns.Set(initNS); rerr != nil {
		// Leave the thread locked: Go ends it with this goroutine
		// rather than run others in the wrong namespace.
		return fmt.Errorf("back to the initial namespace: %w", rerr)
	}
	runtime.UnlockOSThread()
	return err
}

func wifi(sae bool) {
	var err error
	if initNS, err = netns.Get(); err != nil {
		fail("wifi-setup", err)
		return
	}
	c, err := radio.Open()
	if err != nil {
		fail("wifi-setup", err)
		return
	}
	a, b, err := wifiRadios(c)
	if err != nil {
		fail("wifi-capabilities", err)
		return
	}
	if err := moveToNewNS(c, b); err != nil {
		fail("wifi-netns", err)
		return
	}
	pass("wifi-netns", "%s (%s) moved into its own network namespace", b.name, b.ifname)

	if err := meshPoint(c, a, b); err != nil {
		fail("mesh-point", err)
	}
	if err := ibss(c, a, b); err != nil {
		fail("ibss", err)
	}
	if sae {
		saeScenario(c, a, b)
	}
}

// wifiRadios reads both hwsim radios' capabilities and checks that the
// mode choice on the real kernel's report is 802.11s.
func wifiRadios(c *radio.Client) (a, b *peer, err error) {
	caps, err := c.Wiphys("")
	if err != nil {
		return nil, nil, err
	}
	if len(caps) != 2 {
		return nil, nil, fmt.Errorf("%d wiphys, want the 2 radios of mac80211_hwsim radios=2", len(caps))
	}
	s := radio.Settings{SSID: meshID, Channel: wifiChannel}
	var peers []*peer
	for _, cp := range caps {
		mode, reason := radio.ChooseMode(cp, s)
		if mode != radio.ModeMeshPoint {
			return nil, nil, fmt.Errorf("%s (driver %q): mode %s (%s), want %s", cp.Name, cp.Driver, mode, reason, radio.ModeMeshPoint)
		}
		if cp.Driver != "mac80211_hwsim" {
			return nil, nil, fmt.Errorf("%s: driver %q from sysfs, want mac80211_hwsim", cp.Name, cp.Driver)
		}
		if !cp.SAE() {
			return nil, nil, fmt.Errorf("%s: no NL80211_FEATURE_SAE, which mac80211 always sets", cp.Name)
		}
		ifname, mac, err := wiphyInterface(c, cp.Wiphy)
		if err != nil {
			return nil, nil, err
		}
		pass("wifi-capabilities", "%s driver %s, %d iftypes, %d channels: %s %s", cp.Name, cp.Driver, len(cp.Iftypes), len(cp.Freqs), mode, reason)
		peers = append(peers, &peer{name: cp.Name, ifname: ifname, mac: mac, ns: -1})
	}
	return peers[0], peers[1], nil
}

// wiphyInterface finds the interface hwsim made for a wiphy.
func wiphyInterface(c *radio.Client, wiphy int) (string, net.HardwareAddr, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return "", nil, err
	}
	for _, l := range links {
		if !strings.HasPrefix(l.Attrs().Name, "wlan") {
			continue
		}
		w, err := c.InterfaceWiphy(l.Attrs().Index)
		if err != nil {
			return "", nil, err
		}
		if w == wiphy {
			return l.Attrs().Name, l.Attrs().HardwareAddr, nil
		}
	}
	return "", nil, fmt.Errorf("no wlan interface on wiphy %d", wiphy)
}

// moveToNewNS makes a network namespace and moves p's wiphy (with its
// interface) there with NL80211_CMD_SET_WIPHY_NETNS.
func moveToNewNS(c *radio.Client, p *peer) error {
	runtime.LockOSThread()
	ns, err := netns.New() // unshares this thread into the new namespace
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("new namespace: %w", err)
	}
	if err := netns.Set(initNS); err != nil {
		// The thread is stuck elsewhere; keep it locked so that Go ends it.
		return fmt.Errorf("back to the initial namespace: %w", err)
	}
	runtime.UnlockOSThread()
	var wiphy int
	if _, err := fmt.Sscanf(p.name, "phy%d", &wiphy); err != nil {
		return fmt.Errorf("wiphy of %s: %w", p.name, err)
	}
	fam, err := netlink.GenlFamilyGet("nl80211")
	if err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_ACK)
	req.AddData(&nl.Genlmsg{Command: cmdSetWiphyNetns, Version: 1})
	req.AddData(nl.NewRtAttr(attrWiphy, nl.Uint32Attr(uint32(wiphy))))
	req.AddData(nl.NewRtAttr(attrNetnsFD, nl.Uint32Attr(uint32(ns))))
	if _, err := req.Execute(unix.NETLINK_GENERIC, 0); err != nil {
		return fmt.Errorf("set wiphy %d netns: %w", wiphy, err)
	}
	p.ns = ns
	return in(ns, func() error {
		if _, err := netlink.LinkByName(p.ifname); err != nil {
			return fmt.Errorf("%s not in the new namespace: %w", p.ifname, err)
		}
		return nil
	})
}

// configure runs radio.Configure on p in its namespace and gives it addr.
func configure(c *radio.Client, p *peer, mode radio.Mode, s radio.Settings, addr string) (joined bool, err error) {
	err = in(p.ns, func() error {
		var err error
		if joined, err = c.Configure(p.ifname, mode, s); err != nil {
			return err
		}
		l, err := netlink.LinkByName(p.ifname)
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr(addr + "/24")
		if err := netlink.AddrReplace(l, a); err != nil {
			return fmt.Errorf("%s: address %s: %w", p.ifname, addr, err)
		}
		return nil
	})
	return joined, err
}

// stationOf returns p's station entry for the MAC other, if any.
func stationOf(c *radio.Client, p *peer, other net.HardwareAddr) (radio.Station, bool, error) {
	var st []radio.Station
	err := in(p.ns, func() error {
		l, err := netlink.LinkByName(p.ifname)
		if err != nil {
			return err
		}
		st, err = c.Stations(l.Attrs().Index)
		return err
	})
	if err != nil {
		return radio.Station{}, false, err
	}
	for _, s := range st {
		if s.MAC.String() == other.String() {
			return s, true, nil
		}
	}
	return radio.Station{}, false, nil
}

// waitPeers waits until each radio lists the other as a station, in
// plink state ESTAB when mesh is set.
func waitPeers(c *radio.Client, a, b *peer, mesh bool, timeout time.Duration) (time.Duration, error) {
	return waitFor(timeout, 250*time.Millisecond, func() error {
		for _, pr := range [][2]*peer{{a, b}, {b, a}} {
			s, ok, err := stationOf(c, pr[0], pr[1].mac)
			switch {
			case err != nil:
				return err
			case !ok:
				return fmt.Errorf("%s has no station %s", pr[0].ifname, pr[1].mac)
			case mesh && (!s.HasPlink || s.PlinkState != radio.PlinkEstab):
				return fmt.Errorf("%s's station %s is in plink state %d, not ESTAB (%d)", pr[0].ifname, pr[1].mac, s.PlinkState, radio.PlinkEstab)
			}
		}
		return nil
	})
}

// meshForwarding reads p's mesh forwarding setting.
func meshForwarding(c *radio.Client, p *peer) (radio.MeshConfig, error) {
	var mc radio.MeshConfig
	err := in(p.ns, func() error {
		l, err := netlink.LinkByName(p.ifname)
		if err != nil {
			return err
		}
		mc, err = c.MeshConfig(l.Attrs().Index)
		return err
	})
	return mc, err
}

// pingAB pings b from a's namespace (the initial one) over the air.
func pingAB() (time.Duration, error) {
	return waitFor(20*time.Second, 500*time.Millisecond, func() error { return ping(addrB, 1) })
}

func meshPoint(c *radio.Client, a, b *peer) error {
	s := radio.Settings{SSID: meshID, Channel: wifiChannel}
	for _, p := range []*peer{a, b} {
		addr := map[*peer]string{a: addrA, b: addrB}[p]
		joined, err := configure(c, p, radio.ModeMeshPoint, s, addr)
		if err != nil {
			return err
		}
		if !joined {
			return fmt.Errorf("%s: Configure says not joined on an open mesh", p.ifname)
		}
	}
	took, err := waitPeers(c, a, b, true, 30*time.Second)
	if err != nil {
		return fmt.Errorf("peering: %w", err)
	}
	pass("mesh-peer", "%s and %s are 802.11s peers (plink ESTAB both ways) %.1fs after joining", a.ifname, b.ifname, took.Seconds())
	for _, p := range []*peer{a, b} {
		mc, err := meshForwarding(c, p)
		if err != nil {
			return err
		}
		if !mc.HasForwarding || mc.Forwarding {
			return fmt.Errorf("%s: mesh config %+v, want forwarding reported and off", p.ifname, mc)
		}
	}
	pass("mesh-forwarding-off", "NL80211_MESHCONF_FORWARDING is 0 on both")
	took, err = pingAB()
	if err != nil {
		return err
	}
	pass("mesh-ping", "%s pings %s across the mesh (%.1fs)", addrA, addrB, took.Seconds())
	return nil
}

func ibss(c *radio.Client, a, b *peer) error {
	for _, p := range []*peer{a, b} {
		if err := in(p.ns, func() error {
			l, err := netlink.LinkByName(p.ifname)
			if err != nil {
				return err
			}
			return c.LeaveMesh(l.Attrs().Index)
		}); err != nil {
			return err
		}
	}
	s := radio.Settings{SSID: meshID, Channel: wifiChannel}
	for _, p := range []*peer{a, b} {
		addr := map[*peer]string{a: addrA, b: addrB}[p]
		joined, err := configure(c, p, radio.ModeIBSS, s, addr)
		if err != nil {
			return err
		}
		if !joined {
			return fmt.Errorf("%s: Configure says not joined in ad-hoc", p.ifname)
		}
	}
	took, err := waitPeers(c, a, b, false, 30*time.Second)
	if err != nil {
		return fmt.Errorf("ad-hoc cell: %w", err)
	}
	pass("ibss-peer", "%s and %s see each other in the ad-hoc cell %q (BSSID %s) %.1fs after joining",
		a.ifname, b.ifname, meshID, radio.IBSSBSSID(meshID, wifiChannel), took.Seconds())
	want := radio.IBSSBSSID(meshID, wifiChannel)
	mhz, _ := radio.ChannelFreq(wifiChannel)
	for _, p := range []*peer{a, b} {
		var cell radio.JoinedCell
		var ok bool
		if err := in(p.ns, func() error {
			l, err := netlink.LinkByName(p.ifname)
			if err != nil {
				return err
			}
			cell, ok, err = c.JoinedCell(l.Attrs().Index)
			return err
		}); err != nil {
			return err
		}
		if !ok || cell.BSSID.String() != want.String() || cell.MHz != mhz {
			return fmt.Errorf("%s: joined cell %v on %d MHz (found %v), want the derived BSSID %s on %d MHz", p.ifname, cell.BSSID, cell.MHz, ok, want, mhz)
		}
	}
	pass("ibss-bssid", "both radios are in cell %s on %d MHz, the BSSID derived from SSID and channel", want, mhz)
	took, err = pingAB()
	if err != nil {
		return err
	}
	pass("ibss-ping", "%s pings %s in the ad-hoc cell (%.1fs)", addrA, addrB, took.Seconds())
	for _, p := range []*peer{a, b} {
		if err := in(p.ns, func() error {
			l, err := netlink.LinkByName(p.ifname)
			if err != nil {
				return err
			}
			return c.LeaveIBSS(l.Attrs().Index)
		}); err != nil {
			return err
		}
	}
	return nil
}

// saeScenario runs wpa_supplicant (SAE) on both radios: first with the
// same key, which must make them peers, then with different keys, which
// must not.
func saeScenario(c *radio.Client, a, b *peer) {
	if _, err := os.Stat("/sbin/wpa_supplicant"); err != nil {
		fail("sae", fmt.Errorf("no wpa_supplicant in this initramfs: %w", err))
		return
	}
	s := radio.Settings{SSID: meshID, Channel: wifiChannel, Keyed: true}
	for _, p := range []*peer{a, b} {
		addr := map[*peer]string{a: addrA, b: addrB}[p]
		joined, err := configure(c, p, radio.ModeMeshPoint, s, addr)
		if err != nil {
			fail("sae", err)
			return
		}
		if joined {
			fail("sae", fmt.Errorf("%s: Configure joined a keyed mesh itself", p.ifname))
			return
		}
	}
	stop, _, err := startSupplicants(a, b, "correct horse", "correct horse")
	if err != nil {
		fail("sae-same-key", err)
		return
	}
	took, err := waitPeers(c, a, b, true, 90*time.Second)
	if err != nil {
		fail("sae-same-key", fmt.Errorf("peering with the same key: %w", err))
	} else {
		pass("sae-same-key", "wpa_supplicant peers the radios with one key (SAE, AMPE) in %.1fs", took.Seconds())
		if mc, err := meshForwarding(c, a); err != nil || !mc.HasForwarding || mc.Forwarding {
			fail("sae-forwarding-off", fmt.Errorf("mesh config %+v, %v: want forwarding off (mesh_fwding=0)", mc, err))
		} else {
			pass("sae-forwarding-off", "mesh_fwding=0 holds with wpa_supplicant joining")
		}
		if took, err := pingAB(); err != nil {
			fail("sae-ping", err)
		} else {
			pass("sae-ping", "%s pings %s over the SAE mesh (%.1fs)", addrA, addrB, took.Seconds())
		}
	}
	stop()

	stop, said, err := startSupplicants(a, b, "correct horse", "wrong horse")
	if err != nil {
		fail("sae-wrong-key", err)
		return
	}
	defer stop()
	// The radios must hear each other and be refused (wpa_supplicant's
	// MESH-SAE-AUTH-FAILURE; SAE's group math is slow under TCG, the same
	// key took up to 17 s to peer), and no peer link may come up, neither
	// before that nor in the retries of the 10 s after.
	start := time.Now()
	var refusedAt time.Duration
	for refusedAt == 0 || time.Since(start) < refusedAt+10*time.Second {
		if refusedAt == 0 && strings.Contains(said(), "MESH-SAE-AUTH-FAILURE") {
			refusedAt = time.Since(start)
		}
		if refusedAt == 0 && time.Since(start) > 90*time.Second {
			fail("sae-wrong-key", errors.New("wpa_supplicant reported no MESH-SAE-AUTH-FAILURE in 90s: did the radios hear each other at all?"))
			return
		}
		for _, pr := range [][2]*peer{{a, b}, {b, a}} {
			st, ok, err := stationOf(c, pr[0], pr[1].mac)
			if err != nil {
				fail("sae-wrong-key", err)
				return
			}
			if ok && st.HasPlink && st.PlinkState == radio.PlinkEstab {
				fail("sae-wrong-key", fmt.Errorf("%s peered with %s although their keys differ", pr[0].ifname, pr[1].ifname))
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := ping(addrB, 2); err == nil {
		fail("sae-wrong-key", errors.New("the radios with different keys ping each other"))
		return
	}
	pass("sae-wrong-key", "different keys: SAE refused (MESH-SAE-AUTH-FAILURE) %.1fs after start, no ESTAB peer link in %.1fs, no ping",
		refusedAt.Seconds(), time.Since(start).Seconds())
}

// logBuffer collects the supplicants' output while it goes to the
// console.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return os.Stdout.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startSupplicants runs wpa_supplicant on a with keyA and on b (in its
// namespace) with keyB; stop ends both, said returns what they printed.
func startSupplicants(a, b *peer, keyA, keyB string) (stop func(), said func() string, err error) {
	var cmds []*exec.Cmd
	out := &logBuffer{}
	stop = func() {
		for _, cmd := range cmds {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		time.Sleep(500 * time.Millisecond)
	}
	for i, pk := range []struct {
		p   *peer
		key string
	}{{a, keyA}, {b, keyB}} {
		conf, err := radio.WPASupplicantMeshConfig(fmt.Sprintf("/run/wpa%d", i), meshID, wifiChannel, pk.key)
		if err != nil {
			stop()
			return nil, nil, err
		}
		path := fmt.Sprintf("/tmp/wpa%d.conf", i)
		if err := os.WriteFile(path, conf, 0o600); err != nil {
			stop()
			return nil, nil, err
		}
		cmd := exec.Command("/sbin/wpa_supplicant", "-i", pk.p.ifname, "-D", "nl80211", "-c", path)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = []string{"LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"}
		if err := in(pk.p.ns, cmd.Start); err != nil {
			stop()
			return nil, nil, fmt.Errorf("wpa_supplicant on %s: %w", pk.p.ifname, err)
		}
		cmds = append(cmds, cmd)
	}
	return stop, out.String, nil
}
