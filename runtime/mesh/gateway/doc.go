// Package gateway shares a node's uplink with the mesh: it finds the
// uplink (the interface that got a default route by DHCP, or the one the
// operator names), checks that the Internet answers through it, masquerades
// the mesh's and clients' prefixes out of it with nftables (set over
// netlink, never by running nft), and while the check passes puts a
// default route into the routing table babeld announces from (table 200,
// protocol 201), so the rest of the mesh uses this node as its way to the
// Net.
//
// IPv4 and IPv6 are shared each on its own: the IPv6 uplink is the one
// with a working IPv6 default route (router advertisement, DHCP, or by
// hand on the IPv4 or the named uplink: FindUplink6), checked against the
// IPv6 targets (SplitTargets), and ::/0 is announced and withdrawn apart
// from 0.0.0.0/0. The ULA is masqueraded out of it (NAT66).
//
// The package knows nothing of the mesh manager, which uses it so:
//
//	g, err := gateway.New(gateway.Config{Share: s.Share, Uplink: s.Uplink, Prefixes: ..., Logf: ...})
//	go g.Run(ctx)                     // until byzd stops; then the route and the NAT are undone
//	g.SetMeshInterfaces(names)        // whenever the mesh's interfaces change
//	g.Set(s.Share, s.Uplink)          // on a settings change (ValidSetting checks a PUT first)
//	g.Wake()                          // optional: Run also watches links and routes itself
//	mesh.Gateway = g.Status().MeshGateway // Share, Uplink, Sharing, Check (IPv4's); InUse is the manager's
//	g.Status().SharingIPv6            // and UplinkIPv6, CheckIPv6: the IPv6 side
//	gateway.Uplinks(h, s.Uplink, nil) // the interfaces to keep out of the mesh
//
// What it changes in the kernel: the nftables table inet byz-gateway (and
// no other), the default routes (0.0.0.0/0, ::/0) of protocol 201 in table
// 200 (and no other route there), net.ipv4.ip_forward and
// net.ipv6.conf.all.forwarding, which it turns on and never off, and
// accept_ra on the uplink (1 becomes 2, see acceptRA); it sends router
// solicitations out of the uplink when it changed accept_ra. It needs CAP_NET_ADMIN, and CAP_SYS_ADMIN only to work in another
// network namespace (Config.NetNS); the nf_tables modules in KernelModules
// must be loadable.
package gateway
