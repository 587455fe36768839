package batadv

import (
	"byzantium/runtime/mesh/internal/nlattr"
	"net"
)

// Netlink attributes are runtime/mesh/internal/nlattr's, shared with radio.
type (
	attr    = nlattr.Attr
	encoder = nlattr.Encoder
)

var errMalformed = nlattr.ErrMalformed

func parseAttrs(b []byte) ([]attr, error)      { return nlattr.Parse(b) }
func attrU32(a attr) (uint32, error)           { return nlattr.U32(a) }
func attrString(a attr) string                 { return nlattr.String(a) }
func attrU8(a attr) (uint8, error)             { return nlattr.U8(a) }
func attrMAC(a attr) (net.HardwareAddr, error) { return nlattr.MAC(a) }
func newEncoder(head []byte) *encoder          { return nlattr.NewEncoder(head) }
