package batadv

import (
	"byzantium/runtime/mesh/internal/nlattr"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// GatewayMode is batman-adv's gw_mode (enum batadv_gw_modes).
type GatewayMode uint8

const (
	GatewayOff    GatewayMode = 0 // BATADV_GW_MODE_OFF
	GatewayClient GatewayMode = 1 // BATADV_GW_MODE_CLIENT: use the best gateway server
	GatewayServer GatewayMode = 2 // BATADV_GW_MODE_SERVER: announce this node's uplink
)

func (m GatewayMode) String() string {
	switch m {
	case GatewayOff:
		return "off"
	case GatewayClient:
		return "client"
	case GatewayServer:
		return "server"
	}
	return fmt.Sprintf("gw_mode(%d)", uint8(m))
}

// MeshSettings are the batman-adv settings byzd changes at runtime.
type MeshSettings struct {
	Gateway GatewayMode
	// DownKbit and UpKbit are the uplink's bandwidth a gateway server
	// announces, in kbit/s (0: batman-adv's default, 10 Mbit/s down and
	// 2 Mbit/s up). batman-adv counts in 100 kbit/s, so they are rounded
	// up to that.
	DownKbit, UpKbit uint32
}

// genlHdrLen is struct genlmsghdr: cmd, version, reserved u16.
const genlHdrLen = 4

// setMeshAttrs is BATADV_CMD_SET_MESH's body.
func setMeshAttrs(meshIfindex int, s MeshSettings) ([]byte, error) {
	if s.Gateway > GatewayServer {
		return nil, fmt.Errorf("batadv: gateway mode %d: want off, client or server", s.Gateway)
	}
	var e encoder
	e.U32(attrMeshIfindex, uint32(meshIfindex))
	e.U8(attrGWMode, uint8(s.Gateway))
	if s.Gateway == GatewayServer {
		if s.DownKbit > 0 {
			e.U32(attrGWBandwidthDown, units100k(s.DownKbit))
		}
		if s.UpKbit > 0 {
			e.U32(attrGWBandwidthUp, units100k(s.UpKbit))
		}
	}
	return e.Bytes(), nil
}

func units100k(kbit uint32) uint32 {
	return uint32((uint64(kbit) + 99) / 100)
}

// Client talks to the batadv generic netlink family.
type Client struct {
	family uint16
}

// Open finds the batadv family; without batman-adv in the kernel it
// returns an error wrapping ErrNotInKernel.
func Open() (*Client, error) {
	f, err := netlink.GenlFamilyGet(familyName)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w: generic netlink family %q not found (modprobe batman-adv failed)", ErrNotInKernel, familyName)
		}
		return nil, fmt.Errorf("batadv: find the generic netlink family: %w", err)
	}
	return &Client{family: f.ID}, nil
}

func (c *Client) request(cmd uint8, flags int, attrs []byte) *nl.NetlinkRequest {
	return nlattr.Request(c.family, cmd, flags, attrs)
}

// SetMesh applies the gateway settings to the batman-adv interface.
func (c *Client) SetMesh(meshIfindex int, s MeshSettings) error {
	attrs, err := setMeshAttrs(meshIfindex, s)
	if err != nil {
		return err
	}
	if _, err := c.request(cmdSetMesh, unix.NLM_F_ACK, attrs).Execute(unix.NETLINK_GENERIC, 0); err != nil {
		return fmt.Errorf("batadv: set mesh %d gw_mode %s: %w", meshIfindex, s.Gateway, err)
	}
	return nil
}

// maxDumpMessages bounds one table: each row is a message, and a mesh
// this size (and a neighbour flooding originators to grow ours) is far
// past anything a field mesh runs.
const maxDumpMessages = 8192

// dumpAttrs is every table dump's request body: the mesh interface's
// index, all batman-adv's dump handlers read.
func dumpAttrs(meshIfindex int) []byte {
	var e encoder
	e.U32(attrMeshIfindex, uint32(meshIfindex))
	return e.Bytes()
}

func (c *Client) dump(what string, cmd uint8, meshIfindex int) ([][]byte, error) {
	msgs, err := nlattr.Dump(c.family, cmd, dumpAttrs(meshIfindex), maxDumpMessages)
	switch {
	case errors.Is(err, syscall.ENOENT):
		// batadv answers ENOENT while the mesh has no active hard
		// interface.
		return nil, fmt.Errorf("batadv: %s of %d: no active hard interface yet: %w", what, meshIfindex, err)
	case errors.Is(err, nlattr.ErrTooMany):
		return nil, fmt.Errorf("batadv: %s of %d: more than %d entries", what, meshIfindex, maxDumpMessages)
	case err != nil:
		return nil, fmt.Errorf("batadv: %s of %d: %w", what, meshIfindex, err)
	}
	return msgs, nil
}

