package netcfg

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byzantium/ci/testenv"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netns"
)

// helperEnv carries "rootdir,iface" to the client half of TestDHCP, which
// the test re-executes inside the client's network namespace with
// `ip netns exec`: every thread of that process is then in the namespace,
// which setns on one locked thread could not promise for Start's
// goroutines.
const helperEnv = "BYZ_NETCFG_DHCP_HELPER"

// TestDHCP runs a DHCP server (insomniacslk's server4, fixed lease in
// TEST-NET-1) in one network namespace and Start in another, joined by a
// veth pair, and checks that the lease is applied and renewed. No packet
// leaves the two namespaces.
func TestDHCP(t *testing.T) {
	testenv.RequireRoot(t)
	ipTool := testenv.RequireTool(t, "ip")
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ipTool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	id := fmt.Sprint(os.Getpid())
	srvNS, cliNS := "byzt-dhcps-"+id, "byzt-dhcpc-"+id
	srvIf, cliIf := "bzs"+id, "bzc"+id
	for _, ns := range []string{srvNS, cliNS} {
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns).Run() }) // takes the veths with it
	}
	ip("link", "add", srvIf, "netns", srvNS, "type", "veth", "peer", "name", cliIf, "netns", cliNS)
	ip("-n", srvNS, "addr", "add", "192.0.2.1/24", "dev", srvIf)
	ip("-n", srvNS, "link", "set", srvIf, "up")

	var requests atomic.Int32
	srv := startServer(t, srvNS, srvIf, &requests)
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipTool, "netns", "exec", cliNS, os.Args[0], "-test.run=^TestDHCPClientHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+root+","+cliIf)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "HELPER OK") {
		t.Fatalf("client in %s: %v\n%s", cliNS, err, out)
	}

	checks := []struct{ what, got, want string }{
		{"address", ip("-n", cliNS, "-4", "-o", "addr", "show", "dev", cliIf), "inet 192.0.2.10/24"},
		{"default route", ip("-n", cliNS, "-4", "route", "show", "default"), "default via 192.0.2.1 dev " + cliIf},
		{"loopback", ip("-n", cliNS, "-o", "link", "show", "lo"), ",UP,"},
	}
	for _, c := range checks {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s: got %q, want it to contain %q", c.what, c.got, c.want)
		}
	}
	resolv, err := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
	if want := "# Written by byzd from the DHCP lease on " + cliIf + ".\nsearch mesh.example\nnameserver 192.0.2.53\n"; err != nil || string(resolv) != want {
		t.Errorf("resolv.conf = %q, %v; want %q", resolv, err, want)
	}
	if n := requests.Load(); n < 2 {
		t.Errorf("server saw %d REQUESTs, want at least 2 (first lease and a renewal)", n)
	}
}

// startServer makes the server's socket inside ns: a socket stays in the
// namespace it was made in, so only this goroutine's thread needs to
// switch. The thread is never unlocked, so the runtime discards it rather
// than reuse a thread left in another namespace.
func startServer(t *testing.T, ns, iface string, requests *atomic.Int32) *server4.Server {
	type result struct {
		s   *server4.Server
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err == nil {
			defer h.Close()
			err = netns.Set(h)
		}
		if err != nil {
			ch <- result{err: fmt.Errorf("entering %s: %w", ns, err)}
			return
		}
		s, err := server4.NewServer(iface, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, leaseHandler(requests))
		ch <- result{s, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("DHCP server: %v", r.err)
	}
	return r.s
}

// leaseHandler offers and acknowledges 192.0.2.10/24 with a lease short
// enough (3s, renew at 1s) that the client renews within the test.
func leaseHandler(requests *atomic.Int32) server4.Handler {
	return func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
			requests.Add(1)
		default:
			return
		}
		resp, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 10)),
			dhcpv4.WithServerIP(net.IPv4(192, 0, 2, 1)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1)),
			dhcpv4.WithDNS(net.IPv4(192, 0, 2, 53)),
			dhcpv4.WithOption(dhcpv4.OptDomainName("mesh.example")),
			dhcpv4.WithLeaseTime(3),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(time.Second)),
		)
		if err != nil {
			return
		}
		conn.WriteTo(resp.ToBytes(), peer)
	}
}

// TestDHCPClientHelper is the client half of TestDHCP; run directly it
// does nothing.
func TestDHCPClientHelper(t *testing.T) {
	env := os.Getenv(helperEnv)
	if env == "" {
		return
	}
	root, iface, _ := strings.Cut(env, ",")
	// Discovery itself is under test: `ip netns exec` mounts this
	// namespace's sysfs, where the veth end must be the one wired
	// interface.
	if got, err := WiredInterfaces("/sys"); err != nil || !slices.Equal(got, []string{iface}) {
		t.Fatalf("WiredInterfaces = %q, %v; want [%s]", got, err, iface)
	}
	leases := make(chan Lease, 4)
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, Config{RootDir: root, Hostname: "node1", Timeout: 2 * time.Second, OnLease: func(l Lease) { leases <- l }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the first lease, then its renewal
		select {
		case l := <-leases:
			t.Logf("lease %d: %+v", i, l)
		case <-time.After(30 * time.Second):
			t.Fatalf("no lease %d after 30s", i)
		}
	}
	cancel()
	n.Wait()
	fmt.Println("HELPER OK")
}
