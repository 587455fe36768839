package mesh

import (
	"net/netip"
	"testing"
	"time"

	"byzantium/runtime/mesh/addr"
	"byzantium/runtime/mesh/babel"
)

func TestFindCollisions(t *testing.T) {
	var id addr.Identity
	id.Secret[0] = 1
	id.Claimed = time.Unix(2000, 0)
	me := babel.RouterID{0, 0, 7, 208, 1, 1, 1, 1}       // claimed at 2000
	older := babel.RouterID{0, 0, 3, 232, 9, 9, 9, 9}    // 1000
	younger := babel.RouterID{0, 0, 11, 184, 0, 0, 0, 0} // 3000
	sameTimeMine := babel.RouterID{0, 0, 7, 208, 2, 2, 2, 2}
	a := id.Addresses()
	// The other node's beacon in our slot (its hash bits differ).
	ob := id.Beacon().As16()
	ob[15] ^= 0xff
	otherBeacon := netip.PrefixFrom(netip.AddrFrom16(ob), 128)
	route := func(p netip.Prefix, rid babel.RouterID, metric int) babel.Route {
		return babel.Route{Prefix: p, RouterID: rid, Metric: metric, Installed: true}
	}
	tests := []struct {
		name   string
		routes []babel.Route
		want   int
		yield  bool
	}{
		{"nothing", []babel.Route{route(netip.MustParsePrefix("10.1.2.1/32"), older, 96)}, 0, false},
		{"older claims our /32", []babel.Route{route(a.IPv4, older, 96)}, 1, true},
		{"younger claims our /64", []babel.Route{route(a.ClientIPv6, younger, 96)}, 1, false},
		{"retracted claim", []babel.Route{route(a.ClientIPv4, older, babel.Infinity)}, 0, false},
		{"our own id", []babel.Route{route(a.IPv4, me, 96)}, 0, false},
		{"our previous babeld", []babel.Route{route(a.IPv4, sameTimeMine, 96)}, 0, false},
		{"beacon, same time, their id larger", []babel.Route{route(otherBeacon, sameTimeMine, 96)}, 1, false},
		{"beacon, same time, their id smaller", []babel.Route{route(otherBeacon, babel.RouterID{0, 0, 7, 208, 0, 0, 0, 1}, 96)}, 1, true},
		{"our own beacon from a previous babeld", []babel.Route{route(netip.PrefixFrom(id.Beacon(), 128), sameTimeMine, 96)}, 0, false},
		{"two prefixes, one router", []babel.Route{route(a.IPv4, older, 96), route(a.IPv6, older, 96)}, 1, true},
	}
	for _, tt := range tests {
		got := FindCollisions(id, me, tt.routes)
		if len(got) != tt.want || (len(got) > 0 && got[0].Yield != tt.yield) {
			t.Errorf("%s: %+v, want %d with yield %v", tt.name, got, tt.want, tt.yield)
		}
	}
}
