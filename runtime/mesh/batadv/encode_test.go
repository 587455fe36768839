package batadv

import (
	"encoding/hex"
	"strings"
	"testing"
)

func littleEndian() bool {
	var e encoder
	e.U32(1, 1)
	return e.Bytes()[4] == 1
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The request bodies byte by byte: what `ip link add bat0 type batadv
// routing_algo BATMAN_IV` and batctl gw_mode ask for (little-endian
// host). The kernel's side runs only in the QEMU guest.
func TestRequestEncoding(t *testing.T) {
	if !littleEndian() {
		t.Fatal("these bytes are little-endian; add a big-endian copy for this host")
	}
	setMesh := func(s MeshSettings) []byte {
		b, err := setMeshAttrs(5, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"new link bat0", newMeshLinkRequest("bat0", AlgoBATMANIV), "" +
			"00000000" + "00000000" + "00000000" + "00000000" + // struct ifinfomsg, AF_UNSPEC
			"09000300" + "6261743000" + "000000" + // IFLA_IFNAME "bat0\0"
			"24001280" + // IFLA_LINKINFO|NESTED, 36 bytes
			"0a000100" + "626174616476" + "0000" + // IFLA_INFO_KIND "batadv"
			"14000280" + // IFLA_INFO_DATA|NESTED, 20 bytes
			"0e000100" + "4241544d414e5f495600" + "0000"}, // IFLA_BATADV_ALGO_NAME "BATMAN_IV\0"
		{"gw client", setMesh(MeshSettings{Gateway: GatewayClient}), "" +
			"08000300" + "05000000" + // MESH_IFINDEX 5
			"05003300" + "01000000"}, // GW_MODE client (u8 + pad)
		{"gw off ignores bandwidth", setMesh(MeshSettings{Gateway: GatewayOff, DownKbit: 5000}), "" +
			"08000300" + "05000000" +
			"05003300" + "00000000"},
		{"gw server 50 Mbit/s down, 10001 kbit/s up", setMesh(MeshSettings{Gateway: GatewayServer, DownKbit: 50000, UpKbit: 10001}), "" +
			"08000300" + "05000000" +
			"05003300" + "02000000" + // GW_MODE server
			"08003100" + "f4010000" + // GW_BANDWIDTH_DOWN 500 × 100 kbit/s
			"08003200" + "65000000"}, // GW_BANDWIDTH_UP 101 (rounded up)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			if string(tt.got) != string(want) {
				t.Errorf("got  %x\nwant %x", tt.got, want)
			}
		})
	}
	if _, err := setMeshAttrs(5, MeshSettings{Gateway: 3}); err == nil || !strings.Contains(err.Error(), "want off, client or server") {
		t.Errorf("gw_mode 3: %v", err)
	}
}

func TestCreateMeshRefusesBadArguments(t *testing.T) {
	for _, c := range []struct{ name, algo, want string }{
		{"bat0", "BATMAN_VI", "routing algorithm"},
		{"", "", "interface name"},
		{"a-name-of-16-byte", "", "interface name"},
	} {
		if _, err := CreateMesh(c.name, c.algo); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CreateMesh(%q, %q) = %v, want an error about the %s", c.name, c.algo, err, c.want)
		}
	}
}
