package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"byzantium/runtime/mesh/batadv"
	"byzantium/runtime/nodeapi"

	"github.com/vishvananda/netlink"
)

// batadvScenario joins every Ethernet link of this guest into bat0
// through batadv.Engine, as byzd's mesh manager does, and, on node 1,
// checks the mesh across the line 1–2–3: ping node 3 through node 2, the
// tables and the engine's Status, the gateway, the global translation
// table, a second Start that changes nothing, the originator entry's fate
// when the test cuts and restores the 2–3 link (it says so on the
// console), and Stop.
func batadvScenario(args map[string]string) {
	node := args["meshguest.node"]
	eng, ifaces, c, meshIdx, err := batadvSetup(node, args["meshguest.gw"])
	if err != nil {
		fail("batadv-setup", err)
		return
	}
	pass("batadv-setup", "node %s: bat0 (index %d, MAC %s) up with 10.0.99.%s/24", node, meshIdx, batMAC(node), node)
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

	if err := checkTables(eng, c, meshIdx, neigh, orig); err != nil {
		fail("batadv-tables", err)
	}
	took, err = waitFor(60*time.Second, time.Second, func() error {
		gws, err := eng.Gateways()
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
	if err := checkTT(eng, neigh, orig); err != nil {
		fail("batadv-tt", err)
	}
	if err := checkIdempotent(eng, ifaces, c, meshIdx); err != nil {
		fail("batadv-idempotent", err)
	}

	if !cutAndRestore(c, meshIdx, orig, far) {
		return
	}
	if err := checkGatewaySwitch(eng, c, meshIdx); err != nil {
		fail("batadv-gw-switch", err)
	}
	if err := checkRelease(eng, ifaces, neigh); err != nil {
		fail("batadv-release", err)
	}
	if err := checkStop(eng, ifaces); err != nil {
		fail("batadv-stop", err)
	}
}

// batMAC is node N's fixed bat0 address, 02:ba:00:00:00:0N.
func batMAC(node string) net.HardwareAddr {
	n, _ := strconv.Atoi(node)
	return net.HardwareAddr{0x02, 0xba, 0, 0, 0, byte(n)}
}

// batadvSetup starts the engine over every ethN link (lo is listed as not
// meshing, which the engine must leave alone) with this node's fixed bat0
// MAC and gateway mode, gives bat0 this node's address and checks what
// GET_MESH says.
func batadvSetup(node, gw string) (*batadv.Engine, []nodeapi.MeshInterface, *batadv.Client, int, error) {
	eng := &batadv.Engine{MAC: batMAC(node), Logf: logf}
	mode := batadv.GatewayClient // the engine's default, node 2's
	if gw == "server" {
		mode = batadv.GatewayServer
		if err := eng.SetGateway(true, 50000, 10000); err != nil {
			return nil, nil, nil, 0, err
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, nil, 0, err
	}
	var hards []string
	ifaces := []nodeapi.MeshInterface{{Name: "lo", Kind: "wired", Mode: "none", Reason: "loopback"}}
	for _, l := range links {
		if n := l.Attrs().Name; strings.HasPrefix(n, "eth") {
			hards = append(hards, n)
			ifaces = append(ifaces, nodeapi.MeshInterface{Name: n, Kind: "wired", Mode: "wired", Meshing: true})
		}
	}
	if len(hards) == 0 {
		return nil, nil, nil, 0, fmt.Errorf("no ethN link to mesh over")
	}
	if err := eng.Start(context.Background(), ifaces, nodeapi.MeshSettings{Protocol: nodeapi.MeshBatman}); err != nil {
		return nil, nil, nil, 0, fmt.Errorf("Engine.Start: %w", err)
	}
	idx, err := eng.Ifindex()
	if err != nil {
		return nil, nil, nil, 0, err
	}
	bat, err := netlink.LinkByIndex(idx)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	if bat.Attrs().Flags&net.FlagUp == 0 || bat.Attrs().HardwareAddr.String() != batMAC(node).String() {
		return nil, nil, nil, 0, fmt.Errorf("bat0 after Start: flags %v, MAC %s; want up with %s", bat.Attrs().Flags, bat.Attrs().HardwareAddr, batMAC(node))
	}
	for _, h := range append(hards, "lo") {
		l, err := netlink.LinkByName(h)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		enslaved := l.Attrs().MasterIndex == idx
		if h == "lo" && enslaved {
			return nil, nil, nil, 0, fmt.Errorf("lo, not meshing, is a hard interface of bat0")
		}
		if h != "lo" && (!enslaved || l.Attrs().MTU != batadv.HardMTU || l.Attrs().Flags&net.FlagUp == 0) {
			return nil, nil, nil, 0, fmt.Errorf("%s after Start: master %d, MTU %d, flags %v; want bat0's (%d), %d, up",
				h, l.Attrs().MasterIndex, l.Attrs().MTU, l.Attrs().Flags, idx, batadv.HardMTU)
		}
	}
	a, err := netlink.ParseAddr("10.0.99." + node + "/24")
	if err != nil {
		return nil, nil, nil, 0, err
	}
	if err := netlink.AddrAdd(bat, a); err != nil {
		return nil, nil, nil, 0, fmt.Errorf("bat0 address: %w", err)
	}
	c, err := batadv.Open()
	if err != nil {
		return nil, nil, nil, 0, err
	}
	m, err := c.Mesh(idx)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	if m.Gateway != mode || m.Algo != batadv.AlgoBATMANIV || m.Ifname != batadv.MeshInterface || m.Address.String() != batMAC(node).String() {
		return nil, nil, nil, 0, fmt.Errorf("GET_MESH says %+v, want %s (%s) with gw_mode %s and %s", m, batadv.MeshInterface, batMAC(node), mode, batadv.AlgoBATMANIV)
	}
	if mode == batadv.GatewayServer && (m.DownKbit != 50000 || m.UpKbit != 10000) {
		return nil, nil, nil, 0, fmt.Errorf("GET_MESH says %+v, want the 50000/10000 kbit/s set", m)
	}
	// The first hard interface added is the primary: its MAC is the
	// originator address the other nodes know this one by.
	primary, err := netlink.LinkByName(hards[0])
	if err != nil {
		return nil, nil, nil, 0, err
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
		return nil, nil, nil, 0, err
	}
	logf("GET_MESH names the primary %.1fs after Start", took.Seconds())
	logf("mesh %s: batman-adv %s, %s, bat0 MAC %s, originator %s, gw_mode %s", m.Ifname, m.Version, m.Algo, m.Address, m.Originator, m.Gateway)
	return eng, ifaces, c, idx, nil
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
func checkTables(eng *batadv.Engine, c *batadv.Client, meshIdx int, neigh, far net.HardwareAddr) error {
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
	// The engine's Status gives the manager the same, and its word.
	var st nodeapi.Mesh
	eng.Status(&st)
	if st.Engine != "running" || st.EngineError != "" {
		return fmt.Errorf("Engine.Status says %q (%q), want running", st.Engine, st.EngineError)
	}
	if len(st.Neighbours) != 1 || st.Neighbours[0].Address != neigh.String() || st.Neighbours[0].Interface != "eth0" || st.Neighbours[0].Cost >= 255 {
		return fmt.Errorf("Engine.Status neighbours %+v: want %s on eth0 with a TQ-based cost", st.Neighbours, neigh)
	}
	found = false
	for _, r := range st.Routes {
		if r.Prefix == far.String() && r.Via == neigh.String() && r.Interface == "eth0" && r.Installed {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("Engine.Status routes %+v: want an installed route to %s via %s on eth0", st.Routes, far, neigh)
	}
	pass("batadv-tables", "neighbour %s (cost %d), originator %s through it; %d originators, %d nodeapi routes; Engine.Status running with the same",
		neigh, mn[0].Cost, far, len(os_), len(routes))
	return nil
}

// checkTT reads node 1's global translation table: node 3's bat0 MAC
// announced by node 3's originator, untagged and the best, and node 2's
// by node 2's. batman-adv puts bat0's own MAC in its local table and
// announces it with the OGMs, so both are there soon after the ping.
func checkTT(eng *batadv.Engine, neigh, far net.HardwareAddr) error {
	var tt []batadv.TTEntry
	took, err := waitFor(30*time.Second, 500*time.Millisecond, func() error {
		var err error
		if tt, err = eng.GlobalTT(); err != nil {
			return err
		}
		for _, want := range []struct{ mac, orig net.HardwareAddr }{{batMAC("3"), far}, {batMAC("2"), neigh}} {
			found := false
			for _, e := range tt {
				if e.MAC.String() == want.mac.String() && e.Orig.String() == want.orig.String() && e.VID == -1 && e.Best {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("global TT %+v: no best untagged entry %s announced by %s", tt, want.mac, want.orig)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range tt {
		if e.MAC.String() == batMAC("1").String() {
			return fmt.Errorf("global TT %+v: holds node 1's own bat0 MAC (that is the local table's)", tt)
		}
	}
	pass("batadv-tt", "global TT holds node 3's bat0 %s from originator %s and node 2's %s from %s (VID -1, best); %d entries after %.1fs",
		batMAC("3"), far, batMAC("2"), neigh, len(tt), took.Seconds())
	return nil
}

// meshSnapshot is what a second Start must not change.
type meshSnapshot struct {
	Index, MTU int
	MAC        string
	Up         bool
	Hards      map[string]string // name: master, MTU and up
	Mesh       batadv.Mesh
}

func snapshot(c *batadv.Client, meshIdx int) (meshSnapshot, error) {
	var s meshSnapshot
	links, err := netlink.LinkList()
	if err != nil {
		return s, err
	}
	s.Hards = map[string]string{}
	for _, l := range links {
		a := l.Attrs()
		if a.Index == meshIdx {
			s.Index, s.MTU, s.MAC, s.Up = a.Index, a.MTU, a.HardwareAddr.String(), a.Flags&net.FlagUp != 0
		}
		if a.MasterIndex != 0 || strings.HasPrefix(a.Name, "eth") || a.Name == "lo" {
			s.Hards[a.Name] = fmt.Sprintf("master %d, MTU %d, up %v", a.MasterIndex, a.MTU, a.Flags&net.FlagUp != 0)
		}
	}
	s.Mesh, err = c.Mesh(meshIdx)
	return s, err
}

// checkIdempotent calls Start again with the same interfaces: no error,
// the same soft interface, MAC, hard interfaces and GET_MESH state, and
// not one rtnetlink link message while it runs (the kernel sends one for
// any change to a link).
func checkIdempotent(eng *batadv.Engine, ifaces []nodeapi.MeshInterface, c *batadv.Client, meshIdx int) error {
	before, err := snapshot(c, meshIdx)
	if err != nil {
		return err
	}
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		return fmt.Errorf("subscribe to link updates: %w", err)
	}
	if err := eng.Start(context.Background(), ifaces, nodeapi.MeshSettings{Protocol: nodeapi.MeshBatman}); err != nil {
		return fmt.Errorf("second Start: %w", err)
	}
	// The kernel sends a change's message as it makes it; a second is
	// far more than it needs to arrive.
	quiet := time.After(time.Second)
	var changed []string
wait:
	for {
		select {
		case u := <-updates:
			changed = append(changed, fmt.Sprintf("%s (type %d, flags %v)", u.Attrs().Name, u.Header.Type, u.Attrs().Flags))
		case <-quiet:
			break wait
		}
	}
	if len(changed) > 0 {
		return fmt.Errorf("the second Start changed links: %s", strings.Join(changed, "; "))
	}
	after, err := snapshot(c, meshIdx)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(before, after) {
		return fmt.Errorf("the second Start changed the mesh:\n before %+v\n after  %+v", before, after)
	}
	var st nodeapi.Mesh
	eng.Status(&st)
	if st.Engine != "running" {
		return fmt.Errorf("Engine.Status after the second Start: %q (%q)", st.Engine, st.EngineError)
	}
	pass("batadv-idempotent", "a second Start sent no link change: bat0 index %d, MAC %s, hard interfaces %v, gw_mode %s as before",
		after.Index, after.MAC, after.Hards, after.Mesh.Gateway)
	return nil
}

// checkGatewaySwitch turns node 1 into a gateway server while the engine
// runs and back into a client, reading GET_MESH after each.
func checkGatewaySwitch(eng *batadv.Engine, c *batadv.Client, meshIdx int) error {
	if err := eng.SetGateway(true, 20000, 5050); err != nil {
		return fmt.Errorf("SetGateway(server): %w", err)
	}
	m, err := c.Mesh(meshIdx)
	if err != nil {
		return err
	}
	// 5050 kbit/s is rounded up to batman-adv's 100 kbit/s steps.
	if m.Gateway != batadv.GatewayServer || m.DownKbit != 20000 || m.UpKbit != 5100 {
		return fmt.Errorf("GET_MESH after SetGateway(server, 20000, 5050): %+v", m)
	}
	if err := eng.SetGateway(false, 0, 0); err != nil {
		return fmt.Errorf("SetGateway(client): %w", err)
	}
	if m, err = c.Mesh(meshIdx); err != nil {
		return err
	}
	if m.Gateway != batadv.GatewayClient {
		return fmt.Errorf("GET_MESH after SetGateway(client): %+v", m)
	}
	pass("batadv-gw-switch", "SetGateway on the running engine: server announcing 20000/5100 kbit/s, then client again")
	return nil
}

// checkRelease starts the engine with eth0 no longer meshing (released,
// Status starting, bat0 kept), then with it again (enslaved, node 2 a
// neighbour again).
func checkRelease(eng *batadv.Engine, ifaces []nodeapi.MeshInterface, neigh net.HardwareAddr) error {
	var without []nodeapi.MeshInterface
	for _, i := range ifaces {
		if i.Name == "eth0" {
			i.Meshing, i.Mode = false, "none"
		}
		without = append(without, i)
	}
	if err := eng.Start(context.Background(), without, nodeapi.MeshSettings{Protocol: nodeapi.MeshBatman}); err != nil {
		return fmt.Errorf("a Start without eth0: %w", err)
	}
	l, err := netlink.LinkByName("eth0")
	if err != nil {
		return err
	}
	if l.Attrs().MasterIndex != 0 {
		return fmt.Errorf("eth0 still has master %d after a Start without it", l.Attrs().MasterIndex)
	}
	var st nodeapi.Mesh
	eng.Status(&st)
	if st.Engine != "starting" || st.EngineError != "no mesh interface to run bat0 over" || len(st.Neighbours) != 0 {
		return fmt.Errorf("Engine.Status without a hard interface: %q (%q), %d neighbours", st.Engine, st.EngineError, len(st.Neighbours))
	}
	if _, err := eng.Ifindex(); err != nil {
		return fmt.Errorf("bat0 after a Start without hard interfaces: %w", err)
	}
	if err := eng.Start(context.Background(), ifaces, nodeapi.MeshSettings{Protocol: nodeapi.MeshBatman}); err != nil {
		return fmt.Errorf("a Start with eth0 again: %w", err)
	}
	took, err := waitFor(30*time.Second, 500*time.Millisecond, func() error {
		eng.Status(&st)
		if st.Engine != "running" || len(st.Neighbours) != 1 || st.Neighbours[0].Address != neigh.String() {
			return fmt.Errorf("Engine.Status: %q (%q), neighbours %+v; want running with %s", st.Engine, st.EngineError, st.Neighbours, neigh)
		}
		return nil
	})
	if err != nil {
		return err
	}
	pass("batadv-release", "a Start without eth0 released it (Status starting); with it again node 2 is a neighbour %.1fs later", took.Seconds())
	return nil
}

// checkStop stops the engine: bat0 gone, eth0 released (no master),
// Status off; a second Stop is no error.
func checkStop(eng *batadv.Engine, ifaces []nodeapi.MeshInterface) error {
	if err := eng.Stop(); err != nil {
		return fmt.Errorf("engine Stop: %w", err)
	}
	if l, err := netlink.LinkByName(batadv.MeshInterface); err == nil {
		return fmt.Errorf("%s (%s) still exists after Stop", l.Attrs().Name, l.Type())
	}
	for _, i := range ifaces {
		l, err := netlink.LinkByName(i.Name)
		if err != nil {
			return err
		}
		if l.Attrs().MasterIndex != 0 {
			return fmt.Errorf("%s still has master %d after Stop", i.Name, l.Attrs().MasterIndex)
		}
	}
	var st nodeapi.Mesh
	eng.Status(&st)
	if st.Engine != "off" || st.EngineError != "" || st.Neighbours != nil || st.Routes != nil {
		return fmt.Errorf("Engine.Status after Stop: %+v, want off", st)
	}
	if err := eng.Stop(); err != nil {
		return fmt.Errorf("a second Stop: %w", err)
	}
	if _, err := eng.GlobalTT(); err == nil {
		return fmt.Errorf("the engine's GlobalTT answered after Stop")
	}
	pass("batadv-stop", "Stop deleted bat0 and released the hard interfaces; Status says off; a second Stop is no error")
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
// It says whether the link came back and node 3 answers again.
func cutAndRestore(c *batadv.Client, meshIdx int, far net.HardwareAddr, farAddr string) bool {
	in := bufio.NewScanner(os.Stdin)
	logf("WAIT cut")
	if !in.Scan() {
		fail("batadv-cut", fmt.Errorf("no answer from the test on the console: %v", in.Err()))
		return false
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
			return false
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
				return false
			}
			pass("batadv-cut-stale", "node 3's OGMs stopped reaching node 1: entry last seen %.1fs ago, %.1fs after the cut; %s no longer answers",
				seen.Seconds(), since.Seconds(), farAddr)
			if short {
				break
			}
		}
		if staleAfter == 0 && since > staleWithin {
			fail("batadv-cut-stale", fmt.Errorf("node 1 still hears %s %.0fs after the cut (last seen %.1fs ago)", far, since.Seconds(), seen.Seconds()))
			return false
		}
		if since > purgeWithin {
			fail("batadv-cut", fmt.Errorf("node 1 still has an entry for %s %.0fs after the cut (last seen %.1fs ago)", far, since.Seconds(), seen.Seconds()))
			return false
		}
		time.Sleep(time.Second)
	}
	logf("WAIT restore")
	if !in.Scan() {
		fail("batadv-restore", fmt.Errorf("no answer from the test on the console: %v", in.Err()))
		return false
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
		return false
	}
	pass("batadv-restore", "node 1 hears %s again %.1fs after the link came back", far, took.Seconds())
	took, err = waitFor(30*time.Second, time.Second, func() error { return ping(farAddr, 1) })
	if err != nil {
		fail("batadv-restore-ping", err)
		return false
	}
	pass("batadv-restore-ping", "%s answers again (%.1fs)", farAddr, took.Seconds())
	return true
}
