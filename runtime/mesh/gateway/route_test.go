package gateway

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestAnnounceWithdraw: the default route goes into table 200 with
// protocol 201, through the gateway or straight out of a point-to-point
// uplink, and withdrawing removes it and nothing else from the table.
func TestAnnounceWithdraw(t *testing.T) {
	ns, path := testNS(t, "r")
	peer, _ := testNS(t, "rp")
	h := handleIn(t, path)
	up := ifName("up")
	veth(t, ns, up, peer, up+"p")
	ip(t, "-n", ns, "addr", "add", "192.0.2.2/24", "dev", up)
	l, err := h.LinkByName(up)
	if err != nil {
		t.Fatal(err)
	}
	// Another part of byzd announces the client prefix from the same
	// table, and someone else keeps a default route there too.
	ip(t, "-n", ns, "route", "add", "10.1.2.0/24", "dev", up, "table", "200", "proto", "201")
	ip(t, "-n", ns, "route", "add", "default", "via", "192.0.2.9", "dev", up, "table", "200", "proto", "static", "metric", "7")

	table := func() []string {
		out := ip(t, "-n", ns, "-4", "route", "show", "table", "200")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		slices.Sort(lines)
		return lines
	}
	before := table()

	steps := []struct {
		name string
		u    Uplink
		want string
	}{
		{"via the gateway", Uplink{Name: up, Index: l.Attrs().Index, Gateway: netip.MustParseAddr("192.0.2.1")},
			"default via 192.0.2.1 dev " + up + " proto 201 onlink"},
		{"the gateway changed", Uplink{Name: up, Index: l.Attrs().Index, Gateway: netip.MustParseAddr("192.0.2.254")},
			"default via 192.0.2.254 dev " + up + " proto 201 onlink"},
		{"point-to-point", Uplink{Name: up, Index: l.Attrs().Index},
			"default dev " + up + " proto 201 scope link"},
	}
	for _, s := range steps {
		if err := announce(h, s.u, DefaultAnnounceTable, DefaultAnnounceProtocol); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := table()
		var ours []string
		for _, line := range got {
			if strings.Contains(line, "proto 201") && strings.HasPrefix(line, "default") {
				ours = append(ours, line)
			}
		}
		if len(ours) != 1 || !strings.HasPrefix(ours[0], s.want) {
			t.Errorf("%s: table 200 holds %q, want one %q", s.name, ours, s.want)
		}
		if ok, err := announced(h, DefaultAnnounceTable, DefaultAnnounceProtocol); !ok || err != nil {
			t.Errorf("%s: announced = %v, %v", s.name, ok, err)
		}
	}
	for range 2 { // the second finds nothing to remove
		if err := withdraw(h, DefaultAnnounceTable, DefaultAnnounceProtocol); err != nil {
			t.Fatal(err)
		}
	}
	if got := table(); !slices.Equal(got, before) {
		t.Errorf("after withdraw table 200 holds\n%q\nwant what was there before\n%q", got, before)
	}
	if ok, err := announced(h, DefaultAnnounceTable, DefaultAnnounceProtocol); ok || err != nil {
		t.Errorf("after withdraw: announced = %v, %v", ok, err)
	}
}
