package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/netcfg"
)

// dhcpMetricBase is runtime/netcfg's mark on the default routes its DHCP
// client installs: metric RouteMetricBase + the interface index.
const dhcpMetricBase = netcfg.RouteMetricBase

// Route protocols that are never an uplink's: babeld installs the routes
// it learned from the mesh with protocol 42, and a default route another
// gateway announces is one of those.
const protoBabel = 42

// ErrNoUplink is returned by FindUplink when no interface qualifies.
var ErrNoUplink = errors.New("gateway: no uplink")

// Uplink is the interface this node reaches the Net by, for one family.
type Uplink struct {
	Name  string
	Index int
	// Gateway is the next hop of its default route (IPv4's, or IPv6's
	// for FindUplink6: a router's link-local address); invalid for a
	// point-to-point link whose route has none.
	Gateway netip.Addr
	Metric  int
}

// FindUplink finds the uplink in the main routing table of h's namespace
// (netlink.NewHandle() for the process's own).
//
// With named "", it is the interface that holds an IPv4 default route put
// there by DHCP (runtime/netcfg's metric 100+ifindex, or protocol dhcp from
// another client), is up, and is not one of exclude (the mesh interfaces:
// a default route learned from the mesh is not an uplink). Of several, the
// one the kernel prefers (lowest metric, then lowest index) wins.
//
// With named set, it is that interface, which must be up and hold an IPv4
// default route of any origin in the main table (the operator may have set
// it by hand); exclude does not apply, the operator's word wins.
func FindUplink(h *netlink.Handle, named string, exclude []string) (Uplink, error) {
	all, err := Uplinks(h, named, exclude)
	if err != nil {
		return Uplink{}, err
	}
	if len(all) == 0 {
		if named != "" {
			return Uplink{}, fmt.Errorf("%w: %s is down or has no IPv4 default route", ErrNoUplink, named)
		}
		return Uplink{}, fmt.Errorf("%w: no interface outside the mesh has a default route from DHCP", ErrNoUplink)
	}
	return all[0], nil
}

// namedLink is the index of the uplink the operator named, 0 for none.
func namedLink(h *netlink.Handle, named string) (int, error) {
	if named == "" {
		return 0, nil
	}
	if err := ValidInterfaceName(named); err != nil {
		return 0, err
	}
	l, err := h.LinkByName(named)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrNoUplink, named, err)
	}
	return l.Attrs().Index, nil
}

// Uplinks lists every interface FindUplink would accept, best first: the
// mesh manager leaves them all out of the mesh (a wired port that got a
// DHCP lease is a way to the Net, not a mesh link). It fails only when the
// routes cannot be read or named is not a valid, existing interface.
func Uplinks(h *netlink.Handle, named string, exclude []string) ([]Uplink, error) {
	namedIndex, err := namedLink(h, named)
	if err != nil {
		return nil, err
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("gateway: listing routes: %w", err)
	}
	var out []Uplink
	for _, r := range routes {
		if !isDefault4(r) || r.Protocol == protoBabel || r.LinkIndex == 0 || r.Flags&unix.RTNH_F_LINKDOWN != 0 {
			continue
		}
		if namedIndex != 0 {
			if r.LinkIndex != namedIndex {
				continue
			}
		} else if r.Priority != dhcpMetricBase+r.LinkIndex && r.Protocol != unix.RTPROT_DHCP {
			continue
		}
		link, err := h.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue // gone since the route list was read
		}
		a := link.Attrs()
		if namedIndex == 0 && slices.Contains(exclude, a.Name) {
			continue
		}
		if a.Flags&net.FlagUp == 0 || a.OperState == netlink.OperDown || a.OperState == netlink.OperLowerLayerDown {
			continue
		}
		u := Uplink{Name: a.Name, Index: a.Index, Metric: r.Priority}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			u.Gateway = gw.Unmap()
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b Uplink) int {
		if a.Metric != b.Metric {
			return a.Metric - b.Metric
		}
		return a.Index - b.Index
	})
	// An interface with two default routes is listed once, by its best.
	return slices.CompactFunc(out, func(a, b Uplink) bool { return a.Index == b.Index }), nil
}

