package batadv

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"byzantium/runtime/nodeapi"

	"github.com/vishvananda/netlink"
)

func TestHardPlan(t *testing.T) {
	tests := []struct {
		name              string
		want, have        []string
		add, remove, keep []string
	}{
		{"first start", []string{"eth1", "wlan0"}, nil, []string{"eth1", "wlan0"}, nil, nil},
		{"unchanged", []string{"eth1", "wlan0"}, []string{"wlan0", "eth1"}, nil, nil, []string{"eth1", "wlan0"}},
		{"radio unplugged", []string{"eth1"}, []string{"eth1", "wlan0"}, nil, []string{"wlan0"}, []string{"eth1"}},
		{"swap", []string{"eth2"}, []string{"eth1"}, []string{"eth2"}, []string{"eth1"}, nil},
		{"nothing meshes", nil, []string{"eth1"}, nil, []string{"eth1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, remove, keep := hardPlan(tt.want, tt.have)
			if !reflect.DeepEqual(add, tt.add) || !reflect.DeepEqual(remove, tt.remove) || !reflect.DeepEqual(keep, tt.keep) {
				t.Errorf("hardPlan(%q, %q) = add %q remove %q keep %q, want %q %q %q", tt.want, tt.have, add, remove, keep, tt.add, tt.remove, tt.keep)
			}
		})
	}
}

func TestMeshingNames(t *testing.T) {
	got, err := meshingNames([]nodeapi.MeshInterface{
		{Name: "eth1", Meshing: true},
		{Name: "eth0", Mode: "uplink"},
		{Name: "wlan0", Meshing: true},
		{Name: "eth1", Meshing: true},
	})
	if err != nil || !reflect.DeepEqual(got, []string{"eth1", "wlan0"}) {
		t.Errorf("meshingNames = %q, %v; want eth1, wlan0 (the uplink left out, eth1 once)", got, err)
	}
	for _, bad := range []string{"", "an-interface-name"} {
		if _, err := meshingNames([]nodeapi.MeshInterface{{Name: bad, Meshing: true}}); err == nil || !strings.Contains(err.Error(), "1 to 15 bytes") {
			t.Errorf("name %q: %v", bad, err)
		}
	}
}

func TestGatewayMatches(t *testing.T) {
	server := func(d, u uint32) MeshSettings { return MeshSettings{Gateway: GatewayServer, DownKbit: d, UpKbit: u} }
	tests := []struct {
		name   string
		kernel Mesh
		want   MeshSettings
		match  bool
	}{
		{"client is client", Mesh{Gateway: GatewayClient}, MeshSettings{Gateway: GatewayClient}, true},
		{"fresh interface is off", Mesh{Gateway: GatewayOff, DownKbit: 10000, UpKbit: 2000}, MeshSettings{Gateway: GatewayClient}, false},
		{"server to client", Mesh{Gateway: GatewayServer}, MeshSettings{Gateway: GatewayClient}, false},
		{"same server", Mesh{Gateway: GatewayServer, DownKbit: 50000, UpKbit: 10000}, server(50000, 10000), true},
		{"rounded to 100 kbit/s", Mesh{Gateway: GatewayServer, DownKbit: 50100, UpKbit: 10000}, server(50001, 10000), true},
		{"other bandwidth", Mesh{Gateway: GatewayServer, DownKbit: 50000, UpKbit: 10000}, server(20000, 10000), false},
		{"default bandwidth keeps any", Mesh{Gateway: GatewayServer, DownKbit: 1234500, UpKbit: 100}, server(0, 0), true},
		{"saturated", Mesh{Gateway: GatewayServer, DownKbit: 0xffffffff}, server(0xffffffff, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gatewayMatches(tt.kernel, tt.want); got != tt.match {
				t.Errorf("gatewayMatches(%+v, %+v) = %v", tt.kernel, tt.want, got)
			}
		})
	}
	var e Engine
	if g := e.gateway(); g.Gateway != GatewayClient {
		t.Errorf("a new engine's gateway mode is %s, want client", g.Gateway)
	}
}

func TestEngineState(t *testing.T) {
	tests := []struct {
		name       string
		started    bool
		lastErr    string
		exists, up bool
		hards      int
		state, why string
	}{
		{"never started", false, "", false, false, 0, "off", ""},
		{"left by an earlier run", false, "", true, true, 2, "off", ""},
		{"module missing", false, "batman-adv is not in this kernel", false, false, 0, "failed", "batman-adv is not in this kernel"},
		{"running", true, "", true, true, 1, "running", ""},
		{"running without one radio", true, "batadv: find wlan1: Link not found", true, true, 1, "running", "batadv: find wlan1: Link not found"},
		{"no mesh interface", true, "", true, true, 0, "starting", "no mesh interface to run bat0 over"},
		{"down", true, "", true, false, 1, "starting", "bat0 is down"},
		{"no hard interface took", true, "batadv: find eth1: Link not found", true, true, 0, "failed", "batadv: find eth1: Link not found"},
		{"deleted behind its back", true, "", false, false, 0, "failed", "bat0 is gone: deleted behind the engine's back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, why := engineState(tt.started, tt.lastErr, "bat0", tt.exists, tt.up, tt.hards)
			if state != tt.state || why != tt.why {
				t.Errorf("engineState = %q, %q; want %q, %q", state, why, tt.state, tt.why)
			}
		})
	}
}

