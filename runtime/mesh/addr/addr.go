// Package addr is a node's mesh identity and the addresses it derives:
// 32 secret random bytes, a roll counter and the time the current
// addresses were claimed, kept as JSON in the node's state folder (with
// persistence, never copied by a clone, which makes its own). The slot is
// a hash of the secret and the roll, so a node keeps its addresses across
// reboots, and a collision is settled by the younger claim rolling again.
package addr

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// slotDomain separates this hash from any other use of the secret.
const slotDomain = "byzantium mesh slot v1\x00"

// Slots is how many client prefixes there are: 10.H.L.0/24 with H in
// 1..254 and L in 0..255.
const Slots = 254 * 256

// ULA is the mesh's IPv6 unique local /48, the same on every Byzantium
// node: fd followed by the first 40 bits of SHA-256("byzantium mesh").
var ULA = func() netip.Prefix {
	sum := sha256.Sum256([]byte("byzantium mesh"))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48)
}()

// Slot is a node's place in the address plan: H in 1..254, L in 0..255.
type Slot struct {
	H, L uint8
}

// SlotFrom derives the slot from a secret and a roll: the first four
// bytes of SHA-256(domain || secret || roll), big endian, modulo Slots.
// The modulo's bias (2^32 is not a multiple of 65024) is below 2^-16.
func SlotFrom(secret [32]byte, roll uint32) Slot {
	h := sha256.New()
	h.Write([]byte(slotDomain))
	h.Write(secret[:])
	var r [4]byte
	binary.BigEndian.PutUint32(r[:], roll)
	h.Write(r[:])
	v := binary.BigEndian.Uint32(h.Sum(nil)[:4]) % Slots
	return Slot{H: uint8(v/256 + 1), L: uint8(v % 256)}
}

// String is "H.L".
func (s Slot) String() string { return fmt.Sprintf("%d.%d", s.H, s.L) }

// Addresses are what a slot gives a node.
type Addresses struct {
	IPv4       netip.Prefix // 10.H.L.1/32, the node's own
	IPv6       netip.Prefix // ULA:HHLL::1/128
	ClientIPv4 netip.Prefix // 10.H.L.0/24, for client access
	ClientIPv6 netip.Prefix // ULA:HHLL::/64
}

// Addresses derives the node and client addresses from the slot.
func (s Slot) Addresses() Addresses {
	v4 := netip.AddrFrom4([4]byte{10, s.H, s.L, 1})
	net4 := netip.AddrFrom4([4]byte{10, s.H, s.L, 0})
	b := ULA.Addr().As16()
	b[6], b[7] = s.H, s.L
	net6 := netip.AddrFrom16(b)
	b[15] = 1
	v6 := netip.AddrFrom16(b)
	return Addresses{
		IPv4:       netip.PrefixFrom(v4, 32),
		IPv6:       netip.PrefixFrom(v6, 128),
		ClientIPv4: netip.PrefixFrom(net4, 24),
		ClientIPv6: netip.PrefixFrom(net6, 64),
	}
}

// Prefixes lists the four prefixes, the ones another router must not
// announce (a collision).
func (a Addresses) Prefixes() []netip.Prefix {
	return []netip.Prefix{a.IPv4, a.ClientIPv4, a.IPv6, a.ClientIPv6}
}

// Identity is a node's mesh identity.
type Identity struct {
	Secret  [32]byte
	Roll    uint32
	Claimed time.Time // when this roll's addresses were taken, to the second
}

// Slot is the identity's current slot.
func (id Identity) Slot() Slot { return SlotFrom(id.Secret, id.Roll) }

// Addresses are the identity's current addresses.
func (id Identity) Addresses() Addresses { return id.Slot().Addresses() }

// Reroll is the identity after a collision: the next roll, claimed now.
func (id Identity) Reroll(now time.Time) Identity {
	id.Roll++
	id.Claimed = now.UTC().Truncate(time.Second)
	return id
}

// BeaconNet is the /64 of claim beacons, ULA:ffff::/64 (H is never 255,
// so no client prefix is there).
var BeaconNet = func() netip.Prefix {
	b := ULA.Addr().As16()
	b[6], b[7] = 0xff, 0xff
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}()

// Beacon is a host address every node announces besides its own:
// ULA:ffff:HHLL:xxxx:xxxx:xxxx, the slot followed by 48 bits of a hash of
// the secret. A router between two nodes claiming one slot passes on only
// the best of their routes to the slot's prefixes, so each claimant may
// never see the other's; their beacons differ, so every node sees both and
// the younger one learns of the collision. A beacon in our slot with other
// bits is a collision even when the other claim is as old as ours.
func (id Identity) Beacon() netip.Addr {
	s := id.Slot()
	h := sha256.Sum256(append([]byte("byzantium mesh beacon v1\x00"), id.Secret[:]...))
	b := BeaconNet.Addr().As16()
	b[8], b[9] = s.H, s.L
	copy(b[10:], h[:6])
	return netip.AddrFrom16(b)
}

// BeaconSlot reads the slot a beacon address claims.
func BeaconSlot(a netip.Addr) (Slot, bool) {
	if !a.Is6() || !BeaconNet.Contains(a) {
		return Slot{}, false
	}
	b := a.As16()
	return Slot{H: b[8], L: b[9]}, b[8] != 0 && b[8] != 255
}

// With batman-adv alone there is no babel route to carry the slot and
// the claim: the soft interface's MAC address carries them instead, and
// every node learns every other's from batman-adv's translation table,
// mesh-wide. The layout is macTag, H, L, the claim's hour (two bytes,
// hours since macEpoch, wrapping every 7.4 years) and a byte of the
// secret's hash (two claims of one slot in one hour still differ).
// macTag has the locally administered bit set and the group bit clear.
const macTag = 0xb6

var macEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// HardwareAddr is the MAC address of the node's batman-adv soft interface.
func (id Identity) HardwareAddr() net.HardwareAddr {
	s := id.Slot()
	hours := uint16(id.Claimed.Sub(macEpoch) / time.Hour)
	h := sha256.Sum256(append([]byte("byzantium mesh mac v1\x00"), id.Secret[:]...))
	return net.HardwareAddr{macTag, s.H, s.L, byte(hours >> 8), byte(hours), h[0]}
}

// MACClaim is what a soft interface's MAC says of its node's claim.
type MACClaim struct {
	Slot  Slot
	Hours uint16 // the claim's hour since macEpoch, modulo 2^16
}

// ParseHardwareAddr reads a claim from a MAC address HardwareAddr made;
// false for any other address.
func ParseHardwareAddr(mac net.HardwareAddr) (MACClaim, bool) {
	if len(mac) != 6 || mac[0] != macTag || mac[1] == 0 || mac[1] == 255 {
		return MACClaim{}, false
	}
	return MACClaim{Slot: Slot{H: mac[1], L: mac[2]}, Hours: uint16(mac[3])<<8 | uint16(mac[4])}, true
}

// YoungerMAC says whether the claim behind mine is younger than the one
// behind other's, both for one slot: the later hour (in serial number
// arithmetic, so that the wrap does not flip old and new), and within one
// hour the larger address. Equal addresses are both younger: both roll.
func YoungerMAC(mine, other net.HardwareAddr) bool {
	a, _ := ParseHardwareAddr(mine)
	b, _ := ParseHardwareAddr(other)
	if d := int16(a.Hours - b.Hours); d != 0 {
		return d > 0
	}
	return bytes.Compare(mine, other) >= 0
}
