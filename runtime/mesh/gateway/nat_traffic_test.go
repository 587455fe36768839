package gateway

import (
	"context"
	"net"
	"testing"
	"time"
)

// world is three namespaces in a line: client — gw — net. The client
// (10.1.2.2, a mesh client) has its default route via the gw; the gw's
// uplink is 198.51.100.2 and "the Internet" is 198.51.100.1, which has no
// route back to 10/8, as the real one has none.
type world struct {
	client, gw, inet            string // namespace names
	clientNS, gwNS, inetNS      *netNS
	gwPath                      string
	uplink, gwMesh, inetIf, cIf string // interface names
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{}
	var cPath, iPath string
	w.client, cPath = testNS(t, "c")
	w.gw, w.gwPath = testNS(t, "g")
	w.inet, iPath = testNS(t, "i")
	w.cIf, w.gwMesh, w.uplink, w.inetIf = ifName("cl"), ifName("ms"), ifName("up"), ifName("in")
	veth(t, w.client, w.cIf, w.gw, w.gwMesh)
	veth(t, w.gw, w.uplink, w.inet, w.inetIf)
	ip(t, "-n", w.client, "addr", "add", "10.1.2.2/24", "dev", w.cIf)
	ip(t, "-n", w.client, "route", "add", "default", "via", "10.1.2.1")
	ip(t, "-n", w.gw, "addr", "add", "10.1.2.1/24", "dev", w.gwMesh)
	ip(t, "-n", w.gw, "addr", "add", "198.51.100.2/24", "dev", w.uplink)
	ip(t, "-n", w.inet, "addr", "add", "198.51.100.1/24", "dev", w.inetIf)
	for _, p := range []struct {
		path string
		ns   **netNS
	}{{cPath, &w.clientNS}, {w.gwPath, &w.gwNS}, {iPath, &w.inetNS}} {
		ns, err := openNetNS(p.path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ns.close)
		*p.ns = ns
	}
	return w
}

// listen opens a TCP listener inside ns and returns it with the remote
// addresses of the connections it accepts.
func listen(t testing.TB, ns *netNS, addr string) (net.Listener, <-chan string) {
	t.Helper()
	var l net.Listener
	if err := ns.do(func() (err error) {
		l, err = net.Listen("tcp4", addr)
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

// connect dials addr from inside ns within timeout.
func connect(ns *netNS, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ns.do(func() error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TestNATTraffic: the client's connections reach the Net with the gw's
// uplink address, only while the NAT is applied; and the Net cannot open
// a connection to the client through the gw.
func TestNATTraffic(t *testing.T) {
	w := newWorld(t)
	if err := enableForwarding(w.gwNS); err != nil {
		t.Fatal(err)
	}
	if got := nsExec(t, w.gw, "cat", forwardingPath); got != "1\n" {
		t.Fatalf("ip_forward in gw = %q after enableForwarding", got)
	}
	_, peers := listen(t, w.inetNS, "198.51.100.1:8053")
	const server = "198.51.100.1:8053"

	// Without NAT the Net's reply has no way back to 10.1.2.2.
	if err := connect(w.clientNS, server, 700*time.Millisecond); err == nil {
		t.Fatal("the client reached the Net before any NAT: the test world leaks")
	}

	c := nftIn(t, w.gwPath)
	if err := (NAT{Uplink: w.uplink}).Apply(c); err != nil {
		t.Fatal(err)
	}
	for len(peers) > 0 { // a SYN of the failed try may have been accepted late
		<-peers
	}
	if err := connect(w.clientNS, server, 3*time.Second); err != nil {
		t.Fatalf("client → Net through the NAT: %v", err)
	}
	select {
	case got := <-peers:
		if got != "198.51.100.2" {
			t.Errorf("the Net saw the client as %s, want the gw's uplink address 198.51.100.2", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the server accepted nothing")
	}

	// The Net starts nothing in the mesh: with a route to 10/8 via the
	// gw, a connection to the client is dropped at the gw's forward hook.
	ip(t, "-n", w.inet, "route", "add", "10.0.0.0/8", "via", "198.51.100.2")
	listen(t, w.clientNS, "10.1.2.2:8080")
	if err := connect(w.inetNS, "10.1.2.2:8080", 700*time.Millisecond); err == nil {
		t.Error("the Net opened a connection to a mesh client through the gw")
	}
	if err := RemoveNAT(c, ""); err != nil {
		t.Fatal(err)
	}
	// Without our table, nothing drops it: the drop above was ours.
	if err := connect(w.inetNS, "10.1.2.2:8080", 3*time.Second); err != nil {
		t.Errorf("without the gateway's table the Net → client connection failed too (%v): the test proves nothing", err)
	}
}
