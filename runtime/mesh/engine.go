package mesh

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"byzantium/runtime/mesh/addr"
	"byzantium/runtime/mesh/babel"
	"byzantium/runtime/mesh/batadv"
	"byzantium/runtime/nodeapi"
)

// The protocols, as the manager runs them:
//
//   - babel: babeld over every mesh interface.
//   - batman-adv: one batman-adv cloud (the soft interface, bat0) over
//     every mesh interface, and IP straight over it. Each node's soft
//     interface has a MAC made from its slot and claim
//     (addr.HardwareAddr), which batman-adv's translation table carries
//     mesh-wide with the originator announcing it: from it every node
//     routes each other node's addresses and client prefixes over bat0
//     (host routes, ARP and neighbour discovery across the cloud), drops
//     them when that originator goes unheard, and sees collisions. Not
//     the whole 10.0.0.0/8 on-link: an uplink's own subnet may be in it.
//     The gateway is batman-adv's: a sharing node is a gw_mode server,
//     the others clients, and a client's default route goes to the best
//     gateway's mesh address.
//   - both: the batman-adv cloud over the mesh interfaces, and babeld
//     over bat0: addresses, collisions and the gateway as with babel.
//     The interfaces the settings name BabelOnly stay out of the cloud,
//     and babeld runs on them directly: between clouds.

// BatmanEngine is batman-adv's engine (runtime/mesh/batadv.Engine).
type BatmanEngine interface {
	Engine
	// Iface is the soft interface's name (bat0).
	Iface() string
	// SetHardwareAddr sets the soft interface's MAC from the next Start.
	SetHardwareAddr(mac net.HardwareAddr)
	SetGateway(server bool, downKbit, upKbit uint32) error
	Gateways() ([]batadv.Gateway, error)
	GlobalTT() ([]batadv.TTEntry, error)
	Originators() ([]batadv.Originator, error)
}

// batStale is how long an originator may go unheard before its node
// counts as unreachable: batman-adv keeps it for 200 s (its purge
// timeout) while it sends one OGM a second.
const batStale = 10 * time.Second

// batDefaultMetric is the metric of the default route through a
// batman-adv gateway: better than a DHCP uplink's own (netcfg's 100 +
// ifindex), as babeld's learned default route is: a node with a working
// uplink shares it and drops this route; one whose uplink fails the
// Internet check goes through the mesh.
const batDefaultMetric = 20

// The bandwidth a sharing node announces as a batman-adv gateway: the
// kernel's defaults; nothing measures the uplink yet.
const batDownKbit, batUpKbit = 10000, 2000

func usesBabel(p string) bool  { return p != nodeapi.MeshBatman }
func usesBatman(p string) bool { return p == nodeapi.MeshBatman || p == nodeapi.MeshBoth }

// babelInterfaces are the interfaces babeld runs on under the settings:
// the mesh interfaces (babel); the batman-adv cloud and the interfaces
// kept out of it (both).
func (m *Manager) babelInterfaces(s nodeapi.MeshSettings, ifs []nodeapi.MeshInterface) []babel.Interface {
	var out []babel.Interface
	if s.Protocol == nodeapi.MeshBoth {
		out = append(out, babel.Interface{Name: m.opt.Batman.Iface()})
	}
	for _, i := range ifs {
		if i.Meshing && (s.Protocol == nodeapi.MeshBabel || slices.Contains(s.BabelOnly, i.Name)) {
			out = append(out, babel.Interface{Name: i.Name, Wireless: i.Kind == "wifi"})
		}
	}
	return out
}

// cloudInterfaces are the mesh interfaces batman-adv runs over under the
// settings: all but the ones kept for babeld alone.
func cloudInterfaces(s nodeapi.MeshSettings, ifs []nodeapi.MeshInterface) []nodeapi.MeshInterface {
	var out []nodeapi.MeshInterface
	for _, i := range ifs {
		if s.Protocol == nodeapi.MeshBoth && slices.Contains(s.BabelOnly, i.Name) {
			i.Meshing = false
		}
		out = append(out, i)
	}
	return out
}

