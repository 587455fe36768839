package mesh

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"byzantium/ci/testenv"
	"byzantium/runtime/mesh/addr"
	"byzantium/runtime/mesh/batadv"
	"byzantium/runtime/nodeapi"
)

// node is an identity with a given slot's MAC, as another node's soft
// interface would show in the translation table.
func slotMAC(h, l uint8, hours uint16, last byte) net.HardwareAddr {
	return net.HardwareAddr{0xb6, h, l, byte(hours >> 8), byte(hours), last}
}

func TestBatmanRoutes(t *testing.T) {
	origC := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 3}
	origD := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 4}
	via := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}
	own := addr.Slot{H: 9, L: 9}
	tt := []batadv.TTEntry{
		{MAC: slotMAC(3, 7, 1, 1), Orig: origC},
		{MAC: net.HardwareAddr{0x02, 1, 2, 3, 4, 5}, Orig: origC}, // a client: no node
		{MAC: slotMAC(4, 1, 1, 1), Orig: origD},
		{MAC: slotMAC(9, 9, 1, 2), Orig: origD}, // our own slot: a collision, not a route
	}
	tests := []struct {
		name  string
		origs []batadv.Originator
		want  []string
	}{
		{"both heard", []batadv.Originator{
			{Address: origC, Neighbour: via, Best: true, TQ: 200, HasTQ: true, LastSeen: time.Second},
			{Address: origC, Neighbour: origD, Best: false, TQ: 100, HasTQ: true, LastSeen: time.Second},
			{Address: origD, Neighbour: origD, Best: true, TQ: 250, HasTQ: true},
		}, []string{"10.3.7.1/32 via " + via.String() + " metric 55", "10.4.1.1/32 via " + origD.String() + " metric 5"}},
		{"C unheard for long", []batadv.Originator{
			{Address: origC, Neighbour: via, Best: true, TQ: 200, HasTQ: true, LastSeen: 30 * time.Second},
			{Address: origD, Neighbour: origD, Best: true, HasTQ: false},
		}, []string{"10.4.1.1/32 via " + origD.String() + " metric 255"}},
		{"no originators", nil, nil},
	}
	for _, tt2 := range tests {
		t.Run(tt2.name, func(t *testing.T) {
			var got []string
			for _, r := range batmanRoutes(tt, tt2.origs, "bat0", own) {
				if r.Interface != "bat0" {
					t.Errorf("route %+v: want it on bat0", r)
				}
				if strings.Contains(r.Prefix, ":") || !r.Installed {
					continue
				}
				got = append(got, fmt.Sprintf("%s via %s metric %d", r.Prefix, r.Via, r.Metric))
			}
			if strings.Join(got, "; ") != strings.Join(tt2.want, "; ") {
				t.Errorf("routes:\n got %q\nwant %q", got, tt2.want)
			}
		})
	}
}

