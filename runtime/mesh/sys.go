package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"byzantium/runtime/mesh/addr"
	"byzantium/runtime/mesh/babel"
)

// System is the network namespace the manager configures: the node's
// own (the zero value), or one the simulator made for a node.
type System struct {
	NS netns.NsHandle // 0: the current namespace
	h  *netlink.Handle
}

// inNS runs fn on a thread in the system's namespace (sysctls under
// /proc/sys/net and new sockets belong to the namespace of the thread
// that opens them).
func (s *System) inNS(fn func() error) error {
	if s.NS <= 0 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("mesh: current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(s.NS); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("mesh: entering netns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with the goroutine rather
		// than run other goroutines in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("mesh: leaving netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func (s *System) handle() (*netlink.Handle, error) {
	if s.h != nil {
		return s.h, nil
	}
	var err error
	if s.NS > 0 {
		s.h, err = netlink.NewHandleAt(s.NS)
	} else {
		s.h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("mesh: netlink: %w", err)
	}
	return s.h, nil
}

// Sysctls are the kernel settings a mesh router needs, which babeld
// would otherwise set itself (skip-kernel-setup): forwarding on, IPv6
// redirects off, reverse-path filtering off (routes are asymmetric in a
// mesh). IPv6 forwarding is global in Linux; an uplink that learns its
// IPv6 route by router advertisement then needs accept_ra=2.
func Sysctls(ifaces []string) map[string]string {
	m := map[string]string{
		"net/ipv4/conf/all/forwarding":       "1",
		"net/ipv6/conf/all/forwarding":       "1",
		"net/ipv6/conf/all/accept_redirects": "0",
		"net/ipv4/conf/all/rp_filter":        "0",
		"net/ipv4/conf/all/send_redirects":   "0",
	}
	for _, i := range ifaces {
		m["net/ipv4/conf/"+i+"/rp_filter"] = "0"
		m["net/ipv4/conf/"+i+"/send_redirects"] = "0"
	}
	return m
}

// SetupKernel writes Sysctls under procSys ("/proc/sys") in the system's
// namespace.
func (s *System) SetupKernel(procSys string, ifaces []string) error {
	return s.inNS(func() error {
		var errs []error
		for k, v := range Sysctls(ifaces) {
			if err := os.WriteFile(filepath.Join(procSys, k), []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("mesh: sysctl %s: %w", k, err))
			}
		}
		return errors.Join(errs...)
	})
}

// setLinkAddrs makes a link's mesh addresses (isMesh) exactly want and
// brings it up: the node's own on lo (they stay up whatever link comes
// and goes), the same with the mesh range on-link on batman-adv's soft
// interface; it removes the mesh addresses a former roll left.
func (s *System) setLinkAddrs(name string, want []netip.Prefix, isMesh func(netip.Addr) bool) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("mesh: %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("mesh: %s up: %w", name, err)
	}
	have, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("mesh: addresses of %s: %w", name, err)
	}
	keep := map[netip.Prefix]bool{}
	for _, a := range have {
		p := toPrefix(a.IPNet)
		if !p.IsValid() || !isMesh(p.Addr()) {
			continue
		}
		if contains(want, p) {
			keep[p] = true
			continue
		}
		if err := h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("mesh: removing %v: %w", p, err)
		}
	}
	for _, p := range want {
		if keep[p] {
			continue
		}
		a := &netlink.Addr{IPNet: toIPNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("mesh: adding %v to %s: %w", p, name, err)
		}
	}
	return nil
}

// setClientRoutes puts the client prefixes in babeld's import table, as
// unreachable routes with byzd's protocol: babeld announces them, and
// the main table (where traffic is routed) is not touched. Client access
// later adds the prefixes to its interfaces.
func (s *System) setClientRoutes(want []netip.Prefix) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	filter := &netlink.Route{Table: babel.ImportTable, Protocol: babel.RouteProto}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(fam, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return fmt.Errorf("mesh: listing table %d: %w", babel.ImportTable, err)
		}
		for _, r := range rs {
			if r.Type != unix.RTN_UNREACHABLE || r.Dst == nil {
				continue // the gateway's routes are its own
			}
			p := toPrefix(r.Dst)
			if p.Bits() == 0 || contains(want, p) {
				continue
			}
			if err := h.RouteDel(&r); err != nil {
				return fmt.Errorf("mesh: removing %v: %w", p, err)
			}
		}
	}
	for _, p := range want {
		r := &netlink.Route{Dst: toIPNet(p), Table: babel.ImportTable, Protocol: babel.RouteProto, Type: unix.RTN_UNREACHABLE}
		if p.Addr().Is6() {
			r.Family = netlink.FAMILY_V6
		} else {
			r.Family = netlink.FAMILY_V4
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("mesh: route %v in table %d: %w", p, babel.ImportTable, err)
		}
	}
	return nil
}

