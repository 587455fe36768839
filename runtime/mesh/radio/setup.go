package radio

import (
	"byzantium/runtime/mesh/internal/nlattr"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ErrNoNL80211 means the kernel has no nl80211 family: no cfg80211, so no
// wifi at all.
var ErrNoNL80211 = errors.New("nl80211 is not in this kernel (no cfg80211)")

// maxDumpMessages bounds one dump's messages. A split wiphy dump is about
// ten messages a radio.
const maxDumpMessages = 4096

// The request bodies below are pure functions of their arguments so that
// tests check the bytes the kernel would get; Client only sends them.

func setInterfaceAttrs(ifindex, iftype int) []byte {
	var e encoder
	e.U32(attrIfindex, uint32(ifindex))
	e.U32(attrIftype, uint32(iftype))
	return e.Bytes()
}

// joinMeshAttrs is an open 802.11s mesh on one 20 MHz channel (no HT: the
// widest common denominator between cards), with
// NL80211_MESHCONF_FORWARDING 0 so the card's HWMP does not route: babeld
// or batman-adv do, and two routers on one link fight.
func joinMeshAttrs(ifindex int, meshID string, mhz int) []byte {
	var e encoder
	e.U32(attrIfindex, uint32(ifindex))
	e.Put(attrMeshID, []byte(meshID))
	e.U32(attrWiphyFreq, uint32(mhz))
	e.U32(attrChannelWidth, chanWidth20NoHT)
	e.U32(attrCenterFreq1, uint32(mhz))
	e.Nested(attrMeshConfig, func(m *encoder) {
		m.U8(meshconfForwarding, 0)
	})
	return e.Bytes()
}

// joinIBSSAttrs is an ad-hoc cell with a fixed BSSID on a fixed channel
// (NL80211_ATTR_FREQ_FIXED: do not wander to another cell's channel).
func joinIBSSAttrs(ifindex int, ssid string, mhz int, bssid net.HardwareAddr) []byte {
	var e encoder
	e.U32(attrIfindex, uint32(ifindex))
	e.Put(attrSSID, []byte(ssid))
	e.U32(attrWiphyFreq, uint32(mhz))
	e.U32(attrChannelWidth, chanWidth20NoHT)
	e.U32(attrCenterFreq1, uint32(mhz))
	e.Put(attrMAC, bssid)
	e.Flag(attrFreqFixed)
	return e.Bytes()
}

func ifindexAttrs(ifindex int) []byte {
	var e encoder
	e.U32(attrIfindex, uint32(ifindex))
	return e.Bytes()
}

// Client talks nl80211.
type Client struct {
	family uint16
}

// Open finds the nl80211 family.
func Open() (*Client, error) {
	f, err := netlink.GenlFamilyGet(nl80211Family)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, ErrNoNL80211
		}
		return nil, fmt.Errorf("nl80211: find the family: %w", err)
	}
	return &Client{family: f.ID}, nil
}

func (c *Client) request(cmd uint8, flags int, attrs []byte) *nl.NetlinkRequest {
	return nlattr.Request(c.family, cmd, flags, attrs)
}

// do sends a command and waits for the kernel's acknowledgement.
func (c *Client) do(what string, cmd uint8, attrs []byte) error {
	_, err := c.request(cmd, unix.NLM_F_ACK, attrs).Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return fmt.Errorf("nl80211 %s: %w", what, err)
	}
	return nil
}

func (c *Client) dump(what string, cmd uint8, attrs []byte) ([][]byte, error) {
	msgs, err := nlattr.Dump(c.family, cmd, attrs, maxDumpMessages)
	switch {
	case errors.Is(err, nlattr.ErrTooMany):
		return nil, fmt.Errorf("nl80211 %s: more than %d messages", what, maxDumpMessages)
	case err != nil:
		return nil, fmt.Errorf("nl80211 %s: %w", what, err)
	}
	return msgs, nil
}

// Wiphys reads every radio's capabilities with a split dump (the only way
// to get all of a modern card's: unsplit, the kernel stops at a message's
// size). Driver is filled from sysfs under sysRoot ("" for /).
func (c *Client) Wiphys(sysRoot string) ([]Capabilities, error) {
	var e encoder
	e.Flag(attrSplitWiphyDump)
	msgs, err := c.dump("get wiphy", cmdGetWiphy, e.Bytes())
	if err != nil {
		return nil, err
	}
	caps, err := ParseWiphyDump(msgs)
	if err != nil {
		return nil, err
	}
	for i := range caps {
		caps[i].Driver = DriverName(sysRoot, caps[i].Name)
	}
	return caps, nil
}

