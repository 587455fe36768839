// Package nlattr reads and writes netlink attributes (struct nlattr in
// linux/netlink.h) for the mesh's generic netlink clients (radio's
// nl80211, batadv's batman-adv): bounded, so a message from the kernel
// or a test's bytes cannot run past their end; and sends their generic
// netlink requests and dumps (Request, Dump).
package nlattr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
)

// An attribute is a 4-byte header (length including the header, type) in
// host byte order, the payload, padding to 4 bytes.

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

// ErrMalformed is wrapped by every error about bad attribute bytes.
var ErrMalformed = errors.New("malformed netlink attributes")

type Attr struct {
	Type uint16 // with the flag bits masked off
	Data []byte // the payload, without padding; aliases the input
}

func Align(n int) int { return (n + 3) &^ 3 }

// Parse splits b into attributes. It never reads past b, refuses a
// length that runs past it or is shorter than the header, and refuses more
// than maxAttrsPerLevel attributes.
func Parse(b []byte) ([]Attr, error) {
	var out []Attr
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < nlaHdrLen || l > len(b) {
			return nil, fmt.Errorf("%w: attribute %d has length %d with %d bytes left", ErrMalformed, t, l, len(b))
		}
		if len(out) == maxAttrsPerLevel {
			return nil, fmt.Errorf("%w: more than %d attributes", ErrMalformed, maxAttrsPerLevel)
		}
		out = append(out, Attr{Type: t, Data: b[nlaHdrLen:l]})
		next := Align(l)
		if next > len(b) {
			next = len(b) // the last attribute may lack its padding
		}
		b = b[next:]
	}
	return out, nil
}

// U32 reads a u32 attribute.
func U32(a Attr) (uint32, error) {
	if len(a.Data) < 4 {
		return 0, fmt.Errorf("%w: attribute %d: %d bytes for a u32", ErrMalformed, a.Type, len(a.Data))
	}
	return binary.NativeEndian.Uint32(a.Data[:4]), nil
}

// String reads a NUL-terminated (or not) string attribute.
func String(a Attr) string {
	d := a.Data
	for i, c := range d {
		if c == 0 {
			d = d[:i]
			break
		}
	}
	return string(d)
}

// Encoder appends attributes to a buffer, for requests and for tests that
// build the kernel's replies.
type Encoder struct{ b []byte }

// Put appends one attribute.
func (e *Encoder) Put(typ uint16, data []byte) {
	l := nlaHdrLen + len(data)
	var h [nlaHdrLen]byte
	binary.NativeEndian.PutUint16(h[0:2], uint16(l))
	binary.NativeEndian.PutUint16(h[2:4], typ)
	e.b = append(e.b, h[:]...)
	e.b = append(e.b, data...)
	for i := l; i < Align(l); i++ {
		e.b = append(e.b, 0)
	}
}

// Flag appends an attribute without payload.
func (e *Encoder) Flag(typ uint16) { e.Put(typ, nil) }

// U8 appends a u8 attribute.
func (e *Encoder) U8(typ uint16, v uint8) { e.Put(typ, []byte{v}) }

// U32 appends a u32 attribute.
func (e *Encoder) U32(typ uint16, v uint32) {
	var d [4]byte
	binary.NativeEndian.PutUint32(d[:], v)
	e.Put(typ, d[:])
}

// Nested writes one attribute whose payload is the attributes fill adds,
// with NLA_F_NESTED set as the kernel's strict validation wants.
func (e *Encoder) Nested(typ uint16, fill func(*Encoder)) {
	var inner Encoder
	fill(&inner)
	e.Put(typ|nlaFNested, inner.b)
}

// Bytes is what was appended.
func (e *Encoder) Bytes() []byte { return e.b }

// U8 reads a u8 attribute.
func U8(a Attr) (uint8, error) {
	if len(a.Data) < 1 {
		return 0, fmt.Errorf("%w: attribute %d: empty u8", ErrMalformed, a.Type)
	}
	return a.Data[0], nil
}

// MAC reads a 6-byte hardware address, refusing any other length.
func MAC(a Attr) (net.HardwareAddr, error) {
	if len(a.Data) != 6 {
		return nil, fmt.Errorf("%w: attribute %d: %d bytes for a MAC address", ErrMalformed, a.Type, len(a.Data))
	}
	return net.HardwareAddr(slices.Clone(a.Data)), nil
}

// NewEncoder starts an Encoder after head (a generic netlink header, say).
func NewEncoder(head []byte) *Encoder { return &Encoder{b: slices.Clone(head)} }
