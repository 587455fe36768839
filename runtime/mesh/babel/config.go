// Package babel drives babeld 1.12 (Debian's package): it writes its
// configuration, runs and supervises it, and reads its local socket
// (dump and monitor) into Go values. It never scrapes command output and
// never asks babeld to change anything at runtime: the socket is opened
// read-only, and a change of settings is a new configuration and a
// restart.
package babel

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// The kernel routing table babeld imports extra routes from (the client
// prefixes, the gateway's default route), and the route protocol byzd
// marks them with. Shared with runtime/mesh/gateway.
const (
	ImportTable = 200
	RouteProto  = 201
)

// Hello intervals, in seconds. babeld marks a neighbour unreachable
// after missing most of its recent hellos: measured on veth with babeld
// 1.12.1 and a silent cut (both ends dropping everything), a wired link
// at 2 s is unreachable in about 5 s and a wireless one at 1 s in about 10 s
// (the defaults, 4 s, take 11–15 s and 51–55 s). Hellos are a few dozen
// bytes; a second's worth on a radio costs nothing next to the 30 s a
// lost gateway would otherwise stay in use.
const (
	WiredHello    = 2
	WirelessHello = 1
)

// KeyID names the mesh key in babeld's configuration.
const KeyID = "byz"

// Interface is one interface babeld speaks on.
type Interface struct {
	Name     string
	Wireless bool // babeld's type wireless: link quality estimation, no split horizon
}

// Config is what a babeld configuration is made from. Every field but
// Key is required.
type Config struct {
	RouterID   RouterID
	Interfaces []Interface
	// Own are this node's own addresses (host routes: /32 and /128)
	// babeld announces from the addresses on the node (babeld's "local"
	// routes); every other local address (an uplink's DHCP lease) is
	// kept out.
	Own []netip.Prefix
	// Mesh are the prefixes a neighbour may announce: routes for
	// anything else (and default routes are always allowed) are refused.
	Mesh []MeshPrefix
	// Key is the mesh key, "" for an open mesh. babeld gets a 32-byte
	// HMAC-SHA256 key derived from it, never the key itself.
	Key string
	// Socket is the path of babeld's read-only local socket; StateFile
	// its state file (only its hello sequence number lives there).
	Socket    string
	StateFile string
}

// MeshPrefix is a prefix routes may fall in, with the shortest length
// allowed (a neighbour may announce a /24 inside 10/8, not 10/8 itself).
type MeshPrefix struct {
	Prefix netip.Prefix
	MinLen int
}

// RouterID is babeld's 8-byte router id: the claim time of this node's
// addresses (uint32 big endian Unix seconds) and 4 bytes fresh on every
// start. The claim time settles address collisions (the younger claim
// rolls again); the fresh half makes a node that lost babeld's state (a
// stick booted without persistence) a new router its neighbours do not
// ignore.
type RouterID [8]byte

// NewRouterID makes a router id for a claim time, with 4 bytes from rnd.
func NewRouterID(claimed time.Time, rnd io.Reader) (RouterID, error) {
	var id RouterID
	binary.BigEndian.PutUint32(id[:4], uint32(claimed.Unix()))
	if _, err := io.ReadFull(rnd, id[4:]); err != nil {
		return RouterID{}, fmt.Errorf("babel: router id: %w", err)
	}
	// All ones and all zeros are not valid Babel router ids (RFC 8966).
	if id == (RouterID{}) || id == (RouterID{255, 255, 255, 255, 255, 255, 255, 255}) {
		id[7] ^= 1
	}
	return id, nil
}

// Claimed is the claim time the router id carries.
func (id RouterID) Claimed() time.Time {
	return time.Unix(int64(binary.BigEndian.Uint32(id[:4])), 0).UTC()
}

