package radio

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Station is one peer the kernel keeps for an interface
// (NL80211_CMD_GET_STATION): on a mesh point, a mesh peer and the state of
// its peering link; in an IBSS cell, another member of the cell.
type Station struct {
	MAC net.HardwareAddr
	// PlinkState is the 802.11s peering state (PlinkEstab once the two
	// are peers); HasPlink is false outside a mesh point.
	PlinkState uint8
	HasPlink   bool
	// Inactive is how long since the card last heard the peer.
	Inactive time.Duration
	// SignalDBm is the last frame's signal; HasSignal is false when the
	// driver does not report it.
	SignalDBm int8
	HasSignal bool
}

// Peering link states (enum nl80211_plink_state).
const (
	PlinkListen  = 0 // NL80211_PLINK_LISTEN
	PlinkOpnSnt  = 1 // NL80211_PLINK_OPN_SNT
	PlinkOpnRcvd = 2 // NL80211_PLINK_OPN_RCVD
	PlinkCnfRcvd = 3 // NL80211_PLINK_CNF_RCVD
	PlinkEstab   = 4 // NL80211_PLINK_ESTAB: peers
	PlinkHolding = 5 // NL80211_PLINK_HOLDING
	PlinkBlocked = 6 // NL80211_PLINK_BLOCKED
)

// maxStations bounds a station dump: a mesh point's peers are limited by
// the kernel (mesh max_peer_links, 99 by default on mac80211), but every
// one of them is a neighbour's word, so the bound is ours too.
const maxStations = 1024

// ParseStationDump reads the replies to NL80211_CMD_GET_STATION (each a
// genl payload). A station without a 6-byte MAC is an error; messages of
// another command are skipped.
func ParseStationDump(msgs [][]byte) ([]Station, error) {
	var out []Station
	for i, m := range msgs {
		if len(m) < genlHdrLen {
			return nil, fmt.Errorf("nl80211 station message %d: %d bytes, shorter than a genl header", i, len(m))
		}
		if m[0] != cmdNewStation {
			continue
		}
		attrs, err := parseAttrs(m[genlHdrLen:])
		if err != nil {
			return nil, fmt.Errorf("nl80211 station message %d: %w", i, err)
		}
		if len(out) == maxStations {
			return nil, fmt.Errorf("nl80211 station dump: more than %d stations", maxStations)
		}
		var s Station
		for _, a := range attrs {
			switch a.Type {
			case attrMAC:
				if len(a.Data) != 6 {
					return nil, fmt.Errorf("nl80211 station message %d: MAC of %d bytes", i, len(a.Data))
				}
				s.MAC = net.HardwareAddr(append([]byte(nil), a.Data...))
			case attrStaInfo:
				if err := s.parseInfo(a.Data); err != nil {
					return nil, fmt.Errorf("nl80211 station message %d: %w", i, err)
				}
			}
		}
		if s.MAC == nil {
			return nil, fmt.Errorf("nl80211 station message %d: no NL80211_ATTR_MAC", i)
		}
		out = append(out, s)
	}
	return out, nil
}

func (s *Station) parseInfo(b []byte) error {
	attrs, err := parseAttrs(b)
	if err != nil {
		return fmt.Errorf("station info: %w", err)
	}
	for _, a := range attrs {
		switch a.Type {
		case staInfoInactiveTime:
			v, err := attrU32(a)
			if err != nil {
				return fmt.Errorf("station info: %w", err)
			}
			s.Inactive = time.Duration(v) * time.Millisecond
		case staInfoPlinkState:
			if len(a.Data) < 1 {
				return fmt.Errorf("station info: %w: empty plink state", errMalformed)
			}
			s.PlinkState, s.HasPlink = a.Data[0], true
		case staInfoSignal:
			if len(a.Data) < 1 {
				return fmt.Errorf("station info: %w: empty signal", errMalformed)
			}
			s.SignalDBm, s.HasSignal = int8(a.Data[0]), true
		}
	}
	return nil
}

// Stations dumps an interface's stations: mesh peers or IBSS members.
func (c *Client) Stations(ifindex int) ([]Station, error) {
	msgs, err := c.dump(fmt.Sprintf("get station of %d", ifindex), cmdGetStation, ifindexAttrs(ifindex))
	if err != nil {
		return nil, err
	}
	return ParseStationDump(msgs)
}

// MeshConfig is the part of a joined mesh point's configuration
// (NL80211_CMD_GET_MESH_CONFIG) the mesh manager checks.
type MeshConfig struct {
	// Forwarding is NL80211_MESHCONF_FORWARDING: the card's own HWMP
	// routing, which must stay off under babeld or batman-adv.
	Forwarding    bool
	HasForwarding bool
}

// ParseMeshConfig reads the reply to NL80211_CMD_GET_MESH_CONFIG (a genl
// payload).
func ParseMeshConfig(msg []byte) (MeshConfig, error) {
	if len(msg) < genlHdrLen {
		return MeshConfig{}, fmt.Errorf("nl80211 mesh config: %d bytes, shorter than a genl header", len(msg))
	}
	attrs, err := parseAttrs(msg[genlHdrLen:])
	if err != nil {
		return MeshConfig{}, fmt.Errorf("nl80211 mesh config: %w", err)
	}
	var mc MeshConfig
	for _, a := range attrs {
		if a.Type != attrMeshConfig {
			continue
		}
		inner, err := parseAttrs(a.Data)
		if err != nil {
			return MeshConfig{}, fmt.Errorf("nl80211 mesh config: %w", err)
		}
		for _, p := range inner {
			if p.Type == meshconfForwarding {
				if len(p.Data) < 1 {
					return MeshConfig{}, fmt.Errorf("nl80211 mesh config: %w: empty forwarding", errMalformed)
				}
				mc.Forwarding, mc.HasForwarding = p.Data[0] != 0, true
			}
		}
	}
	return mc, nil
}

// MeshConfig reads a joined mesh point's configuration; the kernel
// answers ENOTCONN when the interface has not joined a mesh.
func (c *Client) MeshConfig(ifindex int) (MeshConfig, error) {
	msgs, err := c.request(cmdGetMeshConfig, 0, ifindexAttrs(ifindex)).Execute(unix.NETLINK_GENERIC, c.family)
	if err != nil {
		return MeshConfig{}, fmt.Errorf("nl80211 get mesh config of %d: %w", ifindex, err)
	}
	if len(msgs) != 1 {
		return MeshConfig{}, fmt.Errorf("nl80211 get mesh config of %d: %d replies, want 1", ifindex, len(msgs))
	}
	return ParseMeshConfig(msgs[0])
}