func isDefault4(r netlink.Route) bool {
	if r.Dst == nil {
		return r.Family != netlink.FAMILY_V6
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0 && r.Dst.IP.To4() != nil
}

func isDefault6(r netlink.Route) bool {
	if r.Dst == nil {
		return r.Family == netlink.FAMILY_V6
	}
	ones, bits := r.Dst.Mask.Size()
	return ones == 0 && bits == 128 && len(r.Dst.IP) == net.IPv6len && r.Dst.IP.To4() == nil
}

// rtprotRA is the protocol of the routes the kernel learned from router
// advertisements (RTPROT_RA in linux/rtnetlink.h).
const rtprotRA = 9

// FindUplink6 finds the IPv6 uplink: the interface that holds a working
// IPv6 default route ("::/0") in the main table, is up, and is not a
// babeld route (protocol 42). It is chosen apart from the IPv4 uplink, so
// that a node shares IPv4 only, IPv6 only, or both:
//
//   - With named set, it is that interface, with a default route of any
//     origin (RA, DHCPv6, by hand); exclude does not apply.
//   - Else, it is v4 (the IPv4 uplink's name, "" for none) if that holds an
//     IPv6 default route of any origin (an operator who configured IPv6
//     by hand on the uplink meant it), or else an interface outside
//     exclude whose default route came by router advertisement (protocol
//     ra) or DHCP: as for IPv4, a route set by hand on some other port is
//     not taken for the Net.
//
// Of several, v4 wins, then the lowest metric, then the lowest index.
func FindUplink6(h *netlink.Handle, named string, exclude []string, v4 string) (Uplink, error) {
	all, err := Uplinks6(h, named, exclude, v4)
	if err != nil {
		return Uplink{}, err
	}
	if len(all) == 0 {
		if named != "" {
			return Uplink{}, fmt.Errorf("%w: %s is down or has no IPv6 default route", ErrNoUplink, named)
		}
		return Uplink{}, fmt.Errorf("%w: no interface outside the mesh has an IPv6 default route from a router advertisement", ErrNoUplink)
	}
	return all[0], nil
}

// Uplinks6 lists every interface FindUplink6 would accept, best first.
func Uplinks6(h *netlink.Handle, named string, exclude []string, v4 string) ([]Uplink, error) {
	namedIndex, err := namedLink(h, named)
	if err != nil {
		return nil, err
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("gateway: listing IPv6 routes: %w", err)
	}
	var out []Uplink
	for _, r := range routes {
		// An unreachable or blackhole ::/0 (type, not unicast) is no way out.
		if !isDefault6(r) || r.Protocol == protoBabel || r.LinkIndex == 0 || r.Flags&unix.RTNH_F_LINKDOWN != 0 || (r.Type != 0 && r.Type != unix.RTN_UNICAST) {
			continue
		}
		link, err := h.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue // gone since the route list was read
		}
		a := link.Attrs()
		switch {
		case namedIndex != 0:
			if r.LinkIndex != namedIndex {
				continue
			}
		case v4 != "" && a.Name == v4:
			// The IPv4 uplink: any origin.
		case slices.Contains(exclude, a.Name):
			continue
		case r.Protocol != rtprotRA && r.Protocol != unix.RTPROT_DHCP:
			continue
		}
		if a.Flags&net.FlagUp == 0 || a.OperState == netlink.OperDown || a.OperState == netlink.OperLowerLayerDown {
			continue
		}
		u := Uplink{Name: a.Name, Index: a.Index, Metric: r.Priority}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			u.Gateway = gw
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b Uplink) int {
		if (a.Name == v4) != (b.Name == v4) {
			if a.Name == v4 {
				return -1
			}
			return 1
		}
		if a.Metric != b.Metric {
			return a.Metric - b.Metric
		}
		return a.Index - b.Index
	})
	return slices.CompactFunc(out, func(a, b Uplink) bool { return a.Index == b.Index }), nil
}

// ValidInterfaceName refuses a name the kernel would (meshcfg.Interface,
// the one rule for the spec, the API and here).
func ValidInterfaceName(name string) error {
	if err := meshcfg.Interface(name); err != nil {
		return fmt.Errorf("gateway: interface name: %w", err)
	}
	return nil
}
