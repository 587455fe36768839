package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The agreed constants: babeld imports the routes to announce from kernel
// routing table 200, where byzd puts them with route protocol 201 ("byz").
const (
	DefaultAnnounceTable    = 200
	DefaultAnnounceProtocol = 201
)

var (
	default4 = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	default6 = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
)

// family names a route family in messages.
func familyName(family int) string {
	if family == netlink.FAMILY_V6 {
		return "IPv6"
	}
	return "IPv4"
}

// isDefault tells whether r is the default route of family.
func isDefault(family int, r netlink.Route) bool {
	if family == netlink.FAMILY_V6 {
		return isDefault6(r)
	}
	return isDefault4(r)
}

// announce puts the IPv4 default route into table (announceFamily).
func announce(h *netlink.Handle, u Uplink, table, proto int) error {
	return announceFamily(h, netlink.FAMILY_V4, u, table, proto)
}

// announceFamily puts family's default route (0.0.0.0/0 or ::/0) into
// table, with protocol proto, via the uplink's gateway (or straight out
// of a point-to-point uplink that has none). babeld reads the prefix, not
// the next hop, but the kernel wants a valid route; replacing keeps it
// one route when the uplink or its gateway changes. The IPv6 next hop is
// the router's link-local address an RA gave, valid only with the
// interface, which the route has.
func announceFamily(h *netlink.Handle, family int, u Uplink, table, proto int) error {
	r := &netlink.Route{
		Dst:       default4,
		LinkIndex: u.Index,
		Table:     table,
		Protocol:  netlink.RouteProtocol(proto),
		Family:    family,
	}
	if family == netlink.FAMILY_V6 {
		r.Dst = default6
	}
	if u.Gateway.IsValid() {
		r.Gw = net.IP(u.Gateway.AsSlice())
		r.Flags = int(netlink.FLAG_ONLINK) // as netcfg does for a router outside the subnet
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("gateway: %s default route in table %d via %s: %w", familyName(family), table, u.Name, err)
	}
	return nil
}

// withdraw removes the IPv4 default route (withdrawFamily).
func withdraw(h *netlink.Handle, table, proto int) error {
	return withdrawFamily(h, netlink.FAMILY_V4, table, proto)
}

