package batadv

import (
	"fmt"
	"net"
	"slices"
	"time"

	"byzantium/runtime/nodeapi"
)

// Neighbour is a batman-adv node heard directly on a hard interface
// (BATADV_CMD_GET_NEIGHBORS).
type Neighbour struct {
	Address     net.HardwareAddr
	HardIfindex int
	LastSeen    time.Duration
	// ThroughputKbit is BATMAN_V's estimate (batman-adv sends its 100 kbit/s
	// units times 100); 0 under BATMAN_IV, whose link quality is the TQ in
	// the originator table.
	ThroughputKbit uint32
}

// Originator is one (originator, next hop) pair of the originator table
// (BATADV_CMD_GET_ORIGINATORS): every node batman-adv knows, through each
// neighbour it was heard through; Best marks the next hop in use.
type Originator struct {
	Address     net.HardwareAddr // the originator (another node's primary MAC)
	Neighbour   net.HardwareAddr // the next hop towards it
	HardIfindex int
	LastSeen    time.Duration
	// TQ is BATMAN_IV's transmit quality, 0–255 (255 perfect); HasTQ is
	// false under BATMAN_V, which reports ThroughputKbit instead.
	TQ             uint8
	HasTQ          bool
	ThroughputKbit uint32
	Best           bool
}

// Gateway is a gateway server heard in the mesh (BATADV_CMD_GET_GATEWAYS);
// Best marks the one this node (a gateway client) uses.
type Gateway struct {
	Address          net.HardwareAddr // the gateway's originator address
	Router           net.HardwareAddr // the next hop towards it
	HardIfname       string
	DownKbit, UpKbit uint32 // the bandwidth it announces
	TQ               uint8
	HasTQ            bool
	ThroughputKbit   uint32
	Best             bool
}

// maxIfname bounds a hard interface name (IFNAMSIZ - 1).
const maxIfname = 15

// eachRow checks each dump message's command and hands its attributes to
// row.
func eachRow(what string, cmd uint8, msgs [][]byte, row func([]attr) error) error {
	for i, m := range msgs {
		if len(m) < genlHdrLen {
			return fmt.Errorf("batadv %s row %d: %d bytes, shorter than a genl header", what, i, len(m))
		}
		if m[0] != cmd {
			return fmt.Errorf("batadv %s row %d: command %d, want %d", what, i, m[0], cmd)
		}
		attrs, err := parseAttrs(m[genlHdrLen:])
		if err != nil {
			return fmt.Errorf("batadv %s row %d: %w", what, i, err)
		}
		if err := row(attrs); err != nil {
			return fmt.Errorf("batadv %s row %d: %w", what, i, err)
		}
	}
	return nil
}

