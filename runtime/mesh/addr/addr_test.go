package addr

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestULA(t *testing.T) {
	// fd, then the first five bytes of SHA-256("byzantium mesh"),
	// 190f45f324…, computed by hand with sha256sum.
	if got, want := ULA.String(), "fd19:f45:f324::/48"; got != want {
		t.Fatalf("ULA = %s, want %s", got, want)
	}
}

// TestSlotGolden pins the derivation: a change here renumbers every
// node in the field, so it must be deliberate.
func TestSlotGolden(t *testing.T) {
	var zero, count [32]byte
	for i := range count {
		count[i] = byte(i)
	}
	tests := []struct {
		secret [32]byte
		roll   uint32
		v4, v6 string
		c4, c6 string
	}{
		{zero, 0, "10.140.46.1/32", "fd19:f45:f324:8c2e::1/128", "10.140.46.0/24", "fd19:f45:f324:8c2e::/64"},
		{zero, 1, "10.163.112.1/32", "fd19:f45:f324:a370::1/128", "10.163.112.0/24", "fd19:f45:f324:a370::/64"},
		{zero, 2, "10.123.15.1/32", "fd19:f45:f324:7b0f::1/128", "10.123.15.0/24", "fd19:f45:f324:7b0f::/64"},
		{count, 0, "10.52.15.1/32", "fd19:f45:f324:340f::1/128", "10.52.15.0/24", "fd19:f45:f324:340f::/64"},
		{count, 2, "10.139.255.1/32", "fd19:f45:f324:8bff::1/128", "10.139.255.0/24", "fd19:f45:f324:8bff::/64"},
	}
	for _, tt := range tests {
		a := SlotFrom(tt.secret, tt.roll).Addresses()
		got := []string{a.IPv4.String(), a.IPv6.String(), a.ClientIPv4.String(), a.ClientIPv6.String()}
		want := []string{tt.v4, tt.v6, tt.c4, tt.c6}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("SlotFrom(%x…, %d) address %d = %s, want %s", tt.secret[:2], tt.roll, i, got[i], want[i])
			}
		}
	}
}

// TestSlotRange: H is never 0 or 255 (10.0.x and 10.255.x stay free),
// every address lies in its prefix, and the modulo reaches both ends.
func TestSlotRange(t *testing.T) {
	var sec [32]byte
	seenH := map[uint8]bool{}
	for i := 0; i < 200000; i++ {
		binary.BigEndian.PutUint32(sec[:], uint32(i))
		s := SlotFrom(sec, uint32(i%3))
		if s.H == 0 || s.H == 255 {
			t.Fatalf("slot %v: H out of 1..254", s)
		}
		seenH[s.H] = true
		a := s.Addresses()
		if !a.ClientIPv4.Contains(a.IPv4.Addr()) || !a.ClientIPv6.Contains(a.IPv6.Addr()) {
			t.Fatalf("slot %v: node address outside client prefix: %+v", s, a)
		}
		if !ULA.Contains(a.IPv6.Addr()) || !netip.MustParsePrefix("10.0.0.0/8").Contains(a.IPv4.Addr()) {
			t.Fatalf("slot %v: address outside the mesh: %+v", s, a)
		}
	}
	if !seenH[1] || !seenH[254] || len(seenH) != 254 {
		t.Errorf("H values seen: %d (1: %v, 254: %v), want all 254", len(seenH), seenH[1], seenH[254])
	}
}

// TestSlotMatchesDefinition recomputes the slot from the brief's words.
func TestSlotMatchesDefinition(t *testing.T) {
	var sec [32]byte
	copy(sec[:], "some secret bytes for the test!!")
	buf := append([]byte("byzantium mesh slot v1\x00"), sec[:]...)
	buf = binary.BigEndian.AppendUint32(buf, 7)
	sum := sha256.Sum256(buf)
	v := binary.BigEndian.Uint32(sum[:4]) % (254 * 256)
	want := Slot{H: uint8(v/256) + 1, L: uint8(v)}
	if got := SlotFrom(sec, 7); got != want {
		t.Fatalf("SlotFrom = %v, want %v", got, want)
	}
}

func TestReroll(t *testing.T) {
	id, err := New(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), time.Unix(1000, 5))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(5000, 999)
	r := id.Reroll(now)
	if r.Roll != id.Roll+1 || !r.Claimed.Equal(time.Unix(5000, 0)) || r.Secret != id.Secret {
		t.Fatalf("Reroll = %+v from %+v", r, id)
	}
	if r.Slot() == id.Slot() {
		t.Fatalf("reroll kept slot %v (possible, but not for this secret)", r.Slot())
	}
}

