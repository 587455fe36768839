package netcfg

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
)

// RouteMetricBase plus the interface index is the default route's metric
// (runtime/mesh/gateway knows a DHCP uplink by it):
// two wired interfaces each keep their own default route instead of
// replacing each other's, and the kernel prefers the lower index.
const RouteMetricBase = 100

// apply puts l on its interface: address, default route, resolv.conf.
// prev is the lease it replaces on the same interface, if any.
func apply(l Lease, prev *Lease, rootDir string) error {
	link, err := netlink.LinkByName(l.Interface)
	if err != nil {
		return fmt.Errorf("netcfg: %s: %w", l.Interface, err)
	}
	addr := &netlink.Addr{IPNet: prefixNet(l)}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("netcfg: adding %s to %s: %w", l.Address, l.Interface, err)
	}
	if prev != nil && prev.Address != l.Address {
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: prefixNet(*prev)}); err != nil {
			return fmt.Errorf("netcfg: removing old %s from %s: %w", prev.Address, l.Interface, err)
		}
	}
	if l.Router.IsValid() {
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Gw:        net.IP(l.Router.AsSlice()),
			Priority:  RouteMetricBase + link.Attrs().Index,
		}
		if !l.Address.Contains(l.Router) {
			// Some servers (cloud, point-to-point) hand out a router
			// outside the subnet; it is still reachable on the link.
			r.Flags = int(netlink.FLAG_ONLINK)
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("netcfg: default route via %s on %s: %w", l.Router, l.Interface, err)
		}
	}
	if len(l.DNS) > 0 {
		if err := writeResolvConf(rootDir, l); err != nil {
			return err
		}
	}
	return nil
}

// unapply removes the address of an expired lease; the kernel drops the
// routes through it with it.
func unapply(l Lease) error {
	link, err := netlink.LinkByName(l.Interface)
	if err != nil {
		return fmt.Errorf("netcfg: %s: %w", l.Interface, err)
	}
	if err := netlink.AddrDel(link, &netlink.Addr{IPNet: prefixNet(l)}); err != nil {
		return fmt.Errorf("netcfg: removing %s from %s: %w", l.Address, l.Interface, err)
	}
	return nil
}

func prefixNet(l Lease) *net.IPNet {
	return &net.IPNet{
		IP:   net.IP(l.Address.Addr().AsSlice()),
		Mask: net.CIDRMask(l.Address.Bits(), l.Address.Addr().BitLen()),
	}
}

// resolvConf renders the file; the last interface to get a lease wins,
// which is right for the one-cable node this serves.
func resolvConf(l Lease) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by byzd from the DHCP lease on %s.\n", l.Interface)
	if len(l.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(l.Search, " "))
	}
	for _, d := range l.DNS {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	return []byte(b.String())
}

// writeResolvConf replaces rootDir/etc/resolv.conf atomically (temporary
// file and rename), so a resolver never reads half a file.
func writeResolvConf(rootDir string, l Lease) error {
	dir := filepath.Join(rootDir, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netcfg: %w", err)
	}
	f, err := os.CreateTemp(dir, ".resolv.conf.*")
	if err != nil {
		return fmt.Errorf("netcfg: %w", err)
	}
	_, err = f.Write(resolvConf(l))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, "resolv.conf"))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("netcfg: writing resolv.conf: %w", err)
	}
	return nil
}
