package batadv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
)

// Netlink attributes (struct nlattr in linux/netlink.h): a 4-byte header
// (length including the header, type) in host byte order, the payload,
// padding to 4 bytes. radio has its own copy of these few lines: the mesh
// subpackages do not import each other.

const (
	nlaHdrLen = 4
	// nlaFNested and nlaFNetByteorder are flag bits in the type field; the
	// kernel sets NLA_F_NESTED on some nests, so readers mask both off.
	nlaFNested       = 0x8000
	nlaFNetByteorder = 0x4000
	nlaTypeMask      = ^uint16(nlaFNested | nlaFNetByteorder)

	// maxAttrsPerLevel bounds one attribute list. A wiphy message has
	// about 60 top-level attributes and a band about 40 frequencies; an
	// odd driver gets far more room than that, a broken one gets an error.
	maxAttrsPerLevel = 4096
)

var errMalformed = errors.New("malformed netlink attributes")

type attr struct {
	Type uint16 // with the flag bits masked off
	Data []byte // the payload, without padding; aliases the input
}

func nlaAlign(n int) int { return (n + 3) &^ 3 }

// parseAttrs splits b into attributes. It never reads past b, refuses a
// length that runs past it or is shorter than the header, and refuses more
// than maxAttrsPerLevel attributes.
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return nil, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < nlaHdrLen || l > len(b) {
			return nil, fmt.Errorf("%w: attribute %d has length %d with %d bytes left", errMalformed, t, l, len(b))
		}
		if len(out) == maxAttrsPerLevel {
			return nil, fmt.Errorf("%w: more than %d attributes", errMalformed, maxAttrsPerLevel)
		}
		out = append(out, attr{Type: t, Data: b[nlaHdrLen:l]})
		next := nlaAlign(l)
		if next > len(b) {
			next = len(b) // the last attribute may lack its padding
		}
		b = b[next:]
	}
	return out, nil
}

func attrU32(a attr) (uint32, error) {
	if len(a.Data) < 4 {
		return 0, fmt.Errorf("%w: attribute %d: %d bytes for a u32", errMalformed, a.Type, len(a.Data))
	}
	return binary.NativeEndian.Uint32(a.Data[:4]), nil
}

// attrString reads a NUL-terminated (or not) string attribute.
func attrString(a attr) string {
	d := a.Data
	for i, c := range d {
		if c == 0 {
			d = d[:i]
			break
		}
	}
	return string(d)
}

// encoder appends attributes to a buffer, for requests and for tests that
// build the kernel's replies.
type encoder struct{ b []byte }

func (e *encoder) put(typ uint16, data []byte) {
	l := nlaHdrLen + len(data)
	var h [nlaHdrLen]byte
	binary.NativeEndian.PutUint16(h[0:2], uint16(l))
	binary.NativeEndian.PutUint16(h[2:4], typ)
	e.b = append(e.b, h[:]...)
	e.b = append(e.b, data...)
	for i := l; i < nlaAlign(l); i++ {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) flag(typ uint16) { e.put(typ, nil) }

func (e *encoder) u8(typ uint16, v uint8) { e.put(typ, []byte{v}) }

func (e *encoder) u32(typ uint16, v uint32) {
	var d [4]byte
	binary.NativeEndian.PutUint32(d[:], v)
	e.put(typ, d[:])
}

// nested writes one attribute whose payload is the attributes fill adds,
// with NLA_F_NESTED set as the kernel's strict validation wants.
func (e *encoder) nested(typ uint16, fill func(*encoder)) {
	var inner encoder
	fill(&inner)
	e.put(typ|nlaFNested, inner.b)
}

func (e *encoder) bytes() []byte { return e.b }

func attrU8(a attr) (uint8, error) {
	if len(a.Data) < 1 {
		return 0, fmt.Errorf("%w: attribute %d: empty u8", errMalformed, a.Type)
	}
	return a.Data[0], nil
}

// attrMAC reads a 6-byte hardware address, refusing any other length.
func attrMAC(a attr) (net.HardwareAddr, error) {
	if len(a.Data) != 6 {
		return nil, fmt.Errorf("%w: attribute %d: %d bytes for a MAC address", errMalformed, a.Type, len(a.Data))
	}
	return net.HardwareAddr(slices.Clone(a.Data)), nil
}