// String is babeld's spelling: eight colon-separated hex bytes.
func (id RouterID) String() string {
	var b strings.Builder
	for i, c := range id {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	return b.String()
}

// ParseRouterID reads babeld's spelling.
func ParseRouterID(s string) (RouterID, error) {
	// Read in place, without splitting: a busy monitor reads one per
	// route line.
	var id RouterID
	if len(s) != 8*3-1 {
		return id, fmt.Errorf("babel: router id %q: want 8 bytes", s)
	}
	for i := range id {
		p := s[3*i : 3*i+2]
		if i < 7 && s[3*i+2] != ':' {
			return id, fmt.Errorf("babel: router id %q: want 8 bytes", s)
		}
		hi, ok1 := unhex(p[0])
		lo, ok2 := unhex(p[1])
		if !ok1 || !ok2 {
			return id, fmt.Errorf("babel: router id %q: bad byte %q", s, p)
		}
		id[i] = hi<<4 | lo
	}
	return id, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Younger says whether a claim with router id a must give way to one
// with router id b: the later claim time loses; at equal times, the
// larger id does.
func Younger(a, b RouterID) bool {
	ta, tb := binary.BigEndian.Uint32(a[:4]), binary.BigEndian.Uint32(b[:4])
	if ta != tb {
		return ta > tb
	}
	return bytes.Compare(a[:], b[:]) > 0
}

// HMACKey derives babeld's key from the mesh key: SHA-256 of a domain
// string and the key, so the same words always give the same key on
// every node, and babeld's file never holds the words.
func HMACKey(key string) [32]byte {
	return sha256.Sum256([]byte("byzantium babel hmac v1\x00" + key))
}

// ErrConfig is returned for a Config babeld would refuse or misread.
var ErrConfig = errors.New("babel: invalid configuration")

// validName is an interface name babeld's parser reads back as one word.
func validName(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c > '~' || c == '#' || c == '"' || c == '/' || c == ':' {
			return false
		}
	}
	return true
}

// validPath is a path babeld's parser reads as one word.
func validPath(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.ContainsAny(s, " \t\n\r#\"")
}

// Generate writes babeld's configuration. The order of the filters
// matters (babeld takes the first that matches): our own addresses and
// byzd's table, then deny. babeld appends "redistribute local allow"
// after the file, which the explicit "redistribute local deny" shadows.
func Generate(c Config) ([]byte, error) {
	if len(c.Interfaces) == 0 {
		return nil, fmt.Errorf("%w: no interfaces", ErrConfig)
	}
	if !validPath(c.Socket) || !validPath(c.StateFile) {
		return nil, fmt.Errorf("%w: socket %q and state file %q must be absolute paths without spaces", ErrConfig, c.Socket, c.StateFile)
	}
	if c.RouterID == (RouterID{}) {
		return nil, fmt.Errorf("%w: no router id", ErrConfig)
	}
	var b bytes.Buffer
	b.WriteString("# babeld configuration written by byzd (runtime/mesh/babel) on every start.\n")
	fmt.Fprintf(&b, "router-id %s\n", c.RouterID)
	fmt.Fprintf(&b, "local-path %s\n", c.Socket)
	fmt.Fprintf(&b, "state-file %s\n", c.StateFile)
	// byzd sets forwarding, redirects and rp_filter itself (SetupKernel):
	// babeld may run without the right to write /proc/sys.
	b.WriteString("skip-kernel-setup true\n")
	fmt.Fprintf(&b, "import-table %d\n", ImportTable)
	if c.Key != "" {
		k := HMACKey(c.Key)
		fmt.Fprintf(&b, "key id %s type hmac-sha256 value %s\n", KeyID, hex.EncodeToString(k[:]))
	}
	seen := map[string]bool{}
	for _, ifc := range c.Interfaces {
		if !validName(ifc.Name) {
			return nil, fmt.Errorf("%w: interface name %q", ErrConfig, ifc.Name)
		}
		if seen[ifc.Name] {
			return nil, fmt.Errorf("%w: interface %s named twice", ErrConfig, ifc.Name)
		}
		seen[ifc.Name] = true
		typ, hello := "wired", WiredHello
		if ifc.Wireless {
			typ, hello = "wireless", WirelessHello
		}
		fmt.Fprintf(&b, "interface %s type %s hello-interval %d", ifc.Name, typ, hello)
		if c.Key != "" {
			fmt.Fprintf(&b, " key %s", KeyID)
		}
		b.WriteByte('\n')
	}
	// What neighbours may tell us: prefixes inside the mesh's ranges, and
	// default routes (gateways), 0.0.0.0/0 and ::/0 each on its own
	// line: a gateway may share IPv4 only, IPv6 only, or both
	// (runtime/mesh/gateway). Anything else (a route to an uplink's LAN,
	// say) is refused rather than installed; TestBabeldDefaultRoutes
	// checks it between two real babelds.
	for _, m := range c.Mesh {
		if !m.Prefix.IsValid() || m.MinLen < m.Prefix.Bits() || m.MinLen > m.Prefix.Addr().BitLen() {
			return nil, fmt.Errorf("%w: mesh prefix %v ge %d", ErrConfig, m.Prefix, m.MinLen)
		}
		fmt.Fprintf(&b, "in ip %s ge %d allow\n", m.Prefix.Masked(), m.MinLen)
	}
	b.WriteString("in ip 0.0.0.0/0 eq 0 allow\n")
	b.WriteString("in ip ::/0 eq 0 allow\n")
	b.WriteString("in deny\n")
	for _, p := range c.Own {
		if !p.IsValid() || !p.IsSingleIP() {
			return nil, fmt.Errorf("%w: own address %v must be a /32 or /128", ErrConfig, p)
		}
		fmt.Fprintf(&b, "redistribute local ip %s eq %d allow\n", p, p.Bits())
	}
	b.WriteString("redistribute local deny\n")
	// Everything byzd put in its table (client prefixes, and the default
	// routes 0.0.0.0/0 and ::/0 while this node shares that family) with
	// its protocol; nothing else. import-table and this filter cover both
	// families: babeld reads table 200 for IPv4 and IPv6 alike.
	fmt.Fprintf(&b, "redistribute proto %d allow\n", RouteProto)
	b.WriteString("redistribute deny\n")
	return b.Bytes(), nil
}