// flushBabelRoutes removes routes a killed babeld left in the kernel
// (protocol babel, 42), before the next one starts.
func (s *System) flushBabelRoutes() error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Protocol: 42, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("mesh: listing babel routes: %w", err)
		}
		for _, r := range rs {
			h.RouteDel(&r)
		}
	}
	return nil
}

func toPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func toIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func contains(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// syncCloudRoutes makes the routes over batman-adv's soft interface
// (protocol GatewayProto in the main table, but for the default route)
// exactly those to the nodes': each node's addresses on-link, its client
// prefixes through them, with own's addresses as the source; and each
// node's addresses a permanent neighbour entry with its soft interface's
// MAC, which the translation table gave: no ARP or neighbour discovery
// broadcast crosses the cloud for them. nil takes them all away.
func (s *System) syncCloudRoutes(iface string, own addr.Addresses, nodes map[addr.Slot]net.HardwareAddr) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("%s: %w", iface, err)
	}
	idx := link.Attrs().Index
	want := map[netip.Prefix]*netlink.Route{}
	neigh := map[netip.Addr]net.HardwareAddr{}
	for sl, mac := range nodes {
		a := sl.Addresses()
		neigh[a.IPv4.Addr()], neigh[a.IPv6.Addr()] = mac, mac
		for _, fam := range []struct{ host, client, src netip.Prefix }{{a.IPv4, a.ClientIPv4, own.IPv4}, {a.IPv6, a.ClientIPv6, own.IPv6}} {
			want[fam.host] = &netlink.Route{LinkIndex: idx, Dst: toIPNet(fam.host), Src: fam.src.Addr().AsSlice(),
				Scope: netlink.SCOPE_LINK, Protocol: GatewayProto, Table: unix.RT_TABLE_MAIN}
			want[fam.client] = &netlink.Route{LinkIndex: idx, Dst: toIPNet(fam.client), Gw: fam.host.Addr().AsSlice(),
				Src: fam.src.Addr().AsSlice(), Flags: int(netlink.FLAG_ONLINK), Protocol: GatewayProto, Table: unix.RT_TABLE_MAIN}
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(fam, &netlink.Route{LinkIndex: idx, Protocol: GatewayProto, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("listing routes on %s: %w", iface, err)
		}
		for _, r := range rs {
			p := toPrefix(r.Dst)
			if !p.IsValid() || p.Bits() == 0 {
				continue // the default route is setBatDefault's
			}
			if w, ok := want[p]; ok && w.Src.Equal(r.Src) && w.Gw.Equal(r.Gw) {
				delete(want, p) // as it should be
				continue
			} else if ok {
				continue // replaced below
			}
			if err := h.RouteDel(&r); err != nil {
				return fmt.Errorf("removing the route to %v: %w", p, err)
			}
		}
	}
	for p, r := range want {
		if p.Addr().Is4() {
			r.Family = netlink.FAMILY_V4
		} else {
			r.Family = netlink.FAMILY_V6
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("route to %v over %s: %w", p, iface, err)
		}
	}
	return s.syncCloudNeighbours(h, idx, iface, neigh)
}

// syncCloudNeighbours makes the permanent neighbour entries of the mesh's
// addresses on the soft interface exactly want.
func (s *System) syncCloudNeighbours(h *netlink.Handle, idx int, iface string, want map[netip.Addr]net.HardwareAddr) error {
	have, err := h.NeighList(idx, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing neighbours on %s: %w", iface, err)
	}
	for _, n := range have {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State != netlink.NUD_PERMANENT || !isMeshAddr(a.Unmap()) {
			continue
		}
		if mac, ok := want[a.Unmap()]; ok && bytes.Equal(mac, n.HardwareAddr) {
			delete(want, a.Unmap())
			continue
		}
		if err := h.NeighDel(&n); err != nil {
			return fmt.Errorf("removing neighbour %v on %s: %w", a, iface, err)
		}
	}
	for a, mac := range want {
		fam := netlink.FAMILY_V4
		if a.Is6() {
			fam = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: a.AsSlice(), HardwareAddr: mac}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("neighbour %v on %s: %w", a, iface, err)
		}
	}
	return nil
}

// Do runs fn on a thread in the system's network namespace (sockets it
// opens stay there): the simulator's probes use it.
func (s *System) Do(fn func() error) error { return s.inNS(fn) }