// applyProtocol starts and stops the engines the settings' protocol
// needs; restartBabel restarts a babeld that keeps running (a new key).
// Called from Run's goroutine only.
func (m *Manager) applyProtocol(ctx context.Context, restartBabel bool) {
	m.mu.Lock()
	s, ifs, id := m.settings, m.ifaces, m.id
	m.mu.Unlock()
	p := s.Protocol
	if !usesBabel(p) && m.babelStop != nil {
		m.logf("protocol %s: stopping babeld", p)
		m.stopBabel()
	}
	if m.batOn && !usesBatman(p) {
		m.logf("protocol %s: stopping batman-adv", p)
		m.stopBatman()
	}
	if usesBatman(p) {
		m.opt.Batman.SetHardwareAddr(id.HardwareAddr())
		cloud := cloudInterfaces(s, ifs)
		m.batIfs = cloud
		if err := m.opt.Batman.Start(ctx, cloud, s); err != nil {
			m.logf("batman-adv: %v", err)
			m.setBatErr(err)
		} else {
			m.setBatErr(nil)
			if !m.batOn {
				m.logf("protocol %s: batman-adv up on %s", p, names(cloud))
			}
			m.mu.Lock()
			m.batOn = true
			m.mu.Unlock()
		}
		m.batProto = p
		iface := m.opt.Batman.Iface()
		if err := m.opt.System.SetupKernel(m.opt.ProcSys, []string{iface}); err != nil {
			m.logf("%v", err)
		}
		if err := m.setBatmanAddrs(id, p == nodeapi.MeshBatman); err != nil {
			m.logf("%v", err)
		}
		if p != nodeapi.MeshBatman {
			m.setBatDefault(netip.Addr{})
			if err := m.opt.System.syncCloudRoutes(iface, id.Addresses(), nil); err != nil {
				m.logf("batman-adv: %v", err)
			}
		}
	}
	if usesBabel(p) {
		if m.babelStop == nil {
			m.startBabel(ctx)
		} else if restartBabel {
			m.currentSup().Restart()
		}
	}
}

// startBabel runs babeld under a supervisor until stopBabel.
func (m *Manager) startBabel(ctx context.Context) {
	sup := &babel.Supervisor{Launch: m.opt.Launch, Prepare: m.prepare, Ready: m.ready, Logf: m.opt.Logf}
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sup.Run(bctx) }()
	m.mu.Lock()
	m.sup = sup
	m.mu.Unlock()
	m.babelStop = func() { cancel(); <-done }
}

// stopBabel stops babeld (it retracts its routes) and forgets its state.
func (m *Manager) stopBabel() {
	m.babelStop()
	m.babelStop = nil
	m.mu.Lock()
	m.sup = nil
	m.state = babel.State{}
	m.synced = false
	m.mu.Unlock()
	if err := m.opt.System.flushBabelRoutes(); err != nil {
		m.logf("%v", err)
	}
}

func (m *Manager) currentSup() *babel.Supervisor {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sup
}

func (m *Manager) stopBatman() {
	m.setBatDefault(netip.Addr{})
	if err := m.opt.Batman.Stop(); err != nil {
		m.logf("batman-adv: %v", err)
	}
	m.mu.Lock()
	m.batOn = false
	m.batSnap = nodeapi.Mesh{}
	m.mu.Unlock()
	m.batProto = ""
	m.batServer = false
	m.setBatErr(nil)
}

func (m *Manager) setBatErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batErr = ""
	if err != nil {
		m.batErr = err.Error()
	}
}

// setBatmanAddrs puts the node's mesh addresses on the soft interface
// (batman-adv alone: neighbour discovery answers for them there, and
// routes over bat0 take them as source), or takes them off.
func (m *Manager) setBatmanAddrs(id addr.Identity, on bool) error {
	var want []netip.Prefix
	if on {
		a := id.Addresses()
		want = []netip.Prefix{a.IPv4, a.IPv6}
	}
	return m.opt.System.setLinkAddrs(m.opt.Batman.Iface(), want, isMeshAddr)
}

// batmanTick follows batman-adv alone: the gateway mode, the default
// route through the best gateway, collisions in the translation table,
// and the status Status shows.
func (m *Manager) batmanTick() {
	if !m.batOn || m.batProto != nodeapi.MeshBatman {
		return
	}
	m.batmanSnapshot()
	var gw nodeapi.MeshGateway
	if m.opt.Gateway != nil {
		m.opt.Gateway(&gw)
	}
	if gw.Sharing != m.batServer || !m.batModeSet {
		if err := m.opt.Batman.SetGateway(gw.Sharing, batDownKbit, batUpKbit); err != nil {
			m.logf("batman-adv gateway mode: %v", err)
		} else {
			m.batServer, m.batModeSet = gw.Sharing, true
		}
	}
	tt, err := m.opt.Batman.GlobalTT()
	if err != nil {
		m.logf("batman-adv translation table: %v", err)
		return
	}
	if m.batmanCollisions(tt) {
		return
	}
	if gw.Sharing {
		m.setBatDefault(netip.Addr{})
		return
	}
	gws, err := m.opt.Batman.Gateways()
	if err != nil {
		m.logf("batman-adv gateways: %v", err)
		return
	}
	m.setBatDefault(gatewayAddr(gws, tt))
}

