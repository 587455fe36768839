package gateway

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byzantium/runtime/nodeapi"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The IPv6 side of the test world (newWorld): the client is a mesh node
// with a ULA address in the mesh's /48, the gw's uplink is 2001:db8::2 and
// "the Net" 2001:db8::1, which has no route back to the ULA, as the real
// one has none. Only documentation and ULA addresses, in namespaces.
const (
	client6 = "fd19:f45:f324:1::2"
	gwMesh6 = "fd19:f45:f324:1::1"
	uplink6 = "2001:db8::2"
	inet6   = "2001:db8::1"
)

func newWorld6(t testing.TB) *world {
	t.Helper()
	w := newWorld(t)
	ip(t, "-n", w.client, "-6", "addr", "add", client6+"/64", "dev", w.cIf, "nodad")
	ip(t, "-n", w.client, "-6", "route", "add", "default", "via", gwMesh6)
	ip(t, "-n", w.gw, "-6", "addr", "add", gwMesh6+"/64", "dev", w.gwMesh, "nodad")
	ip(t, "-n", w.gw, "-6", "addr", "add", uplink6+"/64", "dev", w.uplink, "nodad")
	ip(t, "-n", w.inet, "-6", "addr", "add", inet6+"/64", "dev", w.inetIf, "nodad")
	// The link-local addresses the routers speak from must be past DAD.
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range []string{w.client, w.gw, w.inet} {
		for strings.TrimSpace(ip(t, "-n", ns, "-6", "addr", "show", "tentative")) != "" {
			if time.Now().After(deadline) {
				t.Fatalf("%s: addresses still tentative after 10s", ns)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return w
}

// listenOn is listen for any family ("tcp4", "tcp6").
func listenOn(t testing.TB, ns *netNS, network, addr string) (net.Listener, <-chan string) {
	t.Helper()
	var l net.Listener
	if err := ns.do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	peers := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	return l, peers
}

// connect6 dials addr over IPv6 from inside ns within timeout.
func connect6(ns *netNS, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ns.do(func() error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp6", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TestNAT66Traffic: the mesh client's IPv6 connections reach the Net
// with the gw's uplink address only while the NAT is applied, also when
// IPv6 leaves by an uplink of its own; an IPv4-only uplink's rules let no
// ULA source out; and the Net cannot open a connection to the client.
func TestNAT66Traffic(t *testing.T) {
	w := newWorld6(t)
	if err := enableForwarding6(w.gwNS); err != nil {
		t.Fatal(err)
	}
	if got := nsExec(t, w.gw, "cat", forwardingPath6); got != "1\n" {
		t.Fatalf("IPv6 forwarding in gw = %q after enableForwarding6", got)
	}
	server := "[" + inet6 + "]:8053"
	_, peers := listenOn(t, w.inetNS, "tcp6", server)
	drain := func() {
		for len(peers) > 0 { // a SYN of a failed try may have been accepted late
			<-peers
		}
	}

	// Without NAT the Net's reply has no way back to the ULA.
	if err := connect6(w.clientNS, server, 700*time.Millisecond); err == nil {
		t.Fatal("the client reached the Net before any NAT: the test world leaks")
	}
	c := nftIn(t, w.gwPath)
	for _, s := range []struct {
		name string
		nat  NAT
		ok   bool
	}{
		{"default prefixes (the ULA too)", NAT{Uplink: w.uplink}, true},
		{"IPv6 by an uplink of its own", NAT{Uplink: "eth9", Uplink6: w.uplink}, true},
		// IPv6 is meant to leave elsewhere: what leaves here un-NATed
		// is dropped, not sent out with a ULA source.
		{"IPv6 meant for another uplink", NAT{Uplink: w.uplink, Uplink6: "eth9"}, false},
		{"only 10/8", NAT{Uplink: w.uplink, Prefixes: DefaultPrefixes[:1]}, false},
	} {
		if err := s.nat.Apply(c); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		drain()
		err := connect6(w.clientNS, server, map[bool]time.Duration{true: 3 * time.Second, false: 700 * time.Millisecond}[s.ok])
		if (err == nil) != s.ok {
			t.Errorf("%s: client → Net: %v, want it to succeed: %v", s.name, err, s.ok)
			continue
		}
		if !s.ok {
			continue
		}
		select {
		case got := <-peers:
			if got != uplink6 {
				t.Errorf("%s: the Net saw the client as %s, want the gw's uplink address %s", s.name, got, uplink6)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: the server accepted nothing", s.name)
		}
	}

	// The Net starts nothing in the mesh: with a route to the ULA via
	// the gw, a connection to the client is dropped at the forward hook.
	if err := (NAT{Uplink: w.uplink}).Apply(c); err != nil {
		t.Fatal(err)
	}
	ip(t, "-n", w.inet, "-6", "route", "add", "fd19:f45:f324::/48", "via", uplink6)
	listenOn(t, w.clientNS, "tcp6", "["+client6+"]:8080")
	if err := connect6(w.inetNS, "["+client6+"]:8080", 700*time.Millisecond); err == nil {
		t.Error("the Net opened a connection to a mesh client through the gw")
	}
	if err := RemoveNAT(c, ""); err != nil {
		t.Fatal(err)
	}
	if err := connect6(w.inetNS, "["+client6+"]:8080", 3*time.Second); err != nil {
		t.Errorf("without the gateway's table the Net → client connection failed too (%v): the test proves nothing", err)
	}
}

// sendRA sends one router advertisement out of ifindex from inside ns,
// as a router daemon does: to all nodes, hop limit 255 (a receiver drops
// any other), with a router lifetime in seconds (0: "I am no default
// router any more"). The kernel fills in the ICMPv6 checksum.
func sendRA(ns *netNS, ifindex int, lifetime uint16) error {
	return ns.do(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex); err != nil {
			return err
		}
		// type 134, code 0, checksum, cur hop limit 64, flags 0,
		// router lifetime, reachable time 0, retrans timer 0.
		ra := []byte{134, 0, 0, 0, 64, 0, byte(lifetime >> 8), byte(lifetime), 0, 0, 0, 0, 0, 0, 0, 0}
		to := &unix.SockaddrInet6{ZoneId: uint32(ifindex)}
		copy(to.Addr[:], net.ParseIP("ff02::1"))
		return unix.Sendto(fd, ra, 0, to)
	})
}

// raDefault is the gw's IPv6 default route learned by RA, "" for none.
func raDefault(t *testing.T, w *world) string {
	t.Helper()
	return strings.TrimSpace(ip(t, "-n", w.gw, "-6", "route", "show", "default", "proto", "ra"))
}

// announced6In is our ::/0 in the gw's table 200 ("via GW dev IF"), ""
// for none.
func announced6In(t *testing.T, w *world) string {
	t.Helper()
	h := handleIn(t, w.gwPath)
	routes, err := h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: DefaultAnnounceTable, Protocol: DefaultAnnounceProtocol},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if isDefault6(r) {
			return "via " + r.Gw.String() + " dev " + ifNameOf(t, h, r.LinkIndex)
		}
	}
	return ""
}

// TestGateway6 runs a Gateway in a world where the Net's router sends
// real router advertisements, with IPv6 forwarding on in the gw as the
// mesh manager sets it: the gw takes the RA default route only once the
// Gateway set accept_ra 2 on the uplink, announces ::/0 while the IPv6
// check passes, and withdraws it on a failed check or a lost route,
// while IPv4 is shared or withdrawn on its own.
func TestGateway6(t *testing.T) {
	w := newWorld6(t)
	hgw := handleIn(t, w.gwPath)
	upLink, err := hgw.LinkByName(w.uplink)
	if err != nil {
		t.Fatal(err)
	}
	// As runtime/mesh.Sysctls does before the gateway runs.
	nsExec(t, w.gw, "sh", "-c", "echo 1 > "+forwardingPath6)
	if got := nsExec(t, w.gw, "cat", acceptRAPath(w.uplink)); got != "1\n" {
		t.Fatalf("accept_ra on a fresh uplink = %q, want the kernel's default 1", got)
	}
	hin := handleIn(t, "/run/netns/"+w.inet)
	inLink, err := hin.LinkByName(w.inetIf)
	if err != nil {
		t.Fatal(err)
	}
	// The Net's router: it answers every router solicitation with an
	// advertisement, and advertises unsolicited every 200 ms only once
	// periodic is set, all with the router lifetime in lifetime.
	// A router has forwarding on, and so listens to all-routers (ff02::2).
	nsExec(t, w.inet, "sh", "-c", "echo 1 > "+forwardingPath6)
	var lifetime atomic.Int32
	var periodic atomic.Bool
	var solicited atomic.Int32
	lifetime.Store(1800)
	var fd int
	if err := w.inetNS.do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	raCtx, stopRA := context.WithCancel(context.Background())
	var raWG sync.WaitGroup
	raWG.Add(1)
	go func() {
		defer raWG.Done()
		defer unix.Close(fd)
		buf := make([]byte, 1500)
		var last time.Time
		for raCtx.Err() == nil {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			send := periodic.Load() && time.Since(last) >= 200*time.Millisecond
			if err == nil && n >= 8 && buf[0] == 133 {
				solicited.Add(1)
				send = true
			}
			if send {
				if err := sendRA(w.inetNS, inLink.Attrs().Index, uint16(lifetime.Load())); err != nil {
					t.Errorf("sending an RA: %v", err)
					return
				}
				last = time.Now()
			}
		}
	}()
	defer func() { stopRA(); raWG.Wait() }()

	// The premise: with forwarding on and accept_ra 1, RAs are ignored.
	for range 3 {
		if err := sendRA(w.inetNS, inLink.Attrs().Index, 1800); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := raDefault(t, w); r != "" {
		t.Fatalf("the gw took an RA default route with forwarding on and accept_ra 1: %s", r)
	}

	ip(t, "-n", w.gw, "route", "replace", "default", "via", "198.51.100.1", "dev", w.uplink,
		"metric", strconv.Itoa(dhcpMetricBase+upLink.Attrs().Index))
	// Default routes learned from the mesh, better than the uplink's:
	// neither the uplink searches nor the checks may take them.
	ip(t, "-n", w.gw, "route", "add", "default", "via", "10.1.2.2", "dev", w.gwMesh, "proto", "42", "metric", "0")
	ip(t, "-n", w.gw, "-6", "route", "add", "default", "via", client6, "dev", w.gwMesh, "proto", "42", "metric", "1")
	const target4 = "198.51.100.1:8053"
	target6 := "[" + inet6 + "]:8053"
	l4, _ := listen(t, w.inetNS, target4)
	l6, _ := listenOn(t, w.inetNS, "tcp6", target6)

	g, err := New(Config{
		NetNS: w.gwPath, Targets: []string{"tcp:" + target4, "tcp:" + target6}, Timeout: time.Second,
		Interval: 300 * time.Millisecond, RetryInterval: 100 * time.Millisecond, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runGateway(g, w.gwMesh)
	defer stop()

	llRouter := ""
	if addrs, err := hin.AddrList(inLink, netlink.FAMILY_V6); err == nil {
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				llRouter = a.IP.String()
			}
		}
	}
	if llRouter == "" {
		t.Fatal("the Net's router has no link-local address")
	}
	want6 := "via " + llRouter + " dev " + w.uplink
	want4 := "via 198.51.100.1 dev " + w.uplink + " proto 201"
	expect := func(step string, sharing4 bool, check4 string, sharing6 bool, check6 string) {
		t.Helper()
		waitFor(t, step+": status "+sprintf("%+v", g.Status()), func() bool {
			s := g.Status()
			return s.Sharing == sharing4 && strings.HasPrefix(s.Check, check4) && s.SharingIPv6 == sharing6 && strings.HasPrefix(s.CheckIPv6, check6)
		})
		r4, nat := kernelState(t, w)
		r6 := announced6In(t, w)
		if (r4 == want4) != sharing4 || (r6 == want6) != sharing6 || (!sharing4 && r4 != "") || (!sharing6 && r6 != "") || !nat {
			t.Errorf("%s: kernel holds IPv4 %q, IPv6 %q, NAT %v; want sharing IPv4 %v (%q), IPv6 %v (%q), NAT", step, r4, r6, nat, sharing4, want4, sharing6, want6)
		}
	}

	started := time.Now()
	expect("both answer", true, "ok", true, "ok")
	// No unsolicited RA was sent: the gw's solicitation brought the route.
	t.Logf("::/0 announced %v after the gateway started, on a solicited RA (%d solicitations)", time.Since(started).Round(10*time.Millisecond), solicited.Load())
	if solicited.Load() == 0 {
		t.Error("the gateway sent no router solicitation")
	}
	periodic.Store(true)
	if got := nsExec(t, w.gw, "cat", acceptRAPath(w.uplink)); got != "2\n" {
		t.Errorf("accept_ra on the uplink = %q while sharing, want 2", got)
	}
	if got := nsExec(t, w.gw, "cat", acceptRAPath(w.gwMesh)); got != "1\n" {
		t.Errorf("accept_ra on the mesh interface = %q: only the uplink's may change", got)
	}
	if r := raDefault(t, w); !strings.Contains(r, "via "+llRouter+" dev "+w.uplink) {
		t.Errorf("the gw's RA default route: %q", r)
	}
	if s := g.Status(); s.UplinkIPv6 != w.uplink || s.Uplink != w.uplink {
		t.Errorf("status %+v, want %s for both families", s, w.uplink)
	}
	// A mesh client reaches the IPv6 Net through the shared uplink, masked.
	_, peers := listenOn(t, w.inetNS, "tcp6", "["+inet6+"]:8081")
	if err := connect6(w.clientNS, "["+inet6+"]:8081", 3*time.Second); err != nil {
		t.Fatalf("client → IPv6 Net while sharing: %v", err)
	}
	if got := <-peers; got != uplink6 {
		t.Errorf("the Net saw the client as %s, want %s", got, uplink6)
	}

	l6.Close() // the IPv6 Net stops answering: ::/0 withdrawn, IPv4 stays
	expect("IPv6 silent", true, "ok", false, "no answer from "+target6+" (refused)")
	listenOn(t, w.inetNS, "tcp6", target6)
	expect("IPv6 answers again", true, "ok", true, "ok")

	lifetime.Store(0) // the router says it is no default router any more
	lost := time.Now()
	expect("the RA route gone", true, "ok", false, "no uplink")
	t.Logf("::/0 withdrawn %v after the router's lifetime-0 RAs began", time.Since(lost).Round(10*time.Millisecond))
	if r := raDefault(t, w); r != "" {
		t.Errorf("the RA route stayed: %q", r)
	}
	lifetime.Store(1800)
	expect("the RA route back", true, "ok", true, "ok")

	l4.Close() // IPv4 silent: withdrawn, ::/0 stays
	expect("IPv4 silent", false, "no answer from "+target4, true, "ok")

	// IPv6 only: the uplink has no IPv4 default route, the operator names it.
	ip(t, "-n", w.gw, "route", "del", "default", "via", "198.51.100.1", "dev", w.uplink)
	if err := g.Set(nodeapi.ShareOn, w.uplink); err != nil {
		t.Fatal(err)
	}
	expect("named, IPv6 only", false, "no uplink: "+w.uplink+" is down or has no IPv4 default route", true, "ok")
	if s := g.Status(); s.Uplink != "" || s.UplinkIPv6 != w.uplink {
		t.Errorf("IPv6 only: status %+v", s)
	}
	if _, n := kernelState(t, w); !n {
		t.Error("IPv6 only: no NAT")
	}
	if err := connect6(w.clientNS, "["+inet6+"]:8081", 3*time.Second); err != nil {
		t.Errorf("client → IPv6 Net, IPv6 only: %v", err)
	}

	if err := g.Set(nodeapi.ShareOff, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sharing off", func() bool { s := g.Status(); return !s.Sharing && !s.SharingIPv6 && s.CheckIPv6 == "sharing is off" })
	if r := announced6In(t, w); r != "" {
		t.Errorf("sharing off: ::/0 still announced: %s", r)
	}
	if err := g.Set(nodeapi.ShareAuto, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sharing IPv6 again", func() bool { return g.Status().SharingIPv6 })
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if r, n := kernelState(t, w); r != "" || n || announced6In(t, w) != "" {
		t.Errorf("after Run returned the kernel still holds route %q / %q, NAT %v", r, announced6In(t, w), n)
	}
}
