// Package mesh is byzd's mesh manager: it picks the mesh interfaces,
// gives the node its addresses (runtime/mesh/addr), runs the routing
// engine (babeld through runtime/mesh/babel; batman-adv when an engine is
// plugged in), watches for address collisions mesh-wide and answers
// "has this node joined a mesh?" (nodeapi.Mesh).
package mesh

import (
	"errors"
	"fmt"
	"strings"

	"byzantium/runtime/nodeapi"
)

// ErrSettings is wrapped by every ValidateSettings error.
var ErrSettings = errors.New("mesh: invalid settings")

// DefaultSettings are the settings when the spec gives none.
func DefaultSettings() nodeapi.MeshSettings {
	return nodeapi.MeshSettings{Protocol: nodeapi.MeshBabel, SSID: "Byzantium", Channel: 6, Share: nodeapi.ShareAuto}
}

// ValidateSettings checks settings from the spec, the panel or the API;
// each error names the field and what is allowed.
func ValidateSettings(s nodeapi.MeshSettings) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrSettings, field, fmt.Sprintf(format, args...))
	}
	switch s.Protocol {
	case nodeapi.MeshBabel, nodeapi.MeshBatman, nodeapi.MeshBoth:
	default:
		return bad("protocol", "%q is not one of babel, batman-adv, both", s.Protocol)
	}
	if n := len(s.SSID); n < 1 || n > 32 {
		return bad("ssid", "%d bytes; an SSID has 1 to 32", n)
	}
	for _, c := range []byte(s.SSID) {
		if c < 0x20 || c == 0x7f {
			return bad("ssid", "control character 0x%02x", c)
		}
	}
	if !ValidChannel(s.Channel) {
		return bad("channel", "%d is not a 2.4 GHz channel (1–13) or a 5 GHz one (36–165)", s.Channel)
	}
	switch s.Share {
	case nodeapi.ShareAuto, nodeapi.ShareOn, nodeapi.ShareOff:
	default:
		return bad("share", "%q is not one of auto, on, off", s.Share)
	}
	seen := map[string]bool{}
	for _, name := range s.Interfaces {
		if !ValidInterfaceName(name) {
			return bad("interfaces", "%q is not an interface name (1–15 characters, no spaces or slashes)", name)
		}
		if seen[name] {
			return bad("interfaces", "%q is named twice", name)
		}
		seen[name] = true
	}
	if len(s.Interfaces) > 32 {
		return bad("interfaces", "%d named; at most 32", len(s.Interfaces))
	}
	if s.Uplink != "" {
		if !ValidInterfaceName(s.Uplink) {
			return bad("uplink", "%q is not an interface name", s.Uplink)
		}
		if seen[s.Uplink] {
			return bad("uplink", "%q is also a mesh interface", s.Uplink)
		}
	}
	if len(s.Key) > 128 {
		return bad("key", "%d bytes; at most 128", len(s.Key))
	}
	if s.Key != "" && len(s.Key) < 8 {
		return bad("key", "%d bytes; a mesh key has at least 8 (SAE and babel accept any, but a short key is guessed)", len(s.Key))
	}
	if strings.ContainsAny(s.Key, "\x00\n\r") {
		return bad("key", "contains a NUL or line break")
	}
	return nil
}

// ValidChannel is a wifi channel a mesh may use: 2.4 GHz 1–13, 5 GHz
// 36–64 and 100–144 in steps of 4, 149–165 in steps of 4.
func ValidChannel(c int) bool {
	switch {
	case c >= 1 && c <= 13:
		return true
	case c >= 36 && c <= 64, c >= 100 && c <= 144:
		return c%4 == 0
	case c >= 149 && c <= 165:
		return (c-149)%4 == 0
	}
	return false
}

// ValidInterfaceName is a Linux interface name: 1–15 bytes, printable,
// no space, slash or colon.
func ValidInterfaceName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '#' || c == '"' {
			return false
		}
	}
	return true
}
