package gateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/runtime/nodeapi"

	"github.com/vishvananda/netlink"
)

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kernelState is what the gw's kernel holds: the announced route (its
// gateway and device, "" for none) and whether the NAT table is there.
func kernelState(t *testing.T, w *world) (route string, nat bool) {
	t.Helper()
	h := handleIn(t, w.gwPath)
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: DefaultAnnounceTable}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if isDefault4(r) {
			l, _ := h.LinkByIndex(r.LinkIndex)
			route = "via " + r.Gw.String() + " dev " + l.Attrs().Name + " proto " + strconv.Itoa(int(r.Protocol))
		}
	}
	nat, err = NATPresent(nftIn(t, w.gwPath), "")
	if err != nil {
		t.Fatal(err)
	}
	return route, nat
}

// TestGateway runs a Gateway in the gw namespace of a client — gw — Net
// world and drives it through the Net answering, not answering, the
// uplink going down and the setting changing.
func TestGateway(t *testing.T) {
	w := newWorld(t)
	uplinkDefault := func() {
		h := handleIn(t, w.gwPath)
		l, err := h.LinkByName(w.uplink)
		if err != nil {
			t.Fatal(err)
		}
		// As runtime/netcfg installs it after a DHCP lease.
		ip(t, "-n", w.gw, "route", "replace", "default", "via", "198.51.100.1", "dev", w.uplink,
			"metric", strconv.Itoa(dhcpMetricBase+l.Attrs().Index))
	}
	uplinkDefault()
	// A default route learned from the mesh, better than the uplink's:
	// neither the uplink search nor the check may take it.
	ip(t, "-n", w.gw, "route", "add", "default", "via", "10.1.2.2", "dev", w.gwMesh, "proto", "42", "metric", "0")
	const target = "198.51.100.1:8053"
	l, _ := listen(t, w.inetNS, target)

	var logMu sync.Mutex
	var logs []string
	g, err := New(Config{
		NetNS: w.gwPath, Targets: []string{"tcp:" + target}, Timeout: time.Second,
		Interval: 300 * time.Millisecond, RetryInterval: 100 * time.Millisecond,
		Logf: func(f string, a ...any) {
			logMu.Lock()
			logs = append(logs, strings.TrimSpace(sprintf(f, a...)))
			logMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runGateway(g, w.gwMesh)
	defer stop()

	wantRoute := "via 198.51.100.1 dev " + w.uplink + " proto 201"
	expect := func(step string, sharing bool, route string, nat bool, check string) {
		t.Helper()
		waitFor(t, step+": status "+sprintf("%+v", g.Status()), func() bool {
			s := g.Status()
			return s.Sharing == sharing && strings.HasPrefix(s.Check, check)
		})
		gotRoute, gotNAT := kernelState(t, w)
		if gotRoute != route || gotNAT != nat {
			t.Errorf("%s: kernel holds route %q, NAT %v; want %q, %v", step, gotRoute, gotNAT, route, nat)
		}
	}

	expect("the Net answers", true, wantRoute, true, "ok")
	if s := g.Status(); s.Share != nodeapi.ShareAuto || s.Uplink != w.uplink {
		t.Errorf("status %+v, want share auto, uplink %s", s, w.uplink)
	}
	if got := nsExec(t, w.gw, "cat", forwardingPath); got != "1\n" {
		t.Errorf("ip_forward = %q while sharing", got)
	}
	// A mesh client reaches the Net through the shared uplink, masked.
	// (Its replies come back through the gw; the mesh route above is
	// only for the gw's own default.)
	_, peers := listen(t, w.inetNS, "198.51.100.1:8081")
	if err := connect(w.clientNS, "198.51.100.1:8081", 3*time.Second); err != nil {
		t.Fatalf("client → Net while sharing: %v", err)
	}
	if got := <-peers; got != "198.51.100.2" {
		t.Errorf("the Net saw the client as %s, want 198.51.100.2", got)
	}

	l.Close() // the Net stops answering: withdrawn, the NAT stays
	expect("the Net is silent", false, "", true, "no answer from "+target+" (refused)")
	listen(t, w.inetNS, target)
	expect("the Net answers again", true, wantRoute, true, "ok")

	// Someone flushes the ruleset and deletes the route: both come back.
	nsExec(t, w.gw, testenv.RequireTool(t, "nft"), "flush", "ruleset")
	ip(t, "-n", w.gw, "route", "del", "default", "table", "200", "proto", "201")
	waitFor(t, "the NAT and the route restored", func() bool { r, n := kernelState(t, w); return r == wantRoute && n })

	ip(t, "-n", w.gw, "link", "set", w.uplink, "down")
	g.Wake() // as the manager does on a link change
	expect("uplink down", false, "", false, "no uplink")
	if s := g.Status(); s.Uplink != "" {
		t.Errorf("uplink down: status names uplink %q", s.Uplink)
	}
	ip(t, "-n", w.gw, "link", "set", w.uplink, "up")
	uplinkDefault()
	expect("uplink back", true, wantRoute, true, "ok")

	// New check targets take effect at once: one that does not answer
	// withdraws (a fresh verdict, no hysteresis credit), the old one
	// given back announces again; bad ones change nothing.
	if err := g.SetTargets([]string{"tcp:198.51.100.1:8054"}); err != nil {
		t.Fatal(err)
	}
	expect("a silent new target", false, "", true, "no answer from 198.51.100.1:8054")
	for _, bad := range [][]string{{"udp:1.2.3.4:53"}, {"tcp:host"}} {
		if err := g.SetTargets(bad); err == nil {
			t.Errorf("SetTargets(%q) accepted", bad)
		}
	}
	if err := g.SetTargets([]string{"tcp:" + target}); err != nil {
		t.Fatal(err)
	}
	expect("the answering target again", true, wantRoute, true, "ok")

	// Bad settings change nothing.
	for _, bad := range [][2]string{{"maybe", ""}, {"on", "eth0/1"}, {"on", "abcdefghijklmnopq"}} {
		if err := g.Set(bad[0], bad[1]); err == nil {
			t.Errorf("Set(%q, %q) accepted", bad[0], bad[1])
		}
	}
	if s := g.Status(); s.Share != nodeapi.ShareAuto || !s.Sharing {
		t.Errorf("after refused settings: %+v", s)
	}

	if err := g.Set(nodeapi.ShareOff, ""); err != nil {
		t.Fatal(err)
	}
	expect("sharing off", false, "", false, "sharing is off")
	if s := g.Status(); s.Uplink != w.uplink {
		t.Errorf("sharing off: status names uplink %q, want %s (found, not shared)", s.Uplink, w.uplink)
	}
	if err := g.Set(nodeapi.ShareOn, "nosuch0"); err != nil {
		t.Fatal(err)
	}
	expect("named uplink missing", false, "", false, "no uplink: nosuch0")
	if err := g.Set(nodeapi.ShareOn, w.uplink); err != nil {
		t.Fatal(err)
	}
	expect("named uplink", true, wantRoute, true, "ok")
	if s := g.Status(); s.Share != nodeapi.ShareOn {
		t.Errorf("share %q after Set(on)", s.Share)
	}

	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if r, n := kernelState(t, w); r != "" || n {
		t.Errorf("after Run returned the kernel still holds route %q, NAT %v", r, n)
	}
	logMu.Lock()
	t.Logf("log:\n%s", strings.Join(logs, "\n"))
	logMu.Unlock()
}

// TestGatewayHysteresis: one failed check while sharing does not
// withdraw; the second does.
func TestGatewayHysteresis(t *testing.T) {
	w := newWorld(t)
	ip(t, "-n", w.gw, "route", "add", "default", "via", "198.51.100.1", "dev", w.uplink, "proto", "dhcp")
	const target = "198.51.100.1:8053"
	l, _ := listen(t, w.inetNS, target)
	// A long interval: the test drives each check itself with Wake.
	g, err := New(Config{NetNS: w.gwPath, Targets: []string{"tcp:" + target}, Timeout: 2 * time.Second,
		Interval: time.Hour, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "sharing", func() bool { return g.Status().Sharing })
	l.Close()
	g.Wake()
	waitFor(t, "first failure seen", func() bool { return g.Status().Check != "ok" })
	if s := g.Status(); !s.Sharing || s.Check != "no answer from "+target+" (refused); still up until 1 more check(s) fail" {
		t.Fatalf("after one failed check: %+v", s)
	}
	if r, _ := kernelState(t, w); r == "" {
		t.Fatal("route gone after one failed check")
	}
	g.Wake()
	waitFor(t, "withdrawn after the second failure", func() bool { return !g.Status().Sharing })
	if r, _ := kernelState(t, w); r != "" {
		t.Errorf("route %q after the second failure", r)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Share: "yes"}, `share: "yes": want auto`},
		{Config{Uplink: "eth0:1"}, "gateway: interface name: \"eth0:1\": letters"},
		{Config{Targets: []string{"ping:1.1.1.1"}}, "want tcp:IP:PORT or an http"},
		{Config{AnnounceProtocol: 300}, "announce protocol 300: want 1–255"},
		{Config{AnnounceTable: 254}, "announce table 254: want 1–252 or 256–4294967294"},
		{Config{NetNS: "/nonexistent/netns"}, "network namespace /nonexistent/netns"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	g, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Status(); s.Share != nodeapi.ShareAuto || s.Sharing {
		t.Errorf("zero Config: status %+v", s)
	}
}

var sprintf = fmt.Sprintf

// TestGatewayWatch: with no periodic check due for an hour, the uplink
// losing its carrier (the far end of its cable set down, as QEMU's
// set_link off does) withdraws the route and the NAT at once, and a new
// DHCP default route on another interface is taken up at once.
func TestGatewayWatch(t *testing.T) {
	w := newWorld(t)
	ip(t, "-n", w.gw, "route", "add", "default", "via", "198.51.100.1", "dev", w.uplink, "proto", "dhcp")
	listen(t, w.inetNS, "198.51.100.1:8053")
	g, err := New(Config{NetNS: w.gwPath, Targets: []string{"tcp:198.51.100.1:8053"}, Timeout: 2 * time.Second,
		Interval: time.Hour, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	g.SetMeshInterfaces([]string{w.gwMesh})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "sharing", func() bool { return g.Status().Sharing })

	start := time.Now()
	ip(t, "-n", w.inet, "link", "set", w.inetIf, "down")
	waitFor(t, "withdrawn on carrier loss: "+sprintf("%+v", g.Status()), func() bool { return !g.Status().Sharing })
	t.Logf("carrier lost → withdrawn in %v", time.Since(start))
	if r, n := kernelState(t, w); r != "" || n {
		t.Errorf("after carrier loss: route %q, NAT %v", r, n)
	}
	if s := g.Status(); s.Check != "no uplink" || s.Uplink != "" {
		t.Errorf("after carrier loss: %+v", s)
	}

	ip(t, "-n", w.inet, "link", "set", w.inetIf, "up")
	// Whether the link's update comes before the kernel clears the
	// route's linkdown flag is not ours to know: poke it as the manager
	// would (Wake is throttled to one step a second).
	waitFor(t, "sharing again when the carrier is back", func() bool { g.Wake(); return g.Status().Sharing })

	// The uplink comes back under another name (a USB modem replugged):
	// the NAT follows it.
	renamed := ifName("wwan")
	ip(t, "-n", w.gw, "link", "set", w.uplink, "down")
	ip(t, "-n", w.gw, "link", "set", w.uplink, "name", renamed)
	ip(t, "-n", w.gw, "link", "set", renamed, "up")
	ip(t, "-n", w.gw, "route", "add", "default", "via", "198.51.100.1", "dev", renamed, "proto", "dhcp")
	waitFor(t, "sharing through "+renamed, func() bool { g.Wake(); s := g.Status(); return s.Sharing && s.Uplink == renamed })
	if got, want := readNAT(t, nftIn(t, w.gwPath), DefaultNATTable), wantNAT(renamed, "10.0.0.0/8", defaultULA); !equalNAT(got, want) {
		t.Errorf("NAT after the rename:\n%q\nwant\n%q", got, want)
	}
	if r, _ := kernelState(t, w); r != "via 198.51.100.1 dev "+renamed+" proto 201" {
		t.Errorf("route after the rename: %q", r)
	}
}

// TestGatewayStale: a Gateway started over what a killed run left (a
// NAT table for an uplink that is gone, a route through the mesh) puts
// its own in their place in its first step.
func TestGatewayStale(t *testing.T) {
	w := newWorld(t)
	ip(t, "-n", w.gw, "route", "add", "default", "via", "198.51.100.1", "dev", w.uplink, "proto", "dhcp")
	if err := (NAT{Uplink: "gone0"}).Apply(nftIn(t, w.gwPath)); err != nil {
		t.Fatal(err)
	}
	ip(t, "-n", w.gw, "route", "add", "default", "via", "10.1.2.2", "dev", w.gwMesh, "table", "200", "proto", "201")

	// Nothing listens on port 9: the check fails, the stale route must go.
	g, err := New(Config{NetNS: w.gwPath, Targets: []string{"tcp:198.51.100.1:9"}, Timeout: 300 * time.Millisecond,
		Interval: time.Hour, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	g.SetMeshInterfaces([]string{w.gwMesh})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the first step", func() bool { return strings.HasPrefix(g.Status().Check, "no answer") })
	if r, _ := kernelState(t, w); r != "" {
		t.Errorf("the stale route is still there: %q", r)
	}
	if got, want := readNAT(t, nftIn(t, w.gwPath), DefaultNATTable), wantNAT(w.uplink, "10.0.0.0/8", defaultULA); !equalNAT(got, want) {
		t.Errorf("NAT after the first step:\n%q\nwant\n%q", got, want)
	}
}

// runGateway runs g with mesh as its mesh interface until the returned
// stop is called: it ends Run and returns Run's error, the same on every
// call (a test stops early to check what Run leaves, and defers it too).
func runGateway(g *Gateway, mesh string) (stop func() error) {
	g.SetMeshInterfaces([]string{mesh})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	return sync.OnceValue(func() error {
		cancel()
		return <-done
	})
}