// InterfaceWiphy says which wiphy a network interface belongs to.
func (c *Client) InterfaceWiphy(ifindex int) (int, error) {
	msgs, err := c.request(cmdGetInterface, 0, ifindexAttrs(ifindex)).Execute(unix.NETLINK_GENERIC, c.family)
	if err != nil {
		return 0, fmt.Errorf("nl80211 get interface %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if len(m) < genlHdrLen {
			continue
		}
		attrs, err := parseAttrs(m[genlHdrLen:])
		if err != nil {
			return 0, fmt.Errorf("nl80211 get interface %d: %w", ifindex, err)
		}
		for _, a := range attrs {
			if a.Type == attrWiphy {
				v, err := attrU32(a)
				return int(v), err
			}
		}
	}
	return 0, fmt.Errorf("nl80211 get interface %d: no wiphy in the reply", ifindex)
}

// SetInterfaceType changes an interface's type (IftypeMeshPoint,
// IftypeAdhoc). Some full-MAC drivers refuse while the interface is up:
// the caller takes it down first and up again before joining.
func (c *Client) SetInterfaceType(ifindex, iftype int) error {
	return c.do(fmt.Sprintf("set interface %d to type %d", ifindex, iftype), cmdSetInterface, setInterfaceAttrs(ifindex, iftype))
}

// JoinMesh joins an open 802.11s mesh (the interface must be a mesh point
// and up). A keyed mesh is not joined here: SAE and the mesh peering
// (AMPE) run in wpa_supplicant, which joins itself with user-space
// authentication flags set; see WPASupplicantMeshConfig.
func (c *Client) JoinMesh(ifindex int, meshID string, mhz int) error {
	if err := ValidateSSID(meshID); err != nil {
		return err
	}
	return c.do(fmt.Sprintf("join mesh %q on %d MHz", meshID, mhz), cmdJoinMesh, joinMeshAttrs(ifindex, meshID, mhz))
}

// JoinIBSS joins (or starts) an ad-hoc cell with a fixed BSSID and channel.
func (c *Client) JoinIBSS(ifindex int, ssid string, mhz int, bssid net.HardwareAddr) error {
	if err := ValidateSSID(ssid); err != nil {
		return err
	}
	if len(bssid) != 6 {
		return fmt.Errorf("nl80211 join ibss: BSSID %v is not 6 bytes", bssid)
	}
	return c.do(fmt.Sprintf("join ibss %q on %d MHz", ssid, mhz), cmdJoinIBSS, joinIBSSAttrs(ifindex, ssid, mhz, bssid))
}

// LeaveMesh and LeaveIBSS leave the mesh or cell; ENOTCONN (not joined) is
// not an error.
func (c *Client) LeaveMesh(ifindex int) error {
	return leaveErr(c.do("leave mesh", cmdLeaveMesh, ifindexAttrs(ifindex)))
}

func (c *Client) LeaveIBSS(ifindex int) error {
	return leaveErr(c.do("leave ibss", cmdLeaveIBSS, ifindexAttrs(ifindex)))
}

func leaveErr(err error) error {
	if errors.Is(err, syscall.ENOTCONN) {
		return nil
	}
	return err
}

// DriverName reads a wiphy's driver from sysfs
// (/sys/class/ieee80211/PHY/device/driver → …/drivers/NAME), "" if unknown.
func DriverName(sysRoot, phy string) string {
	if phy == "" || filepath.Base(phy) != phy {
		return ""
	}
	target, err := os.Readlink(filepath.Join(sysRoot, "/sys/class/ieee80211", phy, "device/driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// Configure readies a radio's interface for mode: down, the interface type
// changed, up, then joined (an open mesh point or an IBSS cell). For a
// keyed mesh point it stops once the interface is an up mesh point and
// returns joined false: wpa_supplicant, given WPASupplicantMeshConfig,
// does SAE and joins. Settings are checked before anything is touched.
func (c *Client) Configure(ifname string, mode Mode, s Settings) (joined bool, err error) {
	if err := ValidateSSID(s.SSID); err != nil {
		return false, err
	}
	mhz, err := ChannelFreq(s.Channel)
	if err != nil {
		return false, err
	}
	var iftype int
	switch mode {
	case ModeMeshPoint:
		iftype = IftypeMeshPoint
	case ModeIBSS:
		iftype = IftypeAdhoc
	default:
		return false, fmt.Errorf("radio %s: mode %q does not mesh", ifname, mode)
	}
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("radio %s: %w", ifname, err)
	}
	idx := l.Attrs().Index
	if err := netlink.LinkSetDown(l); err != nil {
		return false, fmt.Errorf("radio %s: down: %w", ifname, err)
	}
	if err := c.SetInterfaceType(idx, iftype); err != nil {
		return false, fmt.Errorf("radio %s: %w", ifname, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return false, fmt.Errorf("radio %s: up: %w", ifname, err)
	}
	switch {
	case mode == ModeMeshPoint && s.Keyed:
		return false, nil
	case mode == ModeMeshPoint:
		err = c.JoinMesh(idx, s.SSID, mhz)
	default:
		err = c.JoinIBSS(idx, s.SSID, mhz, IBSSBSSID(s.SSID, s.Channel))
	}
	if err != nil {
		return false, fmt.Errorf("radio %s: %w", ifname, err)
	}
	return true, nil
}
