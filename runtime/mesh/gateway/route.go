package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The agreed constants: babeld imports the routes to announce from kernel
// routing table 200, where byzd puts them with route protocol 201 ("byz").
const (
	DefaultAnnounceTable    = 200
	DefaultAnnounceProtocol = 201
)

var default4 = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}

// announce puts the default route into table, with protocol proto, via
// the uplink's gateway (or straight out of a point-to-point uplink that
// has none). babeld reads the prefix, not the next hop, but the kernel
// wants a valid route; replacing keeps it one route when the uplink or
// its gateway changes.
func announce(h *netlink.Handle, u Uplink, table, proto int) error {
	r := &netlink.Route{
		Dst:       default4,
		LinkIndex: u.Index,
		Table:     table,
		Protocol:  netlink.RouteProtocol(proto),
		Family:    netlink.FAMILY_V4,
	}
	if u.Gateway.IsValid() {
		r.Gw = net.IP(u.Gateway.AsSlice())
		r.Flags = int(netlink.FLAG_ONLINK) // as netcfg does for a router outside the subnet
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("gateway: default route in table %d via %s: %w", table, u.Name, err)
	}
	return nil
}

// withdraw removes the default routes of protocol proto from table, and no
// other route there: other parts of byzd announce their prefixes from the
// same table.
func withdraw(h *netlink.Handle, table, proto int) error {
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table, Protocol: netlink.RouteProtocol(proto)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("gateway: listing table %d: %w", table, err)
	}
	for _, r := range routes {
		if !isDefault4(r) {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("gateway: removing default route from table %d: %w", table, err)
		}
	}
	return nil
}

// announced tells whether our default route is in table.
func announced(h *netlink.Handle, table, proto int) (bool, error) {
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table, Protocol: netlink.RouteProtocol(proto)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return false, fmt.Errorf("gateway: listing table %d: %w", table, err)
	}
	for _, r := range routes {
		if isDefault4(r) {
			return true, nil
		}
	}
	return false, nil
}

// forwardingPath is the namespace's IPv4 forwarding switch (writing it
// sets every interface's forwarding too).
const forwardingPath = "/proc/sys/net/ipv4/ip_forward"

// enableForwarding turns IPv4 forwarding on in ns, writing only when it is
// off. It is never turned off again: the mesh forwards between its own
// interfaces whether or not this node shares an uplink.
func enableForwarding(ns *netNS) error {
	return ns.do(func() error {
		b, err := os.ReadFile(forwardingPath)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		if string(bytes.TrimSpace(b)) == "1" {
			return nil
		}
		if err := os.WriteFile(forwardingPath, []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("gateway: enabling IPv4 forwarding: %w", err)
		}
		return nil
	})
}
