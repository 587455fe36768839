package batadv

import (
	"encoding/binary"
	"fmt"
	"net"
)

// TTEntry is one row of batman-adv's global translation table: a MAC
// address (a client, or another node's bat0) and the originator that
// announces it. A client heard through several originators (it roamed, or
// two nodes bridge the same segment) has one row per originator; Best
// marks the one batman-adv sends its frames to. Multicast group
// addresses (33:33:…, 01:00:5e:…) are rows too: batman-adv's multicast
// optimisation announces each node's listeners through the same table.
type TTEntry struct {
	MAC  net.HardwareAddr
	Orig net.HardwareAddr
	// VID is the 802.1Q VLAN the entry is on, 0–4095, or -1 for untagged
	// frames. batman-adv sends its own u16 form of the VLAN
	// (common->vid): BATADV_VLAN_HAS_TAG (0x8000) set and the VLAN ID in
	// the low 12 bits for a tagged entry, 0 for an untagged one — the
	// rule batctl prints by (BATADV_PRINT_VID). ParseGlobalTT reads
	// 0x8000|id as id, 0 (or a row without the attribute) as -1, and
	// refuses any other value.
	VID  int
	Best bool
	// Flags are batman-adv's client flags (enum batadv_tt_client_flags,
	// TTClient*), the entry's and the announcing originator's ORed.
	Flags uint32
	// TTVN is the announcing originator's translation table version this
	// entry came with, LastTTVN the originator's latest, CRC32 the
	// checksum of its table for the VLAN.
	TTVN, LastTTVN uint8
	CRC32          uint32
}

// Client flags (enum batadv_tt_client_flags) a global entry may carry.
const (
	TTClientRoam  = 1 << 1  // BATADV_TT_CLIENT_ROAM: roamed, kept until the new owner confirms
	TTClientWifi  = 1 << 4  // BATADV_TT_CLIENT_WIFI: behind a wifi interface
	TTClientIsola = 1 << 5  // BATADV_TT_CLIENT_ISOLA: isolated (AP isolation)
	TTClientTemp  = 1 << 11 // BATADV_TT_CLIENT_TEMP: learned from traffic, not announced yet
)

// The u16 VLAN batman-adv sends (see TTEntry.VID).
const (
	vidHasTag = 0x8000 // BATADV_VLAN_HAS_TAG
	maxVID    = 0x0fff // VLAN_VID_MASK, the highest 802.1Q VLAN ID
)

// ParseGlobalTT reads BATADV_CMD_GET_TRANSTABLE_GLOBAL replies (each a
// genl payload). It refuses more than maxDumpMessages rows, a row without
// the client's or the originator's address, and a VID that is neither -1
// nor a VLAN ID (see TTEntry.VID). The addresses are what other nodes
// announce: they are copied, never trusted to be unicast.
func ParseGlobalTT(msgs [][]byte) ([]TTEntry, error) {
	if len(msgs) > maxDumpMessages {
		return nil, fmt.Errorf("batadv global translation table: %d rows, more than %d", len(msgs), maxDumpMessages)
	}
	var out []TTEntry
	err := eachRow("global translation table", cmdGetTranstableGlobal, msgs, func(attrs []attr) error {
		t := TTEntry{VID: -1}
		var err error
		for _, a := range attrs {
			switch a.Type {
			case attrTTAddress:
				t.MAC, err = attrMAC(a)
			case attrOrigAddress:
				t.Orig, err = attrMAC(a)
			case attrTTVID:
				t.VID, err = attrVID(a)
			case attrTTFlags:
				t.Flags, err = attrU32(a)
			case attrTTTTVN:
				t.TTVN, err = attrU8(a)
			case attrTTLastTTVN:
				t.LastTTVN, err = attrU8(a)
			case attrTTCRC32:
				t.CRC32, err = attrU32(a)
			case attrFlagBest:
				t.Best = true
			}
			if err != nil {
				return err
			}
		}
		if t.MAC == nil || t.Orig == nil {
			return fmt.Errorf("%w: no client or originator address", errMalformed)
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// attrVID reads BATADV_ATTR_TT_VID (see TTEntry.VID).
func attrVID(a attr) (int, error) {
	if len(a.Data) < 2 {
		return 0, fmt.Errorf("%w: attribute %d: %d bytes for a u16", errMalformed, a.Type, len(a.Data))
	}
	v := binary.NativeEndian.Uint16(a.Data[:2])
	switch {
	case v == 0:
		return -1, nil
	case v&^maxVID == vidHasTag:
		return int(v & maxVID), nil
	}
	return 0, fmt.Errorf("%w: VID %#04x: neither untagged (0) nor 0x8000 with a VLAN ID", errMalformed, v)
}

// GlobalTT dumps the global translation table
// (BATADV_CMD_GET_TRANSTABLE_GLOBAL): every MAC address the other nodes
// announce. Like the other dumps it needs an active hard interface.
func (c *Client) GlobalTT(meshIfindex int) ([]TTEntry, error) {
	msgs, err := c.dump("global translation table", cmdGetTranstableGlobal, meshIfindex)
	if err != nil {
		return nil, err
	}
	return ParseGlobalTT(msgs)
}
