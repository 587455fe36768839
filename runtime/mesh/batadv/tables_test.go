package batadv

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"byzantium/runtime/nodeapi"
)

var (
	macA = net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x01}
	macB = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 0x02}
	macC = net.HardwareAddr{0x02, 0xcc, 0, 0, 0, 0x03}
)

// row builds one dump reply as batman-adv's netlink.c does: genlmsghdr
// with the dump's command, then the row's attributes.
func row(cmd uint8, fill func(*encoder)) []byte {
	e := newEncoder([]byte{cmd, 1, 0, 0})
	fill(e)
	return e.Bytes()
}

// What a node B sees in a line A–B–C under BATMAN_IV: neighbours A and C
// on two hard interfaces; originators A and C direct, C also through A
// (worse); C is a gateway server used as the best.
func lineDump() (neigh, orig, gws [][]byte) {
	neigh = [][]byte{
		row(cmdGetNeighbors, func(e *encoder) {
			e.Put(attrNeighAddress, macA)
			e.U32(attrHardIfindex, 3)
			e.U32(attrLastSeenMsecs, 240)
		}),
		row(cmdGetNeighbors, func(e *encoder) {
			e.Put(attrNeighAddress, macC)
			e.U32(attrHardIfindex, 4)
			e.U32(attrLastSeenMsecs, 1020)
		}),
	}
	origRow := func(o, n net.HardwareAddr, ifindex uint32, tq uint8, best bool) []byte {
		return row(cmdGetOriginators, func(e *encoder) {
			e.Put(attrOrigAddress, o)
			e.Put(attrNeighAddress, n)
			e.U32(attrHardIfindex, ifindex)
			e.U32(attrLastSeenMsecs, 500)
			e.U8(attrTQ, tq)
			if best {
				e.Flag(attrFlagBest)
			}
		})
	}
	orig = [][]byte{
		origRow(macA, macA, 3, 250, true),
		origRow(macC, macC, 4, 230, true),
		origRow(macC, macA, 3, 180, false),
	}
	gws = [][]byte{
		row(cmdGetGateways, func(e *encoder) {
			e.Put(attrOrigAddress, macC)
			e.U8(attrTQ, 230)
			e.Put(attrRouter, macC)
			e.Put(attrHardIfname, []byte("eth2\x00"))
			e.U32(attrBandwidthDown, 100)
			e.U32(attrBandwidthUp, 20)
			e.Flag(attrFlagBest)
		}),
	}
	return
}

func TestParseTables(t *testing.T) {
	nm, om, gm := lineDump()
	neigh, err := ParseNeighbours(nm)
	if err != nil {
		t.Fatal(err)
	}
	wantNeigh := []Neighbour{
		{Address: macA, HardIfindex: 3, LastSeen: 240 * time.Millisecond},
		{Address: macC, HardIfindex: 4, LastSeen: 1020 * time.Millisecond},
	}
	if !reflect.DeepEqual(neigh, wantNeigh) {
		t.Errorf("neighbours\n got %+v\nwant %+v", neigh, wantNeigh)
	}
	orig, err := ParseOriginators(om)
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) != 3 || !orig[0].Best || orig[2].Best || orig[2].TQ != 180 || !orig[2].HasTQ || orig[1].Neighbour.String() != macC.String() {
		t.Errorf("originators %+v", orig)
	}
	gws, err := ParseGateways(gm)
	if err != nil {
		t.Fatal(err)
	}
	wantGW := []Gateway{{Address: macC, Router: macC, HardIfname: "eth2", DownKbit: 10000, UpKbit: 2000, TQ: 230, HasTQ: true, Best: true}}
	if !reflect.DeepEqual(gws, wantGW) {
		t.Errorf("gateways\n got %+v\nwant %+v", gws, wantGW)
	}

	names := map[int]string{3: "eth1", 4: "eth2"}
	ifname := func(i int) string { return names[i] }
	gotN := MeshNeighbours(neigh, orig, ifname)
	wantN := []nodeapi.MeshNeighbour{
		{Address: "02:aa:00:00:00:01", Interface: "eth1", Cost: 5},
		{Address: "02:cc:00:00:00:03", Interface: "eth2", Cost: 25},
	}
	if !reflect.DeepEqual(gotN, wantN) {
		t.Errorf("MeshNeighbours\n got %+v\nwant %+v", gotN, wantN)
	}
	gotR := MeshRoutes(orig, ifname)
	wantR := []nodeapi.MeshRoute{
		{Prefix: "02:aa:00:00:00:01", Via: "02:aa:00:00:00:01", Interface: "eth1", Metric: 5, Installed: true, RouterID: "02:aa:00:00:00:01"},
		{Prefix: "02:cc:00:00:00:03", Via: "02:cc:00:00:00:03", Interface: "eth2", Metric: 25, Installed: true, RouterID: "02:cc:00:00:00:03"},
		{Prefix: "02:cc:00:00:00:03", Via: "02:aa:00:00:00:01", Interface: "eth1", Metric: 75, Installed: false, RouterID: "02:cc:00:00:00:03"},
	}
	if !reflect.DeepEqual(gotR, wantR) {
		t.Errorf("MeshRoutes\n got %+v\nwant %+v", gotR, wantR)
	}
	if g, ok := BestGateway(gws); !ok || g.Address.String() != macC.String() {
		t.Errorf("BestGateway = %+v, %v", g, ok)
	}
	if _, ok := BestGateway(nil); ok {
		t.Error("BestGateway(nil) found one")
	}
}