// ParseNeighbours reads BATADV_CMD_GET_NEIGHBORS replies (each a genl
// payload). A row without a neighbour address or hard interface is an
// error.
func ParseNeighbours(msgs [][]byte) ([]Neighbour, error) {
	var out []Neighbour
	err := eachRow("neighbours", cmdGetNeighbors, msgs, func(attrs []attr) error {
		var n Neighbour
		var err error
		for _, a := range attrs {
			switch a.Type {
			case attrNeighAddress:
				n.Address, err = attrMAC(a)
			case attrHardIfindex:
				var v uint32
				v, err = attrU32(a)
				n.HardIfindex = int(v)
			case attrLastSeenMsecs:
				var v uint32
				v, err = attrU32(a)
				n.LastSeen = time.Duration(v) * time.Millisecond
			case attrThroughput:
				n.ThroughputKbit, err = attrU32(a)
			}
			if err != nil {
				return err
			}
		}
		if n.Address == nil || n.HardIfindex == 0 {
			return fmt.Errorf("%w: no neighbour address or hard interface", errMalformed)
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// ParseOriginators reads BATADV_CMD_GET_ORIGINATORS replies.
func ParseOriginators(msgs [][]byte) ([]Originator, error) {
	var out []Originator
	err := eachRow("originators", cmdGetOriginators, msgs, func(attrs []attr) error {
		var o Originator
		var err error
		for _, a := range attrs {
			switch a.Type {
			case attrOrigAddress:
				o.Address, err = attrMAC(a)
			case attrNeighAddress:
				o.Neighbour, err = attrMAC(a)
			case attrHardIfindex:
				var v uint32
				v, err = attrU32(a)
				o.HardIfindex = int(v)
			case attrLastSeenMsecs:
				var v uint32
				v, err = attrU32(a)
				o.LastSeen = time.Duration(v) * time.Millisecond
			case attrTQ:
				o.TQ, err = attrU8(a)
				o.HasTQ = err == nil
			case attrThroughput:
				o.ThroughputKbit, err = attrU32(a)
			case attrFlagBest:
				o.Best = true
			}
			if err != nil {
				return err
			}
		}
		if o.Address == nil || o.Neighbour == nil {
			return fmt.Errorf("%w: no originator or next hop address", errMalformed)
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

// ParseGateways reads BATADV_CMD_GET_GATEWAYS replies.
func ParseGateways(msgs [][]byte) ([]Gateway, error) {
	var out []Gateway
	err := eachRow("gateways", cmdGetGateways, msgs, func(attrs []attr) error {
		var g Gateway
		var err error
		for _, a := range attrs {
			switch a.Type {
			case attrOrigAddress:
				g.Address, err = attrMAC(a)
			case attrRouter:
				g.Router, err = attrMAC(a)
			case attrHardIfname:
				g.HardIfname = attrString(a)
				if len(g.HardIfname) > maxIfname {
					err = fmt.Errorf("%w: hard interface name of %d bytes", errMalformed, len(g.HardIfname))
				}
			case attrBandwidthDown:
				var v uint32
				v, err = attrU32(a)
				g.DownKbit = sat100(v)
			case attrBandwidthUp:
				var v uint32
				v, err = attrU32(a)
				g.UpKbit = sat100(v)
			case attrTQ:
				g.TQ, err = attrU8(a)
				g.HasTQ = err == nil
			case attrThroughput:
				g.ThroughputKbit, err = attrU32(a)
			case attrFlagBest:
				g.Best = true
			}
			if err != nil {
				return err
			}
		}
		if g.Address == nil || g.Router == nil {
			return fmt.Errorf("%w: no gateway or router address", errMalformed)
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// sat100 converts batman-adv's 100 kbit/s units to kbit/s without
// wrapping round.
func sat100(v uint32) uint32 {
	if v > ^uint32(0)/100 {
		return ^uint32(0)
	}
	return v * 100
}

// cost is nodeapi's link cost for batman-adv: 255 - TQ, lower is better;
// 255 when no TQ is known (BATMAN_V, or an originator not heard directly).
func cost(tq uint8, has bool) int {
	if !has {
		return 255
	}
	return 255 - int(tq)
}

// MeshNeighbours turns the neighbour table into nodeapi's neighbours, the
// cost of each from the originator table's entry for that neighbour heard
// directly (originator = next hop). ifname maps a hard interface's index
// to its name.
func MeshNeighbours(neigh []Neighbour, orig []Originator, ifname func(int) string) []nodeapi.MeshNeighbour {
	out := make([]nodeapi.MeshNeighbour, 0, len(neigh))
	for _, n := range neigh {
		m := nodeapi.MeshNeighbour{Address: n.Address.String(), Interface: ifname(n.HardIfindex), Cost: 255}
		for _, o := range orig {
			if slices.Equal(o.Address, n.Address) && slices.Equal(o.Neighbour, n.Address) && o.HardIfindex == n.HardIfindex {
				m.Cost = cost(o.TQ, o.HasTQ)
				break
			}
		}
		out = append(out, m)
	}
	return out
}

// MeshRoutes turns the originator table into nodeapi's routes: one per
// (originator, next hop) pair, Installed for the best. batman-adv routes
// layer 2, so the "prefix" is the originator's address.
func MeshRoutes(orig []Originator, ifname func(int) string) []nodeapi.MeshRoute {
	out := make([]nodeapi.MeshRoute, 0, len(orig))
	for _, o := range orig {
		out = append(out, nodeapi.MeshRoute{
			Prefix:    o.Address.String(),
			Via:       o.Neighbour.String(),
			Interface: ifname(o.HardIfindex),
			Metric:    cost(o.TQ, o.HasTQ),
			Installed: o.Best,
			RouterID:  o.Address.String(),
		})
	}
	return out
}

// BestGateway is the gateway in use (the one flagged best), if any.
func BestGateway(gws []Gateway) (Gateway, bool) {
	for _, g := range gws {
		if g.Best {
			return g, true
		}
	}
	return Gateway{}, false
}
