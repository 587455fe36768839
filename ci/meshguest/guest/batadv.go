package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"byzantium/runtime/mesh/batadv"

	"github.com/vishvananda/netlink"
)

// batadvScenario joins every Ethernet link of this guest into bat0 and,
// on node 1, checks the mesh across the line 1–2–3: ping node 3 through
// node 2, the tables, the gateway, and the originator entry's fate when
// the test cuts and restores the 2–3 link (it says so on the console).
func batadvScenario(args map[string]string) {
	node := args["meshguest.node"]
	c, meshIdx, err := batadvSetup(node, args["meshguest.gw"])
	if err != nil {
		fail("batadv-setup", err)
		return
	}
	pass("batadv-setup", "node %s: bat0 (index %d) up with 10.0.99.%s/24", node, meshIdx, node)
	if node != "1" {
		// Nodes 2 and 3 only carry the mesh; the test ends them.
		logf("READY node %s", node)
		for {
			// Not select{}: with no other goroutine Go calls that a
			// deadlock, and PID 1 exiting panics the kernel.
			time.Sleep(time.Hour)
		}
	}
	neigh, err := net.ParseMAC(args["meshguest.neigh"])
	if err != nil {
		fail("batadv-setup", fmt.Errorf("meshguest.neigh: %w", err))
		return
	}
	orig, err := net.ParseMAC(args["meshguest.orig"])
	if err != nil {
		fail("batadv-setup", fmt.Errorf("meshguest.orig: %w", err))
		return
	}
	far := "10.0.99.3"

	took, err := waitFor(90*time.Second, time.Second, func() error { return ping(far, 1) })
	if err != nil {
		fail("batadv-ping", err)
		return
	}
	pass("batadv-ping", "node 1 pings %s over bat0 through node 2, %.1fs after bat0 came up", far, took.Seconds())

	if err := checkTables(c, meshIdx, neigh, orig); err != nil {
		fail("batadv-tables", err)
	}
	took, err = waitFor(60*time.Second, time.Second, func() error {
		gws, err := c.Gateways(meshIdx)
		if err != nil {
			return err
		}
		g, ok := batadv.BestGateway(gws)
		if !ok || g.Address.String() != orig.String() {
			return fmt.Errorf("gateways %+v: want %s as the best", gws, orig)
		}
		return nil
	})
	if err != nil {
		fail("batadv-gateway", err)
	} else {
		pass("batadv-gateway", "node 1 (client) uses node 3 (%s, server) as its gateway after %.1fs", orig, took.Seconds())
	}

	cutAndRestore(c, meshIdx, orig, far)
}