// A neighbour row written out byte by byte (little-endian host), as the
// kernel's batadv_iv_ogm_neigh_dump_neigh lays it out.
func TestParseNeighbourRawBytes(t *testing.T) {
	if !littleEndian() {
		t.Fatal("these bytes are little-endian; add a big-endian copy for this host")
	}
	msg := unhex(t, ""+
		"09010000"+ // genlmsghdr: GET_NEIGHBORS, version 1
		"0a001800"+"02bb00000002"+"0000"+ // NEIGH_ADDRESS + pad
		"08000600"+"07000000"+ // HARD_IFINDEX 7
		"08001700"+"e8030000") // LAST_SEEN_MSECS 1000
	got, err := ParseNeighbours([][]byte{msg})
	if err != nil {
		t.Fatal(err)
	}
	want := []Neighbour{{Address: macB, HardIfindex: 7, LastSeen: time.Second}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseTablesRefuse(t *testing.T) {
	tests := []struct {
		name  string
		parse func([][]byte) error
		msg   []byte
		want  string
	}{
		{"short header", parseN, []byte{9, 1}, "shorter than a genl header"},
		{"wrong command", parseN, row(cmdGetOriginators, func(e *encoder) {}), "command 8, want 9"},
		{"neighbour without address", parseN, row(cmdGetNeighbors, func(e *encoder) { e.U32(attrHardIfindex, 3) }), "no neighbour address"},
		{"MAC of 5 bytes", parseN, row(cmdGetNeighbors, func(e *encoder) { e.Put(attrNeighAddress, macA[:5]) }), "5 bytes for a MAC"},
		{"MAC of 8 bytes", parseO, row(cmdGetOriginators, func(e *encoder) { e.Put(attrOrigAddress, append(macA, 1, 2)) }), "8 bytes for a MAC"},
		{"originator without next hop", parseO, row(cmdGetOriginators, func(e *encoder) { e.Put(attrOrigAddress, macA) }), "no originator or next hop"},
		{"empty TQ", parseO, row(cmdGetOriginators, func(e *encoder) { e.Put(attrTQ, nil) }), "empty u8"},
		{"short u32", parseN, row(cmdGetNeighbors, func(e *encoder) { e.Put(attrHardIfindex, []byte{1, 2}) }), "for a u32"},
		{"long ifname", parseG, row(cmdGetGateways, func(e *encoder) { e.Put(attrHardIfname, []byte(strings.Repeat("x", 40))) }), "hard interface name of 40 bytes"},
		{"gateway without router", parseG, row(cmdGetGateways, func(e *encoder) { e.Put(attrOrigAddress, macA) }), "no gateway or router"},
		{"attribute past the end", parseG, append([]byte{cmdGetGateways, 1, 0, 0}, 0x40, 0, 9, 0), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse([][]byte{tt.msg})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Bandwidth near the top of u32 saturates instead of wrapping.
	gw := row(cmdGetGateways, func(e *encoder) {
		e.Put(attrOrigAddress, macA)
		e.Put(attrRouter, macA)
		e.U32(attrBandwidthDown, 0xffffffff)
	})
	g, err := ParseGateways([][]byte{gw})
	if err != nil || g[0].DownKbit != 0xffffffff {
		t.Errorf("huge bandwidth: %+v, %v", g, err)
	}
}

func parseN(m [][]byte) error { _, err := ParseNeighbours(m); return err }
func parseO(m [][]byte) error { _, err := ParseOriginators(m); return err }
func parseG(m [][]byte) error { _, err := ParseGateways(m); return err }

// FuzzParseTables: the tables carry what other nodes announce (addresses,
// gateway bandwidth), so every parser must refuse garbage without
// panicking.
func FuzzParseTables(f *testing.F) {
	n, o, g := lineDump()
	for _, set := range [][][]byte{n, o, g} {
		for _, m := range set {
			f.Add(m)
		}
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		msgs := [][]byte{m}
		if ns, err := ParseNeighbours(msgs); err == nil {
			for _, x := range ns {
				if len(x.Address) != 6 {
					t.Fatalf("neighbour address %v", x.Address)
				}
			}
			MeshNeighbours(ns, nil, func(int) string { return "" })
		}
		if os, err := ParseOriginators(msgs); err == nil {
			MeshRoutes(os, func(int) string { return "" })
		}
		ParseMesh(m)
		if gs, err := ParseGateways(msgs); err == nil {
			for _, x := range gs {
				if len(x.HardIfname) > maxIfname {
					t.Fatalf("ifname %q", x.HardIfname)
				}
			}
		}
	})
}

func TestParseMesh(t *testing.T) {
	msg := row(cmdGetMesh, func(e *encoder) {
		e.Put(attrVersion, []byte("2022.3\x00"))
		e.Put(attrAlgoName, []byte("BATMAN_IV\x00"))
		e.U32(attrMeshIfindex, 9)
		e.Put(attrMeshIfname, []byte("bat0\x00"))
		e.Put(attrMeshAddress, macB)
		e.U32(attrHardIfindex, 2)
		e.Put(attrHardIfname, []byte("eth0\x00"))
		e.Put(attrHardAddress, macA)
		e.U8(attrGWMode, uint8(GatewayServer))
		e.U32(attrGWBandwidthDown, 100)
		e.U32(attrGWBandwidthUp, 20)
	})
	got, err := ParseMesh(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := Mesh{Version: "2022.3", Algo: "BATMAN_IV", Ifname: "bat0", Address: macB, Originator: macA, Gateway: GatewayServer, DownKbit: 10000, UpKbit: 2000}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got.Gateway.String() != "server" || GatewayMode(7).String() != "gw_mode(7)" {
		t.Errorf("GatewayMode strings: %s, %s", got.Gateway, GatewayMode(7))
	}
	if _, err := ParseMesh(row(cmdGetMesh, func(e *encoder) { e.U8(attrGWMode, 1) })); err == nil || !strings.Contains(err.Error(), "no routing algorithm") {
		t.Errorf("no algorithm: %v", err)
	}
	long := row(cmdGetMesh, func(e *encoder) {
		e.Put(attrAlgoName, []byte(strings.Repeat("A", 100)))
		e.Put(attrMeshIfname, []byte(strings.Repeat("b", 100)))
	})
	if got, err := ParseMesh(long); err != nil || len(got.Algo) != 32 || len(got.Ifname) != maxIfname {
		t.Errorf("long strings: %+v, %v", got, err)
	}
}