// gatewayAddr is the mesh address of the best gateway: the node whose
// soft interface's MAC its originator announces.
func gatewayAddr(gws []batadv.Gateway, tt []batadv.TTEntry) netip.Addr {
	best, ok := batadv.BestGateway(gws)
	if !ok {
		return netip.Addr{}
	}
	for _, e := range tt {
		if !bytes.Equal(e.Orig, best.Address) {
			continue
		}
		if c, ok := addr.ParseHardwareAddr(e.MAC); ok {
			return c.Slot.Addresses().IPv4.Addr()
		}
	}
	return netip.Addr{}
}

// batmanCollisions rolls again when another node's soft interface claims
// our slot and ours is the younger claim; true when it rolled.
func (m *Manager) batmanCollisions(tt []batadv.TTEntry) bool {
	m.mu.Lock()
	id := m.id
	m.mu.Unlock()
	mine := id.HardwareAddr()
	for _, e := range tt {
		c, ok := addr.ParseHardwareAddr(e.MAC)
		if !ok || c.Slot != id.Slot() {
			continue
		}
		if !addr.YoungerMAC(mine, e.MAC) {
			m.logf("node %v (originator %v) also claims slot %v; its claim is younger, it will roll again", e.MAC, e.Orig, id.Slot())
			continue
		}
		m.logf("node %v (originator %v) claimed slot %v first: rolling again", e.MAC, e.Orig, id.Slot())
		m.reroll(id)
		return true
	}
	return false
}

// setBatDefault points the default route through a batman-adv gateway's
// mesh address, or removes it (an invalid via).
func (m *Manager) setBatDefault(via netip.Addr) {
	if via == m.batVia {
		return
	}
	h, err := m.opt.System.handle()
	if err != nil {
		m.logf("%v", err)
		return
	}
	if m.batVia.IsValid() {
		r := batDefaultRoute(m.batVia, 0)
		if err := h.RouteDel(r); err != nil && err != unix.ESRCH {
			m.logf("batman-adv: removing the default route via %v: %v", m.batVia, err)
		}
		m.logf("batman-adv: no longer routing to the Net via %v", m.batVia)
	}
	m.mu.Lock()
	m.batVia = netip.Addr{}
	m.mu.Unlock()
	if !via.IsValid() {
		return
	}
	link, err := h.LinkByName(m.opt.Batman.Iface())
	if err != nil {
		m.logf("batman-adv: %v", err)
		return
	}
	if err := h.RouteReplace(batDefaultRoute(via, link.Attrs().Index)); err != nil {
		m.logf("batman-adv: default route via %v: %v", via, err)
		return
	}
	m.logf("batman-adv: routing to the Net via gateway %v", via)
	m.mu.Lock()
	m.batVia = via
	m.mu.Unlock()
}

func batDefaultRoute(via netip.Addr, ifindex int) *netlink.Route {
	return &netlink.Route{
		Dst:       &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
		Gw:        via.AsSlice(),
		LinkIndex: ifindex,
		Flags:     int(netlink.FLAG_ONLINK),
		Protocol:  GatewayProto,
		Priority:  batDefaultMetric,
		Table:     unix.RT_TABLE_MAIN,
		Family:    netlink.FAMILY_V4,
	}
}

// batmanSnapshot keeps what Status shows of batman-adv alone: the
// engine's state and neighbours, and a route to each node's mesh
// addresses (from its soft interface's MAC in the translation table)
// through the next hop towards its originator, while that is heard.
func (m *Manager) batmanSnapshot() {
	var snap nodeapi.Mesh
	m.opt.Batman.Status(&snap)
	tt, err := m.opt.Batman.GlobalTT()
	if err != nil {
		snap.EngineError = err.Error()
	}
	origs, err := m.opt.Batman.Originators()
	if err != nil {
		snap.EngineError = err.Error()
	}
	m.mu.Lock()
	id := m.id
	m.mu.Unlock()
	snap.Routes = batmanRoutes(tt, origs, m.opt.Batman.Iface(), id.Slot())
	slots := cloudNodes(tt, snap.Routes)
	if err := m.opt.System.syncCloudRoutes(m.opt.Batman.Iface(), id.Addresses(), slots); err != nil {
		m.logf("batman-adv: %v", err)
	}
	if len(slots) != m.batNodes {
		m.logf("batman-adv: %d other node(s) reachable (%d rows in the translation table, %d originators)", len(slots), len(tt), len(origs))
		m.batNodes = len(slots)
	}
	m.mu.Lock()
	m.batSnap = snap
	m.mu.Unlock()
}

// cloudNodes are the nodes the routes reach, by slot, with their soft
// interface's MAC from the translation table.
func cloudNodes(tt []batadv.TTEntry, rs []nodeapi.MeshRoute) map[addr.Slot]net.HardwareAddr {
	routed := map[string]bool{}
	for _, r := range rs {
		if r.Installed {
			routed[r.Prefix] = true
		}
	}
	out := map[addr.Slot]net.HardwareAddr{}
	for _, e := range tt {
		if c, ok := addr.ParseHardwareAddr(e.MAC); ok && routed[c.Slot.Addresses().IPv4.String()] {
			out[c.Slot] = e.MAC
		}
	}
	return out
}

