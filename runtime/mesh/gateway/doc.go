// Package gateway shares a node's uplink with the mesh: it finds the
// uplink (the interface that got a default route by DHCP, or the one the
// operator names), checks that the Internet answers through it, masquerades
// the mesh's and clients' prefixes out of it with nftables (set over
// netlink, never by running nft), and while the check passes puts a
// default route into the routing table babeld announces from (table 200,
// protocol 201), so the rest of the mesh uses this node as its way to the
// Net.
//
// The package knows nothing of the mesh manager: the manager owns a
// Gateway, tells it the mesh interfaces (never uplinks) and the setting,
// and copies Status into nodeapi.Mesh.Gateway.
package gateway
