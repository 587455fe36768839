package gateway

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestSplitTargets: IPv6 literals are the IPv6 check's, IPv4 literals and
// names the IPv4 check's, and a family given none gets its defaults.
func TestSplitTargets(t *testing.T) {
	cases := []struct {
		name   string
		in     []string
		v4, v6 []string
		err    string
	}{
		{"none: both defaults", nil, DefaultTargets, DefaultTargets6, ""},
		{"IPv4 only: IPv6 defaults", []string{"tcp:192.0.2.1:80"}, []string{"tcp:192.0.2.1:80"}, DefaultTargets6, ""},
		{"IPv6 only: IPv4 defaults", []string{"tcp:[2001:db8::1]:80"}, DefaultTargets, []string{"tcp:[2001:db8::1]:80"}, ""},
		{"both, order kept", []string{"tcp:[2001:db8::1]:80", "tcp:192.0.2.1:80", "http://[2001:db8::2]:8080/204", "http://192.0.2.2/204"},
			[]string{"tcp:192.0.2.1:80", "http://192.0.2.2/204"}, []string{"tcp:[2001:db8::1]:80", "http://[2001:db8::2]:8080/204"}, ""},
		// A name says no family: it is IPv4's, as before IPv6 was checked.
		{"a name is IPv4's", []string{"https://example.net/"}, []string{"https://example.net/"}, DefaultTargets6, ""},
		// An IPv4-mapped address is reached over IPv4.
		{"v4-mapped is IPv4's", []string{"tcp:[::ffff:192.0.2.1]:80"}, []string{"tcp:[::ffff:192.0.2.1]:80"}, DefaultTargets6, ""},
		{"https IPv6 URL", []string{"https://[2001:db8::3]/"}, DefaultTargets, []string{"https://[2001:db8::3]/"}, ""},
		{"bad target", []string{"tcp:[2001:db8::1]"}, nil, nil, "want tcp:IP:PORT"},
		{"too many", make([]string, 9), nil, nil, "at most 8"},
	}
	for _, c := range cases {
		v4, v6, err := SplitTargets(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(v4, c.v4) || !slices.Equal(v6, c.v6) {
			t.Errorf("%s: SplitTargets(%q) = %q, %q, %v; want %q, %q", c.name, c.in, v4, v6, err, c.v4, c.v6)
		}
	}
	// Every default is of its family (a typo would check the wrong one).
	for _, s := range DefaultTargets6 {
		if tg, err := parseTarget(s); err != nil || !tg.ipv6 {
			t.Errorf("DefaultTargets6 %s: %+v, %v", s, tg, err)
		}
	}
	c6, err := NewChecker6(nil, 0, 0)
	if err != nil || c6.network != "tcp6" || len(c6.targets) != len(DefaultTargets6) {
		t.Errorf("NewChecker6(nil) = %+v, %v", c6, err)
	}
	c4, err := NewChecker([]string{"tcp:[2001:db8::1]:80"}, 0, 0)
	if err != nil || c4.network != "tcp4" || len(c4.targets) != len(DefaultTargets) {
		t.Errorf("NewChecker(IPv6 only) = %+v, %v; want the IPv4 defaults", c4, err)
	}
	// A checker refuses a target of the other family.
	if _, err := newChecker([]string{"tcp:192.0.2.1:80"}, 0, 0, &netNS{h: -1}, true); err == nil {
		t.Error("the IPv6 checker took an IPv4 target")
	}
}

// TestFindUplink6 reads IPv6 default routes of every origin from a
// namespace's main table and picks the uplink by the rules.
func TestFindUplink6(t *testing.T) {
	ns, path := testNS(t, "u6")
	peer, _ := testNS(t, "p6")
	h := handleIn(t, path)
	ra, mesh, babel, static, v4, other := ifName("ra"), ifName("ms"), ifName("bb"), ifName("st"), ifName("v4"), ifName("ot")
	for _, n := range []string{ra, mesh, babel, static, v4, other} {
		veth(t, ns, n, peer, n+"p")
	}
	// The kernel's RA route (protocol ra), one like it on a mesh
	// interface, babeld's (the best metric, never an uplink), one set by
	// hand on another port, and one by hand on the IPv4 uplink. (IPv6
	// reads metric 0 as 1024: the metrics differ so that every route is
	// its own.)
	ip(t, "-n", ns, "-6", "route", "add", "default", "via", "fe80::1", "dev", ra, "proto", "ra", "metric", "1024")
	ip(t, "-n", ns, "-6", "route", "add", "default", "via", "fe80::2", "dev", mesh, "proto", "ra", "metric", "100")
	ip(t, "-n", ns, "-6", "route", "add", "default", "via", "fe80::3", "dev", babel, "proto", "42", "metric", "1")
	ip(t, "-n", ns, "-6", "route", "add", "default", "via", "fe80::4", "dev", static, "proto", "static", "metric", "10")
	ip(t, "-n", ns, "-6", "route", "add", "default", "via", "fe80::5", "dev", v4, "proto", "static", "metric", "2000")
	// Not a way out: an unreachable ::/0.
	ip(t, "-n", ns, "-6", "route", "add", "unreachable", "default", "dev", "lo", "proto", "ra", "metric", "2")

	cases := []struct {
		name    string
		named   string
		exclude []string
		v4      string
		want    string // uplink name, or the error's text
		gw      string
	}{
		{"RA route outside the mesh", "", []string{mesh}, "", ra, "fe80::1"},
		{"lowest metric of two RA routes", "", nil, "", mesh, "fe80::2"},
		{"the IPv4 uplink's by hand wins", "", []string{mesh}, v4, v4, "fe80::5"},
		{"IPv4 uplink without IPv6: the RA one", "", []string{mesh}, other, ra, "fe80::1"},
		{"all excluded, babel and by hand ignored", "", []string{mesh, ra}, "", "error: gateway: no uplink: no interface outside the mesh has an IPv6 default route", ""},
		{"named by hand", static, []string{static}, v4, static, "fe80::4"},
		{"named without IPv6 route", other, nil, "", "error: gateway: no uplink: " + other + " is down or has no IPv6 default route", ""},
		{"named missing", "nosuch0", nil, "", "error: gateway: no uplink: nosuch0: ", ""},
		{"named bad", "eth 0", nil, "", "error: gateway: interface name: ", ""},
	}
	for _, c := range cases {
		u, err := FindUplink6(h, c.named, c.exclude, c.v4)
		got := u.Name
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: FindUplink6(%q, %q, %q) = %q, want %q", c.name, c.named, c.exclude, c.v4, got, c.want)
		}
		if c.gw != "" && u.Gateway.String() != c.gw {
			t.Errorf("%s: gateway %s, want %s", c.name, u.Gateway, c.gw)
		}
		if strings.HasPrefix(c.want, "error: gateway: no uplink") && !errors.Is(err, ErrNoUplink) {
			t.Errorf("%s: %v is not ErrNoUplink", c.name, err)
		}
	}
	// IPv4 routes are not IPv6's uplink, nor the reverse.
	if _, err := FindUplink(h, ra, nil); err == nil {
		t.Errorf("FindUplink took %s, which has only an IPv6 default route", ra)
	}
	// A link down loses its claim.
	ip(t, "-n", ns, "link", "set", ra, "down")
	if u, err := FindUplink6(h, "", []string{mesh}, ""); err == nil {
		t.Errorf("with %s down: %+v", ra, u)
	}
}