func TestGatewayAddr(t *testing.T) {
	gwOrig := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 3}
	other := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 4}
	tt := []batadv.TTEntry{
		{MAC: net.HardwareAddr{0x02, 1, 2, 3, 4, 5}, Orig: gwOrig},
		{MAC: slotMAC(3, 7, 1, 1), Orig: gwOrig},
		{MAC: slotMAC(4, 1, 1, 1), Orig: other},
	}
	tests := []struct {
		name string
		gws  []batadv.Gateway
		want string
	}{
		{"best gateway's node", []batadv.Gateway{{Address: other}, {Address: gwOrig, Best: true}}, "10.3.7.1"},
		{"none chosen", []batadv.Gateway{{Address: gwOrig}}, "invalid IP"},
		{"chosen but no node MAC", []batadv.Gateway{{Address: net.HardwareAddr{1, 1, 1, 1, 1, 1}, Best: true}}, "invalid IP"},
	}
	for _, tc := range tests {
		if got := gatewayAddr(tc.gws, tt).String(); got != tc.want {
			t.Errorf("%s: gatewayAddr = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestCloudRoutes checks, in a network namespace of its own, the routes
// batman-adv alone puts over its soft interface (a veth stands in
// for bat0: the host kernel has no batman-adv) and the addresses on it.
func TestCloudRoutes(t *testing.T) {
	testenv.RequireRoot(t)
	ipTool := testenv.RequireTool(t, "ip")
	name := fmt.Sprintf("byzt-cloud-%d", os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ipTool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("netns", "add", name)
	t.Cleanup(func() { exec.Command(ipTool, "netns", "del", name).Run() })
	// No dummy links on this host: a veth pair, both ends up.
	run("-n", name, "link", "add", "bat0", "type", "veth", "peer", "name", "bat0p")
	run("-n", name, "link", "set", "bat0p", "up")
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	sys := &System{NS: ns}
	own := addr.Slot{H: 9, L: 9}.Addresses()
	if err := sys.setLinkAddrs("bat0", []netip.Prefix{own.IPv4, own.IPv6}, isMeshAddr); err != nil {
		t.Fatal(err)
	}
	// The default route is setBatDefault's: the sync leaves it alone.
	run("-n", name, "route", "add", "default", "via", "10.3.7.1", "dev", "bat0", "onlink", "proto", "201", "metric", "20")
	show := func() string {
		v4 := run("-n", name, "-4", "route", "show", "proto", "201")
		v6 := run("-n", name, "-6", "route", "show", "proto", "201")
		return strings.TrimSpace(v4 + v6)
	}
	c, d := addr.Slot{H: 3, L: 7}, addr.Slot{H: 4, L: 1}
	cMAC, dMAC := slotMAC(3, 7, 1, 1), slotMAC(4, 1, 1, 1)
	if err := sys.syncCloudRoutes("bat0", own, map[addr.Slot]net.HardwareAddr{c: cMAC, d: dMAC}); err != nil {
		t.Fatal(err)
	}
	neigh := func() string { return run("-n", name, "neigh", "show", "dev", "bat0", "nud", "permanent") }
	for _, want := range []string{"10.3.7.1 lladdr " + cMAC.String(), "10.4.1.1 lladdr " + dMAC.String(),
		c.Addresses().IPv6.Addr().String() + " lladdr " + cMAC.String()} {
		if got := neigh(); !strings.Contains(got, want) {
			t.Errorf("no %q in the neighbours:\n%s", want, got)
		}
	}
	got := show()
	for _, want := range []string{
		"default via 10.3.7.1 dev bat0 metric 20 onlink",
		"10.3.7.0/24 via 10.3.7.1 dev bat0 src 10.9.9.1 onlink",
		"10.3.7.1 dev bat0 scope link src 10.9.9.1",
		"10.4.1.0/24 via 10.4.1.1 dev bat0 src 10.9.9.1 onlink",
		"10.4.1.1 dev bat0 scope link src 10.9.9.1",
		c.Addresses().IPv6.Addr().String() + " dev bat0 src " + own.IPv6.Addr().String(),
		c.Addresses().ClientIPv6.String() + " via " + c.Addresses().IPv6.Addr().String() + " dev bat0 src " + own.IPv6.Addr().String(),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in the routes:\n%s", want, got)
		}
	}
	// D goes unheard: its routes go, C's stay, and a second sync changes
	// nothing.
	for i := 0; i < 2; i++ {
		if err := sys.syncCloudRoutes("bat0", own, map[addr.Slot]net.HardwareAddr{c: cMAC}); err != nil {
			t.Fatal(err)
		}
	}
	got = show()
	if strings.Contains(got, "10.4.1.") || !strings.Contains(got, "10.3.7.1 dev bat0") {
		t.Errorf("after D went, want C's routes only:\n%s", got)
	}
	if got := neigh(); strings.Contains(got, "10.4.1.1") || !strings.Contains(got, "10.3.7.1 lladdr") {
		t.Errorf("after D went, want C's neighbour entries only:\n%s", got)
	}
	if err := sys.syncCloudRoutes("bat0", own, nil); err != nil {
		t.Fatal(err)
	}
	if got := show(); got != "default via 10.3.7.1 dev bat0 metric 20 onlink" {
		t.Errorf("after all went, want the default route only:\n%s", got)
	}
	if got := neigh(); got != "" {
		t.Errorf("after all went, want no neighbour entries:\n%s", got)
	}
	addrs := run("-n", name, "addr", "show", "dev", "bat0")
	for _, want := range []string{"inet 10.9.9.1/32", "inet6 " + own.IPv6.String()} {
		if !strings.Contains(addrs, want) {
			t.Errorf("no %q on bat0:\n%s", want, addrs)
		}
	}
}

// TestProtocolInterfaces pins which interfaces each engine runs on under
// each protocol: babeld on every mesh interface (babel), on the cloud and
// the ones kept out of it (both), on none (batman-adv); batman-adv on
// every mesh interface but those.
func TestProtocolInterfaces(t *testing.T) {
	m := &Manager{opt: Options{Batman: &batadv.Engine{}}}
	ifs := []nodeapi.MeshInterface{
		{Name: "eth1", Kind: "wired", Meshing: true},
		{Name: "eth2", Kind: "wired", Meshing: true},
		{Name: "wlan0", Kind: "wifi", Meshing: true},
		{Name: "eth0", Kind: "wired", Mode: "uplink"},
	}
	tests := []struct {
		proto     string
		babelOnly []string
		babel     string
		cloud     string
	}{
		{nodeapi.MeshBabel, nil, "eth1 eth2 wlan0(w)", "eth1 eth2 wlan0"},
		{nodeapi.MeshBabel, []string{"eth2"}, "eth1 eth2 wlan0(w)", "eth1 eth2 wlan0"}, // ignored
		{nodeapi.MeshBatman, nil, "", "eth1 eth2 wlan0"},
		{nodeapi.MeshBatman, []string{"eth2"}, "", "eth1 eth2 wlan0"}, // ignored
		{nodeapi.MeshBoth, nil, "bat0", "eth1 eth2 wlan0"},
		{nodeapi.MeshBoth, []string{"eth2"}, "bat0 eth2", "eth1 wlan0"},
		{nodeapi.MeshBoth, []string{"eth0"}, "bat0", "eth1 eth2 wlan0"}, // the uplink meshes in neither
	}
	for _, tt := range tests {
		s := nodeapi.MeshSettings{Protocol: tt.proto, BabelOnly: tt.babelOnly}
		var babelIfs, cloud []string
		if usesBabel(tt.proto) {
			for _, i := range m.babelInterfaces(s, ifs) {
				n := i.Name
				if i.Wireless {
					n += "(w)"
				}
				babelIfs = append(babelIfs, n)
			}
		}
		for _, i := range cloudInterfaces(s, ifs) {
			if i.Meshing {
				cloud = append(cloud, i.Name)
			}
		}
		if got := strings.Join(babelIfs, " "); got != tt.babel {
			t.Errorf("%s %v: babeld on %q, want %q", tt.proto, tt.babelOnly, got, tt.babel)
		}
		if got := strings.Join(cloud, " "); got != tt.cloud {
			t.Errorf("%s %v: batman-adv over %q, want %q", tt.proto, tt.babelOnly, got, tt.cloud)
		}
	}
}
