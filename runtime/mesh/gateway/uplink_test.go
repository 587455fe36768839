package gateway

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestFindUplink(t *testing.T) {
	ns, path := testNS(t, "u")
	peer, _ := testNS(t, "p")
	h := handleIn(t, path)
	dhcp, mesh, babel, static, other := ifName("dh"), ifName("ms"), ifName("bb"), ifName("st"), ifName("ot")
	for i, n := range []string{dhcp, mesh, babel, static, other} {
		veth(t, ns, n, peer, n+"p")
		ip(t, "-n", ns, "addr", "add", "192.0.2."+strconv.Itoa(16*i+2)+"/28", "dev", n)
	}
	index := func(name string) int {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Index
	}
	metric := func(name string) string { return strconv.Itoa(dhcpMetricBase + index(name)) }
	// netcfg's DHCP route, a mesh interface with one like it, babeld's
	// learned default (the best metric, and still no uplink), a static one.
	ip(t, "-n", ns, "route", "add", "default", "via", "192.0.2.1", "dev", dhcp, "metric", metric(dhcp))
	ip(t, "-n", ns, "route", "add", "default", "via", "192.0.2.17", "dev", mesh, "metric", metric(mesh))
	ip(t, "-n", ns, "route", "add", "default", "via", "192.0.2.33", "dev", babel, "proto", "42", "metric", "0")
	ip(t, "-n", ns, "route", "add", "default", "via", "192.0.2.49", "dev", static, "metric", "500")

	cases := []struct {
		name    string
		named   string
		exclude []string
		want    string // uplink name, or the error's text
		gw      string
	}{
		{"DHCP route outside the mesh", "", []string{mesh}, dhcp, "192.0.2.1"},
		{"mesh excluded, babel ignored", "", []string{mesh, dhcp}, "error: gateway: no uplink: no interface outside the mesh", ""},
		{"lowest metric of two", "", nil, map[bool]string{true: dhcp, false: mesh}[index(dhcp) < index(mesh)], ""},
		{"named static uplink", static, []string{static}, static, "192.0.2.49"},
		{"named without default route", other, nil, "error: gateway: no uplink: " + other + " is down or has no IPv4 default route", ""},
		{"named missing", "nosuch0", nil, "error: gateway: no uplink: nosuch0: ", ""},
		{"named bad", "eth 0", nil, "error: gateway: interface name: \"eth 0\": letters", ""},
		{"named too long", "abcdefghijklmnopq", nil, "error: gateway: interface name: \"abcdefghijklmnopq\" is 17 bytes: at most 15", ""},
	}
	for _, c := range cases {
		u, err := FindUplink(h, c.named, c.exclude)
		got := u.Name
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: FindUplink(%q, %q) = %q, want %q", c.name, c.named, c.exclude, got, c.want)
		}
		if c.gw != "" && u.Gateway.String() != c.gw {
			t.Errorf("%s: gateway %s, want %s", c.name, u.Gateway, c.gw)
		}
		if strings.HasPrefix(c.want, "error: gateway: no uplink") && !errors.Is(err, ErrNoUplink) {
			t.Errorf("%s: %v is not ErrNoUplink", c.name, err)
		}
	}

	// Another DHCP client's route (protocol dhcp) counts whatever its
	// metric; an interface set down loses its routes and its claim.
	ip(t, "-n", ns, "route", "add", "default", "via", "192.0.2.65", "dev", other, "proto", "dhcp", "metric", "50")
	if u, err := FindUplink(h, "", []string{mesh}); err != nil || u.Name != other || u.Metric != 50 {
		t.Errorf("with a protocol dhcp route: %+v, %v; want %s", u, err, other)
	}
	all, err := Uplinks(h, "", []string{mesh})
	if err != nil || len(all) != 2 || all[0].Name != other || all[1].Name != dhcp {
		t.Errorf("Uplinks = %+v, %v; want %s then %s", all, err, other, dhcp)
	}
	ip(t, "-n", ns, "link", "set", other, "down")
	if u, err := FindUplink(h, "", []string{mesh}); err != nil || u.Name != dhcp {
		t.Errorf("with %s down: %+v, %v; want %s", other, u, err, dhcp)
	}
}

func TestValidInterfaceName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"eth0", true}, {"wlx00c0ca123456", true}, {"enp0s20f0u1", true},
		{"", false}, {".", false}, {"..", false}, {"a/b", false}, {"eth0:1", false},
		{"eth 0", false}, {"eth\n0", false}, {"eth\x000", false}, {"abcdefghijklmnop", false},
	} {
		if err := ValidInterfaceName(c.name); (err == nil) != c.ok {
			t.Errorf("ValidInterfaceName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