// Neighbours dumps the single-hop neighbours (BATADV_CMD_GET_NEIGHBORS).
func (c *Client) Neighbours(meshIfindex int) ([]Neighbour, error) {
	msgs, err := c.dump("neighbours", cmdGetNeighbors, meshIfindex)
	if err != nil {
		return nil, err
	}
	return ParseNeighbours(msgs)
}

// Originators dumps the originator table (BATADV_CMD_GET_ORIGINATORS).
func (c *Client) Originators(meshIfindex int) ([]Originator, error) {
	msgs, err := c.dump("originators", cmdGetOriginators, meshIfindex)
	if err != nil {
		return nil, err
	}
	return ParseOriginators(msgs)
}

// Gateways dumps the gateway servers heard (BATADV_CMD_GET_GATEWAYS).
func (c *Client) Gateways(meshIfindex int) ([]Gateway, error) {
	msgs, err := c.dump("gateways", cmdGetGateways, meshIfindex)
	if err != nil {
		return nil, err
	}
	return ParseGateways(msgs)
}

// Mesh is the batman-adv interface's state (BATADV_CMD_GET_MESH).
type Mesh struct {
	Version string // batman-adv's version
	Algo    string // routing algorithm, "BATMAN_IV"
	Ifname  string
	// Address is the batman-adv interface's own MAC (bat0's, random),
	// which its clients' frames carry; it is not the originator address
	// the other nodes' tables list.
	Address net.HardwareAddr
	// Originator is this node's originator address, the MAC of its
	// primary hard interface (BATADV_ATTR_HARD_ADDRESS): what the other
	// nodes' originator and gateway tables name it by. Nil until a hard
	// interface is active.
	Originator net.HardwareAddr
	Gateway    GatewayMode
	// DownKbit and UpKbit are the bandwidth this node announces when it
	// is a gateway server.
	DownKbit, UpKbit uint32
}

// ParseMesh reads a BATADV_CMD_GET_MESH reply.
func ParseMesh(msg []byte) (Mesh, error) {
	var m Mesh
	err := eachRow("mesh", cmdGetMesh, [][]byte{msg}, func(attrs []attr) error {
		var err error
		for _, a := range attrs {
			switch a.Type {
			case attrVersion:
				m.Version = boundedString(a, 64)
			case attrAlgoName:
				m.Algo = boundedString(a, 32)
			case attrMeshIfname:
				m.Ifname = boundedString(a, maxIfname)
			case attrMeshAddress:
				m.Address, err = attrMAC(a)
			case attrHardAddress:
				m.Originator, err = attrMAC(a)
			case attrGWMode:
				var v uint8
				v, err = attrU8(a)
				m.Gateway = GatewayMode(v)
			case attrGWBandwidthDown:
				var v uint32
				v, err = attrU32(a)
				m.DownKbit = sat100(v)
			case attrGWBandwidthUp:
				var v uint32
				v, err = attrU32(a)
				m.UpKbit = sat100(v)
			}
			if err != nil {
				return err
			}
		}
		if m.Algo == "" {
			return fmt.Errorf("%w: no routing algorithm", errMalformed)
		}
		return nil
	})
	return m, err
}

// boundedString reads a string attribute cut to at most n bytes.
func boundedString(a attr, n int) string {
	s := attrString(a)
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// Mesh reads the batman-adv interface's state.
func (c *Client) Mesh(meshIfindex int) (Mesh, error) {
	var e encoder
	e.U32(attrMeshIfindex, uint32(meshIfindex))
	msgs, err := c.request(cmdGetMesh, 0, e.Bytes()).Execute(unix.NETLINK_GENERIC, c.family)
	if err != nil {
		return Mesh{}, fmt.Errorf("batadv: get mesh %d: %w", meshIfindex, err)
	}
	if len(msgs) != 1 {
		return Mesh{}, fmt.Errorf("batadv: get mesh %d: %d replies, want 1", meshIfindex, len(msgs))
	}
	return ParseMesh(msgs[0])
}