// batadvSetup creates bat0, adds every ethN link, gives bat0 this node's
// address and sets the gateway mode.
func batadvSetup(node, gw string) (*batadv.Client, int, error) {
	idx, err := batadv.CreateMesh(batadv.MeshInterface, "")
	if err != nil {
		return nil, 0, err
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, 0, err
	}
	var hards []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "eth") {
			hards = append(hards, l.Attrs().Name)
		}
	}
	if len(hards) == 0 {
		return nil, 0, fmt.Errorf("no ethN link to mesh over")
	}
	for _, h := range hards {
		res, err := batadv.AddHard(batadv.MeshInterface, h)
		if err != nil {
			return nil, 0, err
		}
		if res.MTU != batadv.HardMTU {
			logf("%s: MTU %d: %s", h, res.MTU, res.MTUNote)
		}
	}
	bat, err := netlink.LinkByIndex(idx)
	if err != nil {
		return nil, 0, err
	}
	a, err := netlink.ParseAddr("10.0.99." + node + "/24")
	if err != nil {
		return nil, 0, err
	}
	if err := netlink.AddrAdd(bat, a); err != nil {
		return nil, 0, fmt.Errorf("bat0 address: %w", err)
	}
	c, err := batadv.Open()
	if err != nil {
		return nil, 0, err
	}
	var mode batadv.GatewayMode
	switch gw {
	case "server":
		mode = batadv.GatewayServer
	case "client":
		mode = batadv.GatewayClient
	}
	if err := c.SetMesh(idx, batadv.MeshSettings{Gateway: mode, DownKbit: 50000, UpKbit: 10000}); err != nil {
		return nil, 0, err
	}
	m, err := c.Mesh(idx)
	if err != nil {
		return nil, 0, err
	}
	if m.Gateway != mode || m.Algo != batadv.AlgoBATMANIV || m.Ifname != batadv.MeshInterface {
		return nil, 0, fmt.Errorf("GET_MESH says %+v, want %s with gw_mode %s and %s", m, batadv.MeshInterface, mode, batadv.AlgoBATMANIV)
	}
	if mode == batadv.GatewayServer && (m.DownKbit != 50000 || m.UpKbit != 10000) {
		return nil, 0, fmt.Errorf("GET_MESH says %+v, want the 50000/10000 kbit/s set", m)
	}
	// The first hard interface added is the primary: its MAC is the
	// originator address the other nodes know this one by.
	primary, err := netlink.LinkByName(hards[0])
	if err != nil {
		return nil, 0, err
	}
	// batman-adv activates a hard interface once its carrier is up; until
	// then GET_MESH names no primary.
	took, err := waitFor(30*time.Second, 200*time.Millisecond, func() error {
		if m, err = c.Mesh(idx); err != nil {
			return err
		}
		if m.Originator.String() != primary.Attrs().HardwareAddr.String() {
			return fmt.Errorf("GET_MESH says originator %q, want %s's MAC %s", m.Originator, hards[0], primary.Attrs().HardwareAddr)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	logf("GET_MESH names the primary %.1fs after AddHard", took.Seconds())
	logf("mesh %s: batman-adv %s, %s, bat0 MAC %s, originator %s, gw_mode %s", m.Ifname, m.Version, m.Algo, m.Address, m.Originator, m.Gateway)
	return c, idx, nil
}

func ifname(i int) string {
	l, err := netlink.LinkByIndex(i)
	if err != nil {
		return fmt.Sprintf("if%d", i)
	}
	return l.Attrs().Name
}

// checkTables reads node 1's neighbours and originators: node 2 heard
// directly, node 3 an originator whose next hop is node 2.
func checkTables(c *batadv.Client, meshIdx int, neigh, far net.HardwareAddr) error {
	ns, err := c.Neighbours(meshIdx)
	if err != nil {
		return err
	}
	os_, err := c.Originators(meshIdx)
	if err != nil {
		return err
	}
	if len(ns) != 1 || ns[0].Address.String() != neigh.String() {
		return fmt.Errorf("neighbours %+v: want only %s", ns, neigh)
	}
	var via string
	for _, o := range os_ {
		if o.Address.String() == far.String() && o.Best {
			via = o.Neighbour.String()
		}
	}
	if via != neigh.String() {
		return fmt.Errorf("originators %+v: want %s, best through %s", os_, far, neigh)
	}
	mn := batadv.MeshNeighbours(ns, os_, ifname)
	if len(mn) != 1 || mn[0].Interface != "eth0" || mn[0].Cost >= 255 {
		return fmt.Errorf("nodeapi neighbours %+v: want %s on eth0 with a TQ-based cost", mn, neigh)
	}
	routes := batadv.MeshRoutes(os_, ifname)
	found := false
	for _, r := range routes {
		if r.Prefix == far.String() && r.Via == neigh.String() && r.Installed {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("nodeapi routes %+v: want an installed route to %s via %s", routes, far, neigh)
	}
	pass("batadv-tables", "neighbour %s (cost %d), originator %s through it; %d originators, %d nodeapi routes",
		neigh, mn[0].Cost, far, len(os_), len(routes))
	return nil
}

// originatorSeen returns how long ago node 1 last heard far's OGMs, and
// false once it has no entry for far.
func originatorSeen(c *batadv.Client, meshIdx int, far net.HardwareAddr) (time.Duration, bool, error) {
	os_, err := c.Originators(meshIdx)
	if err != nil {
		return 0, false, err
	}
	for _, o := range os_ {
		if o.Address.String() == far.String() && o.Best {
			return o.LastSeen, true, nil
		}
	}
	return 0, false, nil
}

// cutAndRestore asks the test to cut the 2–3 link, times how long node 1
// keeps an originator entry for node 3 (batman-adv purges a neighbour it
// has not heard for BATADV_PURGE_TIMEOUT, 200 s), then asks for the link
// back and times the entry's return. The test answers on the console.
func cutAndRestore(c *batadv.Client, meshIdx int, far net.HardwareAddr, farAddr string) {
	in := bufio.NewScanner(os.Stdin)
	logf("WAIT cut")
	if !in.Scan() {
		fail("batadv-cut", fmt.Errorf("no answer from the test on the console: %v", in.Err()))
		return
	}
	cutAt := time.Now()
	logf("got %q", in.Text())
	// batman-adv purges after 200 s; the entry must go stale within a
	// few OGM intervals (1 s each).
	const staleWithin, purgeWithin = 30 * time.Second, 260 * time.Second
	short := strings.Contains(in.Text(), "short")
	var staleAfter time.Duration
	for {
		seen, ok, err := originatorSeen(c, meshIdx, far)
		if err != nil {
			fail("batadv-cut", err)
			return
		}
		since := time.Since(cutAt)
		if !ok {
			pass("batadv-cut", "node 1's originator entry for %s went %.1fs after the cut (stale, not refreshed, after %.1fs)",
				far, since.Seconds(), staleAfter.Seconds())
			break
		}
		if staleAfter == 0 && seen > 5*time.Second {
			staleAfter = since
			if err := ping(farAddr, 2); err == nil {
				fail("batadv-cut", fmt.Errorf("%s still answers after the cut", farAddr))
				return
			}
			pass("batadv-cut-stale", "node 3's OGMs stopped reaching node 1: entry last seen %.1fs ago, %.1fs after the cut; %s no longer answers",
				seen.Seconds(), since.Seconds(), farAddr)
			if short {
				break
			}
		}
		if staleAfter == 0 && since > staleWithin {
			fail("batadv-cut-stale", fmt.Errorf("node 1 still hears %s %.0fs after the cut (last seen %.1fs ago)", far, since.Seconds(), seen.Seconds()))
			return
		}
		if since > purgeWithin {
			fail("batadv-cut", fmt.Errorf("node 1 still has an entry for %s %.0fs after the cut (last seen %.1fs ago)", far, since.Seconds(), seen.Seconds()))
			return
		}
		time.Sleep(time.Second)
	}
	logf("WAIT restore")
	if !in.Scan() {
		fail("batadv-restore", fmt.Errorf("no answer from the test on the console: %v", in.Err()))
		return
	}
	logf("got %q", in.Text())
	took, err := waitFor(60*time.Second, 500*time.Millisecond, func() error {
		seen, ok, err := originatorSeen(c, meshIdx, far)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("no originator entry for %s", far)
		case seen > 3*time.Second:
			return fmt.Errorf("the entry for %s is still stale (last seen %v ago)", far, seen)
		}
		return nil
	})
	if err != nil {
		fail("batadv-restore", err)
		return
	}
	pass("batadv-restore", "node 1 hears %s again %.1fs after the link came back", far, took.Seconds())
	took, err = waitFor(30*time.Second, time.Second, func() error { return ping(farAddr, 1) })
	if err != nil {
		fail("batadv-restore-ping", err)
		return
	}
	pass("batadv-restore-ping", "%s answers again (%.1fs)", farAddr, took.Seconds())
}
