package radio

import (
	"crypto/sha256"
	"fmt"
	"net"
	"strings"

	"byzantium/runtime/nodeapi"
)

// Mode is how a radio meshes; the strings are nodeapi.MeshInterface.Mode's.
type Mode string

const (
	ModeMeshPoint Mode = "mesh-point" // 802.11s, the card's own forwarding off
	ModeIBSS      Mode = "ibss"       // ad-hoc, fixed BSSID
	ModeNone      Mode = "none"
)

// Settings are the mesh settings a radio's mode depends on.
type Settings struct {
	SSID    string // the mesh ID on 802.11s, the SSID in ad-hoc
	Channel int
	Keyed   bool // a mesh key is set
}

// ChooseMode picks the radio's mode from what the card reports, in the
// order the field taught: 802.11s mesh point (with its forwarding off,
// since babeld or batman-adv route), else ad-hoc (IBSS) with a BSSID
// derived from SSID and channel, else none. The reason is for the panel:
// plain words, naming the card's limits.
func ChooseMode(c Capabilities, s Settings) (Mode, string) {
	if err := ValidateSSID(s.SSID); err != nil {
		return ModeNone, err.Error()
	}
	mhz, err := ChannelFreq(s.Channel)
	if err != nil {
		return ModeNone, err.Error()
	}
	var mode Mode
	switch {
	case c.Supports(IftypeMeshPoint):
		mode = ModeMeshPoint
	case c.Supports(IftypeAdhoc):
		mode = ModeIBSS
	default:
		return ModeNone, fmt.Sprintf("this card offers neither mesh point nor ad-hoc (%s)", offers(c))
	}
	// Both modes send beacons, so the channel must allow it here.
	ch := fmt.Sprintf("channel %d (%d MHz)", s.Channel, mhz)
	f, ok := c.Freq(mhz)
	switch {
	case !ok:
		return ModeNone, ch + " is not one this card offers: choose another channel"
	case f.Disabled:
		return ModeNone, ch + " is disabled on this card (regulatory rules): choose another channel"
	case f.Radar:
		return ModeNone, ch + " needs radar detection (DFS), which a mesh cannot wait for: choose another channel"
	case f.NoIR:
		return ModeNone, ch + " may not be used to start a network here (no-IR in the card's regulatory rules): choose another channel"
	}
	var b strings.Builder
	switch mode {
	case ModeMeshPoint:
		fmt.Fprintf(&b, "802.11s mesh point on %s, the card's own mesh forwarding off", ch)
		if s.Keyed {
			if c.SAE() {
				b.WriteString("; the mesh key is used for SAE (wpa_supplicant)")
			} else {
				b.WriteString("; this card cannot do SAE, so the radio joins open and the mesh key protects routing only: babel's HMAC keeps strangers' routes out")
			}
		}
	case ModeIBSS:
		fmt.Fprintf(&b, "the card offers no mesh point: ad-hoc (IBSS) on %s, BSSID %s", ch, IBSSBSSID(s.SSID, s.Channel))
		if c.Driver == "brcmfmac" {
			b.WriteString("; brcmfmac ignores a fixed BSSID, so its cell may split from the others")
		}
		if s.Keyed {
			b.WriteString("; ad-hoc has no link-layer key (no SAE), so the mesh key protects routing only: babel's HMAC keeps strangers' routes out")
		}
	}
	return mode, b.String()
}

// offers says in words which of the common modes a card has.
func offers(c Capabilities) string {
	ap, sta := c.Supports(IftypeAP), c.Supports(IftypeStation)
	switch {
	case ap && sta:
		return "access point and client only"
	case sta:
		return "client only"
	case ap:
		return "access point only"
	}
	return "no mode a mesh can use"
}

// IBSSBSSID derives the ad-hoc cell's BSSID from SSID and channel, so every
// node on the same settings joins the same cell instead of each starting
// its own with a random one (cells that never merge were a field
// complaint). It is a locally administered unicast MAC: the first six
// bytes of SHA-256 over a label, the SSID and the channel, with bit 1 of
// the first byte set and bit 0 cleared.
func IBSSBSSID(ssid string, channel int) net.HardwareAddr {
	sum := sha256.Sum256(fmt.Appendf(nil, "byzantium ibss bssid\x00%s\x00%d", ssid, channel))
	mac := net.HardwareAddr(sum[:6:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// Interface is the panel's and the API's view of a radio: its mode and
// the reason ChooseMode gave.
func Interface(name string, c Capabilities, s Settings) nodeapi.MeshInterface {
	mode, reason := ChooseMode(c, s)
	return nodeapi.MeshInterface{
		Name:    name,
		Kind:    "wifi",
		Mode:    string(mode),
		Meshing: mode != ModeNone,
		Reason:  reason,
	}
}