// withdrawFamily removes family's default routes of protocol proto from
// table, and no other route there: other parts of byzd announce their
// prefixes from the same table, and the other family's default route is
// withdrawn on its own.
func withdrawFamily(h *netlink.Handle, family, table, proto int) error {
	routes, err := h.RouteListFiltered(family, &netlink.Route{Table: table, Protocol: netlink.RouteProtocol(proto)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("gateway: listing table %d: %w", table, err)
	}
	for _, r := range routes {
		if !isDefault(family, r) {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("gateway: removing %s default route from table %d: %w", familyName(family), table, err)
		}
	}
	return nil
}

// announced tells whether our IPv4 default route is in table.
func announced(h *netlink.Handle, table, proto int) (bool, error) {
	return announcedFamily(h, netlink.FAMILY_V4, table, proto)
}

// announcedFamily tells whether our default route of family is in table.
func announcedFamily(h *netlink.Handle, family, table, proto int) (bool, error) {
	routes, err := h.RouteListFiltered(family, &netlink.Route{Table: table, Protocol: netlink.RouteProtocol(proto)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return false, fmt.Errorf("gateway: listing table %d: %w", table, err)
	}
	for _, r := range routes {
		if isDefault(family, r) {
			return true, nil
		}
	}
	return false, nil
}

// forwardingPath is the namespace's IPv4 forwarding switch (writing it
// sets every interface's forwarding too).
const forwardingPath = "/proc/sys/net/ipv4/ip_forward"

// forwardingPath6 is IPv6's (every interface's too). The mesh manager sets
// it on already (runtime/mesh.Sysctls); the gateway makes sure before it
// announces ::/0, as it does for IPv4.
const forwardingPath6 = "/proc/sys/net/ipv6/conf/all/forwarding"

// enableForwarding turns IPv4 forwarding on in ns, writing only when it is
// off. It is never turned off again: the mesh forwards between its own
// interfaces whether or not this node shares an uplink.
func enableForwarding(ns *netNS) error {
	return ignoreUnchanged(setSysctl(ns, forwardingPath, "1", nil, "enabling IPv4 forwarding"))
}

// enableForwarding6 is enableForwarding for IPv6. Turning it on makes the
// kernel drop the default routes RAs gave every interface whose accept_ra
// is not 2, and ignore their RAs from then on: acceptRA must have run on
// the uplink first (step does it before looking for the IPv6 uplink).
func enableForwarding6(ns *netNS) error {
	return ignoreUnchanged(setSysctl(ns, forwardingPath6, "1", nil, "enabling IPv6 forwarding"))
}

func ignoreUnchanged(err error) error {
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// acceptRAPath is the uplink's accept_ra switch.
func acceptRAPath(iface string) string { return "/proc/sys/net/ipv6/conf/" + iface + "/accept_ra" }

// acceptRA sets accept_ra to 2 on the uplink, and on no other interface.
//
// Why: IPv6 forwarding is on (the mesh is a router, runtime/mesh.Sysctls),
// and a forwarding interface with accept_ra 1 (the kernel's default)
// ignores router advertisements, so the uplink would lose its RA default
// route (the kernel purges it when forwarding turns on) and never learn it
// again; 2 means "take RAs even while forwarding". Only the uplink: on a
// mesh interface an RA from a neighbour's stray router daemon would give
// this node a default route into the mesh, which babeld's routes must
// decide, not RAs; and a client-facing interface must not listen to
// clients' RAs. An operator's 0 (no RAs wanted) is left alone: only 1
// becomes 2. The interface name was checked (ValidInterfaceName), so the
// path cannot leave /proc/sys/net/ipv6/conf.
func acceptRA(ns *netNS, iface string) (changed bool, err error) {
	if err := ValidInterfaceName(iface); err != nil {
		return false, err
	}
	err = setSysctl(ns, acceptRAPath(iface), "2", []string{"1"}, "accept_ra on "+iface)
	if errors.Is(err, errUnchanged) {
		return false, nil
	}
	return err == nil, err
}

var errUnchanged = errors.New("left as it is")

// setSysctl writes value to path in ns unless it holds it already. With
// from set, only a current value in from is replaced (errUnchanged
// otherwise). It reads at most a few bytes: it is a /proc/sys file.
func setSysctl(ns *netNS, path, value string, from []string, what string) error {
	return ns.do(func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("gateway: %s: %w", what, err)
		}
		cur := string(bytes.TrimSpace(b))
		if cur == value {
			return errUnchanged
		}
		if from != nil && !slices.Contains(from, cur) {
			return errUnchanged
		}
		if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
			return fmt.Errorf("gateway: %s: %w", what, err)
		}
		return nil
	})
}

// solicitRouters sends one router solicitation out of the uplink, from
// inside ns: after accept_ra turned 2 the kernel sends none itself, and a
// router's next unsolicited advertisement may be minutes away (RFC 4861
// allows 600 s), while a solicited one comes within half a second. It
// goes to all routers (ff02::2) with hop limit 255, as RFC 4861 wants;
// the kernel fills in the checksum and the link-local source.
func solicitRouters(ns *netNS, ifindex int) error {
	return ns.do(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return fmt.Errorf("gateway: router solicitation: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return fmt.Errorf("gateway: router solicitation: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex); err != nil {
			return fmt.Errorf("gateway: router solicitation: %w", err)
		}
		// type 133, code 0, checksum, reserved.
		rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
		to := &unix.SockaddrInet6{Addr: [16]byte{0: 0xff, 1: 0x02, 15: 0x02}, ZoneId: uint32(ifindex)}
		if err := unix.Sendto(fd, rs, 0, to); err != nil {
			return fmt.Errorf("gateway: router solicitation: %w", err)
		}
		return nil
	})
}