// batmanRoutes are the routes to the nodes of the cloud: each soft
// interface MAC the translation table holds gives a node's mesh
// addresses, reached through its originator's best next hop while that
// originator was heard within batStale.
func batmanRoutes(tt []batadv.TTEntry, origs []batadv.Originator, iface string, own addr.Slot) []nodeapi.MeshRoute {
	out := []nodeapi.MeshRoute{}
	for _, e := range tt {
		c, ok := addr.ParseHardwareAddr(e.MAC)
		if !ok || c.Slot == own {
			continue // a collision is batmanCollisions' business
		}
		a := c.Slot.Addresses()
		// A node known but not heard lately is listed, not routed.
		r := nodeapi.MeshRoute{Interface: iface, Metric: 255, RouterID: e.Orig.String()}
		for _, o := range origs {
			if o.Best && bytes.Equal(o.Address, e.Orig) && o.LastSeen <= batStale {
				r.Via, r.Installed = o.Neighbour.String(), true
				if o.HasTQ {
					r.Metric = 255 - int(o.TQ)
				}
				break
			}
		}
		for _, p := range []netip.Prefix{a.IPv4, a.IPv6} {
			r.Prefix = p.String()
			out = append(out, r)
		}
	}
	return out
}

// batmanStatus fills in what batman-adv alone shows: the engine, its
// neighbours, the nodes reachable, the gateway in use.
func (m *Manager) batmanStatus(out *nodeapi.Mesh) {
	snap := m.batSnap
	out.Engine, out.EngineError = snap.Engine, snap.EngineError
	if out.Engine == "" {
		out.Engine = babel.StateStarting
	}
	out.Neighbours = append([]nodeapi.MeshNeighbour{}, snap.Neighbours...)
	out.Routes = append([]nodeapi.MeshRoute{}, snap.Routes...)
	if m.batErr != "" && out.EngineError == "" {
		out.EngineError = m.batErr
	}
	if m.batVia.IsValid() {
		out.Gateway.InUse = fmt.Sprintf("%s (%s)", m.batVia, m.opt.Batman.Iface())
		out.Gateway.InUseMetric = batDefaultMetric
	}
}

// cloudInterface is the soft interface's line in the interface list.
func (m *Manager) cloudInterface(s nodeapi.MeshSettings, ifs []nodeapi.MeshInterface) nodeapi.MeshInterface {
	mi := nodeapi.MeshInterface{Name: m.opt.Batman.Iface(), Kind: "batman-adv", Mode: "cloud", Meshing: m.batOn}
	over := names(cloudInterfaces(s, ifs))
	switch {
	case m.batErr != "":
		mi.Reason = "batman-adv failed: " + m.batErr
	case s.Protocol == nodeapi.MeshBoth && len(s.BabelOnly) > 0:
		mi.Reason = "the batman-adv cloud over " + over + "; babeld runs over it and on " + strings.Join(s.BabelOnly, ", ") + " (between clouds)"
	case s.Protocol == nodeapi.MeshBoth:
		mi.Reason = "the batman-adv cloud over " + over + "; babeld runs over it"
	default:
		mi.Reason = "the batman-adv cloud over " + over + "; the mesh's addresses are on-link here"
	}
	return mi
}

func isMeshAddr(x netip.Addr) bool {
	return addr.ULA.Contains(x) || (x.Is4() && x.As4()[0] == 10 && x.As4()[3] == 1)
}

// reroll takes the next roll of the identity after a collision.
func (m *Manager) reroll(id addr.Identity) {
	nid := id.Reroll(time.Now())
	m.logf("new slot %v", nid.Slot())
	if err := addr.Save(m.opt.StateDir, nid); err != nil {
		m.logf("%v", err)
	}
	if err := m.applyAddresses(nid); err != nil {
		m.logf("%v", err)
	}
	m.mu.Lock()
	m.id = nid
	m.rolls++
	p := m.settings.Protocol
	m.mu.Unlock()
	if usesBatman(p) && m.batOn {
		m.opt.Batman.SetHardwareAddr(nid.HardwareAddr())
		m.mu.Lock()
		ifs, s := m.ifaces, m.settings
		m.mu.Unlock()
		if err := m.opt.Batman.Start(m.runCtx, cloudInterfaces(s, ifs), s); err != nil {
			m.logf("batman-adv: %v", err)
		}
		if err := m.setBatmanAddrs(nid, p == nodeapi.MeshBatman); err != nil {
			m.logf("%v", err)
		}
	}
	if sup := m.currentSup(); sup != nil {
		sup.Restart()
	}
}

var _ BatmanEngine = (*batadv.Engine)(nil)
