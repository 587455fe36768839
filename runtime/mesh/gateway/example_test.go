package gateway_test

import (
	"context"
	"log"

	"byzantium/runtime/mesh/gateway"
	"byzantium/runtime/nodeapi"
)

// The mesh manager owns one Gateway for the node's life: it passes the
// settings and its addresses in, tells it the mesh interfaces whenever
// they change, and copies Status's MeshGateway into nodeapi.Mesh.Gateway
// (adding InUse, which is the manager's); the IPv6 side is in Status's
// own fields (UplinkIPv6, SharingIPv6, CheckIPv6).
func Example() {
	settings := nodeapi.MeshSettings{Share: nodeapi.ShareAuto}
	g, err := gateway.New(gateway.Config{
		Share:  settings.Share,
		Uplink: settings.Uplink,
		// The mesh's and the clients' IPv4 space and the ULA /48
		// (NAT66): DefaultPrefixes.
		Prefixes: gateway.DefaultPrefixes,
		Logf:     log.Printf,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()

	g.SetMeshInterfaces([]string{"eth1", "wlan0"})
	// On PUT /api/v1/mesh/settings (a bad value is refused, nothing changes):
	if err := g.Set(nodeapi.ShareOn, "eth0"); err != nil {
		log.Print(err)
	}
	var mesh nodeapi.Mesh
	inUse := mesh.Gateway.InUse
	st := g.Status()
	mesh.Gateway = st.MeshGateway
	mesh.Gateway.InUse = inUse
	if st.SharingIPv6 {
		log.Printf("sharing IPv6 via %s", st.UplinkIPv6)
	}

	stop() // at shutdown: Run withdraws the route and removes the NAT
	if err := <-done; err != nil {
		log.Print(err)
	}
}
