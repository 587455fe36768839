package gateway

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"byzantium/ci/testenv"
	"byzantium/runtime/mesh/babel"
	"byzantium/runtime/nodeapi"
)

// TestGateway6ThroughBabel is the whole IPv6 way out: the gw shares an
// IPv6-only uplink (named; its ::/0 set by hand), the real babeld on the
// gw and on the client (a mesh node) runs the configuration
// runtime/mesh/babel generates, the client gets ::/0 from babel alone
// (its own static default removed), and its ULA traffic reaches the Net
// masqueraded as the gw's uplink address; stopping the Gateway takes
// ::/0 from the client.
func TestGateway6ThroughBabel(t *testing.T) {
	babeld := testenv.RequireTool(t, "babeld")
	w := newWorld6(t)
	ip(t, "-n", w.client, "-6", "route", "del", "default")
	ip(t, "-n", w.gw, "-6", "route", "add", "default", "via", inet6, "dev", w.uplink)
	nsExec(t, w.gw, "sh", "-c", "echo 1 > "+forwardingPath6)
	const target6 = "[" + inet6 + "]:8053"
	listenOn(t, w.inetNS, "tcp6", target6)
	_, peers := listenOn(t, w.inetNS, "tcp6", "["+inet6+"]:8081")

	dir := t.TempDir()
	for i, n := range []struct{ ns, iface, own string }{{w.gw, w.gwMesh, gwMesh6}, {w.client, w.cIf, client6}} {
		c := babel.Config{
			RouterID:   babel.RouterID{0x6a, 0x2e, 0x7b, 0, 0, 0, 0, byte(i + 1)},
			Interfaces: []babel.Interface{{Name: n.iface}},
			Own:        []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(n.own), 128)},
			Mesh:       []babel.MeshPrefix{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), MinLen: 24}, {Prefix: netip.MustParsePrefix(defaultULA), MinLen: 64}},
			Socket:     filepath.Join(dir, n.iface+".sock"),
			StateFile:  filepath.Join(dir, n.iface+".state"),
		}
		conf, err := babel.Generate(c)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, n.iface+".conf")
		if err := os.WriteFile(path, conf, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", n.ns, babeld, "-c", path, "-I", "")
		var out bytes.Buffer
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("babeld in %s said:\n%.2000s", n.ns, out.String())
			}
		})
	}

	g, err := New(Config{
		NetNS: w.gwPath, Share: nodeapi.ShareOn, Uplink: w.uplink, Targets: []string{"tcp:" + target6},
		Timeout: time.Second, Interval: 300 * time.Millisecond, RetryInterval: 100 * time.Millisecond, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runGateway(g, w.gwMesh)
	defer stop()

	clientDefault := func() string {
		return strings.TrimSpace(ip(t, "-n", w.client, "-6", "route", "show", "default", "proto", "42"))
	}
	start := time.Now()
	waitFor(t, "the client has ::/0 from babel", func() bool { return clientDefault() != "" })
	t.Logf("the client has ::/0 from babel %v after the gateway started: %s", time.Since(start).Round(100*time.Millisecond), clientDefault())
	if s := g.Status(); !s.SharingIPv6 || s.Sharing || s.UplinkIPv6 != w.uplink {
		t.Errorf("status %+v: want IPv6 only shared via %s", s, w.uplink)
	}
	if err := connect6(w.clientNS, "["+inet6+"]:8081", 3*time.Second); err != nil {
		t.Fatalf("client → IPv6 Net over babel's ::/0: %v", err)
	}
	if got := <-peers; got != uplink6 {
		t.Errorf("the Net saw the client as %s, want %s", got, uplink6)
	}

	// byzd stops: ::/0 withdrawn, babel retracts it.
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	stopped := time.Now()
	waitFor(t, "the client loses ::/0", func() bool { return clientDefault() == "" })
	t.Logf("the client lost ::/0 %v after the gateway stopped", time.Since(stopped).Round(100*time.Millisecond))
}