// TestAnnounceWithdraw6: ::/0 goes into table 200 with protocol 201 via
// the router's link-local address, read back from the kernel; it is
// withdrawn without touching the IPv4 default route, other routes of the
// table, or someone else's ::/0 there, and the reverse.
func TestAnnounceWithdraw6(t *testing.T) {
	ns, path := testNS(t, "r6")
	peer, _ := testNS(t, "r6p")
	h := handleIn(t, path)
	up := ifName("up")
	veth(t, ns, up, peer, up+"p")
	ip(t, "-n", ns, "addr", "add", "192.0.2.2/24", "dev", up)
	l, err := h.LinkByName(up)
	if err != nil {
		t.Fatal(err)
	}
	ip(t, "-n", ns, "-6", "route", "add", "fd19:f45:f324:1::/64", "dev", up, "table", "200", "proto", "201")
	ip(t, "-n", ns, "-6", "route", "add", "default", "via", "fe80::99", "dev", up, "table", "200", "proto", "static", "metric", "7")
	u4 := Uplink{Name: up, Index: l.Attrs().Index, Gateway: netip.MustParseAddr("192.0.2.1")}
	if err := announce(h, u4, DefaultAnnounceTable, DefaultAnnounceProtocol); err != nil {
		t.Fatal(err)
	}

	// ours reads table 200 back through netlink: our ::/0 routes.
	ours := func(family int) []string {
		routes, err := h.RouteListFiltered(family, &netlink.Route{Table: DefaultAnnounceTable}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range routes {
			if isDefault(family, r) && r.Protocol == DefaultAnnounceProtocol {
				out = append(out, r.Dst.String()+" via "+r.Gw.String()+" dev "+strings.TrimSpace(ifNameOf(t, h, r.LinkIndex)))
			}
		}
		return out
	}
	table6 := func() []string {
		lines := strings.Split(strings.TrimSpace(ip(t, "-n", ns, "-6", "route", "show", "table", "200")), "\n")
		slices.Sort(lines)
		return lines
	}
	before := table6()
	for _, gw := range []string{"fe80::1", "fe80::2"} { // a new router replaces, never adds
		u := Uplink{Name: up, Index: l.Attrs().Index, Gateway: netip.MustParseAddr(gw)}
		if err := announceFamily(h, netlink.FAMILY_V6, u, DefaultAnnounceTable, DefaultAnnounceProtocol); err != nil {
			t.Fatal(err)
		}
		if got, want := ours(netlink.FAMILY_V6), []string{"::/0 via " + gw + " dev " + up}; !slices.Equal(got, want) {
			t.Errorf("table 200 holds our IPv6 %q, want %q", got, want)
		}
		if ok, err := announcedFamily(h, netlink.FAMILY_V6, DefaultAnnounceTable, DefaultAnnounceProtocol); !ok || err != nil {
			t.Errorf("announced6 = %v, %v", ok, err)
		}
	}
	// The iproute2 view agrees: proto 201, table 200.
	if out := ip(t, "-n", ns, "-6", "route", "show", "table", "200", "proto", "201"); !strings.Contains(out, "default via fe80::2 dev "+up) {
		t.Errorf("ip -6 route show table 200 proto 201:\n%s", out)
	}
	if err := withdrawFamily(h, netlink.FAMILY_V6, DefaultAnnounceTable, DefaultAnnounceProtocol); err != nil {
		t.Fatal(err)
	}
	if got := table6(); !slices.Equal(got, before) {
		t.Errorf("after withdrawing ::/0 table 200 holds\n%q\nwant\n%q", got, before)
	}
	if got := ours(netlink.FAMILY_V4); len(got) != 1 {
		t.Errorf("withdrawing ::/0 touched the IPv4 default route: %q", got)
	}
	// And the IPv4 withdrawal leaves ::/0.
	u6 := Uplink{Name: up, Index: l.Attrs().Index, Gateway: netip.MustParseAddr("fe80::1")}
	if err := announceFamily(h, netlink.FAMILY_V6, u6, DefaultAnnounceTable, DefaultAnnounceProtocol); err != nil {
		t.Fatal(err)
	}
	if err := withdraw(h, DefaultAnnounceTable, DefaultAnnounceProtocol); err != nil {
		t.Fatal(err)
	}
	if got4, got6 := ours(netlink.FAMILY_V4), ours(netlink.FAMILY_V6); len(got4) != 0 || len(got6) != 1 {
		t.Errorf("after the IPv4 withdrawal: IPv4 %q, IPv6 %q; want none and one", got4, got6)
	}
}

func ifNameOf(t *testing.T, h *netlink.Handle, index int) string {
	t.Helper()
	l, err := h.LinkByIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Name
}

// TestAcceptRA: the kernel's default 1 becomes 2 on the uplink; 2 stays
// (no change reported, so no solicitation); an operator's 0 stays 0; a
// missing interface is an error; no other interface is touched.
func TestAcceptRA(t *testing.T) {
	ns, path := testNS(t, "ra")
	peer, _ := testNS(t, "rap")
	n, err := openNetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	up, other := ifName("up"), ifName("ot")
	veth(t, ns, up, peer, up+"p")
	veth(t, ns, other, peer, other+"p")
	read := func(iface string) string { return strings.TrimSpace(nsExec(t, ns, "cat", acceptRAPath(iface))) }
	set := func(iface, v string) { nsExec(t, ns, "sh", "-c", "echo "+v+" > "+acceptRAPath(iface)) }
	for _, c := range []struct {
		name, before string
		changed      bool
		after        string
	}{
		{"the kernel's default", "1", true, "2"},
		{"already 2", "2", false, "2"},
		{"the operator's 0", "0", false, "0"},
	} {
		set(up, c.before)
		changed, err := acceptRA(n, up)
		if err != nil || changed != c.changed || read(up) != c.after {
			t.Errorf("%s: acceptRA = %v, %v, accept_ra now %s; want %v, nil, %s", c.name, changed, err, read(up), c.changed, c.after)
		}
		if got := read(other); got != "1" {
			t.Errorf("%s: accept_ra on another interface became %s", c.name, got)
		}
	}
	if _, err := acceptRA(n, "nosuch0"); err == nil {
		t.Error("acceptRA on a missing interface: no error")
	}
	if _, err := acceptRA(n, "../all"); err == nil {
		t.Error("acceptRA took a path for an interface name")
	}
}
