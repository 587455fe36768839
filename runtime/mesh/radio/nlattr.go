package radio

import "byzantium/runtime/mesh/internal/nlattr"

// Netlink attributes are runtime/mesh/internal/nlattr's, shared with batadv.
type (
	attr    = nlattr.Attr
	encoder = nlattr.Encoder
)

var errMalformed = nlattr.ErrMalformed

func parseAttrs(b []byte) ([]attr, error) { return nlattr.Parse(b) }
func attrU32(a attr) (uint32, error)      { return nlattr.U32(a) }
func attrString(a attr) string            { return nlattr.String(a) }
func newEncoder(head []byte) *encoder     { return nlattr.NewEncoder(head) }