// Start refuses what it cannot use before touching the kernel.
func TestEngineStartRefuses(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	wired := []nodeapi.MeshInterface{{Name: "eth1", Kind: "wired", Mode: "wired", Meshing: true}}
	tests := []struct {
		name   string
		mac    net.HardwareAddr
		ctx    context.Context
		ifaces []nodeapi.MeshInterface
		want   string
	}{
		{"multicast MAC", net.HardwareAddr{0x03, 0xba, 0, 0, 0, 1}, context.Background(), wired, "want a unicast Ethernet address"},
		{"zero MAC", make(net.HardwareAddr, 6), context.Background(), wired, "want a unicast Ethernet address"},
		{"short MAC", net.HardwareAddr{2, 0xba}, context.Background(), wired, "want a unicast Ethernet address"},
		{"long name", nil, context.Background(), []nodeapi.MeshInterface{{Name: "wlx00c0ca123456789", Meshing: true}}, "1 to 15 bytes"},
		{"canceled", nil, canceled, wired, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Engine{MAC: tt.mac}
			err := e.Start(tt.ctx, tt.ifaces, nodeapi.MeshSettings{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want an error containing %q", err, tt.want)
			}
			var m nodeapi.Mesh
			e.Status(&m)
			if m.Engine != "failed" || m.EngineError != err.Error() {
				t.Errorf("Status after the failed Start: %q, %q", m.Engine, m.EngineError)
			}
		})
	}
}

// On a kernel without batman-adv (this host) Start fails naming the
// missing module, Status says so, and nothing is left behind: no bat0,
// the would-be hard interface untouched. Stop of nothing is no error.
func TestEngineNotInKernel(t *testing.T) {
	if batmanAvailable() {
		t.Skip("batman-adv is in this kernel: the QEMU guest test covers the working path")
	}
	inNetns(t, func() {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "mesh0"}, PeerName: "mesh0p"}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatalf("make a veth: %v", err)
		}
		var logs []string
		e := Engine{MAC: net.HardwareAddr{2, 0xba, 0, 0, 0, 1}, Logf: func(f string, a ...any) { logs = append(logs, f) }}
		if err := e.SetGateway(true, 50000, 10000); err != nil {
			t.Errorf("SetGateway before Start: %v", err)
		}
		err := e.Start(context.Background(), []nodeapi.MeshInterface{{Name: "mesh0", Kind: "wired", Mode: "wired", Meshing: true}}, nodeapi.MeshSettings{})
		if !errors.Is(err, ErrNotInKernel) {
			t.Fatalf("Start = %v, want ErrNotInKernel", err)
		}
		const want = "batman-adv is not in this kernel: create bat0: the kernel has no link kind batadv (modprobe batman-adv failed)"
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Start error %q, want it to start %q", err, want)
		}
		m := nodeapi.Mesh{Neighbours: []nodeapi.MeshNeighbour{{Address: "stale"}}}
		e.Status(&m)
		if m.Engine != "failed" || m.EngineError != err.Error() || m.Neighbours != nil || m.Routes != nil {
			t.Errorf("Status after Start failed: %+v", m)
		}
		if l, err := netlink.LinkByName("mesh0"); err != nil || l.Attrs().MasterIndex != 0 || l.Attrs().MTU != 1500 {
			t.Errorf("mesh0 changed: %+v, %v", l, err)
		}
		if _, err := netlink.LinkByName("bat0"); err == nil {
			t.Error("bat0 exists after the failed Start")
		}
		for what, f := range map[string]func() error{
			"Ifindex":  func() error { _, err := e.Ifindex(); return err },
			"Gateways": func() error { _, err := e.Gateways(); return err },
			"GlobalTT": func() error { _, err := e.GlobalTT(); return err },
		} {
			if err := f(); err == nil || !strings.Contains(err.Error(), "batadv: find bat0") {
				t.Errorf("%s without bat0: %v", what, err)
			}
		}
		if err := e.Stop(); err != nil {
			t.Errorf("Stop without bat0: %v", err)
		}
		e.Status(&m)
		if m.Engine != "off" || m.EngineError != "" {
			t.Errorf("Status after Stop: %q, %q", m.Engine, m.EngineError)
		}
		if len(logs) != 0 {
			t.Errorf("logged %q for a Start that changed nothing", logs)
		}
	})
}

// An interface of the soft interface's name that is not batman-adv is
// never adopted, stopped or reported as running.
func TestEngineForeignSoftInterface(t *testing.T) {
	inNetns(t, func() {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "mesh9"}, PeerName: "hard0"}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatalf("make a veth: %v", err)
		}
		e := Engine{Name: "mesh9"}
		err := e.Start(context.Background(), []nodeapi.MeshInterface{{Name: "hard0", Meshing: true}}, nodeapi.MeshSettings{})
		if err == nil || !strings.Contains(err.Error(), "mesh9 exists and is a veth interface, not batman-adv") {
			t.Errorf("Start over a veth: %v", err)
		}
		var m nodeapi.Mesh
		e.Status(&m)
		if m.Engine != "failed" || m.EngineError != "mesh9 is a veth interface, not batman-adv" {
			t.Errorf("Status: %q, %q", m.Engine, m.EngineError)
		}
		if err := e.Stop(); err == nil || !strings.Contains(err.Error(), "not stopping it") {
			t.Errorf("Stop of a veth: %v", err)
		}
		if _, err := e.Ifindex(); err == nil || !strings.Contains(err.Error(), "not batman-adv") {
			t.Errorf("Ifindex of a veth: %v", err)
		}
		if _, err := netlink.LinkByName("mesh9"); err != nil {
			t.Errorf("the veth is gone: %v", err)
		}
		if l, err := netlink.LinkByName("hard0"); err != nil || l.Attrs().MasterIndex != 0 {
			t.Errorf("hard0 changed: %+v, %v", l, err)
		}
	})
}
