package spec

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// Mesh is the mesh's settings on a node built from the spec: its
// defaults until the panel, the API or `byz node mesh set` changes them
// on the node (which keeps them with persistence).
//
//	mesh:
//	  protocol: babel        # babel (default), batman-adv or both
//	  ssid: byzantium-mesh   # the radios' mesh name, 1 to 32 bytes (default byzantium-mesh)
//	  channel: 6             # 1 to 13 (2.4 GHz) or a 5 GHz channel 36 to 165 (default 6)
//	  interfaces: []         # mesh only on these; empty: every port and radio that can
//	  babel_only: []         # with both: ports kept out of the batman-adv cloud, babel on them directly
//	  share: auto            # share an uplink with the mesh: auto (default), on or off
//	  uplink: ""             # the uplink; empty: the interface DHCP gave a default route
//	  check: []              # Internet check targets, tcp:IP:PORT or http(s) URLs; empty: the gateway's
//
// The defaults are meshcfg's, where the reasons for them are: channel 6
// is one of the three 2.4 GHz channels that do not overlap, allowed in
// every country and free of the radar detection that keeps most cards
// from starting a mesh on 5 GHz; the SSID is not the 2011 project's
// "Byzantium", whose cells ran other address schemes. A mesh key is never
// in a spec (it would be on every stick in clear): set it on each node.
type Mesh struct {
	Protocol   string
	SSID       string
	Channel    int
	Interfaces []string
	BabelOnly  []string
	Share      string
	Uplink     string
	Check      []string
}

// Image is the mesh section as the build writes it for byzd
// (meshcfg.ImageFile).
func (m Mesh) Image() meshcfg.Image {
	return meshcfg.Image{Settings: nodeapi.MeshSettings{Protocol: m.Protocol, SSID: m.SSID, Channel: m.Channel,
		Interfaces: m.Interfaces, BabelOnly: m.BabelOnly, Share: m.Share, Uplink: m.Uplink, Check: m.Check}}
}

// mesh reads the mesh mapping; an empty value (every key commented out)
// is the defaults.
func (d *decoder) mesh(n *yaml.Node, path string) Mesh {
	var m Mesh
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return m
	}
	d.object(n, path, []field{
		{"protocol", false, func(v *yaml.Node, p string) { m.Protocol, _ = d.str(v, p) }},
		{"ssid", false, func(v *yaml.Node, p string) { m.SSID, _ = d.str(v, p) }},
		{"channel", false, func(v *yaml.Node, p string) { m.Channel = d.integer(v, p) }},
		{"interfaces", false, func(v *yaml.Node, p string) { m.Interfaces = d.strings(v, p) }},
		{"babel_only", false, func(v *yaml.Node, p string) { m.BabelOnly = d.strings(v, p) }},
		{"share", false, func(v *yaml.Node, p string) { m.Share, _ = d.str(v, p) }},
		{"uplink", false, func(v *yaml.Node, p string) { m.Uplink, _ = d.str(v, p) }},
		{"check", false, func(v *yaml.Node, p string) { m.Check = d.strings(v, p) }},
	})
	return m
}

// strings reads a list of strings.
func (d *decoder) strings(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		s, _ := d.str(it, fmt.Sprintf("%s[%d]", path, i))
		out = append(out, s)
	}
	return out
}

// meshDefaults fills what the mesh section leaves out with meshcfg's
// defaults. A key that is given keeps its value, even "" or 0, for
// Validate to refuse.
func (d *decoder) meshDefaults(m *Mesh) {
	def := meshcfg.Defaults()
	given := func(key string) bool { _, ok := d.pos["mesh."+key]; return ok }
	if !given("protocol") {
		m.Protocol = def.Protocol
	}
	if !given("ssid") {
		m.SSID = def.SSID
	}
	if !given("channel") {
		m.Channel = def.Channel
	}
	if !given("share") {
		m.Share = def.Share
	}
}

// mesh checks the mesh section with the node's own rules (meshcfg), each
// error at its value.
func (v *validator) mesh() {
	im := v.s.Mesh.Image()
	for _, err := range []error{meshcfg.ValidateSettings(im.Settings)} {
		if err == nil {
			continue
		}
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var fe *meshcfg.FieldError
			if errors.As(e, &fe) {
				v.fail("mesh."+fe.Field, fe.Err)
			} else {
				v.fail("mesh", e)
			}
		}
	}
}
