package radio

import (
	"net"
	"strings"
	"testing"
)

// The request bodies, byte for byte as linux/nl80211.h lays them out
// (little-endian host). The kernel's side of these is only exercised in
// the QEMU guest with mac80211_hwsim.
func TestRequestEncoding(t *testing.T) {
	if !littleEndian() {
		t.Fatal("these bytes are little-endian; add a big-endian copy for this host")
	}
	bssid := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"set interface mesh point", setInterfaceAttrs(4, IftypeMeshPoint), "" +
			"08000300" + "04000000" + // IFINDEX 4
			"08000500" + "07000000"}, // IFTYPE MESH_POINT
		{"set interface ibss", setInterfaceAttrs(4, IftypeAdhoc), "" +
			"08000300" + "04000000" +
			"08000500" + "01000000"},
		{"join mesh", joinMeshAttrs(4, "Byzantium", 2437), "" +
			"08000300" + "04000000" + // IFINDEX
			"0d001800" + "42797a616e7469756d" + "000000" + // MESH_ID "Byzantium" + pad
			"08002600" + "85090000" + // WIPHY_FREQ 2437
			"08009f00" + "00000000" + // CHANNEL_WIDTH 20_NOHT
			"0800a000" + "85090000" + // CENTER_FREQ1 2437
			"0c002380" + "05001300" + "00000000"}, // MESH_CONFIG|NESTED { FORWARDING u8 0 + pad }
		{"join ibss", joinIBSSAttrs(4, "Byzantium", 2437, bssid), "" +
			"08000300" + "04000000" +
			"0d003400" + "42797a616e7469756d" + "000000" + // SSID
			"08002600" + "85090000" + // WIPHY_FREQ
			"08009f00" + "00000000" +
			"0800a000" + "85090000" +
			"0a000600" + "021122334455" + "0000" + // MAC (BSSID) + pad
			"04003c00"}, // FREQ_FIXED
		{"leave", ifindexAttrs(7), "08000300" + "07000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			if string(tt.got) != string(want) {
				t.Errorf("got  %x\nwant %x", tt.got, want)
			}
			// And our own reader reads them back.
			if _, err := parseAttrs(tt.got); err != nil {
				t.Errorf("parseAttrs: %v", err)
			}
		})
	}
}

func TestWPASupplicantMeshConfig(t *testing.T) {
	conf, err := WPASupplicantMeshConfig("/run/byz/wpa", "Byzantium", 6, `se"cret`+"\nnetwork={")
	if err != nil {
		t.Fatal(err)
	}
	want := `ctrl_interface=/run/byz/wpa
user_mpm=1
network={
	ssid=42797a616e7469756d
	mode=5
	frequency=2437
	key_mgmt=SAE
	sae_password=736522637265740a6e6574776f726b3d7b
	ieee80211w=2
	mesh_fwding=0
}
`
	if string(conf) != want {
		t.Errorf("got\n%s\nwant\n%s", conf, want)
	}
	bad := []struct {
		ctrl, id string
		ch       int
		key      string
		want     string
	}{
		{"/run/w", "Byzantium", 6, "", "empty"},
		{"/run/w", "Byzantium", 6, strings.Repeat("k", 129), "at most 128"},
		{"/run/w", "Byzantium", 6, "short\x00cut", "NUL"},
		{"/run/w", "", 6, "k", "invalid SSID"},
		{"/run/w", "Byzantium", 14, "k", "invalid wifi channel"},
		{"/run/w\nupdate_config=1", "Byzantium", 6, "k", "line break"},
	}
	for _, b := range bad {
		if _, err := WPASupplicantMeshConfig(b.ctrl, b.id, b.ch, b.key); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("WPASupplicantMeshConfig(%q, %q, %d, %q) = %v, want an error with %q", b.ctrl, b.id, b.ch, b.key, err, b.want)
		}
	}
}

// Configure refuses bad settings and a mode that does not mesh before it
// touches any interface (the zero Client has no nl80211 family: reaching
// the kernel would fail differently).
func TestConfigureRefusesFirst(t *testing.T) {
	var c Client
	tests := []struct {
		mode Mode
		s    Settings
		want string
	}{
		{ModeIBSS, Settings{SSID: "", Channel: 6}, "invalid SSID"},
		{ModeMeshPoint, Settings{SSID: "Byzantium", Channel: 0}, "invalid wifi channel"},
		{ModeNone, Settings{SSID: "Byzantium", Channel: 6}, `mode "none" does not mesh`},
	}
	for _, tt := range tests {
		if _, err := c.Configure("wlan-none0", tt.mode, tt.s); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Configure(%q, %+v) = %v, want an error with %q", tt.mode, tt.s, err, tt.want)
		}
	}
}
