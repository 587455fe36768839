package gateway

import (
	"context"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// watch wakes Run when a link changes (an uplink's cable pulled, a USB
// modem unplugged) or a default route of either family comes or goes in
// the main table (a DHCP lease, a router advertisement), so that a lost uplink is withdrawn at once rather than at
// the next periodic check. Routes babeld learns from the mesh change
// often and are ignored. If the kernel refuses the subscription, the
// periodic check still works: it is logged and watch gives up.
func (g *Gateway) watch(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	var nsh *netns.NsHandle
	if g.ns.h.IsOpen() {
		h := g.ns.h
		nsh = &h
	}
	onErr := func(err error) {
		// Closing the subscriptions when Run ends makes their readers
		// fail, perhaps after Run returned: not worth a word.
		if ctx.Err() == nil {
			g.cfg.Logf("gateway: netlink subscription: %v", err)
		}
	}
	links := make(chan netlink.LinkUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: nsh, ErrorCallback: onErr}); err != nil {
		onErr(err)
		links = nil
	}
	routes := make(chan netlink.RouteUpdate, 64)
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: nsh, ErrorCallback: onErr}); err != nil {
		onErr(err)
		routes = nil
	}
	for links != nil || routes != nil {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-links:
			if !ok {
				links = nil
				continue
			}
			g.Wake()
		case u, ok := <-routes:
			if !ok {
				routes = nil
				continue
			}
			if u.Table == unix.RT_TABLE_MAIN && u.Protocol != protoBabel && (isDefault4(u.Route) || isDefault6(u.Route)) {
				g.Wake()
			}
		}
	}
}