func TestLoadSave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mesh")
	now := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	id, made, err := Load(dir, now, t.Logf)
	if err != nil || !made {
		t.Fatalf("Load on an empty folder: made %v, %v", made, err)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v", err, st.Mode())
	}
	again, made, err := Load(dir, now.Add(time.Hour), t.Logf)
	if err != nil || made || again != id {
		t.Fatalf("second Load = %+v made %v err %v, want %+v", again, made, err, id)
	}
	r := id.Reroll(now.Add(time.Minute))
	if err := Save(dir, r); err != nil {
		t.Fatal(err)
	}
	back, _, err := Load(dir, now, nil)
	if err != nil || back != r {
		t.Fatalf("after Save(reroll): %+v %v, want %+v", back, err, r)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("state folder holds %d files, want only %s", len(ents), FileName)
	}
}

func TestLoadCorrupt(t *testing.T) {
	for name, body := range map[string]string{
		"not json":     "{{{",
		"short secret": `{"secret":"abcd","roll":1,"claimed":"2026-01-01T00:00:00Z"}`,
		"no claim":     `{"secret":"` + strings.Repeat("ab", 32) + `","roll":1}`,
		"huge":         strings.Repeat(" ", 10000),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			var logged []string
			id, made, err := Load(dir, time.Unix(1e9, 0), func(f string, a ...any) { logged = append(logged, f) })
			if err != nil || !made || len(logged) != 1 {
				t.Fatalf("Load(corrupt) made %v err %v logged %q", made, err, logged)
			}
			if id.Secret == ([32]byte{}) || id.Roll != 0 {
				t.Fatalf("fresh identity %+v", id)
			}
			back, made, err := Load(dir, time.Unix(2e9, 0), nil)
			if err != nil || made || back != id {
				t.Fatalf("the fresh identity was not saved: %+v %v %v", back, made, err)
			}
		})
	}
}

func TestBeacon(t *testing.T) {
	var a, b Identity
	a.Secret[0], b.Secret[0] = 1, 2
	ba := a.Beacon()
	if s, ok := BeaconSlot(ba); !ok || s != a.Slot() {
		t.Fatalf("BeaconSlot(%v) = %v %v, want %v", ba, s, ok, a.Slot())
	}
	if !BeaconNet.Contains(ba) || a.ClientIPv6Contains(ba) {
		t.Fatalf("beacon %v outside %v or inside the client /64", ba, BeaconNet)
	}
	if ba == b.Beacon() {
		t.Fatal("two secrets, one beacon")
	}
	if _, ok := BeaconSlot(a.Addresses().IPv6.Addr()); ok {
		t.Fatal("a node address read as a beacon")
	}
}

func (id Identity) ClientIPv6Contains(a netip.Addr) bool {
	return id.Addresses().ClientIPv6.Contains(a)
}

func TestHardwareAddr(t *testing.T) {
	var secret [32]byte
	secret[0] = 7
	old := Identity{Secret: secret, Claimed: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	mac := old.HardwareAddr()
	c, ok := ParseHardwareAddr(mac)
	if !ok || c.Slot != old.Slot() {
		t.Fatalf("ParseHardwareAddr(%v) = %+v, %v; want slot %v", mac, c, ok, old.Slot())
	}
	if mac[0]&1 != 0 || mac[0]&2 == 0 {
		t.Fatalf("%v: want a unicast, locally administered address", mac)
	}
	secret[0] = 8
	other := Identity{Secret: secret, Claimed: old.Claimed}
	if bytes.Equal(other.HardwareAddr()[5:], mac[5:]) {
		t.Fatalf("two secrets gave one last byte: %v, %v", mac, other.HardwareAddr())
	}
	young := old
	young.Claimed = old.Claimed.Add(3 * time.Hour)
	tests := []struct {
		name        string
		mine, other net.HardwareAddr
		want        bool
	}{
		{"later hour is younger", young.HardwareAddr(), mac, true},
		{"earlier hour is older", mac, young.HardwareAddr(), false},
		{"same hour: larger address rolls", bigger(mac, other.HardwareAddr()), smaller(mac, other.HardwareAddr()), true},
		{"same hour: smaller address stays", smaller(mac, other.HardwareAddr()), bigger(mac, other.HardwareAddr()), false},
		{"same address: both roll", mac, mac, true},
		// 0xffff hours is just before 0 (the wrap, 7.4 years on).
		{"across the wrap", net.HardwareAddr{macTag, 1, 2, 0, 1, 0}, net.HardwareAddr{macTag, 1, 2, 0xff, 0xff, 0}, true},
	}
	for _, tt := range tests {
		if got := YoungerMAC(tt.mine, tt.other); got != tt.want {
			t.Errorf("%s: YoungerMAC(%v, %v) = %v", tt.name, tt.mine, tt.other, got)
		}
	}
	for _, bad := range []net.HardwareAddr{{0x52, 0x54, 0, 1, 2, 3}, {macTag, 0, 1, 2, 3, 4}, {macTag, 255, 1, 2, 3, 4}, {macTag, 1}} {
		if _, ok := ParseHardwareAddr(bad); ok {
			t.Errorf("ParseHardwareAddr(%v) accepted", bad)
		}
	}
}

func bigger(a, b net.HardwareAddr) net.HardwareAddr {
	if bytes.Compare(a, b) > 0 {
		return a
	}
	return b
}

func smaller(a, b net.HardwareAddr) net.HardwareAddr {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}
