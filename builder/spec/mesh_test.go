package spec

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// TestMesh: the mesh section parses, what it leaves out is meshcfg's
// defaults, and each bad value is an error at its position, in the
// node's own words (meshcfg's rules, as the API and the panel give them).
func TestMesh(t *testing.T) {
	head := lName + lKernel + lBase + lOutputs // the mesh section starts on line 5
	def := Mesh{Protocol: "babel", SSID: meshcfg.DefaultSSID, Channel: 6, Share: "auto"}
	for _, tc := range []struct {
		yaml string
		want Mesh
	}{
		{head, def},
		{head + "mesh:\n", def},
		{head + "mesh: {}\n", def},
		{head + "mesh: {channel: 11}\n", Mesh{Protocol: "babel", SSID: meshcfg.DefaultSSID, Channel: 11, Share: "auto"}},
		{head + "mesh:\n  protocol: batman-adv\n  ssid: \"Town square\"\n  channel: 165\n  interfaces: [eth1, enx00e04c680001]\n  share: on\n  uplink: eth0\n  check: [\"tcp:9.9.9.9:53\"]\n",
			Mesh{Protocol: "batman-adv", SSID: "Town square", Channel: 165, Interfaces: []string{"eth1", "enx00e04c680001"}, Share: "on", Uplink: "eth0", Check: []string{"tcp:9.9.9.9:53"}}},
		{head + "mesh: {share: off, protocol: both}\n", Mesh{Protocol: "both", SSID: meshcfg.DefaultSSID, Channel: 6, Share: "off"}},
		{head + "mesh: {protocol: both, babel_only: [eth2]}\n", Mesh{Protocol: "both", SSID: meshcfg.DefaultSSID, Channel: 6, Share: "auto", BabelOnly: []string{"eth2"}}},
	} {
		s, err := Parse([]byte(tc.yaml), filepath.Join("testdata", "snippet.yaml"))
		if err == nil {
			err = s.Validate(Options{})
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if !reflect.DeepEqual(s.Mesh, tc.want) {
			t.Errorf("%q: mesh %+v, want %+v", tc.yaml, s.Mesh, tc.want)
		}
		if err := s.Mesh.Image().Validate(); err != nil {
			t.Errorf("%q: the image's mesh file would not be valid: %v", tc.yaml, err)
		}
	}
	long := strings.Repeat("x", 33)
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"channel 14", head + "mesh: {channel: 14}\n", []string{"5:17: mesh.channel: 14: want 1 to 13 (2.4 GHz) or a 5 GHz channel"}},
		{"channel 0", head + "mesh: {channel: 0}\n", []string{"5:17: mesh.channel: 0: want 1 to 13"}},
		{"channel 50", head + "mesh:\n  channel: 50\n", []string{"6:12: mesh.channel: 50: want"}},
		{"channel as text", head + "mesh: {channel: six}\n", []string{"5:17: mesh.channel: want a whole number, got a string"}},
		{"ssid too long", head + "mesh: {ssid: " + long + "}\n", []string{"5:14: mesh.ssid: \"" + long[:33] + "\" is 33 bytes: at most 32"}},
		{"ssid empty", head + "mesh: {ssid: \"\"}\n", []string{"5:14: mesh.ssid: empty: 1 to 32 bytes"}},
		{"protocol", head + "mesh: {protocol: olsr}\n", []string{`5:18: mesh.protocol: "olsr": want babel (the default), batman-adv or both`}},
		{"share", head + "mesh: {share: always}\n", []string{`5:15: mesh.share: "always": want auto`}},
		{"share a boolean", head + "mesh: {share: true}\n", []string{`5:15: mesh.share: want a string, got a boolean`}},
		{"interface name", head + "mesh:\n  interfaces: [eth1, eth1/2]\n", []string{`6:22: mesh.interfaces[1]: "eth1/2": letters, digits`}},
		{"interface too long", head + "mesh:\n  interfaces:\n    - enx00e04c68000123\n", []string{`7:7: mesh.interfaces[0]: "enx00e04c68000123" is 17 bytes: at most 15`}},
		{"interface twice", head + "mesh: {interfaces: [eth1, eth1]}\n", []string{`5:27: mesh.interfaces[1]: "eth1" is named twice`}},
		{"uplink meshes", head + "mesh: {interfaces: [eth0], uplink: eth0}\n", []string{`5:36: mesh.uplink: "eth0" is a mesh interface too`}},
		{"babel only not meshing", head + "mesh: {interfaces: [eth1], babel_only: [eth2]}\n", []string{`5:41: mesh.babel_only[0]: "eth2" is not one of the mesh interfaces (eth1)`}},
		{"check a name", head + "mesh: {check: [\"tcp:example.net:443\"]}\n", []string{`5:16: mesh.check[0]: "tcp:example.net:443": want tcp:IP:PORT`}},
		{"check loopback", head + "mesh: {check: [\"tcp:127.0.0.1:53\"]}\n", []string{`5:16: mesh.check[0]: "tcp:127.0.0.1:53": a loopback`}},
		{"unknown key", head + "mesh: {key: secret}\n", []string{`5:8: unknown key "key" in mesh`}},
		{"two at once", head + "mesh:\n  channel: 99\n  ssid: \"\"\n", []string{"6:12: mesh.channel: 99", "7:9: mesh.ssid: empty"}},
		{"not a mapping", head + "mesh: babel\n", []string{"5:7: mesh: want a mapping, got a string"}},
	} {
		t.Run(tc.name, func(t *testing.T) { expectErrors(t, tc.yaml, tc.want, nil) })
	}
}

// TestExampleMesh: the example images mesh with the defaults; the test
// node's Internet check goes to the VM host only.
func TestExampleMesh(t *testing.T) {
	for _, file := range []string{"byzantium.yaml", "test.yaml"} {
		s, err := Load(filepath.Join("..", "..", "examples", file), Options{SkipInputChecks: true})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		want := meshcfg.Defaults()
		if file == "test.yaml" {
			want.Check = []string{"tcp:10.0.2.2:9"}
		}
		if got := s.Mesh.Image().Settings; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: mesh %+v, want %+v", file, got, want)
		}
		if s.Mesh.Protocol != nodeapi.MeshBabel {
			t.Errorf("%s: protocol %q", file, s.Mesh.Protocol)
		}
	}
}
